"""A first night's bulk load into empty tables (dialer.store.crm._bulk_load, issue 26): the secondary indexes are
dropped and built again after the load inside the same transaction, so a failure mid-load leaves the table and
every index as before, and a finished load leaves exactly the indexes the models declare."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from dialer.store.crm import _bulk_load
from dialer.store.db import init_db
from dialer.store.models import CallListEntry, Order, OrderLine
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

ORDERS: Any = Order.__table__  # type: ignore[attr-defined]


def _indexes(engine: Any, table: str) -> set[str]:
    return {str(i["name"]) for i in inspect(engine).get_indexes(table)}


def _check(url: str) -> None:
    engine, _ = init_db(url)
    models: tuple[Any, ...] = (Order, OrderLine, CallListEntry)
    declared = {m.__tablename__: {str(i.name) for i in m.__table__.indexes} for m in models}
    before = {t: _indexes(engine, t) for t in declared}
    assert all(declared[t] <= before[t] for t in declared)
    # an error mid-load: rolled back, DDL included
    with pytest.raises(RuntimeError), engine.begin() as conn, _bulk_load(conn, ORDERS) as empty:
        assert empty
        assert _indexes_in(conn, "orders") < before["orders"]  # really dropped inside the transaction
        conn.execute(ORDERS.insert(), [{"order_id": "O1", "customer_id": "C1"}])
        raise RuntimeError("crash mid-load")
    assert _indexes(engine, "orders") == before["orders"]
    with engine.connect() as c:
        assert c.execute(ORDERS.select()).first() is None
    # a finished load: rows in, every declared index back
    with engine.begin() as conn, _bulk_load(conn, ORDERS) as empty:
        assert empty
        conn.execute(ORDERS.insert(), [{"order_id": f"O{i}", "customer_id": f"C{i % 7}"} for i in range(50)])
    assert _indexes(engine, "orders") == before["orders"]
    # a table with rows is left alone (its indexes stay while rows are upserted)
    with engine.begin() as conn, _bulk_load(conn, ORDERS) as empty:
        assert not empty
        assert _indexes_in(conn, "orders") == before["orders"]
    engine.dispose()


def _indexes_in(conn: Any, table: str) -> set[str]:
    return {str(i["name"]) for i in inspect(conn).get_indexes(table)}


def test_bulk_load_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'bulk.db'}")


def test_bulk_load_postgresql(pg_server: Any) -> None:  # noqa: F811
    _check(pg_server.create_database())
