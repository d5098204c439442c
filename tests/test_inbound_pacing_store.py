"""Issue 30, pacing knows about inbound: the store's facts the runner feeds pacing.inbound (real SQLite), the
runner's handler that turns them into the Snapshot's load, and the campaign's config keys."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import Session

from dialer.config import ConfigError, parse_config
from dialer.domain.inbound import Direction
from dialer.runner.return_calls import ReturnCalls
from dialer.settings import campaign_settings
from dialer.store.db import get_engine
from dialer.store.models import Agent, Attempt
from dialer.store.return_calls import desk_now, unanswered_calls
from pacing.inbound import Priority, ReturnCallModel

T0 = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)  # Monday 14:00 JST


def _outbound(s: Session, minutes_ago: float, outcome: str, *, campaign: int = 1, abandoned: bool = False,
              customer: str = "C100") -> int:
    a = Attempt(campaign_id=campaign, customer_id=customer, phone_e164="+819087654321", state="ended",
                dialed_at=T0 - timedelta(minutes=minutes_ago), outcome=outcome, abandoned=abandoned)
    s.add(a)
    s.commit()
    assert a.id is not None
    return a.id


def _inbound(s: Session, answers: int | None, seconds_ago: float, *, agent: int | None = None,
             ended: bool = False) -> int:
    at = T0 - timedelta(seconds=seconds_ago)
    a = Attempt(campaign_id=None, customer_id="C100", phone_e164="+819087654321", state="answered", dialed_at=at,
                answered_at=at, agent_id=agent, ended_at=at + timedelta(seconds=5) if ended else None)
    a.direction = Direction.INBOUND.value
    a.answers_attempt_id = answers
    s.add(a)
    s.commit()
    assert a.id is not None
    return a.id


def test_the_unanswered_calls_and_whether_they_came_back(db_url: str) -> None:
    engine = get_engine(db_url)
    with Session(engine) as s:
        returned = _outbound(s, 10, "no_answer")
        _outbound(s, 30, "busy", customer="C200")
        _outbound(s, 20, "answered", customer="C300")  # she answered: no missed call
        _outbound(s, 5, "answered", abandoned=True, customer="C400")  # answered and dropped: she may call back
        _outbound(s, 40, "machine", customer="C500")
        _outbound(s, 50, "failed", customer="C600")  # never rang: nothing on her phone
        _outbound(s, 15, "no_answer", campaign=2, customer="C700")  # another campaign's
        _outbound(s, 60 * 30, "no_answer", customer="C800")  # before the measuring period
        _inbound(s, returned, 60)
    rows = unanswered_calls(engine, 1, T0 - timedelta(days=1))
    got = [(round((T0 - r.dialed_at.replace(tzinfo=UTC)).total_seconds() / 60), r.returned) for r in rows]
    assert got == [(40, False), (30, False), (10, True), (5, False)]  # oldest first


def test_the_desk_now_queued_callers_and_the_agents_it_holds(db_url: str) -> None:
    engine = get_engine(db_url)
    with Session(engine) as s:
        agents = [Agent(login=f"a0{k}", name=n, state=st) for k, (n, st) in
                  enumerate((("佐藤", "on_call"), ("鈴木", "on_call"), ("高橋", "ready"), ("田中", "reserved")), 1)]
        s.add_all(agents)
        s.commit()
        ids = [a.id for a in agents if a.id is not None]
        assert len(ids) == 4
        out = _outbound(s, 3, "answered")
        taken = _inbound(s, None, 40, agent=ids[0])
        reserved_for = _inbound(s, None, 2, agent=ids[3])
        _inbound(s, None, 10)  # queued: no agent yet, within the queue's 30 s
        _inbound(s, None, 20)  # queued
        _inbound(s, None, 45)  # past the maximum wait: in the menu, not waiting for an agent
        _inbound(s, None, 12, ended=True)  # hung up
        for a, att in zip(agents, (taken, out, None, reserved_for), strict=True):
            a.current_attempt_id = att
            s.add(a)
        s.commit()
    d = desk_now(engine, ids, T0, 30.0)
    assert d.queued == 2
    assert d.on_return == frozenset({ids[0], ids[3]})  # 鈴木 is on an outbound call, 高橋 is ready
    assert desk_now(engine, [ids[1], ids[2]], T0, 30.0).on_return == frozenset()


def test_the_runner_feeds_the_pacer_the_desk_and_the_return_calls_to_come(db_url: str) -> None:
    engine = get_engine(db_url)
    with Session(engine) as s:
        # 120 calls left unanswered in the last hour (one every 30 s), 30 of them came back already
        for k in range(120):
            oid = _outbound(s, 0.5 * k + 0.5, "no_answer", customer=f"C{k:03d}")
            if k % 4 == 0 and k > 0:
                _inbound(s, oid, 30.0 * k - 60.0, ended=True)
        ag = Agent(login="a01", name="佐藤", state="on_call")
        s.add(ag)
        s.commit()
        ag.current_attempt_id = _inbound(s, None, 50, agent=ag.id)
        s.add(ag)
        s.commit()
        _inbound(s, None, 5)
        agent_id = ag.id
    clock = [1000.0]
    runner = SimpleNamespace(engine=engine, campaign_id=1, board=SimpleNamespace(agents={agent_id: None}),
                             cfg=SimpleNamespace(inbound=SimpleNamespace(max_wait_s=30.0)),
                             settings=SimpleNamespace(returns=ReturnCallModel(answer_s=60.0)), mono=lambda: clock[0])
    rc = ReturnCalls(runner)  # type: ignore[arg-type]
    rc.refresh(T0.timestamp())
    load = rc.load()
    assert rc.on_return == frozenset({agent_id}) and load.queued == 1
    assert rc.rate > 0.1  # 29 of 120 came back: measured above the prior once their exposure counts
    assert len(rc.open_dialled) == 120 - 29 and load.arrivals_per_s > 0.0
    assert load.reserve >= 1  # about 0.4 return calls within the minute a caller should wait at most
    # the outbound-first setting keeps only the queued caller's agent
    rc.model = ReturnCallModel(priority=Priority.OUTBOUND_FIRST, answer_s=60.0)
    clock[0] += 20.0
    rc.refresh(T0.timestamp() + 20.0)
    assert rc.load().reserve == 0 and rc.load().kept == 1


BASE = """
[[trunks]]
name = "lab"
proxy = "sip:127.0.0.1:5999"
sandbox = true

