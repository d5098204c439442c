"""Pause after the calls dialled for you: an agent who pauses while calls the pacer dialled counting them are
still ringing takes an answered one if nobody is ready, then goes back to the same pause.

The runner here is the real one over a real SQLite store; its telephony is never started (nothing is dialled,
`connect_agent` has no call to reach), so the call events a worker would send are fed to `handle` by hand.
The SIP version of the first scenario, with real peers, is at the end (`-m sip`).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from dialer.campaign import CampaignRunner, Live, utc
from dialer.config import parse_config
from dialer.domain.agents import ALLOWED, next_state, pending_after
from dialer.i18n import set_language
from dialer.store import Engine
from dialer.store import attempts as attempts_store
from dialer.store.agents import console_snapshot, log_agent_state, set_idle, set_pending
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Agent, AgentStateLog, Attempt, CampaignEvent
from dialer.telephony import CallEvent
from dialer.views.agent_console import AgentConsole
from tests.sipp import Sipp, free_udp_port
from tests.test_campaign_e2e import seed

RING_S, CONNECT_S = 20.0, 2.0
WINDOW_S = RING_S + CONNECT_S
LOGINS = ("a1", "a2", "a3", "a4", "a5")


def config_text(url: str, agents: dict[str, str] | None = None, carrier_port: int = 5999, sip_base: int = 5990,
                wrap_s: float = 30) -> str:
    agents = agents or {login: f"sip:{login}@127.0.0.1:5998" for login in LOGINS}
    agent_rows = "\n".join(f'[[agents]]\nlogin = "{k}"\nname = "担当{k}"\nsip_uri = "{v}"\n' for k, v in agents.items())
    return f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 44000
lines = 2
agent_legs = "on_connect"
agent_check_s = 0
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_cps = 5
sandbox = true
{agent_rows}
[[campaigns]]
name = "c"
mode = "progressive"
trunk = "loop"
ring_timeout_s = {RING_S}
connect_limit_s = {CONNECT_S}
wrap_up_timeout_s = {wrap_s}
"""


@dataclass
class Rig:
    runner: CampaignRunner
    t: list[float]  # the runner's clock (epoch seconds), moved by the test
    url: str

    @property
    def engine(self) -> Engine:
        return self.runner.engine

    def at(self, s: float) -> datetime:
        return utc(self.t[0] + s)

    def agent(self, login: str) -> Agent:
        with Session(self.engine) as s:
            return s.exec(select(Agent).where(Agent.login == login)).one()

    def aid(self, login: str) -> int:
        a = self.agent(login).id
        assert a is not None
        return a

    def dial(self, s: float) -> Live:
        """What `place` does up to the INVITE: lease, attempt row, entry marked dialling, the call tracked."""
        r, at = self.runner, self.at(s)
        lease = r.hopper.lease(1, r.runner_id, at)[0]
        aid = attempts_store.create_attempt(
            r.engine, campaign_id=r.campaign_id, entry_id=lease.entry_id, customer_id=lease.customer_id,
            segment=lease.segment, phone_e164=lease.phone_e164, trunk=r.trunk.name, state="dialing", dialed_at=at)
        assert r.hopper.mark_dialing(lease.entry_id, aid, at)
        call = Live(aid, lease.entry_id, lease.customer_id, lease.segment, lease.phone_e164, lease.sku,
                    self.t[0] + s)
        r.live[aid] = call
        return call

    def event(self, kind: str, call: Live, s: float, **kw: Any) -> None:
        self.runner.board.refresh()  # as every tick does before routing
        self.runner.handle(CallEvent(kind, attempt_id=call.attempt_id, at=self.t[0] + s, **kw))


@pytest.fixture()
def rig(db_url: str) -> Rig:
    seed(db_url, 8)
    cfg = parse_config(config_text(db_url), "standby.toml")
    t = [float(int(time.time()))]
    runner = CampaignRunner(cfg, "c", get_engine(db_url), clock=lambda: t[0], state_logger=log_agent_state)
    return Rig(runner, t, db_url)


