"""The outage journal (issue 25): writes the store cannot take are journalled, then replayed exactly once.

The outage is real: another connection holds SQLite's write lock (BEGIN EXCLUSIVE) and the guarded engine's busy
timeout is short, so every write fails with SQLite's own `database is locked`, as a store that cannot take writes.
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import CampaignConfig
from dialer.journal import Journal, JournalOp, StoreGuard, StoreHealth, apply_record
from dialer.store import attempts as attempts_store
from dialer.store import outbox as outbox_store
from dialer.store.entries import Hopper
from dialer.store.journal import failures, outage
from dialer.store.models import Agent, Attempt, CallListEntry, CampaignEvent, Disposition, OutboxItem

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url, connect_args={"timeout": 0.2})

    @event.listens_for(eng, "connect")
    def _wal(dbapi_conn: sqlite3.Connection, _rec: object) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    yield eng
    eng.dispose()


class WriteLock:
    """Another process's exclusive write lock on the same SQLite file: the store cannot take writes."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> WriteLock:
        self.conn.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def _setup(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        e = CallListEntry(customer_id="c-山田", segment="dormant", reason="t", phones=["+819012340000"],
                          callable_from=AT - timedelta(days=1), callable_until=AT + timedelta(days=9),
                          timezone="Asia/Tokyo", status="dialing", attempts=1)
        ag = Agent(login="suzuki", name="鈴木", sip_uri="sip:suzuki@127.0.0.1", state="on_call",
                   state_since=AT)
        s.add(e)
        s.add(ag)
        s.commit()
        s.refresh(e)
        s.refresh(ag)
        assert e.id is not None and ag.id is not None
        entry_id, agent_id = e.id, ag.id
    attempt_id = attempts_store.create_attempt(engine, campaign_id=1, entry_id=entry_id, customer_id="c-山田",
                                               segment="dormant", phone_e164="+819012340000", trunk="t",
                                               state="connected", dialed_at=AT)
    return entry_id, agent_id, attempt_id


def _guard(engine: Engine, tmp_path: Path, hopper: Hopper, said: list[str]) -> StoreGuard:
    return StoreGuard(engine, Journal(tmp_path / "journal" / "t-node.jsonl"), "test", said.append,
                      lambda rec, conn: apply_record(rec, conn, hopper=hopper, campaign_id=1, state_logger=None),
                      clock=iter(range(0, 10_000, 5)).__next__)


def _journal_a_call_end(guard: StoreGuard, engine: Engine, hopper: Hopper, entry_id: int, agent_id: int,
                        attempt_id: int) -> None:
    """What the runner writes when a call ends and the agent keys a sale: every write goes through the guard."""
    end = AT + timedelta(minutes=3)
    guard.write(JournalOp.ATTEMPT, {"attempt_id": attempt_id, "fields": {"state": "ended", "outcome": "answered",
                                                                         "ended_at": end}},
                lambda: attempts_store.update_attempt(engine, attempt_id, state="ended", outcome="answered",
                                                      ended_at=end), None)
    guard.write(JournalOp.ENTRY_RESULT, {"entry_id": entry_id, "outcome": "answered", "at": end, "abandoned": False,
                                         "phone_e164": "+819012340000"},
                lambda: hopper.record_result(entry_id, "answered", end), None)
    d = Disposition(attempt_id=attempt_id, agent_id=agent_id, customer_id="c-山田", campaign_id=1, outcome="sale",
                    amount=1980.0, sku="SKU-1", source="dtmf", created_at=end)
    guard.write(JournalOp.DISPOSITION, d.model_dump(exclude={"id"}),
                lambda: outbox_store.record_disposition(engine, d), d)
    guard.write(JournalOp.ENTRY_DISPOSITION, {"entry_id": entry_id, "outcome": "sale", "at": end,
                                              "callback_at": None, "agent_login": "suzuki", "sku": "SKU-1"},
                lambda: hopper.apply_disposition(entry_id, "sale", end), None)
    guard.write(JournalOp.AGENT_STATE, {"agent_id": agent_id, "state": "wrap_up", "at": end, "attempt_id": attempt_id},
                lambda: "x", "wrap_up")
    guard.write(JournalOp.EVENT, {"kind": "note", "message": "販売 1件", "level": "info", "at": end},
                lambda: None, None)


def _counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        return {"dispositions": len(s.exec(select(Disposition)).all()),
                "outbox": len(s.exec(select(OutboxItem)).all()),
                "events": len(s.exec(select(CampaignEvent).where(CampaignEvent.kind == "note")).all())}


def test_an_outage_is_journalled_then_replayed_exactly_once(db_url: str, engine: Engine, tmp_path: Path) -> None:
    entry_id, agent_id, attempt_id = _setup(engine)
    hopper = Hopper(engine, CampaignConfig(name="t"))
    said: list[str] = []
    guard = _guard(engine, tmp_path, hopper, said)
    with WriteLock(db_url.split("///", 1)[1]):
        _journal_a_call_end(guard, engine, hopper, entry_id, agent_id, attempt_id)
        assert guard.health is StoreHealth.UNREACHABLE
        assert guard.journalled == 6
        assert not guard.recover_now()  # still locked: nothing replayed, still degraded
    assert said[0].startswith("store_unreachable: OperationalError: database is locked")
    path = guard.journal.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = path.read_bytes()
    assert "c-山田" in saved.decode("utf-8")
    assert _counts(engine) == {"dispositions": 0, "outbox": 0, "events": 0}

    assert not guard.recover()  # the first try only starts a probe (in a thread: the loop never waits on it)
    assert guard._probe is not None
    guard._probe.join(timeout=30)
    assert guard.recover()
    assert guard.health is StoreHealth.OK and guard.replayed == 6
    assert path.read_bytes() == b""  # emptied once everything is in the store
    with Session(engine) as s:
        att = s.get(Attempt, attempt_id)
        e = s.get(CallListEntry, entry_id)
        ag = s.get(Agent, agent_id)
        assert att is not None and e is not None and ag is not None
        assert (att.state, att.outcome) == ("ended", "answered")
        assert e.status == "done"  # the sale closed the entry
        assert ag.state == "wrap_up" and ag.current_attempt_id == attempt_id
    assert _counts(engine) == {"dispositions": 1, "outbox": 1, "events": 1}

    # the same journal replayed again (a crash before the file was emptied): nothing is applied twice
    path.write_bytes(saved)
    assert guard.replay() == 0
    assert _counts(engine) == {"dispositions": 1, "outbox": 1, "events": 1}


def test_a_replay_cut_short_resumes_where_it_stopped(db_url: str, engine: Engine, tmp_path: Path) -> None:
    entry_id, agent_id, attempt_id = _setup(engine)
    hopper = Hopper(engine, CampaignConfig(name="t"))
    guard = _guard(engine, tmp_path, hopper, [])
    with WriteLock(db_url.split("///", 1)[1]):
        _journal_a_call_end(guard, engine, hopper, entry_id, agent_id, attempt_id)
    records = guard.journal.records()
    # the first three went in before the store failed again (replay is in order; keys commit with effects)
    head = Journal(tmp_path / "head.jsonl")
    head.path.write_bytes(b"".join(guard.journal.path.read_bytes().splitlines(keepends=True)[:3]))
    assert StoreGuard(engine, head, "test", lambda _s: None, guard.apply).replay() == 3
    assert _counts(engine)["dispositions"] == 1
    assert guard.replay() == len(records) - 3
    assert _counts(engine) == {"dispositions": 1, "outbox": 1, "events": 1}


def test_a_torn_last_line_is_skipped_and_a_bad_record_does_not_stall_the_rest(db_url: str, engine: Engine,
                                                                                tmp_path: Path) -> None:
    entry_id, agent_id, attempt_id = _setup(engine)
    hopper = Hopper(engine, CampaignConfig(name="t"))
    guard = _guard(engine, tmp_path, hopper, [])
    guard.health = StoreHealth.UNREACHABLE  # journal everything
    guard.write(JournalOp.AGENT_STATE, {"agent_id": 999_999, "state": "ready", "at": AT, "attempt_id": None},
                lambda: "x", "ready")  # an agent the store does not know: cannot be applied
    guard.write(JournalOp.EVENT, {"kind": "note", "message": "after the bad one", "level": "info", "at": AT},
                lambda: None, None)
    with guard.journal.path.open("ab") as f:
        f.write(b'{"key": "torn", "op": "event", "ar')  # the process died inside a write
    assert [r.op for r in guard.journal.records()] == [JournalOp.AGENT_STATE, JournalOp.EVENT]
    assert guard.replay() == 2
    assert _counts(engine)["events"] == 1
    bad = failures(engine, guard.journal.path.name)
    assert len(bad) == 1 and bad[0][1] == "agent_state" and "KeyError" in bad[0][2]
    assert guard.replay() == 0  # the file was emptied; nothing to do


def test_only_outages_are_absorbed(db_url: str, engine: Engine) -> None:
    with WriteLock(db_url.split("///", 1)[1]), pytest.raises(Exception) as locked:
        attempts_store.create_attempt(engine, campaign_id=1, entry_id=1, customer_id="c", segment="s",
                                      phone_e164="+81", trunk="t", state="dialing", dialed_at=AT)
    assert outage(locked.value) is not None
    assert outage(ValueError("a bug")) is None
    assert outage(sqlite3.DatabaseError("database disk image is malformed")) is None


# ---------------------------------------------------------------- a damaged store (issue 25)
def _damage(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(4096 * 3)
        f.write(bytes((i * 131 + 7) % 256 for i in range(4096 * 4)))


def test_a_damaged_sqlite_file_is_refused_in_one_line_with_the_fix(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO, run_env

    db = tmp_path / "店舗.db"
    ok = subprocess.run([sys.executable, "-m", "dialer", "db", "init", "--url", f"sqlite:///{db}"], cwd=REPO,
                        env=run_env(), capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    good = subprocess.run([sys.executable, "-m", "dialer", "db", "check", "--url", f"sqlite:///{db}"], cwd=REPO,
                          env=run_env(), capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "quick_check ok" in good.stdout, good.stderr
    _damage(db)
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n[[trunks]]\nname = "t"\nproxy = "sip:127.0.0.1:5999"\n'
                   'sandbox = true\n[[campaigns]]\nname = "c"\ntrunk = "t"\n', encoding="utf-8")
    for argv in (["db", "check", "--url", f"sqlite:///{db}"], ["db", "init", "--url", f"sqlite:///{db}"],
                 ["campaign", "run", "c", "--headless", "--for", "1s", "--config", str(cfg)],
                 ["report", "campaign", "c", "--config", str(cfg)]):
        r = subprocess.run([sys.executable, "-m", "dialer", *argv], cwd=REPO, env=run_env(), capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 3, (argv, r.returncode, r.stdout[-500:], r.stderr[-1500:])
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in r.stderr, (argv, r.stderr[-1500:])
        assert "is damaged" in lines[0] and ".recover" in lines[0] and str(db) in lines[0], lines[0]


# ---------------------------------------------------------------- a starved host (issue 25)
def test_a_late_loop_dials_nothing_until_it_has_caught_up_for_a_while() -> None:
    from dialer.campaign import TICK_S, TickLag

    lag = TickLag(1.0)
    t = 0.0
    for _ in range(10):  # on time
        lag.turn(t)
        t += TICK_S
    assert not lag.lagging and lag.changed() is None
    t += 1.6  # the host starved the runner for 1.6 s
    lag.turn(t)
    assert lag.lagging and lag.changed() is True and lag.worst() == pytest.approx(1.6)
    seen = []
    for _ in range(int(TickLag.WINDOW_S / TICK_S) + 2):  # back on time: still held for the window
        t += TICK_S
        lag.turn(t)
        seen.append(lag.lagging)
    assert seen[0] and not seen[-1] and lag.changed() is False
    assert lag.status()["max_s"] == pytest.approx(1.6) and TickLag(0.0).limit_s == 0.0
    off = TickLag(0.0)  # 0 turns the check off
    off.turn(0.0)
    off.turn(5.0)
    assert not off.lagging


# ---------------------------------------------------------------- the agent console while the store is away
def test_the_agent_console_keeps_a_disposition_while_the_store_is_away(db_url: str, engine: Engine,
                                                                      tmp_path: Path) -> None:
    from dialer.config import parse_config
    from dialer.views.agent_console import AgentConsole
    from tests.test_reports import NOW, build_store, write_config

    build_store(db_url)
    cfgp = write_config(tmp_path, db_url)
    text = cfgp.read_text(encoding="utf-8").replace("[database]\n", f'[database]\njournal_dir = "{tmp_path / "j"}"\n', 1)
    cfg = parse_config(text, str(cfgp))
    c = AgentConsole(engine, cfg, "a01")
    c.refresh(NOW)
    attempt = c.pop_attempt
    assert attempt is not None and c.agent["state"] == "on_call"
    with WriteLock(db_url.split("///", 1)[1]):
        for k in ["1", "5", "9", "8", "0", "enter", "enter", "enter", "enter"]:
            c.handle_key(k, NOW)
        assert "kept on this computer" in c.message, (c.message, c.error)
        c.refresh(NOW)  # the screen stays, and says why
        assert "the store is unreachable" in c.error and c.agent["state"] == "on_call"
    with Session(engine) as s:
        assert not s.exec(select(Disposition).where(Disposition.created_at == NOW)).all()
    assert c.guard is not None and c.guard._probe is not None
    c.guard._probe.join(timeout=30)
    c.refresh(NOW)  # the store answers: the journal goes in first
    assert not c.guard.degraded
    with Session(engine) as s:
        d = s.exec(select(Disposition).where(Disposition.created_at == NOW)).one()
        assert (d.outcome, d.amount, d.attempt_id, d.source) == ("sale", 5980.0, attempt, "console")
        assert len(s.exec(select(OutboxItem).where(OutboxItem.disposition_id == d.id)).all()) == 1
    assert c.guard.replay() == 0


# ---------------------------------------------------------------- the monitor (issue 25)
def test_the_monitor_says_the_store_is_away_and_shows_a_late_loop(db_url: str, tmp_path: Path) -> None:
    import socket

    from rich.console import Console

    from dialer.config import parse_config
    from dialer.store.db import get_engine
    from dialer.store.models import CampaignStatus
    from dialer.views.monitor import Monitor
    from tests.test_reports import NOW, build_store, write_config

    build_store(db_url)
    cfg = parse_config(write_config(tmp_path, db_url).read_text(encoding="utf-8"))
    with Session(get_engine(db_url)) as s:
        st = s.exec(select(CampaignStatus)).first()
        assert st is not None
        st.stats = {**(st.stats or {}), "lag": {"now_s": 2.4, "worst_s": 2.4, "max_s": 2.4, "limit_s": 1.0,
                                                "lagging": True},
                    "store": {"health": "ok", "outages": 1, "replayed": 17}}
        s.add(st)
        s.commit()

    def text_of(m: Monitor) -> str:
        con = Console(width=120, record=True, color_system=None)
        con.print(m.render(120, NOW))
        return con.export_text()

    m = Monitor(get_engine(db_url), cfg, campaign="demo", by="test")
    m.refresh(NOW)
    out = text_of(m)
    assert "LOOP LATE 2.4s (limit 1s): no new dials" in out and "store away 1x, 17 write(s) replayed" in out
    # the server goes away (a port nobody listens on refuses at once): the last view stays, with the reason
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pytest.importorskip("psycopg")
    m.engine = create_engine(f"postgresql+psycopg://x@127.0.0.1:{port}/x")
    m.refresh(NOW)
    out = text_of(m)
    assert "STORE UNREACHABLE since" in out and "showing the last view" in out and "demo" in out
    assert "LOOP LATE" in out  # the last view, still there
    m.engine = get_engine(db_url)
    m.refresh(NOW)
    assert "STORE UNREACHABLE" not in text_of(m)


def test_a_busy_sqlite_file_is_not_called_damaged(db_url: str, tmp_path: Path) -> None:
    from dialer.store.db import dispose_engines, sqlite_problem

    dispose_engines()  # nobody else holds the file while its journal mode changes
    path = db_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=DELETE")  # a rollback-journal file: an exclusive lock keeps readers out
    eng = create_engine(db_url, connect_args={"timeout": 0.1})
    try:
        other.execute("BEGIN EXCLUSIVE")
        assert sqlite_problem(eng) is None  # locked, not damaged
        other.execute("ROLLBACK")
        assert sqlite_problem(eng) is None
    finally:
        other.close()
        eng.dispose()
