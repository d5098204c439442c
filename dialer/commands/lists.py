"""`dialer lists`: build the nightly call lists, write a sample CRM export, fetch from a CRM API.

This is where the list builder meets the store: the dialer's own suppressions (blocks, exhausted entries)
go in, and built entries come out as upserts that never disturb a contact being dialled and never delete
one that dropped out (it is withdrawn with the reason).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from dialer.commands._common import add_config_arg, config_from, group
from dialer.config import Config
from dialer.errors import UserError
from dialer.store.db import init_db, resolve_url
from dialer.store.holdout import record_assignments
from dialer.store.models import (
    Block,
    CallListEntry,
    Customer,
    Order,
    OrderLine,
    Product,
    Subscription,
    utcnow,
)
from dialer.store.sms import record_unpaid
from lists import BlockRow, ListsError, ListSettings, Suppressions, build_lists, load_mapping
from lists.build import SEGMENTS, BuildResult
from lists.holdout import HoldoutSettings
from lists.mapping import SCHEMA
from lists.settings import LtvSettings
from lists.unpaid import SEGMENT as UNPAID
from lists.unpaid import UnpaidSettings

IN_PROGRESS = ("leased", "dialing")
FINAL = ("done", "exhausted", "blocked")


def settings_from(cfg: Config) -> ListSettings:
    c = cfg.lists
    return ListSettings(
        region=c.region, dormant_min_days=c.dormant_min_days, dormant_max_days=c.dormant_max_days,
        loyal_min_orders=c.loyal_min_orders, pre_churn_min_hazard=c.pre_churn_min_hazard,
        pre_churn_days_before=tuple(c.pre_churn_days_before), upsell_days_before=c.upsell_days_before,  # type: ignore[arg-type]
        upsell_days_after=c.upsell_days_after, cooling_off_days=c.cooling_off_days,
        cross_sell_lookback_days=c.cross_sell_lookback_days, horizon_days=c.horizon_days,
        cost_per_attempt=c.cost_per_attempt, p_reach=c.p_reach, p_convert=dict(c.p_convert),
        ltv=LtvSettings(formula=c.ltv.formula, years=c.ltv.years, margin=c.ltv.margin,
                        acquisition_cost=c.ltv.acquisition_cost, retention_cost=c.ltv.retention_cost,
                        discount_rate=c.ltv.discount_rate),
        holdout=HoldoutSettings(share=c.holdout.share, seed=c.holdout.seed, period=c.holdout.period,
                                segments=dict(c.holdout.segments)),
        unpaid=UnpaidSettings(enabled=cfg.sms.enabled, max_amount=cfg.sms.max_amount,
                              min_age_days=cfg.sms.min_age_days, max_age_days=cfg.sms.max_age_days),
    )


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
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, date):
        return v.isoformat()
    return v


def _duck_literal(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        return f"CAST({v!r} AS DOUBLE)"
    return "'" + str(v).replace("'", "''") + "'"


def _upsert(engine: Engine, model: Any, key: str, cols: list[str], batches: Iterable[list[tuple[Any, ...]]],
            fix: Any = None, duck: Any = None) -> int:
    table = model.__table__
    base = _defaults(model, **_REQUIRED[table.name])
    n = 0
    if engine.dialect.name == "sqlite" and duck is not None:
        # bulk path: DuckDB shapes every value the way SQLAlchemy stores it on SQLite, then one executemany
        # on the driver per batch; no Python work per row
        allcols = list(base) + [c for c in cols if c not in base]
        kinds = SCHEMA[table.name]
        exprs = []
        for c in allcols:
            dflt = base.get(c)
            lit_d = "NULL" if dflt is None else _duck_literal(_sqlite_value(dflt))
            if c not in cols:
                exprs.append(lit_d)
                continue
            k = kinds.get(c, "str")
            e = {"date": f"strftime({c}, '%Y-%m-%d')", "bool": f"CAST({c} AS INTEGER)",
                 "list": f"CAST(to_json(coalesce({c}, []::VARCHAR[])) AS VARCHAR)"}.get(k, c)
            exprs.append(e if dflt is None else f"coalesce({e}, {lit_d})")
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


def mirror(engine: Engine, result: BuildResult) -> dict[str, int]:
    """Copy the CRM tables into the store so screen pops can show history (upserts; blocks are only added)."""
    now = utcnow()
    counts: dict[str, int] = {}

    def cust_fix(d: dict[str, Any]) -> None:
        _blank("name", "name_kana", "phone", "phone2", "email", "prefecture")(d)
        for k, dflt in (("tel_ok", True), ("withdrawn", False), ("caution", False)):
            if d[k] is None:
                d[k] = dflt
        d["updated_at"] = now

    cols = ["customer_id", "name", "name_kana", "phone", "phone2", "email", "prefecture", "created_at", "tel_ok",
            "withdrawn", "caution"]
    counts["customers"] = _upsert(engine, Customer, "customer_id", cols, result.table_rows("customers"), cust_fix,
                                  duck=result.con)

    def prod_fix(d: dict[str, Any]) -> None:
        _blank("name", "upgrade_sku")(d)
        d["related_skus"] = list(d["related_skus"] or [])
        d["is_trial"] = bool(d["is_trial"])
        d["price"] = d["price"] or 0.0
        d["unit_cost"] = d["unit_cost"] or 0.0

    cols = ["sku", "name", "days_per_unit", "is_trial", "upgrade_sku", "related_skus", "price", "unit_cost"]
    counts["products"] = _upsert(engine, Product, "sku", cols, result.table_rows("products"), prod_fix,
                                 duck=result.con)

    def order_fix(d: dict[str, Any]) -> None:
        _blank("channel", "subscription_id")(d)
        d["total"] = d["total"] or 0.0

    cols = ["order_id", "customer_id", "ordered_at", "shipped_at", "status", "channel", "subscription_id",
            "cycle_no", "total"]
    counts["orders"] = _upsert(engine, Order, "order_id", cols, result.table_rows("orders"), order_fix,
                               duck=result.con)
    cols = ["subscription_id", "customer_id", "sku", "quantity", "status", "started_at", "interval_days",
            "next_ship_date", "change_deadline", "shipments_count", "cancelled_at", "cancel_reason"]
    counts["subscriptions"] = _upsert(engine, Subscription, "subscription_id", cols,
                                      result.table_rows("subscriptions"), _blank("cancel_reason"), duck=result.con)
    lt = OrderLine.__table__  # type: ignore[attr-defined]
    n = 0
    with engine.begin() as conn:
        # lines have no natural key: the mirror of the exported orders' lines is replaced as a whole
        conn.execute(delete(lt))
        sqlite = engine.dialect.name == "sqlite"
        cur = conn.connection.driver_connection.cursor() if sqlite else None  # type: ignore[union-attr]
        for rows in result.table_rows("order_lines"):
            if cur is not None:
                cur.executemany("INSERT INTO order_lines (order_id, sku, quantity, unit_price) VALUES (?, ?, ?, ?)",
                                [(r[0], r[1], r[2], r[3] or 0.0) for r in rows])
            else:
                conn.execute(lt.insert(), [{"order_id": r[0], "sku": r[1], "quantity": r[2],
                                            "unit_price": r[3] or 0.0} for r in rows])
            n += len(rows)
    counts["order_lines"] = n
    bt = Block.__table__  # type: ignore[attr-defined]
    n = 0
    with engine.begin() as conn:
        have = {(r[0] or "", r[1] or "", r[2], r[3] or "") for r in conn.execute(
            select(bt.c.phone_e164, bt.c.customer_id, bt.c.kind, bt.c.product_scope))}
        new = []
        for rows in result.table_rows("blocks"):
            for e164, cid, kind, scope, since in rows:
                k = (e164 or "", cid or "", kind, scope or "")
                if k in have or (not e164 and not cid):
                    continue
                have.add(k)
                new.append({"phone_e164": e164 or None, "customer_id": cid or None, "kind": kind, "product_scope": scope or "",
                            "since": datetime(since.year, since.month, since.day, tzinfo=UTC) if since else now,
                            "until": None, "source": "crm", "reason": "CRM export"})
        if new:
            conn.execute(bt.insert(), new)
        n = len(new)
    counts["blocks_added"] = n
    return counts


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
    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor() if sqlite else None  # type: ignore[union-attr]

        def flush() -> None:
            if inserts:
                cols = list(inserts[0])
                if cur is not None:
                    cur.executemany(f"INSERT INTO call_list_entries ({', '.join(cols)}) VALUES "
                                    f"({', '.join('?' for _ in cols)})", [[_sqlite_value(d[c]) for c in cols] for d in inserts])
                else:
                    conn.execute(t.insert(), inserts)
                inserts.clear()
            if updates:
                cols = [c for c in updates[0] if c != "_id"]
                if cur is not None:
                    cur.executemany(f"UPDATE call_list_entries SET {', '.join(c + ' = ?' for c in cols)} WHERE id = ?",
                                    [[_sqlite_value(d[c]) for c in cols] + [d["_id"]] for d in updates])
                else:
                    stmt = update(t).where(t.c.id == bindparam("_id")).values({c: bindparam(c) for c in cols})
                    conn.execute(stmt, updates)
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
                "sub_segment": e.sub_segment, "sku": e.sku, "reason": e.reason, "phones": e.phones,
                "priority": e.priority,
                "callable_from": datetime(e.callable_from.year, e.callable_from.month, e.callable_from.day,
                                          tzinfo=tz).astimezone(UTC),
                "callable_until": datetime(e.callable_until.year, e.callable_until.month, e.callable_until.day,
                                           23, 59, 59, tzinfo=tz).astimezone(UTC),
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


def _as_of(text: str | None) -> date:
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--as-of {text!r}: expected a date like 2026-11-23") from None


def _build(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    tz = ZoneInfo(cfg.schedules.timezone)
    as_of = _as_of(args.as_of)
    input_dir = Path(args.input)
    if not input_dir.is_dir():
        raise UserError(f"--input {input_dir}: not a directory")
    out = Path(args.out)
    t0 = time.perf_counter()
    url = resolve_url(cfg.database.url)
    engine, _ = init_db(url)
    try:
        mapping = load_mapping(args.mapping)
        sup = store_suppressions(engine, tz)
        cache = Path(args.phone_cache) if args.phone_cache else out / "phone_cache.parquet"
        result = build_lists(mapping, input_dir, out, as_of, settings_from(cfg), sup, phone_cache=cache,
                             table_cache=cache.parent / "table_cache",
                             memory_limit=args.memory_limit,
                             log=(lambda m: print(f"lists: {m}", file=sys.stderr)) if args.verbose else None)
    except ListsError as exc:
        raise UserError(str(exc)) from None
    with result:
        t1 = time.perf_counter()
        mirrored = mirror(engine, result) if not args.no_mirror else {}
        t2 = time.perf_counter()
        stored = upsert_entries(engine, result, tz, as_of)
        held = record_assignments(engine, result.holdout_rows(), as_of)
        record_unpaid(engine, result.unpaid_rows(), as_of)
        t3 = time.perf_counter()
        s = result.summary
    segs = ", ".join(f"{k} {v}" for k, v in s["entries"].items())
    n_rej = sum(s["rejected"].values())
    n_sup = sum(s["suppressed"].values())
    print(f"lists {as_of}: {s['entries_total']} entries ({segs}); {n_rej} rejects, {n_sup} suppressed -> {out}")
    print(f"store: {stored['inserted']} inserted, {stored['updated']} updated, {stored['withdrawn']} withdrawn, "
          f"{stored['kept_in_progress']} in progress kept, {stored['kept_final']} finished kept; "
          f"mirrored {sum(mirrored.values())} CRM rows")
    if "holdout" in s:
        h = s["holdout"]
        ctl = sum(v.get("control", 0) for v in h["segments"].values())
        print(f"holdout {h['period']}: {ctl} control entries (suppressed: holdout), {held} assignments recorded")
    print(f"time: build {t1 - t0:.1f}s, mirror {t2 - t1:.1f}s, entries {t3 - t2:.1f}s")
    if not s["conservation"]["customers_ok"] or not s["conservation"]["rows_ok"]:
        print("lists: conservation check FAILED, see summary.json", file=sys.stderr)
        return 1
    return 0


def _sample(args: argparse.Namespace) -> int:
    from lists.sample import write_sample

    counts = write_sample(args.out, customers=args.customers, seed=args.seed, as_of=_as_of(args.as_of))
    print(f"sample CRM export in {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from lists.fetch import FetchError, fetch_source

    try:
        mapping = load_mapping(args.source)
        counts = fetch_source(mapping, Path(args.out), restart=args.restart)
    except (ListsError, FetchError) as exc:
        raise UserError(str(exc)) from None
    print(f"fetched into {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = group(sub, "lists", "call lists: build from CRM exports, write a sample export, fetch from a CRM API")
    p = g.add_parser("build", help="build dormant/pre_churn/upsell/cross_sell lists into --out and the store")
    add_config_arg(p)
    p.add_argument("--mapping", required=True, metavar="PATH", help="mapping file (config/mappings/*.toml)")
    p.add_argument("--input", required=True, metavar="DIR", help="directory holding the export files")
    p.add_argument("--out", required=True, metavar="DIR", help="where call_list.csv, rejects.csv, summary.json go")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="the build's 'today' (default: today)")
    p.add_argument("--phone-cache", metavar="PATH", help="parsed-phone cache (default: OUT/phone_cache.parquet)")
    p.add_argument("--no-mirror", action="store_true", help="do not copy CRM tables into the store")
    p.add_argument("--memory-limit", default="1500MB", metavar="SIZE",
                   help="DuckDB memory limit; beyond it the build spills to disk (default 1500MB)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=_build)
    p = g.add_parser("sample", help="write a realistic sample CRM export in the canonical format")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-of", metavar="YYYY-MM-DD")
    p.set_defaults(func=_sample)
    p = g.add_parser("fetch", help="fetch a paged JSON CRM API into canonical CSV files (resumable)")
    p.add_argument("--source", required=True, metavar="PATH", help="mapping file with an [http] section")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--restart", action="store_true", help="ignore saved cursors and fetch from the start")
    p.set_defaults(func=_fetch)