def console_to(rig: Rig, login: str, new: str, s: float, reason: str = "") -> None:
    """An idle change as the agent console makes it (guarded by the state it saw)."""
    seen = rig.agent(login).state
    assert set_idle(rig.engine, login, seen, new, rig.at(s), reason) is None


def events(rig: Rig, kind: str) -> list[str]:
    with Session(rig.engine) as s:
        return [e.message for e in s.exec(select(CampaignEvent).where(CampaignEvent.kind == kind)).all()]


# ------------------------------------------------------------------------------------- the rule table
def test_paused_to_reserved_is_allowed_and_owes_a_return_to_the_pause() -> None:
    assert "reserved" in ALLOWED["paused"] and "on_call" not in ALLOWED["paused"]
    assert pending_after("paused", "reserved", "") == "paused"
    assert pending_after("ready", "reserved", "") == ""  # an ordinary call owes nothing
    assert pending_after("reserved", "on_call", "paused") == "paused"
    assert pending_after("wrap_up", "paused", "paused") == ""  # spent once idle
    # a reservation that never became a call ends where the agent asked to go, like a wrap-up
    assert next_state("reserved", "ready", "paused", force=True) == "paused"
    assert next_state("wrap_up", "ready", "paused") == "paused"
    assert next_state("reserved", "ready", "") == "ready"


# ------------------------------------------------------------------------------------- (1) who stands by
def test_standby_selection(rig: Rig) -> None:
    board = rig.runner.board
    for login in ("a1", "a2", "a3"):
        console_to(rig, login, "ready", 0)
    console_to(rig, "a1", "paused", 4, "break")    # before the dial at 5 s: the pacer did not count a1
    console_to(rig, "a2", "paused", 8, "lunch")    # after it
    console_to(rig, "a3", "paused", 10, "break")   # after it, later than a2
    board.refresh()
    dialed, a1, a2, a3 = rig.at(5), rig.aid("a1"), rig.aid("a2"), rig.aid("a3")

    def pick(now_s: float, exclude: set[int] | None = None) -> int | None:
        got = board.standby(dialed, rig.at(now_s), WINDOW_S, exclude or set())
        return None if got is None else got.id

    assert pick(12) == a2  # paused after the dial; a2 has waited longest
    assert pick(12, {a2}) == a3  # a tried agent is skipped
    assert pick(12, {a2, a3}) is None  # a1 paused before the dial: never on standby for it
    assert pick(8 + WINDOW_S) == a2  # the window's edge still counts
    assert pick(8 + WINDOW_S + 0.5) == a3  # a2's window is over, a3's is not
    assert pick(10 + WINDOW_S + 0.5) is None  # everyone's is over
    # a ready agent comes first: the runner asks for standby only when choose() finds nobody
    console_to(rig, "a1", "ready", 11)
    board.refresh()
    assert board.choose("dormant") is not None and board.choose("dormant").id == a1  # type: ignore[union-attr]
    call = rig.dial(5)
    rig.event("answered", call, 12)
    assert call.agent_id == a1 and not call.standby
    assert rig.agent("a1").pending_state == "" and rig.agent("a2").state == "paused"


# ------------------------------------------------------------------------------------- (2) the state path
def test_standby_agent_takes_the_call_and_returns_to_the_same_pause(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "paused", 2, "lunch")  # the console's pause while the call rings
    rig.event("ringing", call, 1.5)
    rig.event("answered", call, 6)
    a1 = rig.agent("a1")
    assert call.agent_id == a1.id and call.standby and not call.abandoned
    assert (a1.state, a1.pending_state, a1.pause_reason, a1.current_attempt_id) == (
        "reserved", "paused", "lunch", call.attempt_id)
    # the console and the monitor show the call now and the pause owed after it
    snap, _ = console_snapshot(rig.engine, "a1", None)
    assert (snap["state"], snap["pending"]) == ("reserved", "paused")
    rig.event("agent_connected", call, 6.5)
    assert rig.agent("a1").state == "on_call"
    rig.event("hangup", call, 30, by="callee")
    assert rig.agent("a1").state == "wrap_up"
    rig.runner.end_wraps(rig.t[0] + 30 + rig.runner.policy.wrap_up_timeout_s)  # no disposition: the wrap-up times out
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason, a1.pending_state, a1.current_attempt_id) == ("paused", "lunch", "", None)
    with Session(rig.engine) as s:
        log = s.exec(select(AgentStateLog).where(AgentStateLog.agent_id == a1.id).order_by(col(AgentStateLog.id))).all()
        att = s.get(Attempt, call.attempt_id)
    assert [r.state for r in log][-5:] == ["paused", "reserved", "on_call", "wrap_up", "paused"]
    assert att is not None and att.agent_id == a1.id and att.agent_connected_at is not None and not att.abandoned
    said = events(rig, "agent_standby")
    assert len(said) == 1 and "a1" in said[0] and call.phone not in said[0] and call.phone[3:] not in said[0]
    assert rig.runner.counts.get("abandoned", 0) == 0


