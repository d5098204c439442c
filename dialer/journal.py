"""The outage journal: while the store cannot take writes, the runner keeps its calls and writes here instead.

Why: a live call must never depend on the database being up. When PostgreSQL is stopped or the SQLite disk is
full, the runner stops dialling (nothing new may start without its attempt row), keeps every call that is up,
keeps routing answered calls to the agents it already knows, and appends each store write it could not make
(attempt updates, entry results, dispositions, agent states, events) to an fsync'd, append-only JSON-lines file
`<journal_dir>/<campaign>-<node>.jsonl` (mode 0600: it holds customer ids). When the store answers again the
records are replayed in order, each exactly once (dialer.store.journal.apply_once: the record's key is
committed in the same transaction as its effect), and the file is emptied. A journal left by a runner that died
during an outage is replayed by the next runner of the campaign before it recovers anything.

What this does not cover: an INVITE never leaves without its attempt row (no dial while the store is down), and
a write that failed *after* the server committed it (connection cut during COMMIT) is written again on replay;
the journalled writes are idempotent except dispositions and events, whose duplicates that rare case can make.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from dialer.store import Connection, Engine
from dialer.store import attempts as attempts_store
from dialer.store import campaigns as campaigns_store
from dialer.store import outbox as outbox_store
from dialer.store.agents import StateLogger, move_agent
from dialer.store.entries import Hopper
from dialer.store.journal import StoreFault, apply_once, outage, probe_write
from dialer.store.outbox import DispositionRecord

log = logging.getLogger("dialer.journal")

T = TypeVar("T")
RETRY_S = 1.0  # how often a degraded runner tries the store again


class JournalOp(StrEnum):
    """What a journal record replays (one store write of the runner each)."""

    ATTEMPT = "attempt"  # attempts.update_attempt(attempt_id, **fields)
    ENTRY_RESULT = "entry_result"  # Hopper.record_result
    ENTRY_DISPOSITION = "entry_disposition"  # Hopper.apply_disposition
    DISPOSITION = "disposition"  # outbox.record_disposition (the verdict and its CRM outbox row)
    AGENT_STATE = "agent_state"  # agents.move_agent
    EVENT = "event"  # campaigns.record_event
    NOT_AN_ATTEMPT = "not_an_attempt"  # the INVITE never left: drop the attempt row, give the entry back


class StoreHealth(StrEnum):
    """The runner's view of its store (shown in the log and, once it is back, on the monitor)."""

    OK = "ok"
    UNREACHABLE = StoreFault.UNREACHABLE.value
    FULL = StoreFault.FULL.value


@dataclass(frozen=True)
class Record:
    key: str
    op: JournalOp
    args: dict[str, Any]