[[campaigns]]
name = "orikaeshi"
trunk = "lab"
{campaign}
"""
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_the_campaign_keys_reach_the_model() -> None:
    cfg = parse_config(BASE.format(campaign='inbound_priority = "blended"\nreturn_call_prior_rate = 0.18\n'
                                              'return_call_mean_s = 2400\nreturn_call_answer_s = 15'), "c.toml")
    m = campaign_settings(cfg, "orikaeshi", NOW).returns
    assert (m.priority, m.prior_rate, m.mean_s, m.window_s, m.answer_s) == (Priority.BLENDED, 0.18, 2400.0, 7200.0,
                                                                            15.0)
    default = campaign_settings(parse_config(BASE.format(campaign=""), "c.toml"), "orikaeshi", NOW).returns
    assert default.priority is Priority.INBOUND_FIRST


@pytest.mark.parametrize("key", ["return_call_prior_rate", "return_call_mean_s", "return_call_window_s",
                                 "return_call_answer_s"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_bad_return_call_setting_is_refused_with_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        cfg = parse_config(BASE.format(campaign=f"{key} = {value}"), "c.toml")
        campaign_settings(cfg, "orikaeshi", NOW)
    with pytest.raises(ConfigError, match="inbound_priority"):
        parse_config(BASE.format(campaign='inbound_priority = "sideways"'), "c.toml")
    assert not math.isnan(ReturnCallModel().prior_rate)
