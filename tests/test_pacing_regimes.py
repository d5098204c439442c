"""Abandon regimes (issue 31): each names its window, ceiling, aim, rolling-hour cap and how AMD false positives
count; whatever the sequence of answers, abandons and machines, the pacer places no dial beyond progressive
once the window's budget is spent (or, for the longer windows, once less than one abandon is left after the
reserve)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot
from pacing.regimes import REGIMES, regime


def test_each_regime_names_its_window_limit_and_fp_counting() -> None:
    want = {"us_tsr": ("30d", 0.03), "uk_ofcom": ("day", 0.03), "strict_hour": ("1h", 0.03), "jp_cx": ("day", 0.02)}
    for name, (window, limit) in want.items():
        p = Pacer(PacerConfig(abandon_regime=name, abandon_target=0.02, abandon_limit=0.03))
        assert (p.window, p.limit) == (window, limit)
        assert p.target <= REGIMES[name].target and REGIMES[name].count_amd_fp
        assert REGIMES[name].source and REGIMES[name].proves
    assert REGIMES["uk_ofcom"].scope == "call_centre" and REGIMES["us_tsr"].scope == "campaign"
    assert regime("us") is None and regime("uk") is None
    with pytest.raises(ValueError, match="abandon_regime"):
        PacerConfig(abandon_regime="eu")
    # the configured window of a legacy regime is kept; a named regime's replaces it
    assert Pacer(PacerConfig(abandon_regime="us", abandon_window="1h")).window == "1h"
    assert Pacer(PacerConfig(abandon_regime="us_tsr", abandon_window="1h")).window == "30d"


@pytest.mark.parametrize("name", ["us_tsr", "uk_ofcom", "strict_hour", "jp_cx"])
def test_amd_false_positives_count_as_abandons_and_as_answers(name: str) -> None:
    """FTC 2003 (a person hung up on by AMD is abandoned), Ofcom (estimate included): the US regimes count
    them too, the legacy "us" did not."""
    p = Pacer(PacerConfig(abandon_regime=name, amd_false_positive_rate=0.1))
    for k in range(100):
        p.record_outcome(60.0 + k, "human", 8.0)
        p.record_outcome(60.5 + k, "machine", 10.0)
    b = p.budget(200.0)
    assert b["abandons"] == pytest.approx(10.0) and b["answers"] == pytest.approx(110.0)
    assert b["left"] == pytest.approx(p.limit * 110.0 - 10.0) and b["window"] == p.window
    legacy = Pacer(PacerConfig(abandon_regime="us", amd_false_positive_rate=0.1))
    legacy.record_outcome(60.0, "machine", 10.0)
    assert legacy.budget(100.0)["abandons"] == 0.0


STATES = ["ready", "on_call", "on_call", "wrap_up"]


def _drive(name: str, seed: int, abandon_share: float, fp: float, steps: int = 1500,
           site: float = 0.0, known: bool = True, calm_s: float = 300.0) -> tuple[int, int]:
    """A campaign's outcomes (20 % people, a share of them abandoned, in any order the seed gives) and the
    pacer's decisions every 10 outcomes on random team states; checks every decision, returns (decisions,
    decisions with a dial beyond progressive). CALM_S: the surge watch's hold (the random team sizes read as
    drops of logged agents, so most decisions are calm; 0 lets every one reach the budget checks)."""
    import random

    rnd = random.Random(seed)
    p = Pacer(PacerConfig(abandon_regime=name, prior_answers=500.0, amd_false_positive_rate=fp,
                          ring_timeout_s=26.0, prior_talk_s=300.0, calm_s=calm_s))
    now, extra, n = 0.0, 0, 0
    for k in range(steps):
        now += rnd.uniform(0.0, 3.0) if rnd.random() > 0.01 else rnd.uniform(0.0, 7200.0)  # gaps: windows turn
        ev = "human" if rnd.random() < 0.2 else rnd.choice(["machine", "busy", "no_answer"])
        others = p.site_book()
        if others is not None and site > 0.0 and rnd.random() < site:  # another campaign of the call centre (uk_ofcom's scope)
            if ev == "machine":
                others.machine(now)
            elif ev == "human":
                others.answered(now)
                if rnd.random() < 3 * abandon_share:  # a campaign abandoning more than this one
                    others.abandoned(now + 2.0)
            continue
        p.record_outcome(now, ev, 9.0 if ev == "human" else 3.0)
        if ev == "human":
            if rnd.random() < abandon_share:
                p.record_abandon(now + 2.0, 2.0)
            else:
                p.record_connect(now, 0.5)
        if k % 10:
            continue
        # (issue 31) some agents leave after this call, some paused ones are due back (odd values included)
        agents = [AgentView(rnd.choice(STATES), rnd.uniform(0.0, 900.0), leaving=known and rnd.random() < 0.1,
                            back_in_s=rnd.choice([None, rnd.uniform(-60.0, 5000.0), math.nan, math.inf]) if known
                            else None)
                  for _ in range(rnd.randint(3, 20))]
        ringing = [rnd.uniform(0.0, 26.0) for _ in range(rnd.randint(0, 3))]
        d = p.decide(Snapshot(now=now, agents=agents, ringing=ringing, waiting=0))
        ready = sum(1 for a in agents if a.state == "ready")
        n += 1
        if d.dial > max(0, ready - len(ringing)):
            extra += 1
            b = p.budget(now)
            assert not p.budget_exhausted(now)
            assert b["abandons"] <= p.limit * b["answers"]          # not past the window's ceiling
            if p.window != "1h":
                assert p.budget_left(now) >= 1.0                      # an abandon left after the reserve
    return n, extra


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(["us_tsr", "uk_ofcom", "strict_hour", "jp_cx"]), seed=st.integers(0, 10**6),
       abandon_share=st.sampled_from([0.0, 0.002, 0.01, 0.03, 0.2]), fp=st.sampled_from([0.0, 0.05]))
def test_no_dial_beyond_progressive_once_the_window_budget_is_spent(name: str, seed: int, abandon_share: float,
                                                                    fp: float) -> None:
    """Whatever the sequence: a dial beyond progressive needs budget in the regime's window (after the
    reserve for the longer windows), so the pacer's own dials stop before the window's budget is spent."""
    _drive(name, seed, abandon_share, fp, steps=600)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), abandon_share=st.sampled_from([0.0, 0.005, 0.01, 0.03]),
       site=st.sampled_from([0.3, 0.7]))
def test_a_call_centre_budget_spent_by_other_campaigns_stops_predictive(seed: int, abandon_share: float,
                                                                        site: float) -> None:
    """uk_ofcom counts per call centre: the other campaigns' answers and abandons (the site book) count in every
    check, so this campaign's dials beyond progressive stop when the site's day budget is spent."""
    _drive("uk_ofcom", seed, abandon_share, 0.0, steps=1500, site=site)


@pytest.mark.parametrize("site_abandons", [0, 37])
def test_the_other_campaigns_abandons_spend_this_campaigns_uk_ofcom_day(site_abandons: int) -> None:
    """The same campaign, the same team: predictive while the call centre's day has budget, progressive (and said)
    once the other campaigns' abandons, early in the day and out of every rolling hour, spent it."""
    p = Pacer(PacerConfig(abandon_regime="uk_ofcom", prior_answers=500.0, ring_timeout_s=26.0, prior_talk_s=300.0))
    now = 0.0
    for k in range(3000):
        now += 1.5
        ev = "human" if k % 5 == 0 else "machine" if k % 5 == 1 else "no_answer"
        p.record_outcome(now, ev, 9.0 if ev == "human" else 3.0)
        if ev == "human":
            p.record_connect(now, 0.5)
    others = p.site_book()
    assert others is not None
    for i in range(600):
        others.answered(5.0 * i)
    for i in range(site_abandons):
        others.abandoned(20.0 * i)  # all before now - 1 h: only the day window holds them
    team = [AgentView("ready")] * 3 + [AgentView("on_call", 400.0)] * 17 + [AgentView("wrap_up", 50.0)] * 5
    d = p.decide(Snapshot(now=now, agents=team))
    assert p.budget(now)["answers"] == 1200.0 and p.budget(now)["abandons"] == site_abandons
    if site_abandons:
        assert p.budget_exhausted(now) and d.dial == 3 and "budget spent" in d.note
    else:
        assert d.dial > 3 and d.mode == "predictive"


