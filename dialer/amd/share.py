"""The share of machine verdicts that were really people: what the UK abandon figure adds as abandons.

Two measurements, and the dialer uses the higher (compliance errs on the side of counting more abandons):
- the evaluation corpus (`python -m bench.amd` writes `measured.json` next to this module), taken at its
  95% upper bound;
- agents' corrections: of the machine-verdict calls an agent got to hear (leave-message calls the agent
  reviews, or any machine verdict that reached a console), the share they marked as a person.
"""

from __future__ import annotations

import json
from pathlib import Path

MEASURED = Path(__file__).with_name("measured.json")


def corpus_fp_share(path: Path = MEASURED) -> float:
    """False-positive share measured on the held-out corpus, its 95% upper bound (0.0 with no bench run)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        # the 95% upper bound when the bench wrote one: a corpus of a few hundred calls that shows 0 errors
        # does not prove a 0% share, and UK abandons must not be under-counted
        v = float(data.get("corpus_fp_share_upper95", data.get("corpus_fp_share", 0.0)))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0
    return min(1.0, max(0.0, v))


def agent_fp_share(marked_person: int, machine_reviewed: int) -> float:
    """Share of reviewed machine verdicts an agent marked "this was a person"."""
    return marked_person / machine_reviewed if machine_reviewed > 0 else 0.0


def fp_share(corpus: float, marked_person: int = 0, machine_reviewed: int = 0) -> float:
    """The share the abandon figures use: the higher of the corpus and the agent-corrected measurement."""
    return max(corpus, agent_fp_share(marked_person, machine_reviewed))


__all__ = ["MEASURED", "agent_fp_share", "corpus_fp_share", "fp_share"]
