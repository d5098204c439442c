"""A throwaway PostgreSQL 15 on 127.0.0.1 for tests that must prove something on a real server.

`pg_server` (session scope) runs initdb + postgres in a temporary directory, on a free port in 55400-55499,
with durability switched off (fsync, synchronous_commit: the data is thrown away). Tests run as root and
initdb refuses root, so the server runs as the `postgres` user (or `nobody`) through `runuser`.
`pg_url` (function scope) hands each test a fresh, empty database on it. Skips when the binaries are missing.

Use from a test module:  `from tests.pgserver import pg_server, pg_url  # noqa: F401` (fixtures).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.node.scratch_pg import PG_BIN, PgServer, start_server, stop_server

__all__ = ["PG_BIN", "PgServer", "pg_server", "pg_url", "start_server", "stop_server"]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    pytest.importorskip("psycopg")
    base = Path(tempfile.mkdtemp(prefix="tsunagu-pg-"))
    try:
        server = start_server(base)
        try:
            yield server
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def pg_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    from dialer.store.db import _engines

    eng = _engines.pop(url, None)
    if eng is not None:
        eng.dispose()