@pytest.mark.parametrize("name", ["us_tsr", "uk_ofcom", "jp_cx"])
def test_the_budget_property_is_not_vacuous(name: str) -> None:
    """With few abandons the longer windows do dial beyond progressive (so the property above is tested)."""
    n, extra = _drive(name, 1, 0.002, 0.0, known=False, calm_s=0.0)
    assert extra > 0.02 * n
    assert _drive(name, 1, 0.002, 0.0, known=False)[1] > 0  # the surge watch's holds do not stop it either
    assert _drive(name, 1, 0.002, 0.0)[1] > 0  # agents leaving or due back (issue 31) do not stop it either


def test_the_reserve_and_the_hour_cap_are_configurable() -> None:
    p = Pacer(PacerConfig(abandon_regime="jp_cx", budget_reserve=0.5, hour_soft_limit=0.03))
    for k in range(200):
        p.record_outcome(100.0 + k, "human", 8.0)
    assert p.budget_left(400.0) == pytest.approx(0.02 * 0.5 * 200)
    assert p.hour_limit == 0.03
    with pytest.raises(ValueError):
        PacerConfig(budget_reserve=1.0)
    with pytest.raises(ValueError):
        PacerConfig(hour_soft_limit=0.0)


def test_a_spent_day_budget_makes_predictive_progressive_and_says_so() -> None:
    p = Pacer(PacerConfig(abandon_regime="jp_cx", prior_answers=500.0))
    for k in range(525):  # a 20 % hit rate, as the prior says (no surge alarm)
        p.record_outcome(100.0 + k * 0.2, "human" if k % 5 == 0 else "busy", 8.0 if k % 5 == 0 else 3.0)
    p.record_abandon(250.0, 2.0)   # 2 of 105: under 2 %, over what 105 answers earn (2 % x 0.9 x 105 = 1.89 after
    p.record_abandon(251.0, 2.0)   # the reserve), so no answer to come is counted either (day_ahead_rolling)
    agents = [AgentView("ready")] * 2 + [AgentView("on_call", 280.0)] * 10
    d = p.decide(Snapshot(now=300.0, agents=agents, ringing=[]))
    assert d.dial == 2 and "window budget left" in d.note


