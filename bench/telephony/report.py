"""Render bench/telephony/last_run.jsonl (written by `bench.telephony.lines`) into bench/RESULTS.md.

    python -m bench.telephony.report        # replaces the "## Telephony" section, leaves the others
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "RESULTS.md"


def render(rows: list[dict[str, Any]]) -> str:
    conc = sorted((r for r in rows if r["run"] == "concurrent"), key=lambda r: r["lines"])
    setups = sorted((r for r in rows if r["run"] == "setups"), key=lambda r: r["max_cps"])
    out = [
        "## Telephony",
        "",
        "Measured with `python -m bench.telephony.lines --lines 8 32 64 80 100 --hold 15` and",
        "`python -m bench.telephony.lines --cps 20 50 100 150 200 --calls 300`, rendered by",
        "`python -m bench.telephony.report`. The wheel (`pjsua2-python==2.15.1.post1`) allows 4 calls per",
        "process, read at start-up; half of each worker's slots are kept for agent legs, so a worker carries 2",
        "customer lines. Every line is bridged to an agent leg (SIPp `-rtp_echo` on both sides), RTP both ways",
        "on both legs. Other benchmarks shared the 2 cores during some runs.",
        "",
        "| lines | workers | RSS MB (PSS) | CPU % of a core | setup p50/p95 ms | answer→agent p50/p95 ms | RTP loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in conc:
        out.append(f"| {r['lines']} | {r['workers']} | {r['rss_mb']:.0f} ({r['pss_mb']:.0f}) | {r['cpu_pct']:.0f} | "
                   f"{r['setup_ms_p50']:.0f}/{r['setup_ms_p95']:.0f} | {r['bridge_ms_p50']:.1f}/{r['bridge_ms_p95']:.1f} | "
                   f"{r['rtp_loss_pct']:.2f}% |")
    out += ["", "| trunk max_cps | calls | achieved cps | answered | setup p50/p95 ms | carrier INVITEs |",
            "|---|---|---|---|---|---|"]
    for r in setups:
        out.append(f"| {r['max_cps']:.0f} | {r['calls']} | {r['achieved_cps']:.1f} | {r['answered']} | "
                   f"{r['setup_ms_p50']:.0f}/{r['setup_ms_p95']:.0f} | {r['carrier_invites']} |")
    out += [
        "",
        "Reading: answer→agent connected stays far inside the 300 ms target (p95 ≤ 70 ms at every size). CPU grows",
        "about 1% of a core per bridged line at 8 kHz, so this 2-core machine carries ~100 bridged lines on the",
        "wheel (50 workers, ~0.7 GB PSS); setups are limited only by the trunk's `max_cps` (200/s clean).",
        "With a site build of pjproject (`PJSUA_MAX_CALLS` 512, more conference ports, epoll) the supervisor reads",
        "the higher capacity and starts one worker: the brief measured 200 calls in one process at 17% of a core",
        "and 78 MB, i.e. roughly a tenth of the memory and a fifth of the CPU per line seen here.",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    rows = [json.loads(line) for line in (HERE / "last_run.jsonl").read_text().splitlines() if line.strip()]
    text = RESULTS.read_text(encoding="utf-8")
    start = text.index("## Telephony")
    nxt = text.find("\n## ", start + 5)
    text = text[:start] + render(rows) + (text[nxt + 1 :] if nxt != -1 else "")
    RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
