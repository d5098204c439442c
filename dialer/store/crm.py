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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

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
        conn = engine.connect()
        try:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise BuildLocked(f"another list build is running on {url} (waited {wait_s:g} s); try later")
                time.sleep(0.2)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        finally:
            conn.close()
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
            select(t.c.customer_id, t.c.segment).where(t.c.status == "exhausted"))]
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
    with engine.connect() as conn:
        existing = {(r[0], r[1]): r[2] for r in conn.execute(
            select(t.c.customer_id, t.c.segment, t.c.status).where(t.c.segment.in_((*SEGMENTS, UNPAID))))}
        models: tuple[Any, ...] = (Customer, Product, Order, OrderLine, Subscription)
        before = {m.__tablename__: int(conn.execute(select(func.count()).select_from(m.__table__)).scalar() or 0)
                  for m in models}
    plan = Plan(mirror_before=before)
    plan.pending_before = sum(1 for s in existing.values() if s == "pending")
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
        if status == "pending" and (_cid, seg) not in seen:
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


def _pg_json(v: Any) -> Any:
    """JSON columns go through COPY as JSON text (psycopg would send a list as a PostgreSQL array)."""
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def _pg_copy_upsert(engine: Engine, table: Any, key: str, cols: list[str], base: dict[str, Any], duck: Any) -> int:
    """PostgreSQL bulk path: COPY into a temporary table, then one INSERT ... ON CONFLICT DO UPDATE."""
    allcols, exprs = _duck_exprs(table, cols, base, pg=True)
    names = ", ".join(allcols)
    n = 0
    dcur = duck.execute(f"SELECT {', '.join(exprs)} FROM {table.name}")
    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        tmp = f"tmp_mirror_{table.name}"
        cur.execute(f"CREATE TEMP TABLE {tmp} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        with cur.copy(f"COPY {tmp} ({names}) FROM STDIN") as cp:
            while rows := dcur.fetchmany(100_000):
                for r in rows:
                    cp.write_row(r)
                n += len(rows)
        cur.execute(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {tmp} ON CONFLICT ({key}) DO UPDATE SET "
                    + ", ".join(f"{c} = excluded.{c}" for c in cols if c != key))
    return n


def _upsert(engine: Engine, model: Any, key: str, cols: list[str], batches: Iterable[list[tuple[Any, ...]]],
            fix: Any = None, duck: Any = None) -> int:
    table = model.__table__
    base = _defaults(model, **_REQUIRED[table.name])
    n = 0
    if engine.dialect.name == "postgresql" and duck is not None:
        return _pg_copy_upsert(engine, table, key, cols, base, duck)
    if engine.dialect.name == "sqlite" and duck is not None:
        # bulk path: DuckDB shapes every value the way SQLAlchemy stores it on SQLite, then one executemany
        # on the driver per batch; no Python work per row
        allcols, exprs = _duck_exprs(table, cols, base, pg=False)
        sql = (f"INSERT INTO {table.name} ({', '.join(allcols)}) VALUES ({', '.join('?' for _ in allcols)}) "
               f"ON CONFLICT({key}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in cols if c != key))
        dcur = duck.execute(f"SELECT {', '.join(exprs)} FROM {table.name}")
        with engine.begin() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
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


def _line_batches(result: BuildResult, batch: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
    """Order lines keyed (order_id, sku): a product on two lines of one order is one mirrored line."""
    cur = result.con.execute("SELECT order_id, sku, CAST(sum(quantity) AS BIGINT), coalesce(max(unit_price), 0.0) "
                             "FROM order_lines GROUP BY 1, 2")
    while rows := cur.fetchmany(batch):
        yield rows


# what each mirrored table's content depends on (reference checks delete rows that point at nothing)
_MIRROR_DEPS = {
    "customers": ("customers",), "products": ("products",), "orders": ("customers", "orders"),
    "subscriptions": ("customers", "products", "subscriptions"),
    "order_lines": ("customers", "orders", "order_lines", "products"),
}


def _fingerprint(result: BuildResult, table: str) -> str:
    """Key of the inputs the mirrored table came from; "" when unknown (then it is always mirrored)."""
    keys = [result.table_keys.get(t, "") for t in _MIRROR_DEPS[table]]
    if not all(keys):
        return ""
    return hashlib.sha256(json.dumps([table, *keys]).encode()).hexdigest()


def _mirrored_before(engine: Engine) -> dict[str, str]:
    mt = Meta.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {str(k)[len("crm_mirror:"):]: str(v) for k, v in conn.execute(
            select(mt.c.key, mt.c.value).where(mt.c.key.startswith("crm_mirror:")))}


def _mark_mirrored(engine: Engine, table: str, fp: str) -> None:
    mt = Meta.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(mt.delete().where(mt.c.key == f"crm_mirror:{table}"))
        if fp:
            conn.execute(mt.insert().values(key=f"crm_mirror:{table}", value=fp))


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
    for t in _MIRROR_DEPS:
        if t not in same:
            _mark_mirrored(engine, t, "")  # a crash mid-mirror must not leave a stale "unchanged" mark

    def cust_fix(d: dict[str, Any]) -> None:
        _blank("name", "name_kana", "phone", "phone2", "email", "prefecture")(d)
        for k, dflt in (("tel_ok", True), ("withdrawn", False), ("caution", False)):
            if d[k] is None:
                d[k] = dflt
        d["updated_at"] = now

    cols = ["customer_id", "name", "name_kana", "phone", "phone2", "email", "prefecture", "created_at", "tel_ok",
            "withdrawn", "caution"]
    counts["customers"] = 0 if "customers" in same else _upsert(
        engine, Customer, "customer_id", cols, result.table_rows("customers"), cust_fix, duck=result.con)

    def prod_fix(d: dict[str, Any]) -> None:
        _blank("name", "upgrade_sku")(d)
        d["related_skus"] = list(d["related_skus"] or [])
        d["is_trial"] = bool(d["is_trial"])
        d["price"] = d["price"] or 0.0
        d["unit_cost"] = d["unit_cost"] or 0.0

    cols = ["sku", "name", "days_per_unit", "is_trial", "upgrade_sku", "related_skus", "price", "unit_cost"]
    counts["products"] = 0 if "products" in same else _upsert(
        engine, Product, "sku", cols, result.table_rows("products"), prod_fix, duck=result.con)

    def order_fix(d: dict[str, Any]) -> None:
        _blank("channel", "subscription_id")(d)
        d["total"] = d["total"] or 0.0

    cols = ["order_id", "customer_id", "ordered_at", "shipped_at", "status", "channel", "subscription_id",
            "cycle_no", "total"]
    counts["orders"] = 0 if "orders" in same else _upsert(
        engine, Order, "order_id", cols, result.table_rows("orders"), order_fix, duck=result.con)
    cols = ["subscription_id", "customer_id", "sku", "quantity", "status", "started_at", "interval_days",
            "next_ship_date", "change_deadline", "shipments_count", "cancelled_at", "cancel_reason"]
    counts["subscriptions"] = 0 if "subscriptions" in same else _upsert(
        engine, Subscription, "subscription_id", cols, result.table_rows("subscriptions"), _blank("cancel_reason"),
        duck=result.con)
    lt = OrderLine.__table__  # type: ignore[attr-defined]
    n = 0
    if "order_lines" not in same:
        with engine.begin() as conn:
            # lines have no key of their own in the exports: the mirror of the exported orders' lines is replaced
            # as a whole, (order_id, sku) unique
            conn.execute(lt.delete())
            sqlite = engine.dialect.name == "sqlite"
            cur = conn.connection.driver_connection.cursor() if sqlite else None  # type: ignore[union-attr]
            for rows in _line_batches(result):
                if cur is not None:
                    cur.executemany("INSERT INTO order_lines (order_id, sku, quantity, unit_price) VALUES (?, ?, ?, ?)",
                                    rows)
                else:
                    pcur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    with pcur.copy("COPY order_lines (order_id, sku, quantity, unit_price) FROM STDIN") as cp:
                        for r in rows:
                            cp.write_row(r)
                n += len(rows)
    counts["order_lines"] = n
    for t, fp in fps.items():
        if t not in same and fp:
            _mark_mirrored(engine, t, fp)
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


def upsert_entries(engine: Engine, result: BuildResult, tz: ZoneInfo, build_date: date) -> dict[str, int]:
    """Built entries -> call_list_entries. Idempotent for a day; see the module docstring for the rules.

    One transaction, written in batches so a million-entry night never holds all rows in Python at once.
    """
    t = CallListEntry.__table__  # type: ignore[attr-defined]
    now = utcnow()
    with engine.connect() as conn:
        existing = {(r[1], r[2]): (r[0], r[3]) for r in conn.execute(
            select(t.c.id, t.c.customer_id, t.c.segment, t.c.status).where(t.c.segment.in_((*SEGMENTS, UNPAID))))}
    base = _defaults(CallListEntry, customer_id="", segment="")
    sqlite = engine.dialect.name == "sqlite"
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    counts = dict.fromkeys(("inserted", "updated", "kept_in_progress", "kept_final", "withdrawn"), 0)
    tzname = str(tz)

    # a night has ~30 distinct window dates for 500k entries: convert each once (this was most of the Python time)
    @functools.lru_cache(maxsize=4096)
    def day_start(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)

    @functools.lru_cache(maxsize=4096)
    def day_end(d: date) -> datetime:
        return datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=tz).astimezone(UTC)

    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor() if sqlite else None  # type: ignore[union-attr]

        def flush() -> None:
            if inserts:
                cols = list(inserts[0])
                if cur is not None:
                    cur.executemany(f"INSERT INTO call_list_entries ({', '.join(cols)}) VALUES "
                                    f"({', '.join('?' for _ in cols)})", [[_sqlite_value(d[c]) for c in cols] for d in inserts])
                else:
                    pcur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    with pcur.copy(f"COPY call_list_entries ({', '.join(cols)}) FROM STDIN") as cp:
                        for d in inserts:
                            cp.write_row([_pg_json(d[c]) for c in cols])
                inserts.clear()
            if updates:
                cols = [c for c in updates[0] if c != "_id"]
                if cur is not None:
                    cur.executemany(f"UPDATE call_list_entries SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
                                    [[_sqlite_value(d[c]) for c in cols] + [d["_id"]] for d in updates])
                else:
                    # COPY the new values into a temporary table, then one UPDATE ... FROM
                    pcur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    pcur.execute("DROP TABLE IF EXISTS tmp_entry_upd")
                    pcur.execute(f"CREATE TEMP TABLE tmp_entry_upd AS SELECT id, {', '.join(cols)} "
                                 "FROM call_list_entries WITH NO DATA")
                    with pcur.copy(f"COPY tmp_entry_upd (id, {', '.join(cols)}) FROM STDIN") as cp:
                        for d in updates:
                            cp.write_row([d["_id"], *(_pg_json(d[c]) for c in cols)])
                    pcur.execute(f"UPDATE call_list_entries e SET {', '.join(f'{c} = u.{c}' for c in cols)} "
                                 "FROM tmp_entry_upd u WHERE e.id = u.id")
                updates.clear()

        for e in result.entries():
            key = (e.customer_id, e.segment)
            seen.add(key)
            old = existing.get(key)
            if old is not None and old[1] in IN_PROGRESS:
                counts["kept_in_progress"] += 1
                continue
            if old is not None and old[1] in FINAL:
                counts["kept_final"] += 1
                continue
            values = {
                # `sku` is the OFFERED product: the hopper's refusal check, the screen pop and the sale form use it
                "sub_segment": e.sub_segment, "sku": e.offer_sku, "qualifying_sku": e.qualifying_sku,
                "reason": e.reason, "phones": e.phones, "priority": e.priority,
                "callable_from": day_start(e.callable_from), "callable_until": day_end(e.callable_until),
                "timezone": tzname, "build_date": build_date, "updated_at": now,
            }
            if old is None:
                inserts.append({**base, "customer_id": e.customer_id, "segment": e.segment, "status": "pending",
                                "created_at": now, **values})
                counts["inserted"] += 1
            else:
                updates.append({"_id": old[0], "status": "pending", "status_reason": "", **values})
                counts["updated"] += 1
            if len(inserts) + len(updates) >= 20_000:
                flush()
        flush()
        supp = result.suppressed_entries()
        for key, (eid, status) in existing.items():
            if key not in seen and status == "pending":
                why = supp.get(key)
                updates.append({"_id": eid, "status": "withdrawn", "updated_at": now,
                                "status_reason": f"suppressed: {why}" if why else f"no longer eligible ({build_date})"})
                counts["withdrawn"] += 1
                if len(updates) >= 20_000:
                    flush()
        flush()
    return counts
