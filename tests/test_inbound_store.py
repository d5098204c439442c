"""Return calls in the store (issue 30): schema 5, matching a caller to the customer and the call they answer,
the IVR's DNC stopping every further dial, inbound rows kept out of the outbound figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import CampaignConfig
from dialer.domain.inbound import Direction, InboundOutcome
from dialer.store.db import SCHEMA_VERSION, current_version, get_engine, init_db
from dialer.store.entries import Hopper
from dialer.store.inbound import (
    end_inbound,
    inbound_rows,
    is_dnc,
    record_inbound,
    record_ivr_dnc,
    return_call_facts,
)
from dialer.store.models import Agent, Attempt, CallListEntry, Customer
from dialer.store.reports import compliance_rows
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 10:00 JST


def _seed(engine: Engine) -> int:
    with Session(engine) as s:
        s.add(Customer(customer_id="C100", name="山田 花子", phone="03-1234-5678", phone2="090-8765-4321"))
        s.add(Customer(customer_id="C200", name="鈴木 一郎", phone="06-6123-4567"))
        s.add(Agent(login="a01", name="佐藤", state="ready"))
        s.add(CallListEntry(customer_id="C100", segment="dormant", reason="休眠: 最終購入から200日",
                            phones=["+81312345678", "+819087654321"], callable_from=T0 - timedelta(days=1),
                            callable_until=T0 + timedelta(days=10)))
        s.commit()
        e = s.exec(select(CallListEntry)).one()
        ag = s.exec(select(Agent)).one()
        # an earlier answered call with agent a01, then today's unanswered one on her mobile
        s.add(Attempt(campaign_id=1, entry_id=e.id, customer_id="C100", phone_e164="+81312345678",
                      dialed_at=T0 - timedelta(days=3), agent_id=ag.id, agent_connected_at=T0 - timedelta(days=3),
                      outcome="answered", state="ended"))
        s.add(Attempt(campaign_id=1, entry_id=e.id, customer_id="C100", phone_e164="+819087654321",
                      dialed_at=T0 - timedelta(hours=1), outcome="no_answer", state="ended"))
        s.commit()
        assert e.id is not None
        return e.id


def test_schema_5_migrates_a_version_4_database(db_url: str) -> None:
    engine, _ = init_db(db_url)
    with Session(engine) as s:
        s.add(Attempt(campaign_id=1, state="ended", outcome="busy"))
        s.commit()
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_attempts_answers_attempt_id"))
        conn.execute(text("ALTER TABLE attempts DROP COLUMN answers_attempt_id"))
        conn.execute(text("ALTER TABLE attempts DROP COLUMN direction"))
        conn.execute(text("UPDATE meta SET value = '4' WHERE key = 'schema_version'"))
    engine.dispose()
    engine, action = init_db(db_url)
    assert action == "migrated from 4" and current_version(get_engine(db_url)) == SCHEMA_VERSION == 5
    assert {"direction", "answers_attempt_id"} <= {c["name"] for c in inspect(engine).get_columns("attempts")}
    with Session(engine) as s:
        att = s.exec(select(Attempt)).one()
        assert att.outcome == "busy" and att.direction == Direction.OUTBOUND and att.answers_attempt_id is None


def test_a_caller_on_her_second_number_is_matched_with_the_call_she_answers(db_url: str) -> None:
    engine = get_engine(db_url)
    _seed(engine)
    f = return_call_facts(engine, "+819087654321")
    assert f.customer is not None and f.customer.customer_id == "C100" and f.customer.name == "山田 花子"
    assert f.answers is not None and f.answers.phone_e164 == "+819087654321" and f.answers.outcome == "no_answer"
    assert f.answers.reason == "休眠: 最終購入から200日"  # why we had called: the screen pop says it
    ag = Session(engine).exec(select(Agent)).one()
    assert f.last_agent_id == ag.id  # she last spoke to a01, three days ago, on her other number
    g = return_call_facts(engine, "+81661234567")  # never dialled: known customer, nothing answered
    assert g.customer is not None and g.customer.customer_id == "C200" and g.answers is None
    assert return_call_facts(engine, "+81355556666").customer is None


def test_ivr_dnc_stops_every_further_dial_and_inbound_stays_out_of_outbound_figures(db_url: str) -> None:
    engine = get_engine(db_url)
    eid = _seed(engine)
    hopper = Hopper(engine, CampaignConfig(name="t", segments=["dormant"]))
    assert [lz.entry_id for lz in hopper.lease(5, "probe", T0)] == [eid]  # dialable before
    hopper.release(eid, T0)
    facts = return_call_facts(engine, "+819087654321")
    att = record_inbound(engine, caller="+819087654321", facts=facts, at=T0 + timedelta(minutes=1))
    record_ivr_dnc(engine, attempt_id=att, customer_id="C100", phone_e164="+819087654321",
                   at=T0 + timedelta(minutes=2))
    end_inbound(engine, att, InboundOutcome.IVR_DNC, T0 + timedelta(minutes=2), hangup_by="dialer")
    assert is_dnc(engine, "C100", "")
    from dialer.store.outbox import pending_count

    assert pending_count(engine) == 1  # the CRM hears of it through the outbox, like an agent's DNC
    assert hopper.lease(5, "probe", T0 + timedelta(minutes=3)) == []
    assert hopper.check_dialable(eid, "+81312345678", T0 + timedelta(minutes=3)) is not None
    rows = inbound_rows(engine)
    assert [(r["outcome"], r["campaign_id"], r["known"]) for r in rows] == [("ivr_dnc", 1, True)]
    assert rows[0]["answers"] == facts.answers.attempt_id if facts.answers else False
    comp = compliance_rows(engine)
    assert att not in {a.id for a in comp.attempts}  # the return call is no dial after the DNC


def test_the_agents_screen_pop_says_return_call_and_why_we_had_called(db_url: str) -> None:
    from rich.console import Console

    from dialer.i18n import set_language
    from dialer.store.inbound import link_screen_pop
    from dialer.store.screen_pop import screen_pop_rows
    from dialer.views.agent_console import _decorate, render_pop

    engine = get_engine(db_url)
    _seed(engine)
    facts = return_call_facts(engine, "+819087654321")
    att = record_inbound(engine, caller="+819087654321", facts=facts, at=T0)
    ag = Session(engine).exec(select(Agent)).one()
    assert ag.id is not None
    link_screen_pop(engine, att, facts, ag.id, "last_agent")
    pop = screen_pop_rows(engine, att)
    assert pop is not None and pop["return_call"] and pop["answers_attempt_id"] == facts.answers.attempt_id \
        if facts.answers else False
    assert pop["name"] == "山田 花子" and pop["reason"] == "休眠: 最終購入から200日"
    set_language("ja")
    try:
        con = Console(width=100, record=True)
        card = _decorate(pop, "佐藤", "つなぐ化粧品", "0120-000-000")
        assert card is not None
        con.print(render_pop(card, "Asia/Tokyo", True, 100))
        text = con.export_text()
    finally:
        set_language("en")
    assert "折り返し" in text and "最終購入から200日" in text


def test_report_counts_return_calls_apart_from_the_outbound_figures(db_url: str) -> None:
    from dialer.reports import inbound_summary
    from dialer.store.attempts import campaign_attempts

    engine = get_engine(db_url)
    _seed(engine)
    facts = return_call_facts(engine, "+819087654321")
    for i, outcome in enumerate([InboundOutcome.ANSWERED, InboundOutcome.QUEUE_ABANDONED, InboundOutcome.IVR_DNC]):
        att = record_inbound(engine, caller="+819087654321", facts=facts, at=T0 + timedelta(minutes=i))
        end_inbound(engine, att, outcome, T0 + timedelta(minutes=i, seconds=20 + i))
    outbound = campaign_attempts(engine, 1)
    assert len(outbound) == 2 and all(a.direction == "outbound" for a in outbound)  # inbound rows are not dials
    r = inbound_summary(engine, 1, outbound)
    assert (r["return_calls"], r["answered"], r["abandoned_in_queue"], r["ivr_dnc"]) == (3, 1, 1, 1)
    assert r["inbound_abandon_rate"] == 1 / 3 and r["return_call_rate"] == 1.0  # one unanswered call, called back
    assert inbound_summary(engine, 2, [])["return_calls"] == 0


def test_a_dead_desks_callers_are_recorded_as_cut_and_its_agents_freed_by_another_desk(db_url: str) -> None:
    """Several nodes: desk A stops beating with one caller queued and one talking to a01; desk B, still beating,
    reaps A once (a second reap does nothing), closes both with the reason and frees a01; A is no longer offered
    for redirects, B still is."""
    from dialer.domain.vocabulary import AgentState
    from dialer.store.agents import move_agent
    from dialer.store.inbound import dead_desks, desk_beat, live_desks, reap_desk

    engine, _ = init_db(db_url)
    _seed(engine)
    facts = return_call_facts(engine, "+819087654321")
    desk_beat(engine, "10.0.0.1:5070", "10.0.0.1:5070", ["a01"], T0)
    desk_beat(engine, "10.0.0.2:5070", "10.0.0.2:5070", ["a02"], T0)
    queued = record_inbound(engine, caller="+819087654321", facts=facts, at=T0, desk_id="10.0.0.1:5070")
    talking = record_inbound(engine, caller="+819087654321", facts=facts, at=T0, desk_id="10.0.0.1:5070")
    with Session(engine) as s:
        a01 = s.exec(select(Agent)).one()
        row = s.get(Attempt, talking)
        assert row is not None and a01.id is not None
        row.agent_connected_at, row.agent_id = T0, a01.id
        s.add(row)
        s.commit()
        a01_id = a01.id
    move_agent(engine, a01_id, AgentState.RESERVED.value, T0, campaign_id=1, attempt_id=talking)
    move_agent(engine, a01_id, AgentState.ON_CALL.value, T0, campaign_id=1, attempt_id=talking)
    later = T0 + timedelta(seconds=30)
    desk_beat(engine, "10.0.0.2:5070", "10.0.0.2:5070", ["a02"], later)  # B beats, A does not
    assert dead_desks(engine, later) == ["10.0.0.1:5070"]
    assert sorted(reap_desk(engine, "10.0.0.1:5070", later)) == sorted([queued, talking])
    assert reap_desk(engine, "10.0.0.1:5070", later) == []  # reaped once
    assert list(live_desks(engine, later)) == ["10.0.0.2:5070"] and dead_desks(engine, later) == []
    with Session(engine) as s:
        q, t = s.get(Attempt, queued), s.get(Attempt, talking)
        a01 = s.exec(select(Agent)).one()
    assert q is not None and t is not None
    assert (q.outcome, q.state, q.hangup_by, q.ended_at is not None) == (
        InboundOutcome.QUEUE_ABANDONED, "ended", "dialer", True)
    assert "desk 10.0.0.1:5070 stopped" in q.detail and "waiting" in q.detail
    assert t.outcome == InboundOutcome.ANSWERED and "talking to the agent" in t.detail
    assert (a01.state, a01.current_attempt_id) == (AgentState.READY, None)
    rows = {r["id"]: r for r in inbound_rows(engine)}
    assert rows[queued]["outcome"] == InboundOutcome.QUEUE_ABANDONED  # reported as an inbound abandon


def test_a_runner_restarting_leaves_the_agent_a_live_desk_holds(tmp_path: object) -> None:
    """A campaign runner starting (recover: every busy agent back to ready, a crash left them so) must not take
    back the agent a live desk has on a return call; an agent of a dead desk's call it frees as before."""
    from pathlib import Path

    from dialer.campaign import CampaignRunner
    from dialer.config import parse_config
    from dialer.domain.vocabulary import AgentState
    from dialer.store.agents import move_agent
    from dialer.store.inbound import desk_beat, held_by_live_desk

    db = Path(str(tmp_path)) / "recover.db"
    cfg = parse_config(f'[database]\nurl = "sqlite:///{db}"\n[[trunks]]\nname = "loop"\nproxy = "sip:127.0.0.1:5999"\n'
                       'sandbox = true\n[[agents]]\nlogin = "a01"\nsip_uri = "sip:a01@127.0.0.1:5301"\n'
                       '[[agents]]\nlogin = "a02"\nsip_uri = "sip:a02@127.0.0.1:5302"\n'
                       '[[campaigns]]\nname = "rc"\ntrunk = "loop"\n', "recover.toml")
    engine, _ = init_db(cfg.database.url)
    runner = CampaignRunner(cfg, "rc", engine)
    now = datetime.now(UTC)
    desk_beat(engine, "127.0.0.1:5070", "127.0.0.1:5070", ["a01", "a02"], now)
    facts = return_call_facts(engine, "+819087654321")
    live_call = record_inbound(engine, caller="+819087654321", facts=facts, at=now, desk_id="127.0.0.1:5070")
    dead_call = record_inbound(engine, caller="+819087654321", facts=facts, at=now, desk_id="127.0.0.1:5999")
    with Session(engine) as s:
        ids = {a.login: a.id for a in s.exec(select(Agent)).all()}
    for login, att in (("a01", live_call), ("a02", dead_call)):
        move_agent(engine, ids[login], AgentState.READY.value, now, campaign_id=None, force=True)
        move_agent(engine, ids[login], AgentState.RESERVED.value, now, campaign_id=None, attempt_id=att)
        move_agent(engine, ids[login], AgentState.ON_CALL.value, now, campaign_id=None, attempt_id=att)
    assert held_by_live_desk(engine, [i for i in ids.values() if i is not None], now) == {ids["a01"]}
    runner.recover()
    with Session(engine) as s:
        states = {a.login: (a.state, a.current_attempt_id) for a in s.exec(select(Agent)).all()}
    assert states == {"a01": (AgentState.ON_CALL, live_call), "a02": (AgentState.READY, None)}


