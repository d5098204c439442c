"""Nodes started together on one fresh PostgreSQL database each set the schema up; none may fail for it.

A site starts its nodes at once (systemd, a deploy script). Each `dialer node run` creates or upgrades the schema
and the NOTIFY trigger; PostgreSQL does not serialise concurrent `CREATE TABLE` or `CREATE OR REPLACE FUNCTION`
on the same object ("tuple concurrently updated", a duplicate pg_type row), so without a lock one of the nodes
died with a traceback at start-up (seen on CI: one node of two never dialled). Real processes, real server.
"""

from __future__ import annotations

import multiprocessing as mp

import pytest
from sqlalchemy import create_engine, text

from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow]


def _set_up(url: str, go: mp.synchronize.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from dialer.store.db import init_db

    go.wait(30)
    try:
        init_db(url)  # what `dialer node run` does first: the schema, then the command trigger
        out.put("")
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        out.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("fresh", [True, False, True, False])
def test_nodes_starting_together_all_set_the_schema_up(pg_url: str, fresh: bool) -> None:  # noqa: F811
    """Four processes at once, on a fresh database (tables raced) and on one whose tables exist (the trigger)."""
    if not fresh:
        from dialer.store.db import dispose_engines, init_db

        init_db(pg_url)
        older = create_engine(pg_url)
        with older.begin() as conn:  # as an older release left it: tables, no trigger
            conn.execute(text("DROP TRIGGER tsunagu_command_notify ON control_commands"))
        older.dispose()
        dispose_engines()
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out: mp.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_set_up, args=(pg_url, go, out)) for _ in range(4)]
    try:
        for p in procs:
            p.start()
        go.set()
        errors = [out.get(timeout=120) for _ in procs]
    finally:  # a failing run stops the processes it started
        for p in (p for p in procs if p.pid is not None):
            p.join(30)
            if p.is_alive():
                p.kill()
    assert errors == [""] * len(procs), errors
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one()
            assert conn.execute(text("SELECT count(*) FROM pg_trigger WHERE tgname = 'tsunagu_command_notify'")
                                ).scalar_one() == 1
    finally:
        engine.dispose()
