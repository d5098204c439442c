"""The CRM mirror and the list import: where a built list meets the store.

Everything here is SQL against the store (issue 11: all SQL lives in dialer/store/). The rules:
- one build at a time (`build_lock`: a PostgreSQL advisory lock, or an flock beside the SQLite file), so cron,
  the scheduler and an operator never interleave their writes;
- a whole-file mistake is refused before anything is written (`check_build`): too many pending entries
  withdrawn, a mirrored table that had rows and is empty today, a customers file that is mostly rejects;
- entries never disturb a contact being dialled and are never deleted (a pending entry that drops out is
  withdrawn with the reason); CRM blocks are only ever added.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from dialer.domain.vocabulary import EntryStatus
from dialer.store.db import advisory_lock
from dialer.store.models import (
    Block,
    CallListEntry,
    Customer,
    Meta,
    Order,
    OrderLine,
    Product,
    Subscription,
    utcnow,
)
from lists import BlockRow, Suppressions
from lists.build import SEGMENTS, BuildResult
from lists.mapping import SCHEMA
from lists.unpaid import SEGMENT as UNPAID

IN_PROGRESS = ("leased", "dialing")
FINAL = ("done", "exhausted", "blocked")
MIRRORED = ("customers", "products", "orders", "order_lines", "subscriptions")
# the withdraw guard only judges a list big enough for a share to mean something
GUARD_MIN_PENDING = 20


class BuildLocked(Exception):
    """Another list build holds the lock; the message says which store and for how long we waited."""


# --- the build lock ---------------------------------------------------------------------------------------


@contextmanager
def build_lock(engine: Engine, wait_s: float = 60.0) -> Iterator[None]:
    """Hold the store's list-build lock for the block; wait up to `wait_s`, then raise BuildLocked.

    PostgreSQL: a session advisory lock on its own connection (released if the process dies). SQLite: an
    flock on `<database>.lists-build.lock` (released by the kernel if the process dies).
    """
    deadline = time.monotonic() + wait_s
    url = engine.url.render_as_string(hide_password=True)
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(b"tsunagu:lists-build").digest()[:8], "big", signed=True)
        with ExitStack() as held:  # a TimeoutError of the build itself is not the lock's
            try:
                held.enter_context(advisory_lock(engine, key, max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                raise BuildLocked(f"another list build is running on {url} (waited {wait_s:g} s); try later") from None
            yield
        return
    db = engine.url.database or ""
    if db and db != ":memory:":
        path = Path(db + ".lists-build.lock")
    else:
        path = Path(tempfile.gettempdir()) / f"tsunagu-lists-{hashlib.sha256(url.encode()).hexdigest()[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BuildLocked(f"another list build is running on {url} (lock {path}; waited {wait_s:g} s); "
                                      "try later") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- what the dialer knows --------------------------------------------------------------------------------


def _local_date_after(moment: datetime, tz: ZoneInfo) -> date:
    """The first local day wholly after `moment` (a lock until 14:00 frees the next day, not this one)."""
    local = moment.astimezone(tz)
    d = local.date()
    return d if local.time() == datetime.min.time() else d + timedelta(days=1)


def store_suppressions(engine: Engine, tz: ZoneInfo) -> Suppressions:
    """What the dialer learned that the CRM may not know yet: blocks and contacts that ran out of attempts."""
    blocks: list[BlockRow] = []
    with engine.connect() as conn:
        for r in conn.execute(select(Block.__table__)).mappings():  # type: ignore[attr-defined]
            until = r["until"]
            if until is not None and until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
            blocks.append(BlockRow(kind=r["kind"], phone_e164=r["phone_e164"] or "", customer_id=r["customer_id"] or "",
                                   product_scope=r["product_scope"] or "",
                                   until=_local_date_after(until, tz) if until is not None else None,
                                   source=r["source"] or "dialer"))
        t = CallListEntry.__table__  # type: ignore[attr-defined]
        exhausted = [(r[0], r[1]) for r in conn.execute(
            select(t.c.customer_id, t.c.segment).where(t.c.status == EntryStatus.EXHAUSTED.value))]
    return Suppressions(blocks=blocks, exhausted=exhausted)


# --- the whole-file guard ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What a build would change in the store, per segment, before anything is written."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    withdrawn: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    pending_before: int = 0
    withdrawn_holdout: int = 0  # drawn into a hold-out control group: deliberate, not an export mistake
    mirror_before: dict[str, int] = field(default_factory=dict)
    mirror_after: dict[str, int] = field(default_factory=dict)


def plan_build(engine: Engine, result: BuildResult) -> Plan:
    """Counts only (reads the store, writes nothing): the basis of `--dry-run` and of `check_build`."""
    t = CallListEntry.__table__  # type: ignore[attr-defined]
    segs = ", ".join(f"'{x}'" for x in (*SEGMENTS, UNPAID))
    with engine.connect() as conn:
        # the driver's cursor, not SQLAlchemy rows: at 1M customers ~580k (customer, segment, status) a night,
        # and SQLAlchemy's row objects cost about as much as the query itself
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cur.execute(f"SELECT customer_id, segment, status FROM {t.name} WHERE segment IN ({segs})")
        existing = {(r[0], r[1]): r[2] for r in cur.fetchall()}
        cur.close()
        models: tuple[Any, ...] = (Customer, Product, Order, OrderLine, Subscription)
        before = {m.__tablename__: int(conn.execute(select(func.count()).select_from(m.__table__)).scalar() or 0)
                  for m in models}
    plan = Plan(mirror_before=before)
    plan.pending_before = sum(1 for s in existing.values() if s == EntryStatus.PENDING)
    built = result.con.execute("SELECT customer_id, segment FROM entries").fetchall()
    seen: set[tuple[str, str]] = set()
    for cid, seg in built:
        key = (cid, seg)
        seen.add(key)
        old = existing.get(key)
        bucket = plan.inserted if old is None else plan.kept if old in IN_PROGRESS + FINAL else plan.updated
        bucket[seg] = bucket.get(seg, 0) + 1
    held = {(r[0], r[1]) for r in result.con.execute(
        "SELECT customer_id, segment FROM suppressed WHERE reason = 'holdout'").fetchall()}
    for (_cid, seg), status in existing.items():
        if status == EntryStatus.PENDING and (_cid, seg) not in seen:
            plan.withdrawn[seg] = plan.withdrawn.get(seg, 0) + 1
            if (_cid, seg) in held:
                plan.withdrawn_holdout += 1
    for name in MIRRORED:
        row = result.con.execute(f"SELECT count(*) FROM {name}").fetchone()
        plan.mirror_after[name] = int(row[0]) if row else 0
    return plan


def check_build(plan: Plan, result: BuildResult, max_withdraw_share: float) -> list[str]:
    """Reasons to refuse applying this build (empty: apply). `--force` overrides them."""
    why: list[str] = []
    withdrawn = sum(plan.withdrawn.values()) - plan.withdrawn_holdout
    if plan.pending_before >= GUARD_MIN_PENDING and withdrawn > max_withdraw_share * plan.pending_before:
        why.append(f"would withdraw {withdrawn} of {plan.pending_before} pending entries "
                   f"({withdrawn / plan.pending_before:.0%} > max_withdraw_share {max_withdraw_share:.0%})")
    for name in MIRRORED:
        if plan.mirror_before.get(name, 0) > 0 and plan.mirror_after.get(name, 0) == 0:
            why.append(f"{name} is empty in this export but the store has {plan.mirror_before[name]} rows "
                       "from the last build")
    c = result.summary.get("conservation", {})
    read, rejected = int(c.get("customer_rows_read", 0)), int(c.get("customer_rows_rejected", 0))
    if read >= 10 and rejected > 0.5 * read:
        why.append(f"{rejected} of {read} customer rows were rejected: the file looks mostly unreadable "
                   "(wrong encoding or mapping?)")
    return why


def _seen_key(mapping_name: str) -> str:
    return f"lists_compliance_seen:{mapping_name}"


def compliance_seen(engine: Engine, mapping_name: str) -> set[str]:
    """Compliance fields/columns earlier applied builds of this mapping had (lists.compliance keys)."""
    mt = Meta.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        raw = conn.execute(select(mt.c.value).where(mt.c.key == _seen_key(mapping_name))).scalar()
    try:
        return {str(k) for k in json.loads(raw)} if raw else set()
    except ValueError:
        return set()  # unreadable: start over (the next applied build writes it again)


def record_compliance_seen(engine: Engine, mapping_name: str, keys: set[str]) -> None:
    """Remember tonight's compliance columns (called only when the build is applied)."""
    mt = Meta.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(mt.delete().where(mt.c.key == _seen_key(mapping_name)))
        conn.execute(mt.insert().values(key=_seen_key(mapping_name), value=json.dumps(sorted(keys), ensure_ascii=False)))


