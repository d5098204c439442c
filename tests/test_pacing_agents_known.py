"""What the pacer is told about its agents beyond the ready count (issue 31): who will pause after this call
(`AgentView.leaving`), when a paused agent on a scheduled break is due back (`AgentView.back_in_s`), and the
team's measured answer rate in the rolling-hour guard; and the bench's agents who announce their break."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from bench.pacing.policies import EnginePolicy
from bench.pacing.scenario import scenario_from_dict
from bench.pacing.sim import Sim
from pacing.engine import AgentView, Decision, Pacer, PacerConfig, Snapshot


def _pacer(**kw: object) -> Pacer:
    cfg = PacerConfig(abandon_regime="jp_cx", abandon_target=0.01, abandon_limit=0.05, ring_timeout_s=26.0,
                      prior_talk_s=300.0, prior_wrap_s=30.0, prior_hit_rate=0.12, warmup_answers=0,
                      ramp_answers=0, **kw)  # type: ignore[arg-type]
    return Pacer(cfg)


def _answers(p: Pacer, n: int, until: float) -> None:
    for k in range(n):
        t = until - 3600.0 + 3600.0 * (k + 0.5) / n
        p.record_outcome(t, "human", 9.0)
        p.record_connect(t, 0.5)


def test_agents_due_back_raise_the_hours_budget_and_agents_leaving_lower_it() -> None:
    """A lunch: 4 of 8 agents logged. Counting only the 4, the hour to come holds too few answers for one abandon
    under the 4 % cap; the 4 paused agents due back within 20 minutes give it room. Agents who pressed 'pause
    after this call' give the hour nothing, so the budget can only shrink with them."""
    p = _pacer()
    _answers(p, 30, 7200.0)  # the last hour of a thin team: the windows reaching into the next hour decide
    aht = 330.0
    alone, _ = p.hour_room(7200.0, 4, aht)
    back, _ = p.hour_room(7200.0, 4, aht, staying=4, back=[300.0, 600.0, 900.0, 1200.0])
    assert alone < 1 <= back
    full, _ = p.hour_room(7200.0, 8, aht)
    fewer, _ = p.hour_room(7200.0, 8, aht, staying=4)
    assert fewer < full
    assert p.hour_room(7200.0, 8, aht, staying=8) == p.hour_room(7200.0, 8, aht)  # nothing known: as before
    late, _ = p.hour_room(7200.0, 4, aht, staying=4, back=[5000.0] * 4)          # due back after the hour
    assert late == alone


def test_an_agent_leaving_after_this_call_is_not_counted_on_to_free_up() -> None:
    """Every agent busy, four of them near the end of a 30 s wrap-up: the pacer dials ahead for them. Told that
    they will pause after this call, it does not (they are busy, not about to be free)."""
    p = _pacer(hour_guard=False)
    _answers(p, 60, 3600.0)
    for _ in range(60):
        p.record_handle(300.0, 30.0)
    busy = [AgentView("on_call", 60.0)] * 4

    def dials(leaving: bool) -> int:
        wrap = [AgentView("wrap_up", 25.0, leaving=leaving)] * 4
        return p.decide(Snapshot(now=3600.0, agents=busy + wrap, ringing=())).dial

    assert dials(False) >= 1
    assert dials(True) == 0


def test_odd_return_times_are_read_as_unknown_or_now() -> None:
    """back_in_s comes from outside: NaN, +inf or beyond a day are 'not known' (as None), below 0 is 'due now';
    none of them raises, and a paused agent is never counted as a ready one."""
    p = _pacer()
    _answers(p, 60, 3600.0)
    team = [AgentView("ready"), AgentView("on_call", 100.0)]
    base = p.decide(Snapshot(now=3600.0, agents=[*team, AgentView("paused")], ringing=()))
    for b in (math.nan, math.inf, 1e12):
        d = p.decide(Snapshot(now=3600.0, agents=[*team, AgentView("paused", back_in_s=b)], ringing=()))
        assert d.dial == base.dial
    d = p.decide(Snapshot(now=3600.0, agents=[*team, AgentView("paused", back_in_s=-30.0)], ringing=()))
    assert d.dial <= 2  # max 3 lines an agent over the 2 logged, 1 busy: the paused agent adds no line


def test_the_measured_answer_rate_is_bounded_and_needs_half_an_hour() -> None:
    p = _pacer(hour_rate_top=0.8)
    assert p.answer_rate(0.0, 300.0) == 0.6
    for k in range(121):  # 8 agents logged for an hour, 80 answers: 80 x 300 / (8 x 3600) = 0.83 -> 0.8
        t = 30.0 * k
        p._staff(t, 8)
        if k % 3:
            p.record_outcome(t, "human", 9.0)
    assert p.answer_rate(1000.0, 300.0) == 0.6       # under half an hour seen: the flat rate
    assert p.answer_rate(3600.0, 300.0) == 0.8       # capped at the top
    assert _pacer(hour_rate_top=0.6).answer_rate(3600.0, 300.0) == 0.6
    q = _pacer()
    for k in range(121):  # 10 answers in the hour: a quiet team is read at the floor, never below
        q._staff(30.0 * k, 8)
        if k % 12 == 0 and k:
            q.record_outcome(30.0 * k, "human", 9.0)
    assert q.answer_rate(3600.0, 300.0) == 0.6


def _announcing(share: float) -> dict[str, object]:
    return {"agents": 4, "shift_s": 5400, "outcomes": {"human": 0.3, "machine": 0.1}, "ring_timeout_s": 20,
            "talk": {"dist": "lognormal", "mean": 240, "cv": 0.5}, "wrap": {"dist": "uniform", "low": 10, "high": 20},
            "breaks": [{"at_s": 2400, "duration_s": 900, "spread_s": 300, "announce_s": 600,
                        "announce_share": share}]}


def _seen(share: float) -> tuple[list[float], list[float]]:
    """(decision times with an agent leaving, the back_in_s values) the pacer was shown over two seeds."""
    sc = scenario_from_dict(_announcing(share), "announce")
    leaving: list[float] = []
    back: list[float] = []

    def spy(snap: Snapshot, decide: Callable[[Snapshot], Decision]) -> Decision:
        leaving.extend(snap.now for a in snap.agents if a.leaving)
        back.extend(a.back_in_s for a in snap.agents if a.back_in_s is not None)
        assert all(a.state in ("on_call", "wrap_up") for a in snap.agents if a.leaving)
        assert all(a.state == "paused" for a in snap.agents if a.back_in_s is not None)
        return decide(snap)

    for seed in range(2):
        pol = EnginePolicy(sc, "progressive")
        pol.pacer.decide = functools.partial(spy, decide=pol.pacer.decide)  # type: ignore[method-assign]
        Sim(sc, seed, pol).run()
    return leaving, back


def test_announced_breaks_start_after_the_call_and_the_pacer_is_told() -> None:
    """Agents who press 'pause after this call' ten minutes before their break leave when that call ends (before
    the break's scheduled start); while they finish it the engine policy's snapshot says leaving=True, and once on
    the break it says when they are due back. Without announcements (share 0) no one is seen leaving before the
    earliest scheduled start."""
    leaving, back = _seen(1.0)
    assert sum(1 for t in leaving if t < 2400 - 300) > 0 and back and 0.0 <= min(back) and max(back) <= 900.0
    leaving, back = _seen(0.0)
    assert sum(1 for t in leaving if t < 2400 - 300) == 0 and back
