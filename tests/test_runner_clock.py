"""Issue 31: the runner reads every age on a monotonic clock. A wall clock stepped back (NTP, an operator)
while lines ring used to give negative ringing ages (IndexError in decide from 35 s back) and frozen or
negative agent times; here the wall clock jumps while the monotonic one runs on, over a real SQLite store."""

from __future__ import annotations

import time

import pytest

from dialer.campaign import CampaignRunner, Live, utc
from dialer.config import parse_config
from dialer.store.agents import log_agent_state, set_idle
from dialer.store.db import get_engine
from pacing.engine import Pacer, PacerConfig
from tests.test_campaign_e2e import seed
from tests.test_pause_standby import LOGINS, config_text


@pytest.mark.parametrize("step_s", [-40.0, -3600.0, 7200.0])
def test_ringing_and_agent_ages_follow_the_monotonic_clock_when_the_wall_steps(db_url: str, step_s: float) -> None:
    seed(db_url, 8)
    cfg = parse_config(config_text(db_url), "clock.toml")
    wall, mono = [float(int(time.time()))], [5000.0]
    runner = CampaignRunner(cfg, "c", get_engine(db_url), clock=lambda: wall[0], mono=lambda: mono[0],
                            state_logger=log_agent_state)
    for login in LOGINS:
        assert set_idle(runner.engine, login, "logged_out", "ready", utc(wall[0]), "") is None
    runner.board.refresh()
    runner.snapshot(wall[0])  # the first tick sees the agents' states (ages at first sight: the wall's, clamped)
    for k in range(3):  # three lines dialled 0, 1 and 2 s apart
        runner.live[9000 + k] = Live(9000 + k, k, f"顧客{k}", "new", "+81312345678", "", wall[0], dialed_mono=mono[0])
        wall[0] += 1.0
        mono[0] += 1.0
    wall[0] += step_s     # the wall clock steps; 4 s pass on the monotonic clock
    mono[0] += 4.0
    snap = runner.snapshot(wall[0])
    assert sorted(snap.ringing) == [5.0, 6.0, 7.0]
    ages = [a.elapsed_s for a in snap.agents]
    assert len(ages) == len(LOGINS) and all(0.0 <= x <= 7.0 for x in ages)
    mono[0] += 10.0       # agent time keeps growing with the monotonic clock only
    assert [a.elapsed_s for a in runner.snapshot(wall[0]).agents] == [x + 10.0 for x in ages]
    # the engine's decision on that snapshot: bounded, never an exception
    d = Pacer(PacerConfig(mode="predictive", prior_answers=500.0)).decide(snap)
    assert d.dial >= 0


def test_spans_between_event_times_are_checked_against_the_monotonic_clock(db_url: str) -> None:
    seed(db_url, 2)
    cfg = parse_config(config_text(db_url), "clock.toml")
    mono = [100.0]
    runner = CampaignRunner(cfg, "c", get_engine(db_url), clock=lambda: 1e9, mono=lambda: mono[0])
    mono[0] += 12.0
    assert runner.span(11.5, 100.0) == 11.5      # the worker's wall times agree with the monotonic age
    assert runner.span(-30.0, 100.0) == 12.0     # stepped back between dial and answer: the monotonic age
    assert runner.span(3600.0, 100.0) == 12.0    # stepped forward
    assert runner.span(float("nan"), 100.0) == 12.0
    assert runner.span(-5.0, None) == 0.0 and runner.age(None, float("nan")) == 0.0


def test_an_agent_pausing_after_this_call_is_passed_to_the_pacer_as_leaving(db_url: str) -> None:
    """(issue 31) The console's 'pause / log out after this call' (the agent row's pending state) reaches the
    pacer's snapshot as AgentView.leaving for that busy agent only; 'back to ready after this call' does not."""
    from dialer.store.agents import move_agent, set_pending

    seed(db_url, 8)
    cfg = parse_config(config_text(db_url), "leaving.toml")
    now = float(int(time.time()))
    runner = CampaignRunner(cfg, "c", get_engine(db_url), clock=lambda: now, mono=lambda: 100.0,
                            state_logger=log_agent_state)
    for login in LOGINS:
        assert set_idle(runner.engine, login, "logged_out", "ready", utc(now), "") is None
    runner.board.refresh()
    ids = {a.login: a.id for a in runner.board.agents.values()}
    for login in LOGINS[:3]:
        move_agent(runner.engine, ids[login], "on_call", utc(now), campaign_id=runner.campaign_id, force=True)
    set_pending(runner.engine, LOGINS[0], "paused")
    set_pending(runner.engine, LOGINS[1], "logged_out")
    set_pending(runner.engine, LOGINS[2], "")
    runner.board.refresh()
    snap = runner.snapshot(now)
    by_login = dict(zip([a.login for a in runner.board.agents.values()], snap.agents, strict=True))
    assert by_login[LOGINS[0]].leaving and by_login[LOGINS[1]].leaving
    assert not by_login[LOGINS[2]].leaving and by_login[LOGINS[2]].state == "on_call"
    assert not any(by_login[x].leaving for x in LOGINS[3:])