def _one_early_abandon(**kw: bool) -> tuple[Pacer, str]:
    p = Pacer(PacerConfig(abandon_regime="jp_cx", prior_answers=500.0, **kw))
    for k in range(500):
        p.record_outcome(100.0 + k * 0.2, "human" if k % 5 == 0 else "busy", 8.0 if k % 5 == 0 else 3.0)
    p.record_abandon(250.0, 2.0)   # 1 of 100: within the 1.8 the answers earned, but 1.8 - 1 < 1 abandon left
    agents = [AgentView("ready")] * 2 + [AgentView("on_call", 280.0)] * 10
    return p, p.decide(Snapshot(now=300.0, agents=agents, ringing=[])).note


def test_one_early_abandon_within_what_the_answers_earned_keeps_the_next_hour_counted() -> None:
    """(issue 31) jp_cx after its first abandon: the next hour's low-side answers still count while the abandons
    are within what the answers so far earned (an early abandon at 8 agents made the day progressive for 1-2 h);
    with day_ahead_rolling off, progressive as before."""
    p, note = _one_early_abandon()
    assert "window budget left" not in note and p.budget_left(300.0) >= 1.0
    q, note = _one_early_abandon(day_ahead_rolling=False)
    assert "window budget left" in note and q.budget_left(300.0) < 1.0


def test_the_regime_brings_its_reserve_and_bias_prior_and_a_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Pacer(PacerConfig(abandon_regime="jp_cx")).reserve == 0.1
    assert Pacer(PacerConfig(abandon_regime="us_tsr")).reserve == 0.2
    assert Pacer(PacerConfig(abandon_regime="jp_cx", budget_reserve=0.3)).reserve == 0.3
    eight = Snapshot(now=1.0, agents=[AgentView("ready")] * 8, ringing=[])
    p = Pacer(PacerConfig(abandon_regime="us_tsr", warmup_answers=0, ramp_answers=0))
    p.decide(eight)
    assert p.ctl.prior_bias == 2.0 + 8.0 / 8 ** 0.5 and p.cluster == 1.0
    monkeypatch.setitem(REGIMES, "jp_cx", replace(REGIMES["jp_cx"], bias_prior=1.5, hour_cluster=2.0))
    q = Pacer(PacerConfig(abandon_regime="jp_cx", warmup_answers=0, ramp_answers=0))
    q.decide(eight)
    assert q.ctl.prior_bias == 1.5 and q.cluster == 2.0
    r = Pacer(PacerConfig(abandon_regime="jp_cx", warmup_answers=0, ramp_answers=0, model_bias_prior=3.0))
    r.decide(eight)
    assert r.ctl.prior_bias == 3.0


