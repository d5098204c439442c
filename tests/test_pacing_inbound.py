"""Issue 30: the pacer keeps agents for return calls (pacing/inbound.py and its hook in Pacer.decide).

Pure: the reserve rule's properties (more recent unanswered calls or a higher rate never keeps fewer agents, a zero
rate keeps nothing, the priority setting is respected, bad inputs are refused), and the pacer with a return-call
load dials fewer lines than without, on the same state."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot
from pacing.inbound import (
    NO_INBOUND,
    InboundLoad,
    Priority,
    agents_kept_for_inbound,
    arrival_rate,
    expected_return_calls,
    inbound_load,
    measured_rate,
)

ages_st = st.lists(st.floats(0.0, 9000.0), max_size=300)
rate_st = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(ages=ages_st, more=ages_st, r1=rate_st, r2=rate_st, horizon=st.floats(1.0, 600.0))
def test_more_unanswered_calls_or_a_higher_rate_never_expects_fewer_return_calls(
        ages: list[float], more: list[float], r1: float, r2: float, horizon: float) -> None:
    lo, hi = min(r1, r2), max(r1, r2)
    e = expected_return_calls(ages, lo, horizon_s=horizon)
    assert e >= 0.0
    assert expected_return_calls(ages + more, lo, horizon_s=horizon) >= e - 1e-12
    assert expected_return_calls(ages, hi, horizon_s=horizon) >= e - 1e-12
    assert arrival_rate(ages + more, hi) >= arrival_rate(ages, lo) - 1e-15
    for p in Priority:
        q = 2
        k = agents_kept_for_inbound(q, e, p)
        assert k >= q
        assert agents_kept_for_inbound(q, expected_return_calls(ages + more, hi, horizon_s=horizon), p) >= k
        assert inbound_load(queued=q, unanswered_ages_s=ages + more, rate=hi, priority=p).kept >= \
            inbound_load(queued=q, unanswered_ages_s=ages, rate=lo, priority=p).kept


def test_the_model_in_numbers() -> None:
    # 600 calls left unanswered over the last two hours (5 a minute), 15 % call back: in the steady state 0.75 a
    # minute (a little more: the calls that came back already are not among the ages)
    ages = [i * 12.0 for i in range(600)]
    e = expected_return_calls(ages, 0.15, horizon_s=60.0)
    lam = arrival_rate(ages, 0.15)
    assert 0.75 < e < 0.9 and abs(lam * 60.0 - e) < 0.05 * e  # the rate and the count over a minute agree
    # the same calls all just made: most of their return calls are still to come, and sooner
    assert expected_return_calls([60.0] * 600, 0.15) > e
    # a call past the window, one not yet made (a clock stepped back), NaN: nothing to expect from them
    assert expected_return_calls([7300.0, -1.0, math.nan], 0.15) == 0.0
    assert arrival_rate([7300.0, -1.0, math.nan], 0.5) == 0.0


def test_a_zero_rate_keeps_nothing() -> None:
    ages = [float(a) for a in range(0, 7200, 5)]
    assert expected_return_calls(ages, 0.0) == 0.0
    assert arrival_rate(ages, 0.0) == 0.0
    load = inbound_load(queued=0, unanswered_ages_s=ages, rate=0.0)
    assert load == NO_INBOUND and load.kept == 0
    assert agents_kept_for_inbound(0, 0.0) == 0


def test_the_priority_setting_is_respected() -> None:
    ages = [float(a) for a in range(0, 3600, 4)]  # 900 calls in the last hour: about 2.6 return calls a minute
    loads = {p: inbound_load(queued=1, unanswered_ages_s=ages, rate=0.2, priority=p) for p in Priority}
    first, blended, out = loads[Priority.INBOUND_FIRST], loads[Priority.BLENDED], loads[Priority.OUTBOUND_FIRST]
    assert first == inbound_load(queued=1, unanswered_ages_s=ages, rate=0.2)  # the default: inbound first
    assert len({x.arrivals_per_s for x in loads.values()}) == 1 and first.arrivals_per_s > 0.0
    assert out.kept == 1 and out.reserve == 0  # outbound first: only the callers already waiting
    assert first.kept > blended.kept > out.kept  # the safe side of the arrivals within 20 s, their mean, none
    assert agents_kept_for_inbound(2, 0.75) == 3  # P(Poisson(0.75) > 1) = 0.17 <= 0.2
    assert agents_kept_for_inbound(2, 1.0) == 4  # P(Poisson(1) > 1) = 0.26 > 0.2, P(> 2) = 0.08
    assert agents_kept_for_inbound(2, 1.0, Priority.BLENDED) == 3
    assert agents_kept_for_inbound(2, 1.0, Priority.OUTBOUND_FIRST) == 2
    assert agents_kept_for_inbound(0, 0.1) == 0 and agents_kept_for_inbound(0, 0.3) == 1
    assert Priority("inbound_first") is Priority.INBOUND_FIRST
    with pytest.raises(ValueError):
        Priority("blended-ish")


def test_the_measured_rate_starts_from_the_prior_and_follows_the_data() -> None:
    assert measured_rate([], 0, prior_rate=0.1) == pytest.approx(0.1)
    # 2000 calls past their window, 300 came back: 15 %, the prior's 50 calls hardly count
    old = [8000.0] * 2000
    assert measured_rate(old, 300, prior_rate=0.1) == pytest.approx((300 + 5) / 2050)
    # calls 10 minutes old have had only part of their chance: their exposure is below 1 each
    young = [600.0] * 2000
    assert measured_rate(young, 100, prior_rate=0.1) > measured_rate(old, 100, prior_rate=0.1)
    assert measured_rate(old, 5000) == 1.0  # never above 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.1])
def test_bad_inputs_are_refused_with_their_name(bad: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        expected_return_calls([10.0], bad)
    with pytest.raises(ValueError, match="mean_s"):
        arrival_rate([10.0], 0.1, mean_s=bad)
    with pytest.raises(ValueError, match="window_s"):
        inbound_load(queued=0, unanswered_ages_s=[10.0], rate=0.1, window_s=bad)
    with pytest.raises(ValueError, match="prior_weight"):
        measured_rate([10.0], 1, prior_weight=bad)
    with pytest.raises(ValueError, match="arrivals_per_s"):
        InboundLoad(0, 0, bad)
    with pytest.raises(ValueError, match="risk"):
        agents_kept_for_inbound(0, 1.0, risk=bad)
    with pytest.raises(ValueError, match="answer_s"):
        inbound_load(queued=0, unanswered_ages_s=[10.0], rate=0.1, answer_s=bad)
    with pytest.raises(ValueError, match="expected"):
        agents_kept_for_inbound(0, bad)
    with pytest.raises(ValueError, match="rate"):
        expected_return_calls([10.0], 1.5)  # a rate is a probability
    with pytest.raises(ValueError, match="queued"):
        InboundLoad(-1)
    with pytest.raises(ValueError, match="reserve"):
        InboundLoad(0, -1)
    with pytest.raises(ValueError, match="returned"):
        measured_rate([10.0], -3)


# ------------------------------------------------------------------------------ the hook in Pacer.decide
def _warm(mode: str = "predictive") -> Pacer:
    """A pacer past its warm-up (prior answers), with a 20 % hit rate and calls of 20 s to 7 minutes seen."""
    p = Pacer(PacerConfig(mode=mode, prior_answers=1000.0, abandon_regime="us", abandon_window="24h"))
    for i in range(600):
        t = float(i)
        p.record_dial(t)
        outcome = ("human", "machine", "busy", "no_answer", "no_answer")[i % 5]
        p.record_outcome(t, outcome, {"human": 9.0, "machine": 10.0, "busy": 3.0}.get(outcome))
        if outcome == "human":
            p.record_connect(t, 0.3)
        p.record_handle(20.0 + (i * 37) % 400, 20.0 + i % 20)  # talks of 20 s to 7 min
    return p


def _state(inbound: InboundLoad = NO_INBOUND, inbound_agents: int = 0) -> Snapshot:
    """20 agents: 2 ready, 6 near the end of their wrap-up (the first INBOUND_AGENTS after a return call), 12 on
    calls."""
    agents = [AgentView("ready")] * 2 + \
        [AgentView("wrap_up", 25.0, inbound=k < inbound_agents) for k in range(6)] + \
        [AgentView("on_call", 150.0 + 15.0 * k) for k in range(12)]
    return Snapshot(now=700.0, agents=agents, ringing=(), inbound=inbound)


def test_the_pacer_with_a_return_call_load_dials_fewer_lines_than_without() -> None:
    base = _warm().decide(_state()).dial
    assert base > 2  # predictive dials ahead of the agents about to free up
    assert _warm().decide(_state(InboundLoad(0, 1))).dial < base  # one agent kept for the callers to come
    assert _warm().decide(_state(InboundLoad(2))).dial < base  # two callers queued now
    # agents on return calls are not counted on to free up for outbound within the horizon
    assert _warm().decide(_state(inbound_agents=3)).dial < base
    # more load never dials more
    loads = [InboundLoad(), InboundLoad(0, 1), InboundLoad(1, 1), InboundLoad(2, 1), InboundLoad(2, 3)]
    dials = [_warm().decide(_state(x)).dial for x in loads]
    assert dials == sorted(dials, reverse=True)


def test_progressive_keeps_the_queued_callers_and_the_reserve() -> None:
    assert _warm("progressive").decide(_state()).dial == 2  # one line per ready agent
    assert _warm("progressive").decide(_state(InboundLoad(1))).dial == 1
    assert _warm("progressive").decide(_state(InboundLoad(1, 2))).dial == 0


def test_power_counts_the_agents_kept_out_of_its_ratio() -> None:
    dials = [_warm("power").decide(_state(x)).dial for x in (NO_INBOUND, InboundLoad(1), InboundLoad(1, 2))]
    assert dials[0] > dials[1] > dials[2]