def _desk_takes_while_runner_reads(url: str) -> tuple[bool, str, int | None]:
    """The runner has read agent a01 `ready`; the desk's claim is in flight (uncommitted) when the runner writes.

    Returns whether the desk won, what the runner's move said, and the attempt the agent's row names at the end.
    """
    import threading

    from dialer.store.agents import move_agent

    engine, _ = init_db(url)
    _seed(engine)
    with Session(engine) as s:
        agent = s.exec(select(Agent).where(Agent.login == "a01")).one()
        assert agent.id is not None
        agent_id = agent.id
    desk_call = record_inbound(engine, caller="+81312345678", facts=return_call_facts(engine, "+81312345678"),
                               at=T0, detail="return call")
    runner_said: list[str] = []
    with engine.connect() as desk:  # the desk's conditional UPDATE, held open while the runner acts
        trans = desk.begin()
        desk.execute(text("UPDATE agents SET state = 'reserved', current_attempt_id = :a WHERE id = :i "
                          "AND state = 'ready'"), {"a": desk_call, "i": agent_id})

        def runner() -> None:
            try:
                move_agent(engine, agent_id, "reserved", T0, campaign_id=1, attempt_id=999)
                runner_said.append("took the agent")
            except ValueError as exc:
                runner_said.append(str(exc))

        t = threading.Thread(target=runner)
        t.start()
        t.join(1.5)  # PostgreSQL: the runner waits on the desk's row lock
        trans.commit()
    t.join(30)
    assert not t.is_alive()
    with Session(engine) as s:
        final = s.get(Agent, agent_id)
        assert final is not None
        return final.current_attempt_id == desk_call, runner_said[0], final.current_attempt_id


def test_a_runner_that_read_an_agent_ready_loses_it_to_the_desks_claim_on_postgres(pg_url: str) -> None:  # noqa: F811
    """Issue 30: one agent, one owner. The runner's take is guarded by what it read, so the desk's claim that
    committed meanwhile wins and the runner is told (it routes the call to someone else)."""
    desk_won, runner_said, _ = _desk_takes_while_runner_reads(pg_url)
    assert desk_won and "taken" in runner_said, runner_said


def test_a_runner_that_read_an_agent_ready_loses_it_to_the_desks_claim_on_sqlite(db_url: str) -> None:
    """The same race on one SQLite file (the runner and the desk as separate connections)."""
    desk_won, runner_said, _ = _desk_takes_while_runner_reads(db_url)
    assert desk_won and "taken" in runner_said, runner_said