# --- the CRM mirror ---------------------------------------------------------------------------------------


def _insert(engine: Engine, table: Any) -> Any:
    return (sqlite_insert if engine.dialect.name == "sqlite" else pg_insert)(table)


def _defaults(model: Any, **required: Any) -> dict[str, Any]:
    """Every column's model default, so bulk core inserts stay valid when others add columns."""
    d: dict[str, Any] = model(**required).model_dump()
    if d.get("id") is None:
        d.pop("id", None)
    return d


_REQUIRED: dict[str, dict[str, Any]] = {
    "customers": {"customer_id": ""}, "products": {"sku": ""}, "orders": {"order_id": "", "customer_id": ""},
    "subscriptions": {"subscription_id": "", "customer_id": "", "sku": ""},
}


def _sqlite_value(v: Any) -> Any:
    """What SQLAlchemy would store on SQLite for this Python value (JSON text, naive-UTC datetime text)."""
    if isinstance(v, (str, int, float)) or v is None:
        return v
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, datetime):
        return _sqlite_datetime(v)
    if isinstance(v, date):
        return v.isoformat()
    return v


@functools.lru_cache(maxsize=4096)
def _sqlite_datetime(v: datetime) -> str:
    """Entries share a few window bounds and one `now`: format each once (strftime per cell was seconds)."""
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _duck_literal(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        return f"CAST({v!r} AS DOUBLE)"
    return "'" + str(v).replace("'", "''") + "'"


def _duck_exprs(table: Any, cols: list[str], base: dict[str, Any], pg: bool) -> tuple[list[str], list[str]]:
    """Columns and DuckDB expressions that shape each value as the store's driver takes it (no Python per row)."""
    allcols = list(base) + [c for c in cols if c not in base]
    kinds = SCHEMA[table.name]
    exprs = []
    for c in allcols:
        dflt = base.get(c)
        shaped = _pg_value(dflt) if pg else _sqlite_value(dflt)
        lit_d = "NULL" if dflt is None else _duck_literal(shaped)
        if c not in cols:
            exprs.append(lit_d)
            continue
        k = kinds.get(c, "str")
        e = {"date": f"strftime({c}, '%Y-%m-%d')", "bool": f"CAST({c} AS INTEGER)",
             "list": f"CAST(to_json(coalesce({c}, []::VARCHAR[])) AS VARCHAR)"}.get(k, c)
        if pg and k == "bool":
            e = f"CASE WHEN {c} THEN 't' WHEN NOT {c} THEN 'f' END"
        exprs.append(e if dflt is None else f"coalesce({e}, {lit_d})")
    return allcols, exprs


def _pg_value(v: Any) -> Any:
    """A value as PostgreSQL's COPY text format reads it (aware UTC timestamps, JSON text, t/f)."""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat()
    return _sqlite_value(v)


# SQLite page cache for a bulk load (KiB); key-ordered inserts need little (measured: 1.5M orders in random order
# 18 CPU-s with the default 2 MB, 10.5 s with 64 MB; in key order 7.7 s either way), the index rebuild's sort more
BULK_CACHE_KIB = 64_000


@contextmanager
def _bulk_load(conn: Connection, table: Any) -> Iterator[bool]:
    """Around a bulk write into TABLE inside CONN's transaction; yields whether the table was empty.

    Into an empty table (a first night, or order lines replaced whole) the secondary indexes are dropped and
    built again after the load, in the same transaction: one sort per index instead of millions of random
    B-tree inserts. SQLite and PostgreSQL both roll DDL back, so a crash or an error mid-load leaves the table
    and its indexes as they were. SQLite also gets a bigger page cache for the load (restored after)."""
    raw: Any = conn.connection.driver_connection
    cur = raw.cursor()
    sqlite = conn.dialect.name == "sqlite"
    if sqlite and not raw.in_transaction:
        cur.execute("BEGIN")  # pysqlite begins only before DML: the DROP INDEX must be inside the transaction
    cur.execute(f"SELECT 1 FROM {table.name} LIMIT 1")
    empty = cur.fetchone() is None
    cache = None
    if sqlite:
        cache = int(cur.execute("PRAGMA cache_size").fetchone()[0])
        cur.execute(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
    indexes = sorted(table.indexes, key=lambda i: i.name) if empty else []
    try:
        for idx in indexes:
            idx.drop(bind=conn)
        yield empty
        for idx in indexes:
            idx.create(bind=conn)
    finally:
        if cache is not None:
            cur.execute(f"PRAGMA cache_size = {cache}")


def _pg_json(v: Any) -> Any:
    """JSON columns go through COPY as JSON text (psycopg would send a list as a PostgreSQL array)."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _copy_from_duck(cur: Any, duck: Any, sql: str, target: str, cols: list[str], tmp: Path | None) -> int:
    """PostgreSQL: the rows of DuckDB query SQL into TARGET through COPY, as a CSV DuckDB writes (no Python per
    row; psycopg's write_row per row was most of a first night's mirror). Returns the row count."""
    with tempfile.TemporaryDirectory(prefix="copy_", dir=tmp) as d:
        path = Path(d) / "rows.csv"
        row = duck.execute(f"COPY ({sql}) TO {_duck_literal(str(path))} (HEADER false)").fetchone()
        with cur.copy(f"COPY {target} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp, path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
    return int(row[0]) if row else 0


def _pg_copy_upsert(engine: Engine, table: Any, key: str, cols: list[str], base: dict[str, Any], duck: Any,
                    where: str = "", tmp: Path | None = None) -> int:
    """PostgreSQL bulk path: COPY into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE; into an
    empty table (a first night) COPY straight into it, its secondary indexes built after (_bulk_load)."""
    allcols, exprs = _duck_exprs(table, cols, base, pg=True)
    names = ", ".join(allcols)
    with engine.begin() as conn, _bulk_load(conn, table) as empty:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if empty:
            return _copy_from_duck(cur, duck, f"SELECT {', '.join(exprs)} FROM {table.name} {where} ORDER BY {key}",
                                   table.name, allcols, tmp)
        tmp_table = f"tmp_mirror_{table.name}"
        cur.execute(f"CREATE TEMP TABLE {tmp_table} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        n = _copy_from_duck(cur, duck, f"SELECT {', '.join(exprs)} FROM {table.name} {where}", tmp_table, allcols, tmp)
        cur.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {tmp_table} ON CONFLICT ({key}) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in cols if c != key))
    return n


def _upsert(engine: Engine, model: Any, key: str, cols: list[str], batches: Iterable[list[tuple[Any, ...]]],
            fix: Any = None, duck: Any = None, where: str = "", tmp: Path | None = None) -> int:
    """Upsert a mirrored table; WHERE (DuckDB SQL, bulk paths only) narrows it to some rows."""
    table = model.__table__
    base = _defaults(model, **_REQUIRED[table.name])
    n = 0
    if engine.dialect.name == "postgresql" and duck is not None:
        return _pg_copy_upsert(engine, table, key, cols, base, duck, where, tmp)
    if engine.dialect.name == "sqlite" and duck is not None:
        # bulk path: DuckDB shapes every value the way SQLAlchemy stores it on SQLite, then one executemany
        # on the driver per batch; no Python work per row
        allcols, exprs = _duck_exprs(table, cols, base, pg=False)
        sql = (f"INSERT INTO {table.name} ({', '.join(allcols)}) VALUES ({', '.join('?' for _ in allcols)}) "
               f"ON CONFLICT({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols if c != key))
        with engine.begin() as conn, _bulk_load(conn, table) as empty:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            # into an empty table in key order: the primary key's B-tree grows at its right edge
            dcur = duck.execute(f"SELECT {', '.join(exprs)} FROM {table.name} {where}"
                                + (f" ORDER BY {key}" if empty else ""))
            while rows := dcur.fetchmany(100_000):
                cur.executemany(sql, rows)
                n += len(rows)
        return n
    with engine.begin() as conn:
        for rows in batches:
            dicts = [{**base, **dict(zip(cols, r, strict=True))} for r in rows]
            if fix:
                for d in dicts:
                    fix(d)
            stmt = _insert(engine, table)
            stmt = stmt.on_conflict_do_update(index_elements=[key],
                                              set_={c: getattr(stmt.excluded, c) for c in cols if c != key})
            conn.execute(stmt, dicts)
            n += len(dicts)
    return n


def _blank(*names: str) -> Any:
    def fix(d: dict[str, Any]) -> None:
        for k in names:
            if d.get(k) is None:
                d[k] = ""
    return fix


_LINES_SQL = ("SELECT order_id, sku, CAST(sum(quantity) AS BIGINT), coalesce(max(unit_price), 0.0) "
              "FROM order_lines GROUP BY 1, 2 ORDER BY 1, 2")


def _line_batches(result: BuildResult, batch: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
    """Order lines keyed (order_id, sku): a product on two lines of one order is one mirrored line."""
    cur = result.con.execute(_LINES_SQL)
    while rows := cur.fetchmany(batch):
        yield rows


# what each mirrored table's content depends on (reference checks delete rows that point at nothing)
_MIRROR_DEPS = {
    "customers": ("customers",), "products": ("products",), "orders": ("customers", "orders", "order_dates"),
    "subscriptions": ("customers", "products", "subscriptions"),
    "order_lines": ("customers", "orders", "order_lines", "products"),
}


def _fingerprint(result: BuildResult, table: str, deps: tuple[str, ...] | None = None) -> str:
    """Key of the inputs the mirrored table came from; "" when unknown (then it is always mirrored)."""
    keys = [result.table_keys.get(t, "") for t in (_MIRROR_DEPS[table] if deps is None else deps)]
    if not all(keys):
        return ""
    return hashlib.sha256(json.dumps([table, *keys]).encode()).hexdigest()


def _mirrored_before(engine: Engine) -> dict[str, str]:
    mt = Meta.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {str(k)[len("crm_mirror:"):]: str(v) for k, v in conn.execute(
            select(mt.c.key, mt.c.value).where(mt.c.key.startswith("crm_mirror:")))}


def _mark_mirrored(engine: Engine, table: str, fp: str, **extra: str | None) -> None:
    """Record (or with "" clear) a table's mirrored fingerprint; EXTRA marks go in the same transaction."""
    mt = Meta.__table__  # type: ignore[attr-defined]
    marks: dict[str, str | None] = {table: fp, **{f"{table}#{k}": v for k, v in extra.items()}}
    with engine.begin() as conn:
        for name, value in marks.items():
            conn.execute(mt.delete().where(mt.c.key == f"crm_mirror:{name}"))
            if value:
                conn.execute(mt.insert().values(key=f"crm_mirror:{name}", value=value))


_ORDERS_BASE = ("customers", "orders")  # the export itself, before the date checks


def _orders_to_rewrite(before: dict[str, str], result: BuildResult) -> list[str] | None:
    """Order ids to re-mirror when only the date checks' verdicts moved (the export is byte-identical to the
    last mirrored one): those touched last time or tonight. None: mirror the whole table."""
    base = _fingerprint(result, "orders", _ORDERS_BASE)
    if not base or before.get("orders#base") != base or result.touched_orders is None:
        return None
    try:
        old = json.loads(before.get("orders#touched", "null"))
    except ValueError:
        return None
    if not isinstance(old, list):
        return None
    return sorted({str(x) for x in old} | set(result.touched_orders))


def mirror(engine: Engine, result: BuildResult) -> dict[str, int]:
    """Copy the CRM tables into the store so screen pops can show history (upserts; blocks are only added).

    A table whose inputs are byte-identical to the last mirrored build (same table-cache keys) is skipped:
    re-writing millions of unchanged rows was most of a warm night.
    """
    now = utcnow()
    counts: dict[str, int] = {}
    before = _mirrored_before(engine)
    fps = {t: _fingerprint(result, t) for t in _MIRROR_DEPS}
    same = {t for t, fp in fps.items() if fp and before.get(t) == fp}
    some_orders = None if "orders" in same else _orders_to_rewrite(before, result)
    for t in _MIRROR_DEPS:
        if t not in same:
            # a crash mid-mirror must not leave a stale "unchanged" mark; a partial orders mirror keeps the
            # export's mark (a crash in it is repaired by the same partial mirror tomorrow)
            clear: dict[str, str | None] = {"base": None, "touched": None} if t == "orders" and some_orders is None else {}
            _mark_mirrored(engine, t, "", **clear)

    def cust_fix(d: dict[str, Any]) -> None:
        _blank("name", "name_kana", "phone", "phone2", "email", "prefecture")(d)
        for k, dflt in (("tel_ok", True), ("withdrawn", False), ("caution", False)):
            if d[k] is None:
                d[k] = dflt
        d["updated_at"] = now

    cols = ["customer_id", "name", "name_kana", "phone", "phone2", "email", "prefecture", "created_at", "tel_ok",
            "withdrawn", "caution"]
    counts["customers"] = 0 if "customers" in same else _upsert(
        engine, Customer, "customer_id", cols, result.table_rows("customers"), cust_fix, duck=result.con, tmp=result.out_dir)

    def prod_fix(d: dict[str, Any]) -> None:
        _blank("name", "upgrade_sku")(d)
        d["related_skus"] = list(d["related_skus"] or [])
        d["is_trial"] = bool(d["is_trial"])
        d["price"] = d["price"] or 0.0
        d["unit_cost"] = d["unit_cost"] or 0.0

    cols = ["sku", "name", "days_per_unit", "is_trial", "upgrade_sku", "related_skus", "price", "unit_cost"]
    counts["products"] = 0 if "products" in same else _upsert(
        engine, Product, "sku", cols, result.table_rows("products"), prod_fix, duck=result.con, tmp=result.out_dir)

    def order_fix(d: dict[str, Any]) -> None:
        _blank("channel", "subscription_id")(d)
        d["total"] = d["total"] or 0.0

    cols = ["order_id", "customer_id", "ordered_at", "shipped_at", "status", "channel", "subscription_id",
            "cycle_no", "total"]
    where = ""
    if some_orders is not None:  # only the orders whose date verdicts moved (see _orders_to_rewrite)
        result.con.execute("CREATE OR REPLACE TEMP TABLE mirror_order_ids (order_id VARCHAR)")
        if some_orders:
            result.con.executemany("INSERT INTO mirror_order_ids VALUES (?)", [[x] for x in some_orders])
        where = "WHERE order_id IN (SELECT order_id FROM mirror_order_ids)"
    counts["orders"] = 0 if "orders" in same else _upsert(
        engine, Order, "order_id", cols, result.table_rows("orders"), order_fix, duck=result.con, where=where, tmp=result.out_dir)
    cols = ["subscription_id", "customer_id", "sku", "quantity", "status", "started_at", "interval_days",
            "next_ship_date", "change_deadline", "shipments_count", "cancelled_at", "cancel_reason"]
    counts["subscriptions"] = 0 if "subscriptions" in same else _upsert(
        engine, Subscription, "subscription_id", cols, result.table_rows("subscriptions"), _blank("cancel_reason"),
        duck=result.con, tmp=result.out_dir)
    lt = OrderLine.__table__  # type: ignore[attr-defined]
    n = 0
    if "order_lines" not in same:
        with engine.begin() as conn:
            # lines have no key of their own in the exports: the mirror of the exported orders' lines is replaced
            # as a whole, (order_id, sku) unique; written in key order into the emptied table (_bulk_load)
            conn.execute(lt.delete())
            with _bulk_load(conn, lt):
                cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                if engine.dialect.name == "sqlite":
                    for rows in _line_batches(result):
                        cur.executemany("INSERT INTO order_lines (order_id, sku, quantity, unit_price) "
                                        "VALUES (?, ?, ?, ?)", rows)
                        n += len(rows)
                else:
                    n = _copy_from_duck(cur, result.con, _LINES_SQL, "order_lines",
                                        ["order_id", "sku", "quantity", "unit_price"], result.out_dir)
    counts["order_lines"] = n
    for t, fp in fps.items():
        if t not in same and fp:
            extra: dict[str, str | None] = {}
            if t == "orders":
                extra = {"base": _fingerprint(result, "orders", _ORDERS_BASE),
                         "touched": None if result.touched_orders is None else json.dumps(result.touched_orders)}
            _mark_mirrored(engine, t, fp, **extra)
    bt = Block.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        have = {(r[0] or "", r[1] or "", r[2], r[3] or "") for r in conn.execute(
            select(bt.c.phone_e164, bt.c.customer_id, bt.c.kind, bt.c.product_scope).where(bt.c.source == "crm"))}
        new = []
        for rows in result.table_rows("blocks"):
            for e164, cid, kind, scope, since in rows:
                k = (e164 or "", cid or "", kind, scope or "")
                if k in have or (not e164 and not cid):
                    continue
                have.add(k)
                new.append({"phone_e164": e164 or None, "customer_id": cid or None, "kind": kind,
                            "product_scope": scope or "",
                            "since": datetime(since.year, since.month, since.day, tzinfo=UTC) if since else now,
                            "until": None, "source": "crm", "reason": "CRM export"})
        if new:
            # the unique index on CRM blocks makes a block added by a concurrent build a no-op, not a duplicate
            conn.execute(_insert(engine, bt).on_conflict_do_nothing(), new)
    counts["blocks_added"] = len(new)
    return counts


# --- entries ----------------------------------------------------------------------------------------------


# the columns a build writes on an entry it lists (insert and update alike); the rest keep their defaults
# or the dialer's own values (attempts, leases, callbacks)
_ENTRY_VALUES = ("sub_segment", "sku", "qualifying_sku", "reason", "phones", "priority", "callable_from",
                 "callable_until", "timezone", "build_date")


def _stage_entries(result: BuildResult, tz: ZoneInfo, build_date: date, pg: bool) -> str:
    """The built entries as the store takes them, shaped in DuckDB (table `stage_entries`): no Python per row.

    Window bounds are whole local days converted to UTC; a night has a few dozen distinct dates, converted
    here in Python (zoneinfo) and joined. Columns: ord (the old insertion order: priority, customer, segment),
    customer_id, segment, then _ENTRY_VALUES. Returns the SELECT list's table name."""
    con = result.con
    dates = sorted({r[0] for r in con.execute(
        "SELECT DISTINCT cfrom FROM entries UNION SELECT DISTINCT cuntil FROM entries").fetchall() if r[0] is not None})
    fmt = _pg_value if pg else _sqlite_value
    con.execute("CREATE OR REPLACE TEMP TABLE entry_days (d DATE, day_start VARCHAR, day_end VARCHAR)")
    if dates:
        con.executemany("INSERT INTO entry_days VALUES (?, ?, ?)", [
            [d, fmt(datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)),
             fmt(datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=tz).astimezone(UTC))] for d in dates])
    # JSON text as json.dumps writes a list of plain strings (what SQLAlchemy's JSON type stores)
    phones = "'[' || array_to_string(list_transform(coalesce(e.phones, []::VARCHAR[]), lambda x: '\"' || x || '\"'), ', ') || ']'"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE stage_entries AS
        SELECT row_number() OVER (ORDER BY e.priority DESC, e.customer_id, e.segment) AS ord,
               e.customer_id, e.segment, e.sub_segment, e.offer_sku AS sku, e.qualifying_sku, e.reason,
               {phones} AS phones, CAST(e.priority AS DOUBLE) AS priority, f.day_start AS callable_from,
               u.day_end AS callable_until, {_duck_literal(str(tz))} AS timezone,
               {_duck_literal(build_date.isoformat())} AS build_date
          FROM entries e LEFT JOIN entry_days f ON f.d = e.cfrom LEFT JOIN entry_days u ON u.d = e.cuntil""")
    return "stage_entries"


def _entry_statements(pg: bool, now: Any, build_date: date, defaults: dict[str, Any], types: dict[str, str]
                      ) -> tuple[tuple[str, str], list[Any], str, list[Any], str, list[Any], str, str]:
    """((update SQLs), params, insert SQL, params, withdraw SQL, params, counts SQL, match SQL) over
    tmp_entries/tmp_supp.

    The match runs first and writes into each built entry the id of the stored entry with its key (`eid`,
    NULL for a new one): the count and the updates then reach the stored row by its id and the insert takes
    the rows with no id, instead of each looking the ~530k keys up again in the store's index.

    Two updates: the pending entries (nearly all of them: every night moves their window and build date) get
    a SET list without `status`, the others (withdrawn, or pending again after a reset) one with it. SQLite
    rewrites every index on a column named in SET, changed or not: with `status = 'pending'` in it, each of the
    ~530k rows a night rewrites moved two index entries (status; status, next_attempt_at) for nothing —
    at 1M customers the update took 3.2 CPU-s (4.4 s wall) with it, 2.0 (2.5) without."""
    ph = "%s" if pg else "?"
    segs = ", ".join(f"'{x}'" for x in (*SEGMENTS, UNPAID))
    keep = ", ".join(f"'{x}'" for x in (*IN_PROGRESS, *FINAL))
    # phones is JSON on PostgreSQL (no equality operator): compared as text, as written
    old = [f"e.{c}::text" if pg and c == "phones" else f"e.{c}" for c in _ENTRY_VALUES]
    new = [f"t.{c}::text" if pg and c == "phones" else f"t.{c}" for c in _ENTRY_VALUES]
    if pg:
        differs = f"(({', '.join(old)}, e.status, e.status_reason) IS DISTINCT FROM ({', '.join(new)}, 'pending', ''))"
    else:
        differs = "(" + " OR ".join(f"{o} IS NOT {n}" for o, n in zip(old, new, strict=True)) + \
            " OR e.status IS NOT 'pending' OR e.status_reason IS NOT '')"
    sets = ", ".join(f"{c} = t.{c}" for c in _ENTRY_VALUES)
    where = (f"FROM tmp_entries t WHERE e.id = t.eid "
             f"AND e.segment IN ({segs}) AND e.status NOT IN ({keep}) AND {differs}")
    update = (f"UPDATE call_list_entries AS e SET {sets}, status_reason = '', updated_at = {ph} "
              f"{where} AND e.status = 'pending'",
              f"UPDATE call_list_entries AS e SET {sets}, status = 'pending', status_reason = '', updated_at = {ph} "
              f"{where} AND e.status <> 'pending'")
    fixed = {k: v for k, v in defaults.items() if k not in ("customer_id", "segment", *_ENTRY_VALUES)}
    fixed.update(status="pending", status_reason="", created_at=now, updated_at=now)
    shape = _pg_value if pg else _sqlite_value
    cols = ["customer_id", "segment", *_ENTRY_VALUES, *fixed]
    exprs = [f"t.{c}" for c in ("customer_id", "segment", *_ENTRY_VALUES)] + [
        (f"CAST({ph} AS {types[c]})" if pg else ph) for c in fixed]
    insert = (f"INSERT INTO call_list_entries ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM tmp_entries t "
              f"WHERE t.eid IS NULL ORDER BY t.ord")
    withdraw = (f"UPDATE call_list_entries AS e SET status = 'withdrawn', updated_at = {ph}, status_reason = "
                f"coalesce('suppressed: ' || (SELECT min(s.reason) FROM tmp_supp s WHERE s.customer_id = e.customer_id "
                f"AND s.segment = e.segment), {ph}) "
                f"WHERE e.status = 'pending' AND e.segment IN ({segs}) AND NOT EXISTS (SELECT 1 FROM tmp_entries t "
                f"WHERE t.customer_id = e.customer_id AND t.segment = e.segment)")
    counts = (f"SELECT CASE WHEN e.status IN ({', '.join(repr(x) for x in IN_PROGRESS)}) THEN 'kept_in_progress' "
              f"WHEN e.status IN ({', '.join(repr(x) for x in FINAL)}) THEN 'kept_final' ELSE 'matched' END, count(*) "
              f"FROM tmp_entries t JOIN call_list_entries e ON e.id = t.eid GROUP BY 1")
    match = ("UPDATE tmp_entries AS t SET eid = e.id FROM call_list_entries e "
             "WHERE e.customer_id = t.customer_id AND e.segment = t.segment")
    return (update, [_pg_value(now) if pg else _sqlite_value(now)], insert, [shape(v) for v in fixed.values()],
            withdraw, [shape(now), f"no longer eligible ({build_date})"], counts, match)


ENTRY_FILLFACTOR = 50


def _pg_room_for_updates(cur: Any, table: str) -> None:
    """PostgreSQL: leave half of each page of the entries free (fillfactor), once.

    Every night rewrites nearly every pending entry (its window and build date move), and none of the columns
    a build writes is indexed: with room on the row's own page PostgreSQL updates it in place of the index
    (a HOT update), instead of a new entry in each of the table's seven indexes for every row. Pages already
    full get the room as they are rewritten."""
    cur.execute("SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE oid = %s::regclass", (table,))
    row = cur.fetchone()
    if row is not None and f"fillfactor={ENTRY_FILLFACTOR}" not in str(row[0]):
        cur.execute(f"ALTER TABLE {table} SET (fillfactor = {ENTRY_FILLFACTOR})")


def upsert_entries(engine: Engine, result: BuildResult, tz: ZoneInfo, build_date: date) -> dict[str, int]:
    """Built entries -> call_list_entries. Idempotent for a day; see the module docstring for the rules.

    Set-based and in one transaction: the built entries (and the suppressed ones) are bulk-loaded into
    temporary tables in the store (SQLite: executemany from DuckDB's cursor; PostgreSQL: COPY of a CSV DuckDB
    wrote), then four statements do the work in the database: count, update what changed (an entry whose
    values, status and reason are what tonight's build would write is left alone, `updated_at` included),
    insert the new ones in priority order, withdraw the pending ones no longer listed. The store ends exactly
    as a cold build into it would leave it (tests/test_lists_store.py). At 1M customers this was ~540k
    Python-built rows per night, written one by one whether they changed or not.
    """
    t = CallListEntry.__table__  # type: ignore[attr-defined]
    now = utcnow()
    pg = engine.dialect.name == "postgresql"
    _stage_entries(result, tz, build_date, pg)
    defaults = _defaults(CallListEntry, customer_id="", segment="")
    types = {c.name: c.type.compile(dialect=engine.dialect) for c in t.columns}
    update, up_p, insert, in_p, withdraw, wd_p, count_sql, match = _entry_statements(pg, now, build_date, defaults,
                                                                                     types)
    stage_cols = ["ord", "customer_id", "segment", *_ENTRY_VALUES]
    counts = dict.fromkeys(("inserted", "updated", "unchanged", "kept_in_progress", "kept_final", "withdrawn"), 0)
    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if pg:
            _pg_room_for_updates(cur, t.name)
            cur.execute("DROP TABLE IF EXISTS tmp_entries")
            cur.execute("DROP TABLE IF EXISTS tmp_supp")
            cur.execute(f"CREATE TEMP TABLE tmp_entries ON COMMIT DROP AS SELECT 0::bigint AS ord, customer_id, "
                        f"segment, {', '.join(_ENTRY_VALUES)}, id AS eid FROM call_list_entries WITH NO DATA")
            cur.execute("CREATE TEMP TABLE tmp_supp (customer_id text, segment text, reason text) ON COMMIT DROP")
            with tempfile.TemporaryDirectory(prefix="entries_", dir=result.out_dir) as d:
                for table, sql in (("tmp_entries", f"SELECT {', '.join(stage_cols)} FROM stage_entries"),
                                   ("tmp_supp", "SELECT customer_id, segment, reason FROM suppressed")):
                    path = Path(d) / f"{table}.csv"
                    result.con.execute(f"COPY ({sql}) TO {_duck_literal(str(path))} (HEADER false)")
                    cols = stage_cols if table == "tmp_entries" else ["customer_id", "segment", "reason"]
                    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp, \
                            path.open("rb") as fh:
                        while chunk := fh.read(1 << 20):
                            cp.write(chunk)
            cur.execute("CREATE INDEX ON tmp_entries (customer_id, segment)")
            cur.execute("CREATE INDEX ON tmp_supp (customer_id, segment)")
            cur.execute("ANALYZE tmp_entries")
        else:
            cur.execute("DROP TABLE IF EXISTS temp.tmp_entries")
            cur.execute("DROP TABLE IF EXISTS temp.tmp_supp")
            cur.execute(f"CREATE TEMP TABLE tmp_entries ({', '.join(stage_cols)}, eid INTEGER)")
            cur.execute("CREATE TEMP TABLE tmp_supp (customer_id, segment, reason)")
            for table, sql, n in (("tmp_entries", f"SELECT {', '.join(stage_cols)} FROM stage_entries", len(stage_cols)),
                                  ("tmp_supp", "SELECT customer_id, segment, reason FROM suppressed", 3)):
                dcur = result.con.execute(sql)
                ins = f"INSERT INTO {table} VALUES ({', '.join('?' for _ in range(n))}{', NULL' * (table == 'tmp_entries')})"
                while rows := dcur.fetchmany(100_000):
                    cur.executemany(ins, rows)
            cur.execute("CREATE UNIQUE INDEX temp.tmp_entries_key ON tmp_entries (customer_id, segment)")
            cur.execute("CREATE INDEX temp.tmp_supp_key ON tmp_supp (customer_id, segment)")
        with _bulk_load(conn, t):  # a first night: indexes built after the insert; a bigger SQLite cache
            cur.execute(match)
            cur.execute(count_sql)
            for kind, n in cur.fetchall():
                counts[kind] = counts.get(kind, 0) + int(n)
            matched = counts.pop("matched", 0)
            counts["updated"] = 0
            for sql in update:  # the pending ones, then the others (made pending: the first cannot see them)
                cur.execute(sql, up_p)
                counts["updated"] += max(int(cur.rowcount or 0), 0)
            counts["unchanged"] = matched - counts["updated"]
            cur.execute(insert, in_p)
            counts["inserted"] = max(int(cur.rowcount or 0), 0)
            cur.execute(withdraw, wd_p)
            counts["withdrawn"] = max(int(cur.rowcount or 0), 0)
        if not pg:
            cur.execute("DROP TABLE temp.tmp_entries")
            cur.execute("DROP TABLE temp.tmp_supp")
    result.con.execute("DROP TABLE IF EXISTS stage_entries")
    return counts