def test_standby_agent_who_asks_for_ready_meanwhile_ends_ready_without_the_old_reason(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "paused", 2, "break")
    rig.event("answered", call, 5)
    rig.event("agent_connected", call, 5.5)
    set_pending(rig.engine, "a1", "")  # the console's "r" during the call
    rig.event("hangup", call, 20, by="callee")
    rig.runner.end_wrap(rig.aid("a1"), rig.t[0] + 25)
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason, a1.pending_state) == ("ready", "", "")


def test_a_new_pause_reason_asked_for_during_the_standby_call_wins(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "paused", 2, "break")
    rig.event("answered", call, 5)
    rig.event("agent_connected", call, 5.5)
    c = AgentConsole(rig.engine, rig.runner.cfg, "a1")
    c.refresh(rig.at(6))
    c.handle_key("p", rig.at(7))
    c.handle_key("3", rig.at(7))  # meeting
    rig.event("hangup", call, 20, by="callee")
    rig.runner.end_wrap(rig.aid("a1"), rig.t[0] + 25)
    c.refresh(rig.at(26))
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason) == ("paused", "meeting")


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_console_says_a_pause_may_still_bring_a_call_and_shows_the_pause_owed(rig: Rig, lang: str) -> None:
    from rich.console import Console

    def text(c: AgentConsole, s: float) -> str:
        con = Console(width=100, record=True, file=io.StringIO())
        con.print(c.render(100, rig.at(s)))
        return con.export_text()

    try:
        set_language(lang)
        console_to(rig, "a1", "ready", 0)
        call = rig.dial(1)
        c = AgentConsole(rig.engine, rig.runner.cfg, "a1")
        c.refresh(rig.at(2))
        c.handle_key("p", rig.at(2))
        c.handle_key("1", rig.at(2))  # break, while the call rings
        assert c.message == {"en": "paused: break (a call dialled before your pause may still reach you in the "
                                   "next seconds)",
                             "ja": "離席中：休憩（離席前に発信済みの通話が、この後しばらくつながることがあります）"}[lang]
        rig.event("answered", call, 6)
        rig.event("agent_connected", call, 6.5)
        c.refresh(rig.at(7))
        out = text(c, 7)
        assert {"en": "after call: paused", "ja": "通話後: 離席"}[lang] in out
        assert "+81" not in out  # the pop masks the number
    finally:
        set_language("en")


# ------------------------------------------------------------------------------------- (3) failures
def test_a_failed_standby_leg_sends_the_agent_back_to_the_pause(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    first, second = rig.dial(1), rig.dial(1.2)
    console_to(rig, "a1", "paused", 2, "training")
    rig.event("answered", first, 6)
    assert first.agent_id == rig.aid("a1") and first.standby
    rig.event("agent_failed", first, 7, sip_status=480, detail="480 Temporarily Unavailable")
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason, a1.pending_state, a1.current_attempt_id) == ("paused", "training", "", None)
    assert first.agent_id is None and first.attempt_id in rig.runner.waiting  # nobody else: it waits
    # not offered again: neither this call (tried) nor another dialled before the pause (same pause)
    rig.event("answered", second, 7.5)
    assert second.agent_id is None and rig.agent("a1").state == "paused"
    # a ready agent still gets the waiting call
    console_to(rig, "a2", "ready", 8)
    rig.runner.board.refresh()
    rig.runner.route_waiting(rig.t[0] + 8)
    assert first.agent_id == rig.aid("a2") and not first.standby
    assert len(events(rig, "agent_standby_failed")) == 1