def test_the_regimes_bias_prior_is_for_a_small_team_counted_over_the_last_hour() -> None:
    """jp_cx's own bias prior is for a team of up to `bias_prior_team` agents; a larger team takes the calibrated
    2 + 8 / sqrt(logged), and so does that team at lunch with 8 logged until an hour has passed with no more than
    8 logged (the team is the most agents logged in over the last hour, not the count now)."""
    r = REGIMES["jp_cx"]
    assert r.bias_prior is not None and r.bias_prior_team is not None and r.hour_cluster == 2.0
    assert r.bias_prior < 2.0 + 8.0 / math.sqrt(r.bias_prior_team)  # the bolder start, else it would not matter
    p = Pacer(PacerConfig(abandon_regime="jp_cx", warmup_answers=0, ramp_answers=0))
    assert p.cluster == 2.0

    def prior(now: float, logged: int) -> float:
        p.decide(Snapshot(now=now, agents=[AgentView("ready")] * logged))
        return p.ctl.prior_bias

    big = r.bias_prior_team + 8
    assert prior(0.0, big) == 2.0 + 8.0 / math.sqrt(big)
    assert prior(1800.0, 8) == 2.0 + 8.0 / math.sqrt(8)    # 8 logged, but the team had `big` within the hour
    assert prior(3700.0, 8) == 2.0 + 8.0 / math.sqrt(8)    # still: `big` were logged until 1800
    assert prior(5500.0, 8) == r.bias_prior                # an hour of 8: a small team
    assert prior(5600.0, r.bias_prior_team) == r.bias_prior
    assert prior(5700.0, r.bias_prior_team + 1) == 2.0 + 8.0 / math.sqrt(r.bias_prior_team + 1)
    # a setting wins over the regime's, whatever the team
    q = Pacer(PacerConfig(abandon_regime="jp_cx", warmup_answers=0, ramp_answers=0, model_bias_prior=3.0))
    q.decide(Snapshot(now=0.0, agents=[AgentView("ready")] * 8))
    assert q.ctl.prior_bias == 3.0


def _cold(name: str, abandons: int = 0, **kw: float) -> tuple[Pacer, int]:
    p = Pacer(PacerConfig(abandon_regime=name, warmup_answers=0, ramp_answers=0, prior_talk_s=300.0, **kw))
    for k in range(150):  # the first 30 people of the day, a 20 % hit rate as the prior says
        p.record_outcome(100.0 + k * 2.0, "human" if k % 5 == 0 else "busy", 8.0 if k % 5 == 0 else 3.0)
    for _ in range(abandons):
        p.record_abandon(300.0, 2.0)
    agents = [AgentView("ready")] * 2 + [AgentView("on_call", 500.0)] * 16 + [AgentView("wrap_up", 25.0)] * 4
    return p, p.decide(Snapshot(now=420.0, agents=agents, ringing=[])).dial


def test_a_self_imposed_day_budget_counts_the_next_hour_before_its_first_abandon() -> None:
    """jp_cx's cold start (day_ahead_h): 30 answers earn 0.48 abandons of a 2 % day after the reserve, so the
    earned budget alone is progressive; counting the logged team's next hour (low side) is not. A statutory day
    (uk_ofcom), day_ahead_h = 0, or the day's first abandon: progressive, as before."""
    p, n = _cold("jp_cx")
    assert n > 2 and p.budget_left(420.0) >= 1.0
    assert p.book.counts(420.0, "day")[1] == 30.0
    assert _cold("jp_cx", day_ahead_h=0.0)[1] == 2
    assert _cold("uk_ofcom")[1] == 2
    q, n = _cold("jp_cx", abandons=1)
    assert n == 2 and q.budget_left(420.0) < 1.0
