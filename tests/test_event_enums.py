"""(issue 28) Call events and outcomes are enums end to end: one outcome enum, typed event kinds, and every kind and
outcome the telephony code writes as a literal is a member (an unknown one would fail in a worker mid-call)."""

from __future__ import annotations

import ast
import json
import pickle
from pathlib import Path

import pytest

from dialer.domain.retry import OUTCOMES
from dialer.domain.vocabulary import CallOutcome
from dialer.telephony import events
from dialer.telephony.events import CallEvent, EventKind, outcome_for_status

REPO = Path(__file__).resolve().parent.parent


def test_one_outcome_enum() -> None:
    assert events.Outcome is CallOutcome
    assert {"redirected", "trunk_error", "unreachable", "anonymous_rejected"} <= {o.value for o in CallOutcome}


def test_a_string_given_becomes_the_member_and_stays_the_same_string() -> None:
    ev = CallEvent("failed", attempt_id=7, outcome="busy", sip_status=486)
    assert ev.kind is EventKind.FAILED and ev.outcome is CallOutcome.BUSY
    back = pickle.loads(pickle.dumps(ev))  # what crosses the worker's process boundary
    assert back.kind is EventKind.FAILED and back.outcome is CallOutcome.BUSY
    assert json.loads(json.dumps(ev.to_dict()))["kind"] == "failed"  # stored and JSON values unchanged
    assert json.loads(json.dumps(ev.to_dict()))["outcome"] == "busy"
    assert CallEvent(EventKind.HANGUP).outcome is None


def test_an_unknown_kind_or_outcome_fails_where_it_is_made() -> None:
    with pytest.raises(ValueError):
        CallEvent("answred")
    with pytest.raises(ValueError):
        CallEvent("failed", outcome="bussy")


def test_sip_statuses_map_to_members() -> None:
    assert outcome_for_status(486) is CallOutcome.BUSY
    assert outcome_for_status(433) is CallOutcome.ANONYMOUS_REJECTED
    assert outcome_for_status(None) is CallOutcome.CONGESTION
    assert outcome_for_status(487, ring_timeout=True) is CallOutcome.NO_ANSWER
    assert outcome_for_status(699) is CallOutcome.REJECTED
    assert outcome_for_status(302) is CallOutcome.FAILED


def test_redirects_and_trunk_errors_stay_out_of_the_retry_rules() -> None:
    """Merging the enums must not change what the hopper counts: a redirect is recorded as failed there, and a
    trunk error is no attempt on the contact."""
    assert "redirected" not in OUTCOMES and "trunk_error" not in OUTCOMES
    assert "busy" in OUTCOMES and "unreachable" in OUTCOMES


def _literals(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(kinds, outcomes) written as string literals: emit("x"...), _emit("x"...), CallEvent("x"/kind="x"),
    outcome="x" keywords and `outcome, detail = "x", ...` / `outcome = "x" if ... else "y"` assignments."""
    kinds: list[tuple[int, str]] = []
    outcomes: list[tuple[int, str]] = []

    def strings(node: ast.AST) -> list[str]:
        """The values an expression can take: a literal, or either branch of `x if cond else y` (not the cond)."""
        if isinstance(node, ast.IfExp):
            return strings(node.body) + strings(node.orelse)
        return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("emit", "_emit", "CallEvent") and node.args:
                kinds += [(node.lineno, s) for s in strings(node.args[0])]
            for kw in node.keywords:
                if kw.arg == "kind" and name == "CallEvent":
                    kinds += [(node.lineno, s) for s in strings(kw.value)]
                if kw.arg == "outcome" and name in ("emit", "_emit", "CallEvent"):
                    outcomes += [(node.lineno, s) for s in strings(kw.value)]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "outcome" for t in node.targets):
            outcomes += [(node.lineno, s) for s in strings(node.value)]
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and isinstance(
                node.value, ast.Tuple) and node.targets[0].elts and isinstance(node.targets[0].elts[0], ast.Name) \
                and node.targets[0].elts[0].id == "outcome":
            outcomes += [(node.lineno, s) for s in strings(node.value.elts[0])]
    return kinds, outcomes


def test_every_kind_and_outcome_the_telephony_writes_is_a_member() -> None:
    kinds_ok = {k.value for k in EventKind}
    outcomes_ok = {o.value for o in CallOutcome}
    bad = []
    seen_kinds = seen_outcomes = 0
    for path in sorted((REPO / "dialer" / "telephony").glob("*.py")):
        kinds, outcomes = _literals(path)
        seen_kinds += len(kinds)
        seen_outcomes += len(outcomes)
        bad += [f"{path.name}:{n}: kind {k!r}" for n, k in kinds if k not in kinds_ok]
        bad += [f"{path.name}:{n}: outcome {o!r}" for n, o in outcomes if o not in outcomes_ok]
    assert seen_kinds > 20 and seen_outcomes > 5  # the scan reads the sources, or it would pass on anything
    assert not bad, "; ".join(bad)


def test_the_scan_sees_each_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('self.emit("answred", att, outcome="bussy")\nCallEvent(kind="x" if a else "y")\n'
                     'outcome = "p" if "not this" in a else "q"\noutcome, detail = "r", "not an outcome"\n', encoding="utf-8")
    kinds, outcomes = _literals(probe)
    assert sorted(k for _, k in kinds) == ["answred", "x", "y"]
    assert sorted(o for _, o in outcomes) == ["bussy", "p", "q", "r"]


def test_runner_counts_an_outcome_under_its_value() -> None:
    """The node prints and saves a runner's counts: an outcome counted as its enum showed up as
    `<CallOutcome.NO_ANSWER: 'no_answer'>` in the stop line."""
    from types import SimpleNamespace

    from dialer.campaign import CampaignRunner

    r = SimpleNamespace(counts={})
    CampaignRunner._count(r, CallOutcome.NO_ANSWER)  # type: ignore[arg-type]
    CampaignRunner._count(r, "no_answer")  # type: ignore[arg-type]
    assert r.counts == {"no_answer": 2}
    assert all(type(k) is str for k in r.counts)
    assert "CallOutcome" not in repr(r.counts) and json.loads(json.dumps(r.counts)) == {"no_answer": 2}
