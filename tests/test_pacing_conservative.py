"""Conservative start and decision cost: what issue 16 promises about the first minutes and p99."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacing.decision import progressive_count
from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot
from pacing.estimators import HandleTimes

STATES = ["ready", "on_call", "wrap_up", "paused"]
agents_st = st.lists(st.builds(AgentView, st.sampled_from(STATES), st.floats(0, 3000)), min_size=1, max_size=40)
snap_st = st.builds(Snapshot, now=st.floats(0, 1e5), agents=agents_st,
                    ringing=st.lists(st.floats(0, 30), max_size=40), waiting=st.integers(0, 4))


def _feed(p: Pacer, people: int, hit: float = 0.25) -> None:
    """`people` live answers among about people / hit dials, one a second."""
    dials = int(people / hit)
    for i in range(dials):
        t = float(i)
        p.record_dial(t)
        human = i % round(1 / hit) == 0
        p.record_outcome(t, "human" if human else "no_answer", 9.0 if human else 24.0)
        if human:
            p.record_connect(t, 0.3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snap=snap_st, seen=st.integers(0, 19))
def test_warm_up_is_exactly_progressive(snap: Snapshot, seen: int) -> None:
    """Before `warmup_answers` people answered, predictive places what progressive would, no more."""
    p = Pacer(PacerConfig(mode="predictive", warmup_answers=20, prior_hit_rate=0.05))  # an unsafe prior
    _feed(p, seen)
    d = p.decide(snap)
    ready = sum(1 for a in snap.agents if a.state == "ready")
    logged = sum(1 for a in snap.agents if a.state != "paused")
    in_progress = len(snap.ringing) + snap.waiting + sum(1 for a in snap.agents if a.state == "on_call")
    cap = max(0, min(int(snap.trunk_free), int(snap.cps_headroom), int(3.0 * logged) - in_progress))
    assert d.dial == min(progressive_count(ready, len(snap.ringing), snap.waiting), cap)
    assert logged == 0 or "warm-up" in d.note


def test_credibility_ramps_from_zero_to_one() -> None:
    p = Pacer(PacerConfig(mode="predictive", warmup_answers=20, ramp_answers=80))
    seen = []
    for _ in range(12):
        seen.append(p.credibility())
        _feed(p, 10)
    assert seen[0] == seen[1] == 0.0                  # 0 and 10 answers: still warming up
    assert all(b >= a for a, b in zip(seen, seen[1:], strict=False))  # never falls as evidence grows
    assert 0.0 < seen[2] < 1.0 and seen[-1] == 1.0    # ramps, then full credibility at 100 answers


def test_ramp_dials_no_more_than_full_credibility() -> None:
    """Same state, same estimates: the ramp can only hold dials back."""
    snap = Snapshot(now=5000.0, agents=[AgentView("on_call", 150.0 + 7 * i) for i in range(20)]
                    + [AgentView("ready")] * 2, ringing=[2.0, 5.0], waiting=0)
    ramp = Pacer(PacerConfig(mode="predictive", warmup_answers=20, ramp_answers=400))
    full = Pacer(PacerConfig(mode="predictive", warmup_answers=20, ramp_answers=0))
    for p in (ramp, full):
        _feed(p, 40)
    assert 0.0 < ramp.credibility() < 1.0 and full.credibility() == 1.0
    assert ramp.decide(snap).dial <= full.decide(snap).dial


def test_warm_start_skips_the_warm_up() -> None:
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0))
    assert p.credibility() == 1.0
    state = p.to_state()
    q = Pacer.from_state(PacerConfig(mode="predictive"), state)  # yesterday's evidence survives a restart
    assert q.credibility() == 1.0


def test_tables_are_never_rebuilt_inside_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: HandleTimes._build (about 10 ms) ran inside decide() every 50 calls; now it runs when
    the finished call is recorded, between ticks."""
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0))
    snap = Snapshot(now=100.0, agents=[AgentView("on_call", 30.0 * i) for i in range(30)] + [AgentView("ready")],
                    ringing=[1.0, 3.0])
    builds = {"n": 0}
    real = HandleTimes._build

    def counting(self: HandleTimes, h: np.ndarray) -> tuple[float, np.ndarray, float, np.ndarray]:
        builds["n"] += 1
        return real(self, h)

    monkeypatch.setattr(HandleTimes, "_build", counting)
    for i in range(120):
        p.record_handle(100.0 + i, 20.0)
        p.record_outcome(float(i), "human" if i % 4 == 0 else "busy", 8.0)
    assert builds["n"] == 2                    # rebuilt at the 50th and 100th call, in record_handle
    assert not p.handle.stale and not p.ring.stale
    monkeypatch.setattr(HandleTimes, "_build", lambda *a: pytest.fail("rebuilt inside decide"))
    for k in range(30):
        p.decide(Snapshot(now=100.0 + k, agents=snap.agents, ringing=snap.ringing))
