"""Opening the store: one engine per URL, a schema version, and migrations instead of failures."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel, create_engine, select

from dialer.privacy import tighten_sqlite
from dialer.store import amd as _amd
from dialer.store import holdout as _holdout  # noqa: F401  (registers its tables)
from dialer.store import inbound as _inbound
from dialer.store import journal as _journal  # noqa: F401  (registers its table)
from dialer.store import lift as _lift  # noqa: F401  (registers its tables)
from dialer.store import models
from dialer.store import nodes as _nodes
from dialer.store import sms as _sms  # noqa: F401  (registers its tables)
from dialer.store import users as _users  # noqa: F401  (registers its tables)
from dialer.store.models import Meta

SCHEMA_VERSION = 5
DEFAULT_URL = "sqlite:///tsunagu.db"
ENV_URL = "DIALER_DATABASE_URL"


def _m3_offer_and_mirror_keys(engine: Engine) -> None:
    """Issue 12: entries say which product qualified them; mirror tables get the keys that stop duplicates."""
    insp = inspect(engine)
    with engine.begin() as conn:
        if "qualifying_sku" not in {c["name"] for c in insp.get_columns("call_list_entries")}:
            conn.execute(text("ALTER TABLE call_list_entries ADD COLUMN qualifying_sku VARCHAR NOT NULL DEFAULT ''"))
        # duplicates written by overlapping builds before this version: keep the first of each
        conn.execute(text("DELETE FROM order_lines WHERE id NOT IN (SELECT min(id) FROM order_lines GROUP BY order_id, sku)"))
        conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS uq_order_line_sku ON order_lines (order_id, sku)"))
        conn.execute(text(
            "DELETE FROM blocks WHERE source = 'crm' AND id NOT IN (SELECT min(id) FROM blocks WHERE source = 'crm' "
            "GROUP BY coalesce(phone_e164, ''), coalesce(customer_id, ''), kind, product_scope)"))
        conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS uq_blocks_crm ON blocks "
                          "(coalesce(phone_e164, ''), coalesce(customer_id, ''), kind, product_scope) WHERE source = 'crm'"))


# version -> function that brings a database at (version - 1) up to version. Add entries, never edit them.
MIGRATIONS: dict[int, Callable[[Engine], None]] = {
    2: _amd.migrate_add_amd_columns,  # issue 15: attempts.amd_verdict / amd_decided_s / amd_features
    3: _m3_offer_and_mirror_keys,  # issue 12: entries.qualifying_sku, unique keys on the CRM mirror
    4: _nodes.migrate_add_node_columns,  # issue 18: attempts.node_id / node_epoch, agents.node_id (+ node tables)
    5: _inbound.migrate_add_direction,  # issue 30: attempts.direction / answers_attempt_id (return calls)
}


class StoreError(Exception):
    """A database the dialer cannot use as it is (newer schema, unreachable server)."""


def resolve_url(configured: str | None = None) -> str:
    """Environment beats config beats the default, so ops can point a run elsewhere without editing."""
    return os.environ.get(ENV_URL) or configured or DEFAULT_URL


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the monitor read while the runner writes; busy_timeout turns lock contention into waiting.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    url = resolve_url(url)
    eng = _engines.get(url)
    if eng is not None:
        return eng
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(eng, "connect", _sqlite_pragmas)
        if path and path != ":memory:":
            # personal data (issue 28): the file and its WAL/SHM are the dialer's own, whatever the umask was
            tighten_sqlite(Path(path))
        if path and path != ":memory:" and Path(path).exists() and Path(path).stat().st_size > 0:
            problem = sqlite_problem(eng)  # (issue 25) a damaged file is refused, never read into a report
            if problem is not None:
                eng.dispose()
                raise StoreError(damaged_message(path, problem))
    else:
        eng = create_engine(url, pool_pre_ping=True)
    _engines[url] = eng
    return eng


def sqlite_problem(engine: Engine) -> str | None:
    """SQLite's own `PRAGMA quick_check` of the file (its first complaint), or None when it is sound.

    Only damage is reported: a file that is busy, locked or on a full disk is not damaged (the runner waits and
    journals through those, dialer.journal), so such errors are left to the command that meets them."""
    from sqlalchemy.exc import DatabaseError

    try:
        with engine.connect() as conn:
            rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check").all()]
    except DatabaseError as exc:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
        damaged = ("malformed", "not a database", "encrypted", "corrupt")
        return text if any(w in text.lower() for w in damaged) else None
    return None if rows == ["ok"] else (rows[0] if rows else "quick_check returned nothing")


def damaged_message(path: str, problem: str) -> str:
    """One line: what is wrong and the fix."""
    return (f"database {path} is damaged ({problem[:160]}): stop every dialer process using it, then restore it "
            f"from a backup, or salvage it with `sqlite3 {path} .recover | sqlite3 NEW.db` and point "
            "[database] url at NEW.db")


def _sqlite_file(engine: Engine) -> Path | None:
    db = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    return Path(db) if db and db != ":memory:" else None


def dispose_engines() -> None:
    for eng in _engines.values():
        eng.dispose()
    _engines.clear()


def current_version(engine: Engine) -> int | None:
    if not inspect(engine).has_table("meta"):
        return None
    with Session(engine) as s:
        row = s.get(Meta, "schema_version")
        return int(row.value) if row else None


# the key of the PostgreSQL advisory lock that serialises schema set-up (any fixed 64-bit number of our own)
SCHEMA_LOCK_KEY = 0x7473756E61677501  # "tsunagu" + 1


@contextmanager
def advisory_lock(engine: Engine, key: int, wait_s: float | None = None) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock KEY for the block, on a connection of its own: released at the end
    of the block, or by the server if the process dies. WAIT_S None: wait as long as it takes; otherwise
    TimeoutError when another holder keeps it longer than WAIT_S (raised before the block runs)."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    with engine.connect() as conn:
        if deadline is None:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        else:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"advisory lock {key} held elsewhere for over {wait_s:g} s")
                time.sleep(0.2)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Hold the store's schema lock for the block (PostgreSQL; SQLite needs none).

    Nodes of a site start together and each sets the schema up; PostgreSQL does not serialise concurrent
    `CREATE TABLE` or `CREATE OR REPLACE FUNCTION` of one object (a duplicate pg_type row, "tuple concurrently
    updated"), so without the lock all but one node died at start-up. It waits as long as another node's set-up
    takes (a second or so).
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    with advisory_lock(engine, SCHEMA_LOCK_KEY):
        yield


def init_db(url: str | None = None) -> tuple[Engine, str]:
    """Create or upgrade the schema; idempotent. Returns the engine and what was done."""
    engine = get_engine(url)
    with schema_lock(engine):
        return _init_db(engine)


def _init_db(engine: Engine) -> tuple[Engine, str]:
    _ = models  # every table is registered on SQLModel.metadata by importing models
    version = current_version(engine)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this release supports ({SCHEMA_VERSION}); "
            "upgrade tsunagu instead of running an older one against it"
        )
    if version is not None and version < SCHEMA_VERSION:
        for v in range(version + 1, SCHEMA_VERSION + 1):
            step = MIGRATIONS.get(v)
            if step is None:
                raise StoreError(f"no migration from schema version {v - 1} to {v}")
            step(engine)
    SQLModel.metadata.create_all(engine)
    if engine.dialect.name == "postgresql":
        _nodes.ensure_pg_objects(engine)  # the nodes' command trigger is part of the schema, under the same lock
    db_file = _sqlite_file(engine)
    if db_file is not None:
        tighten_sqlite(db_file)
    with Session(engine) as s:
        existing = s.get(Meta, "schema_version")
        if existing is None:
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
            action = "created"
        elif int(existing.value) != SCHEMA_VERSION:
            existing.value = str(SCHEMA_VERSION)
            s.add(existing)
            action = f"migrated from {version}"
        else:
            action = "already up to date"
        s.commit()
    return engine, action


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except Exception:
            s.rollback()
            raise


def readable_version(url: str, safe_url: str) -> int | None:
    """Open URL and read its schema version; StoreError with one line (the driver's first line) when the
    server is unreachable or the file unreadable. `dialer db check` asks this."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return current_version(get_engine(url))  # a damaged SQLite file is refused in get_engine
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise StoreError(f"database {safe_url} cannot be read ({first[:200]}): check that it is running and "
                         "reachable, then run `dialer db check` again") from None


def table_counts(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for name in SQLModel.metadata.tables:
            out[name] = int(conn.execute(text(f'SELECT COUNT(*) FROM "{name}"')).scalar_one())
    return out


__all__ = [
    "SCHEMA_VERSION",
    "StoreError",
    "dispose_engines",
    "get_engine",
    "init_db",
    "resolve_url",
    "select",
    "session_scope",
    "table_counts",
]