def test_an_abandoned_standby_call_leaves_the_agent_paused_not_ready(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "paused", 2, "break")
    rig.event("answered", call, 6)
    rig.event("abandoned", call, 8)
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason, a1.pending_state) == ("paused", "break", "")


def test_a_customer_who_hangs_up_before_the_standby_agent_answers_leaves_the_agent_paused(rig: Rig) -> None:
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "paused", 2, "admin")
    rig.event("answered", call, 6)
    assert rig.agent("a1").state == "reserved"
    rig.event("hangup", call, 6.8, by="callee")  # before agent_connected
    a1 = rig.agent("a1")
    assert (a1.state, a1.pause_reason, a1.pending_state) == ("paused", "admin", "")
    assert rig.aid("a1") not in rig.runner.wraps and not rig.runner.live


def test_an_agent_who_logged_out_is_never_on_standby(rig: Rig) -> None:
    """Logout is not a standby: the agent left (and their phone may be gone); the call waits or is abandoned."""
    console_to(rig, "a1", "ready", 0)
    call = rig.dial(1)
    console_to(rig, "a1", "logged_out", 2)
    rig.event("answered", call, 6)
    assert call.agent_id is None and rig.agent("a1").state == "logged_out"


# ------------------------------------------------------------------------------------- (4) the property
STATES = ("ready", "paused", "paused", "paused", "on_call", "wrap_up", "logged_out", "unavailable")
EDGE_MS = int(WINDOW_S * 1000)
AGES = st.one_of(st.integers(0, 40_000), st.integers(EDGE_MS - 3000, EDGE_MS + 3000))  # ms before `now`


@pytest.fixture()
def prop_rig(tmp_path: Path) -> Iterator[Callable[[], Rig]]:
    """A fresh store per hypothesis example would be slow: one rig, agent rows rewritten per example."""
    url = f"sqlite:///{tmp_path / 'prop.db'}"
    init_db(url)
    seed(url, 4)
    cfg = parse_config(config_text(url), "standby.toml")
    t = [float(int(time.time()))]
    rig = Rig(CampaignRunner(cfg, "c", get_engine(url), clock=lambda: t[0], state_logger=log_agent_state), t, url)
    yield lambda: rig
    dispose_engines()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(agents=st.lists(st.tuples(st.sampled_from(STATES), AGES, st.booleans()),
                       min_size=1, max_size=len(LOGINS)),
       now_ms=st.one_of(st.integers(0, 40_000), st.integers(EDGE_MS, 40_000)))
