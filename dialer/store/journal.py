"""The store's side of the outage journal (dialer.journal): which errors are an outage, and applying a journalled
record exactly once.

A record is applied inside ONE transaction together with the row that remembers its key (`journal_applied`):
either both commit or neither does, so a replay interrupted anywhere (crash, the store failing again) is simply
run again and skips what already went in. The repository functions the runner uses take an `Engine`; a
`Connection` already inside a transaction is passed in its place, and their `Session`s join that transaction
(SQLAlchemy's default `join_transaction_mode`: a session's commit does not commit the outer transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, exc, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from dialer.store.models import utcnow


class JournalApplied(SQLModel, table=True):
    """Keys of journal records already applied (a record's key is written with its effect, in one transaction)."""

    __tablename__ = "journal_applied"
    key: str = Field(primary_key=True)
    op: str = ""
    source: str = ""  # the journal file the record came from
    result: str = ""  # "" applied; otherwise why it could not be applied (kept, never retried)
    applied_at: datetime = Field(default_factory=utcnow)


class StoreFault(StrEnum):
    """Why the store cannot take a write right now (a damaged file is not an outage: it is refused at start)."""

    UNREACHABLE = "unreachable"  # server down, connection refused or cut, locked beyond the busy timeout
    FULL = "full"  # the disk (or the file-size limit) is full


_FULL_WORDS = ("database or disk is full", "disk i/o error", "no space left", "file too large",
               "could not extend file", "could not write")
_DAMAGE_WORDS = ("malformed", "not a database", "file is encrypted")


# the error classes a store call may raise whose meaning `outage` decides (callers outside the store catch these,
# never a driver's class by name)
DB_ERRORS: tuple[type[BaseException], ...] = (exc.DBAPIError, exc.PendingRollbackError, sqlite3.OperationalError)


def outage(error: BaseException) -> StoreFault | None:
    """The fault when ERROR says the store is down or full (wait and journal), None for anything else (a bug, a
    constraint, a damaged file: those must surface)."""
    text = str(error).lower()
    if any(w in text for w in _DAMAGE_WORDS):
        return None
    if isinstance(error, exc.DBAPIError) and not isinstance(error, exc.OperationalError | exc.InterfaceError):
        return StoreFault.UNREACHABLE if error.connection_invalidated else None
    if not isinstance(error, exc.OperationalError | exc.InterfaceError | sqlite3.OperationalError
                      | exc.PendingRollbackError):
        return None
    return StoreFault.FULL if any(w in text for w in _FULL_WORDS) else StoreFault.UNREACHABLE


def apply_once(engine: Engine, key: str, op: str, source: str, apply: Callable[[Connection], None]) -> bool:
    """Run APPLY and remember KEY in one transaction; False (nothing done) when KEY was applied before.

    An outage error propagates (the record stays in the journal for the next try). Any other error rolls the
    record back and is remembered under its key with the reason, so one bad record cannot stall the rest."""
    t = JournalApplied.__table__  # type: ignore[attr-defined]
    try:
        with engine.begin() as conn:
            if conn.execute(select(t.c.key).where(t.c.key == key)).first() is not None:
                return False
            conn.execute(insert(t).values(key=key, op=op, source=source, result="", applied_at=utcnow()))
            apply(conn)
        return True
    except exc.IntegrityError as error:
        if outage(error) is not None:
            raise
        if _applied(engine, key):
            return False  # another replayer got there first
        _remember_failure(engine, key, op, source, error)
        return True
    except Exception as error:
        if outage(error) is not None:
            raise
        _remember_failure(engine, key, op, source, error)
        return True


def _applied(engine: Engine, key: str) -> bool:
    t = JournalApplied.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return conn.execute(select(t.c.key).where(t.c.key == key)).first() is not None


def _remember_failure(engine: Engine, key: str, op: str, source: str, error: BaseException) -> None:
    t = JournalApplied.__table__  # type: ignore[attr-defined]
    why = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
    with engine.begin() as conn:
        if conn.execute(select(t.c.key).where(t.c.key == key)).first() is None:
            conn.execute(insert(t).values(key=key, op=op, source=source, result=why, applied_at=utcnow()))


def failures(engine: Engine, source: str | None = None) -> list[tuple[str, str, str]]:
    """(key, op, why) of records that could not be applied (for the log and tests)."""
    t = JournalApplied.__table__  # type: ignore[attr-defined]
    q = select(t.c.key, t.c.op, t.c.result).where(t.c.result != "")
    if source is not None:
        q = q.where(t.c.source == source)
    with engine.connect() as conn:
        return [(str(k), str(o), str(r)) for k, o, r in conn.execute(q).all()]


def probe_write(engine: Engine, owner: str) -> None:
    """A real write (a row replaced in one commit): raises while the store cannot take writes (down or full)."""
    t = JournalApplied.__table__  # type: ignore[attr-defined]
    key = f"probe:{owner}"
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.key == key))
        conn.execute(insert(t).values(key=key, op="probe", source=owner, result="", applied_at=utcnow()))


__all__ = ["JournalApplied", "StoreFault", "apply_once", "failures", "outage", "probe_write"]
