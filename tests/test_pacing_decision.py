"""Properties of Pacer.decide that must hold for every snapshot, in every mode."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot

STATES = ["ready", "reserved", "on_call", "wrap_up", "paused"]

agents_st = st.lists(st.builds(AgentView, st.sampled_from(STATES), st.floats(0, 5000), st.booleans()), max_size=60)
snap_st = st.builds(Snapshot, now=st.floats(0, 1e6), agents=agents_st,
                    ringing=st.lists(st.floats(0, 40), max_size=120), waiting=st.integers(0, 10),
                    trunk_free=st.integers(0, 400), cps_headroom=st.integers(0, 100))


def _pacer(mode: str, history: int) -> Pacer:
    p = Pacer(PacerConfig(mode=mode))
    for i in range(history):  # some history so the estimators are not at their priors
        t = float(i)
        p.record_dial(t)
        outcome = ("human", "machine", "busy", "no_answer", "failed")[i % 5]
        p.record_outcome(t, outcome, {"human": 8.0, "machine": 10.0, "busy": 3.0}.get(outcome))
        if outcome == "human":
            p.record_connect(t, 0.3)
        p.record_handle(100.0 + i % 200, 20.0 + i % 20)
    return p


def _counts(s: Snapshot) -> tuple[int, int, int]:
    ready = sum(1 for a in s.agents if a.state == "ready")
    logged = sum(1 for a in s.agents if a.state != "paused")
    busy_lines = sum(1 for a in s.agents if a.state in ("on_call", "reserved") or
                     (a.leaving and a.state not in ("ready", "paused")))
    return ready, logged, busy_lines


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snap=snap_st, mode=st.sampled_from(["preview", "progressive", "power", "predictive"]),
       history=st.sampled_from([0, 300]))
def test_decision_bounds(snap: Snapshot, mode: str, history: int) -> None:
    p = _pacer(mode, history)
    d = p.decide(snap)
    ready, logged, busy_lines = _counts(snap)
    assert d.dial >= 0
    assert d.dial <= snap.trunk_free and d.dial <= snap.cps_headroom
    in_progress = len(snap.ringing) + snap.waiting
    assert d.dial <= max(0, math.floor(3.0 * logged + 1e-9) - in_progress)
    if logged == 0:
        assert d.dial == 0
    if mode == "preview":
        assert d.dial == 0
    progressive = min(max(0, ready - len(snap.ringing) - snap.waiting), snap.trunk_free, snap.cps_headroom,
                      max(0, math.floor(3.0 * logged + 1e-9) - in_progress - busy_lines))
    if mode == "progressive":
        assert d.dial == progressive
    if mode == "predictive":
        assert d.dial >= progressive  # never fewer lines than progressive would place
    assert math.isfinite(d.level) and d.level >= 0


def test_budget_spent_drops_to_progressive_and_says_so() -> None:
    p = Pacer(PacerConfig(mode="predictive", abandon_window="1h"))
    for i in range(100):
        p.record_outcome(float(i), "human", 9.0)
        if i % 10 == 0:
            p.record_abandon(float(i) + 2, 2.0)  # 10 % abandons
        else:
            p.record_connect(float(i) + 0.3, 0.3)
    assert p.budget_exhausted(200.0)
    snap = Snapshot(now=200.0, agents=[AgentView("ready")] * 3 + [AgentView("on_call", 170.0)] * 17,
                    ringing=[1.0], waiting=0, trunk_free=100, cps_headroom=100)
    d = p.decide(snap)
    assert d.mode == "progressive" and d.dial == 2 and "budget" in d.note
    # the 1 h window forgets: an hour later the budget is back and predictive dials again
    later = Snapshot(now=200.0 + 3700, agents=snap.agents, ringing=[], waiting=0, trunk_free=100, cps_headroom=100)
    assert not p.budget_exhausted(later.now)
    assert p.decide(later).mode == "predictive"


def test_predictive_uses_state_agents_about_to_free() -> None:
    """Same counts, different elapsed times: agents at the end of wrap-up justify more lines."""
    p = _pacer("predictive", 400)
    early = Snapshot(now=1000.0, agents=[AgentView("wrap_up", 0.0)] * 10 + [AgentView("on_call", 5.0)] * 10,
                     ringing=[], waiting=0, trunk_free=100, cps_headroom=100)
    late = Snapshot(now=1000.0, agents=[AgentView("wrap_up", 38.0)] * 10 + [AgentView("on_call", 5.0)] * 10,
                    ringing=[], waiting=0, trunk_free=100, cps_headroom=100)
    assert p.decide(late).dial > p.decide(early).dial


def test_predictive_uses_ring_time_of_lines() -> None:
    """Lines that have rung long are less likely to be answered than fresh ones: more room to dial."""
    p = _pacer("predictive", 400)
    agents = [AgentView("wrap_up", 38.0)] * 6 + [AgentView("on_call", 60.0)] * 14
    fresh = Snapshot(now=1000.0, agents=agents, ringing=[2.0] * 8, trunk_free=100, cps_headroom=100)
    stale = Snapshot(now=1000.0, agents=agents, ringing=[20.0] * 8, trunk_free=100, cps_headroom=100)
    assert p.decide(stale).dial > p.decide(fresh).dial


def test_uncertain_hit_rate_is_paced_more_cautiously() -> None:
    """Same mean hit rate, less evidence -> wider Beta posterior -> no more lines than with evidence."""
    agents = [AgentView("wrap_up", 30.0)] * 8 + [AgentView("on_call", 100.0)] * 12
    snap = Snapshot(now=5000.0, agents=agents, ringing=[3.0] * 4, trunk_free=100, cps_headroom=100)
    cold = Pacer(PacerConfig(prior_hit_rate=0.2))
    warm = Pacer(PacerConfig(prior_hit_rate=0.2))
    for i in range(2000):
        warm.record_outcome(4000.0 + i * 0.5, "human" if i % 5 == 0 else "no_answer", 9.0 if i % 5 == 0 else 24.0)
    assert warm.hit.var() < cold.hit.var()
    assert cold.decide(snap).dial <= warm.decide(snap).dial


def test_state_round_trip_is_json_and_keeps_estimates() -> None:
    import json

    p = _pacer("predictive", 500)
    st_ = json.loads(json.dumps(p.to_state()))
    q = Pacer.from_state(PacerConfig(), st_)
    assert q.hit_rate() == pytest.approx(p.hit_rate())
    assert q.aht() == pytest.approx(p.aht(), rel=0.05)
    snap = Snapshot(now=10.0, agents=[AgentView("on_call", 100.0)] * 10 + [AgentView("ready")] * 2, ringing=[])
    assert q.decide(snap).dial == p.decide(snap).dial


def test_config_and_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        PacerConfig(mode="turbo")
    with pytest.raises(ValueError):
        PacerConfig(abandon_window="week")
    with pytest.raises(ValueError):
        PacerConfig(abandon_target=0.05, abandon_limit=0.03)
    p = Pacer(PacerConfig())
    with pytest.raises(ValueError):
        p.record_outcome(0.0, "maybe", None)
    with pytest.raises(ValueError):
        p.set_mode("turbo")
    with pytest.raises(ValueError):
        p.set_target(0.5)
    p.set_target(0.01)
    p.set_mode("power")
    assert p.cfg.abandon_target == 0.01 and p.mode == "power"


wild = st.floats(allow_nan=True, allow_infinity=True)
wild_agents = st.lists(st.builds(AgentView, st.sampled_from(STATES), wild, st.booleans()), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agents=wild_agents, ringing=st.lists(wild, max_size=60), step=st.floats(-1e7, 1e7),
       trunk=st.one_of(st.integers(-5, 400), st.sampled_from([math.nan, math.inf, -math.inf])),
       mode=st.sampled_from(["progressive", "power", "predictive"]))
def test_ages_from_a_stepped_clock_never_break_decide(agents: list[AgentView], ringing: list[float], step: float,
                                                      trunk: float, mode: str) -> None:
    """Issue 31: ages computed from a wall clock that stepped back 35 s or more made decide raise
    IndexError; huge, negative, NaN and infinite ages and counts are clamped at the facade, so
    decide returns a bounded decision whatever the snapshot holds."""
    p = _pacer(mode, 300)
    ring = [x + step if math.isfinite(x) else x for x in ringing]  # a clock step moves every age at once
    snap = Snapshot(now=1000.0, agents=agents, ringing=ring, waiting=1, trunk_free=trunk,  # type: ignore[arg-type]
                    cps_headroom=50)
    d = p.decide(snap)
    logged = sum(1 for a in agents if a.state != "paused")
    assert 0 <= d.dial <= max(0, math.floor(3.0 * logged + 1e-9) - len(ring) - 1)
    if not (isinstance(trunk, int) or trunk == math.inf) or trunk <= 0:
        assert d.dial == 0               # a trunk count that is NaN or not positive: fail closed
    else:
        assert d.dial <= trunk
    assert math.isfinite(d.level)


def test_a_clock_step_back_while_lines_ring_is_read_as_fresh_lines() -> None:
    p = _pacer("predictive", 300)
    agents = [AgentView("ready")] * 3 + [AgentView("on_call", 200.0)] * 9
    back = p.decide(Snapshot(now=500.0, agents=agents, ringing=[-40.0, -300.0, 5.0]))
    fresh = p.decide(Snapshot(now=500.0, agents=agents, ringing=[0.0, 0.0, 5.0]))
    assert back.dial == fresh.dial
    assert p.decide(Snapshot(now=math.nan, agents=agents)).dial == 0


@pytest.mark.parametrize("key", ["prior_talk_s", "max_lines_per_agent", "ring_timeout_s", "power_ratio",
                                 "prior_hit_rate", "abandon_target", "connect_limit_s", "prior_wrap_s"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_config_is_refused_with_its_name(key: str, bad: float) -> None:
    with pytest.raises(ValueError, match=key):
        PacerConfig(**{key: bad})  # type: ignore[arg-type]