def test_a_standby_taker_paused_after_the_dial_within_the_window_and_ready_agents_come_first(
        prop_rig: Callable[[], Rig], agents: list[tuple[str, int, bool]], now_ms: int) -> None:
    rig = prop_rig()
    r = rig.runner
    base = rig.t[0] + 100.0  # the dial; each agent entered their state AGE ms before `now` (before or after it)
    now = base + now_ms / 1000
    rows: dict[int, tuple[str, datetime, bool]] = {}
    with Session(rig.engine) as s:
        for login, (state, age_ms, tried) in zip(LOGINS, agents, strict=False):
            a = s.exec(select(Agent).where(Agent.login == login)).one()
            a.state, a.state_since = state, utc(now - age_ms / 1000)
            a.ready_since = a.state_since if state == "ready" else None
            a.pending_state, a.pause_reason, a.current_attempt_id = "", "break" if state == "paused" else "", None
            s.add(a)
            assert a.id is not None
            rows[a.id] = (state, a.state_since, tried and state != "ready")
        for a in s.exec(select(Agent).where(Agent.login.in_(LOGINS[len(agents):]))).all():  # type: ignore[attr-defined]
            a.state, a.current_attempt_id, a.pending_state = "logged_out", None, ""
            s.add(a)
        s.commit()
    call = Live(10_000_000 + now_ms, 0, "C", "dormant", "+819000000000", "", base,
                tried_agents={i for i, (_, _, tried) in rows.items() if tried})
    r.live, r.waiting, r.standby_failed = {call.attempt_id: call}, [call.attempt_id], {}
    r.board.refresh()
    r.route_waiting(now)
    ready = {i for i, (state, _, _) in rows.items() if state == "ready"}
    eligible = {i: since for i, (state, since, tried) in rows.items()
                if state == "paused" and not tried and since > utc(base)
                and (utc(now) - since).total_seconds() <= WINDOW_S}
    if ready:
        assert call.agent_id in ready and not call.standby
    elif call.agent_id is not None:
        state, since, _ = rows[call.agent_id]
        assert call.standby and state == "paused"
        assert since > utc(base), "a standby taker paused after the call was dialled"
        assert (utc(now) - since).total_seconds() <= WINDOW_S, "and within the window"
        assert since == min(eligible.values()), "the earliest pause first"
        a = rig.agent(next(login for login in LOGINS if rig.aid(login) == call.agent_id))
        assert (a.state, a.pending_state, a.pause_reason) == ("reserved", "paused", "break")
    else:
        assert not eligible, "nobody took a call someone was on standby for"


# ------------------------------------------------------------------------------------- real SIP
@pytest.mark.sip
@pytest.mark.timeout(120)
def test_pause_while_the_only_call_rings_still_reaches_the_agent_over_sip(tmp_path: Path) -> None:
    """SIPp carrier rings 4 s then answers; the only agent pauses during the ring (console path); the call
    reaches them (a SIPp softphone that hangs up after 2 s), nothing is abandoned, and they end paused."""
    db = tmp_path / "sip.db"
    url = f"sqlite:///{db}"
    init_db(url)
    with Sipp("carrier_answer", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=4000,
              rtp_echo=True) as carrier, \
            Sipp("agent_bye", port=free_udp_port(6500, 6899), workdir=tmp_path, duration_ms=2000,
                 rtp_echo=True) as phone:
        cfg = parse_config(config_text(url, {"a1": phone.uri("a1")}, carrier.port,
                                       free_udp_port(6900, 6990, span=8), wrap_s=2), str(tmp_path / "sip.toml"))
        seed(url, 3)
        engine = get_engine(url)
        runner = CampaignRunner(cfg, "c", engine, auto_login=True, state_logger=log_agent_state)
        paused: list[int] = []
        seen: set[str] = set()

        def console() -> bool:
            ringing = [c for c in runner.live.values() if c.ringing is not None and c.answered is None]
            if not paused and ringing:
                assert set_idle(engine, "a1", "ready", "paused", utc(time.time()), "break") is None
                paused.append(ringing[0].attempt_id)
            with Session(engine) as s:
                seen.add(s.exec(select(Agent.state).where(Agent.login == "a1")).one())
            return bool(paused) and "wrap_up" in seen and "paused" in seen and not runner.live \
                and not runner.wraps
        try:
            runner.run(40.0, should_stop=console)
            with Session(engine) as s:
                rows = list(s.exec(select(Attempt)).all())
                a1 = s.exec(select(Agent).where(Agent.login == "a1")).one()
                said = [e.message for e in s.exec(select(CampaignEvent)
                                                  .where(CampaignEvent.kind == "agent_standby")).all()]
        finally:
            dispose_engines()
    assert paused, "the call never rang"
    assert [a.id for a in rows] == paused  # the pause stopped new dials: one call only
    only = rows[0]
    assert only.outcome == "answered" and only.agent_connected_at is not None and not only.abandoned
    assert only.agent_id == a1.id and runner.counts.get("abandoned", 0) == 0
    assert (a1.state, a1.pause_reason) == ("paused", "break")
    assert {"reserved", "on_call", "wrap_up"} <= seen
    assert len(said) == 1 and phone.received("INVITE") == 1