def _enc(v: Any) -> Any:
    if isinstance(v, datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dict):
        return {k: _enc(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_enc(x) for x in v]
    if isinstance(v, StrEnum):
        return v.value
    return v


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"$dt"}:
            return datetime.fromisoformat(v["$dt"])
        return {k: _dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


def journal_path(directory: str | Path, campaign: str, node: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{campaign}-{node}")
    return Path(directory) / f"{safe}.jsonl"


class Journal:
    """One append-only, fsync'd JSON-lines file; created (0600, directory 0700) on the first record."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, op: JournalOp, args: dict[str, Any]) -> Record:
        rec = Record(uuid.uuid4().hex, op, args)
        line = json.dumps({"key": rec.key, "op": op.value, "at": time.time(), "args": _enc(args)},
                          ensure_ascii=False) + "\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return rec

    def records(self) -> list[Record]:
        """Every whole record, in order; a torn last line (a crash inside a write) is skipped."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[Record] = []
        for n, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(Record(str(d["key"]), JournalOp(d["op"]), _dec(d["args"])))
            except (ValueError, KeyError) as exc:
                log.warning("journal %s line %d unreadable (%s): skipped", self.path, n, exc)
        return out

    def clear(self) -> None:
        """Empty the file once every record is in the store (their keys stay there, so a re-run is harmless)."""
        if self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def apply_record(rec: Record, conn: Connection, *, hopper: Hopper | None, campaign_id: int,
                 state_logger: StateLogger | None) -> None:
    """Make the store write REC stands for, on CONN (inside apply_once's transaction)."""
    bind = cast(Engine, conn)  # the repositories' Sessions join CONN's transaction
    a = rec.args
    if rec.op is JournalOp.ATTEMPT:
        attempts_store.update_attempt(bind, int(a["attempt_id"]), **a["fields"])
    elif rec.op is JournalOp.ENTRY_RESULT:
        _hopper_on(hopper, conn).record_result(int(a["entry_id"]), a["outcome"], a["at"],
                                               abandoned=bool(a["abandoned"]), phone_e164=a.get("phone_e164", ""))
    elif rec.op is JournalOp.ENTRY_DISPOSITION:
        _hopper_on(hopper, conn).apply_disposition(int(a["entry_id"]), a["outcome"], a["at"],
                                                   callback_at=a.get("callback_at"),
                                                   agent_login=a.get("agent_login", ""), sku=a.get("sku", ""))
    elif rec.op is JournalOp.DISPOSITION:
        outbox_store.record_disposition(bind, DispositionRecord(**a))
    elif rec.op is JournalOp.AGENT_STATE:
        # forced: the journal holds the moves in the order the runner made them while the store was away
        move_agent(bind, int(a["agent_id"]), a["state"], a["at"], campaign_id=campaign_id,
                   attempt_id=a.get("attempt_id"), force=True, state_logger=state_logger)
    elif rec.op is JournalOp.EVENT:
        campaigns_store.record_event(bind, campaign_id, a["kind"], a["message"], a.get("level", "info"), at=a["at"])
    elif rec.op is JournalOp.NOT_AN_ATTEMPT:
        attempts_store.delete_attempt(bind, int(a["attempt_id"]))
        _hopper_on(hopper, conn).release(int(a["entry_id"]), a["at"])


def _hopper_on(hopper: Hopper | None, conn: Connection) -> Hopper:
    if hopper is None:
        raise ValueError("an entry write in a journal without a hopper (an agent console's journal)")
    h = copy.copy(hopper)
    h.engine = cast(Engine, conn)
    return h


class StoreGuard:
    """The runner's writes go through here: straight to the store while it is healthy, to the journal while not.

    Once degraded, EVERY write is journalled (even if the store answers again in between) until the journal
    has been replayed, so the store sees the writes in the order the runner made them."""

    def __init__(self, engine: Engine, journal: Journal, owner: str, say: Callable[[str], None],
                 apply: Callable[[Record, Connection], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.journal = journal
        self.owner = owner
        self.say = say
        self.apply = apply
        self.clock = clock
        self.health = StoreHealth.OK
        self.since: float | None = None
        self.last_try = 0.0
        self.last_said = 0.0  # the runner's periodic "still down" line (monotonic)
        self._probe: threading.Thread | None = None
        self._probe_ok = False
        self.error = ""
        self.outages = 0
        self.journalled = 0
        self.replayed = 0
        self.unjournalled = 0  # writes lost because the journal itself could not be written (its disk full too)

    @property
    def degraded(self) -> bool:
        return self.health is not StoreHealth.OK

    def write(self, op: JournalOp, args: dict[str, Any], do: Callable[[], T], default: T) -> T:
        """DO (a store write) now, or journal it as OP/ARGS and return DEFAULT when the store cannot take it."""
        if not self.degraded:
            try:
                return do()
            except Exception as error:
                if not self.absorb(error):
                    raise
        self._journal(op, args)
        return default

    def _journal(self, op: JournalOp, args: dict[str, Any]) -> None:
        try:
            self.journal.append(op, args)
            self.journalled += 1
        except OSError as error:
            self.unjournalled += 1
            self.say(f"store_journal_failed: {op.value} could not be journalled either ({error.strerror}); "
                     f"calls are kept, this write is lost (journal {self.journal.path})")

    def absorb(self, error: BaseException) -> bool:
        """True (now degraded) when ERROR is an outage; False when it must propagate."""
        fault = outage(error)
        if fault is None:
            return False
        if not self.degraded:
            self.outages += 1
            self.since = self.clock()
            self.error = _one_line(error)
            self.say(f"store_{fault.value}: {self.error}: no new dials, live calls kept, writes journalled to "
                     f"{self.journal.path} until it is back")
        self.health = StoreHealth(fault.value)
        return True

    def recover(self) -> bool:
        """Try the store again: True when it took the journal and a write (healthy again).

        The probe runs in a thread of its own (at most every RETRY_S): a database behind a silent link answers
        nothing for seconds, and the loop that keeps the calls routed must not wait for it. Once a probe has
        written, the journal is replayed here, in the loop's thread, in order."""
        if not self.degraded:
            return True
        if self._probe is not None and self._probe.is_alive():
            return False
        ok, self._probe_ok = self._probe_ok, False
        if ok:
            return self.recover_now()
        now = self.clock()
        if now - self.last_try >= RETRY_S:
            self.last_try = now
            self._probe = threading.Thread(target=self._run_probe, name="store-probe", daemon=True)
            self._probe.start()
        return False

    def _run_probe(self) -> None:
        try:
            probe_write(self.engine, self.owner)
        except Exception as error:
            self._probe_ok = False
            if outage(error) is None:
                log.warning("store probe: %s", _one_line(error))
            return
        self._probe_ok = True

    def recover_now(self) -> bool:
        """Replay the journal and prove a write, in this thread; True when healthy (also used at stop)."""
        if not self.degraded:
            return True
        try:
            n = self.replay()
            probe_write(self.engine, self.owner)
        except Exception as error:
            if not self.absorb(error):
                raise
            return False
        took = self.clock() - (self.since or self.clock())
        self.health = StoreHealth.OK
        self.say(f"store_back: after {took:.1f}s; {n} journalled write(s) replayed, dialling resumes")
        return True

    def replay(self) -> int:
        """Apply every journalled record not yet in the store, in order; empty the file. Outage errors propagate."""
        records = self.journal.records()
        n = 0
        for rec in records:
            if apply_once(self.engine, rec.key, rec.op.value, self.journal.path.name, partial(self.apply, rec)):
                n += 1
        self.journal.clear()
        self.replayed += n
        return n

    def status(self) -> dict[str, Any]:
        return {"health": self.health.value, "outages": self.outages, "journalled": self.journalled,
                "replayed": self.replayed, "unjournalled": self.unjournalled, "error": self.error,
                "down_s": round(self.clock() - self.since, 1) if self.degraded and self.since is not None else 0.0}


def describe_outage(error: BaseException) -> str | None:
    """One line for a view that could not read the store (None: not an outage, let it surface)."""
    fault = outage(error)
    return None if fault is None else f"{fault.value}: {_one_line(error)}"


def _one_line(error: BaseException) -> str:
    """The first line of the driver's own message (no SQL, no traceback)."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0][:200] if text else ''}"


__all__ = ["Journal", "JournalOp", "Record", "StoreGuard", "StoreHealth", "apply_record", "describe_outage",
           "journal_path"]
