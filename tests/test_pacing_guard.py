"""Rolling-hour guard and surge watch (issue 16): every new rule that keeps rolling hours under the limit."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import poisson

from pacing.decision import progressive_count
from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot
from pacing.guard import SurgeWatch, hour_budget, low_count, poisson_room, rate_cap

STATES = ["ready", "on_call", "wrap_up", "paused"]
agents_st = st.lists(st.builds(AgentView, st.sampled_from(STATES), st.floats(0, 3000)), min_size=1, max_size=40)


@given(limit=st.floats(0.005, 0.2), a1=st.integers(0, 60), kept=st.floats(0, 3000), new=st.floats(0, 3000))
def test_hour_budget_is_the_last_abandon_the_hour_can_take(limit: float, a1: int, kept: float, new: float) -> None:
    b = hour_budget(limit, a1, kept, new)
    n = kept + new
    assert a1 + b <= limit * n + 1e-6              # spending the budget keeps the hour at or under the limit
    assert a1 + b + 1 > limit * n - 1e-6           # one more abandon would break it


@given(budget=st.integers(0, 80), risk=st.floats(0.001, 0.2))
def test_poisson_room_is_the_largest_mean_within_risk(budget: int, risk: float) -> None:
    m = poisson_room(budget, risk)
    assert m > 0.0
    assert poisson.sf(budget, m) <= risk * 1.001           # P(more than the budget) within the risk
    assert poisson.sf(budget, m * 1.02 + 1e-3) > risk * 0.999  # and a larger mean would not be


@given(b=st.integers(-3, 60), ans=st.floats(1, 5000), risk=st.floats(0.001, 0.2))
def test_rate_cap_grows_with_the_budget_and_is_zero_when_spent(b: int, ans: float, risk: float) -> None:
    cap = rate_cap(b, ans, risk)
    assert cap >= 0.0
    if b < 1:
        assert cap == 0.0
    else:
        assert rate_cap(b + 1, ans, risk) > cap
        assert rate_cap(b, ans * 2, risk) < cap      # more answers in the horizon: a lower rate per answer


@given(b=st.integers(1, 60), ans=st.floats(1, 5000), risk=st.floats(0.001, 0.2), c=st.floats(1.0, 4.0))
def test_a_burst_rate_cap_keeps_bursts_within_the_budget(b: int, ans: float, risk: float, c: float) -> None:
    cap = rate_cap(b, ans, risk, cluster=c)
    assert cap <= rate_cap(b, ans, risk) + 1e-12      # counting bursts never allows more than single abandons
    bursts = math.floor(b / c + 1e-9)
    # abandons in bursts of c: more than b means more than floor(b / c) bursts, within the risk
    assert poisson.sf(bursts, cap * ans / c) <= risk * 1.001


def test_low_count_is_below_the_mean() -> None:
    assert low_count(0.0) == 0.0
    assert low_count(1.0) == 0.0                  # too few to count on any answer
    for m in (30.0, 100.0, 1000.0):
        assert 0.0 < low_count(m) < m
        assert poisson.cdf(math.floor(low_count(m)), m) <= 0.1  # a low quantile, not the mean


def _feed(p: Pacer, people: int, start: float = 0.0, hit: float = 0.25, gap: float = 1.0) -> float:
    """`people` live answers, a dial every `gap` s from `start`; returns the time after the last one."""
    step = round(1 / hit)
    t = start
    for i in range(people * step):
        t = start + i * gap
        p.record_dial(t)
        human = i % step == 0
        p.record_outcome(t, "human" if human else "no_answer", 9.0 if human else 24.0)
        if human:
            p.record_connect(t, 0.3)
            p.record_handle(150.0, 20.0)
    return t + gap


def _snap(now: float, agents: list[AgentView], ringing: list[float], waiting: int = 0) -> Snapshot:
    return Snapshot(now=now, agents=agents, ringing=ringing, waiting=waiting)


def _progressive(snap: Snapshot) -> int:
    ready = sum(1 for a in snap.agents if a.state == "ready")
    logged = sum(1 for a in snap.agents if a.state != "paused")
    busy = sum(1 for a in snap.agents if a.state == "on_call")
    cap = max(0, int(3.0 * logged) - len(snap.ringing) - snap.waiting - busy)
    return min(progressive_count(ready, len(snap.ringing), snap.waiting), cap)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agents=agents_st, ringing=st.lists(st.floats(0, 30), max_size=30), waiting=st.integers(0, 3),
       abandons=st.integers(0, 40))
def test_guard_only_holds_back(agents: list[AgentView], ringing: list[float], waiting: int, abandons: int) -> None:
    """Same history, same state: with the guard the pacer places no more calls than without, and
    never fewer than progressive."""
    cfg = PacerConfig(mode="predictive", prior_answers=1000.0)
    out = []
    for guard in (True, False):
        p = Pacer(replace(cfg, hour_guard=guard))
        t = _feed(p, 200)
        for k in range(abandons):
            p.record_abandon(t - 600.0 + k, 2.0)
        snap = _snap(t, agents, ringing, waiting)
        out.append(p.decide(snap).dial)
        assert out[-1] >= _progressive(snap)
    assert out[0] <= out[1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(agents=agents_st, ringing=st.lists(st.floats(0, 30), max_size=30), waiting=st.integers(0, 3))
def test_spent_rolling_hour_is_progressive(agents: list[AgentView], ringing: list[float], waiting: int) -> None:
    """Once the last hour's abandons reach the limit of the answers it will hold, predictive places
    exactly what progressive would, whatever the state."""
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0, abandon_window="day"))
    t = _feed(p, 200)
    logged = max(1, sum(1 for a in agents if a.state != "paused"))
    # enough abandons in the last hour to spend any budget the guard could see
    for k in range(int(0.03 * (200 + 3.0 * logged * 3600 / 170.0)) + 2):
        p.record_abandon(t - 1000.0 + k, 2.0)
    snap = _snap(t, agents, ringing, waiting)
    budget, room = p.hour_room(t, logged, p.aht())
    assert budget < 1 and room == 0.0
    d = p.decide(snap)
    assert d.dial == _progressive(snap)
    assert logged == 0 or "budget" in d.note or "no agent" in d.note or d.mode == "progressive"


def test_budget_recovers_when_the_abandons_leave_the_hour() -> None:
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0))
    t = _feed(p, 300)
    for k in range(20):
        p.record_abandon(t - 10.0 + k * 0.1, 2.0)
    assert p.hour_room(t, 20, p.aht())[0] < 1
    t2 = _feed(p, 300, start=t + 3700.0)                     # an hour later: those abandons are out
    assert p.hour_room(t2, 20, p.aht())[0] >= 1


def test_small_team_hour_cannot_take_an_abandon() -> None:
    """3 agents: an hour holds ~30 answers, one abandon is over 3 %: predictive is progressive."""
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0, prior_talk_s=180.0, prior_wrap_s=30.0))
    t = _feed(p, 90, gap=3600.0 / 120)              # 30 answers an hour for three hours
    assert p.hour_room(t, 3, 210.0)[0] < 1
    assert p.hour_room(t, 20, 210.0)[0] < 1         # 20 agents now: the hour so far is thin all the same
    q = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0))
    t = _feed(q, 680, gap=3600.0 / 1360)            # 340 answers an hour for two hours
    assert q.hour_room(t, 20, 210.0)[0] >= 1
    rooms = [q.hour_room(t, n, 210.0)[0] for n in (1, 5, 10, 20, 40)]
    assert rooms == sorted(rooms)                    # fewer agents (a break): fewer answers to come, less room
    snap = _snap(t, [AgentView("on_call", 100.0 + 20 * i) for i in range(3)], [])
    assert p.decide(snap).dial == 0 == _progressive(snap)


def test_jump_up_is_detected_within_the_window_and_steady_rates_are_not() -> None:
    w = SurgeWatch(window=40)
    fired = [w.outcome(float(i), i % 12 == 0, 0.08) for i in range(5000)]  # steady 1 in 12
    assert not any(fired)
    w2 = SurgeWatch(window=40)
    for i in range(400):
        w2.outcome(float(i), i % 12 == 0, 0.08)
    first = next(k for k in range(200) if w2.outcome(400.0 + k, k % 5 < 2, 0.08))  # jumps to 0.4
    assert first < 40 and w2.calm(400.0 + first) and not w2.calm(400.0 + first + w2.calm_s + 1.0)


def test_drop_of_logged_agents_is_detected_and_slow_drift_is_not() -> None:
    w = SurgeWatch()
    for i in range(100):                          # one agent leaves every 2 minutes: breaks, not a mass pause
        assert not w.agents(120.0 * i, 100 - i // 2 * 0 - (i % 2))
    w3 = SurgeWatch()
    for i in range(40):                           # staggered breaks at 100 agents: one every 6 s
        assert not w3.agents(6.0 * i, 100 - i)
    w2 = SurgeWatch()
    for i in range(30):
        w2.agents(float(i), 100)
    assert not w2.calm(30.0)
    assert w2.agents(31.0, 92) is False           # 8 of 100: under the 10 % share
    assert w2.agents(35.0, 88) is True            # 12 within two minutes: a mass pause
    assert w2.calm(35.0 + 299.0) and not w2.calm(35.0 + 301.0)


def test_a_mass_pause_makes_predictive_progressive_at_once() -> None:
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0))
    t = _feed(p, 400)
    busy = [AgentView("on_call", 60.0 + i) for i in range(90)]
    before = p.decide(_snap(t, busy + [AgentView("ready")] * 10, []))
    assert before.dial > 10                      # predictive: more than one line per ready agent
    after = _snap(t + 5.0, busy[:86] + [AgentView("ready")] * 2 + [AgentView("paused")] * 12, [])
    d = p.decide(_snap(t + 2.0, busy + [AgentView("ready")] * 10, []))
    d = p.decide(after)
    assert d.dial == _progressive(after) == 2 and "calm" in d.note


def test_a_hit_rate_jump_makes_predictive_progressive_at_once() -> None:
    p = Pacer(PacerConfig(mode="predictive", prior_answers=1000.0, prior_hit_rate=0.08))
    t = _feed(p, 60, hit=1 / 12)
    for k in range(40):                         # 16 of 40 answered: a jump from 0.08 to 0.4
        p.record_dial(t + k)
        p.record_outcome(t + k, "human" if k % 5 < 2 else "busy", 8.0)
    snap = _snap(t + 41.0, [AgentView("on_call", 60.0 + i) for i in range(30)] + [AgentView("ready")] * 3, [])
    d = p.decide(snap)
    assert d.dial == _progressive(snap) and "jump" in d.note
