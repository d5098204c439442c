"""The nightly build: canonical tables -> phones -> segments -> suppression -> priority -> outputs.

Suppression runs before scoring so a blocked customer is never ranked, and every customer ends in exactly
one bucket (listed, suppressed with a reason, not eligible) so summary.json can prove nothing was lost.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import phonenumbers

from lists import phones as phones_module
from lists.compliance import COMPLIANCE_FIELDS, presence
from lists.csvsafe import sql_safe
from lists.depletion import TRIAL_MIN_GAPS, depletion_days_sql
from lists.holdout import apply_holdout, empty_holdout
from lists.ingest import Loader, lit
from lists.ltv import ltv_sql, p_alive_sql, remaining_shipments
from lists.mapping import SCHEMA, Mapping
from lists.phones import classify_digits, parse_phone_cell
from lists.settings import ListSettings
from lists.tablecache import TableCache
from lists.unpaid import add_unpaid_candidates

SEGMENTS = ("dormant", "pre_churn", "upsell", "cross_sell")
TOUCHED_IDS_MAX = 50_000  # date-checked orders listed by id for the mirror; beyond it the mirror rewrites orders
# customer-level reasons, in the order they are checked: the first that applies is the one reported
CUSTOMER_REASONS = ("withdrawn", "tel_ng", "caution", "dnc", "refusal", "no_consent", "duplicate_phone",
                    "non_consumer_number", "invalid_phone", "no_phone")
ENTRY_REASONS = ("refusal_product", "max_attempts", "abandon_lock")
HARD_KINDS = ("dnc", "refusal", "no_consent")  # a refusal blocks everything only when product_scope is empty


@dataclass(frozen=True)
class BlockRow:
    """A suppression the dialer knows and the CRM may not: dispositions, abandon locks, CRM mirror rows.

    `until` is the first local date the block no longer applies (None: permanent).
    """

    kind: str  # dnc | refusal | no_consent | abandon_lock
    phone_e164: str = ""
    customer_id: str = ""
    product_scope: str = ""
    until: date | None = None
    source: str = "dialer"


@dataclass(frozen=True)
class Suppressions:
    blocks: Sequence[BlockRow] = ()
    exhausted: Sequence[tuple[str, str]] = ()  # (customer_id, segment) that reached max attempts


@dataclass(frozen=True)
class Entry:
    """One contact to call. `offer_sku` is the product the call offers (refusal scope, screen pop, sale
    default); `qualifying_sku` the one that put the customer on the list (the trial for an upsell)."""

    customer_id: str
    segment: str
    sub_segment: str
    offer_sku: str
    qualifying_sku: str
    reason: str
    phones: list[str]
    priority: float
    callable_from: date
    callable_until: date
    name: str = ""

    @property
    def sku(self) -> str:
        """The offered product: what every compliance check compares."""
        return self.offer_sku


@dataclass
class BuildResult:
    """The outputs on disk plus the DuckDB connection, so the shell can stream entries into its store."""

    con: duckdb.DuckDBPyConnection
    out_dir: Path
    summary: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    spill_dir: Path | None = None
    # table -> key of the exact inputs it was typed from (lists.tablecache); empty without a table cache
    table_keys: dict[str, str] = field(default_factory=dict)
    # order ids the date checks dropped or changed (lists.build._date_sanity); None: too many to list
    touched_orders: list[str] | None = None

    def entries(self, batch: int = 50_000) -> Iterator[Entry]:
        cur = self.con.execute(
            "SELECT customer_id, segment, sub_segment, offer_sku, qualifying_sku, reason, phones, priority, cfrom, "
            "cuntil, name FROM entries ORDER BY priority DESC, customer_id, segment")
        while rows := cur.fetchmany(batch):
            for r in rows:
                yield Entry(r[0], r[1], r[2], r[3], r[4], r[5], list(r[6]), float(r[7]), r[8], r[9], r[10] or "")

    def suppressed_entries(self) -> dict[tuple[str, str], str]:
        """(customer_id, segment) -> reason, for candidates that were suppressed (used to withdraw)."""
        rows = self.con.execute("SELECT customer_id, segment, reason FROM suppressed").fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def holdout_rows(self, batch: int = 100_000) -> Iterator[list[tuple[str, str, str, str]]]:
        """(customer_id, segment, group, period) of every entry in the hold-out draw (lists.holdout), batched."""
        cur = self.con.execute("SELECT customer_id, segment, grp, period FROM holdout WHERE period <> '' "
                               "ORDER BY customer_id, segment")
        while rows := cur.fetchmany(batch):
            yield [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def unpaid_rows(self) -> list[tuple[str, str, float, date | None]]:
        """(customer_id, order_ids, amount, since) of the listed `unpaid` entries (lists.unpaid)."""
        rows = self.con.execute("SELECT u.customer_id, u.order_ids, u.amount, u.since FROM unpaid u JOIN entries e "
                                "ON e.customer_id = u.customer_id AND e.segment = 'unpaid' ORDER BY 1").fetchall()
        return [(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in rows]

    def table_rows(self, table: str, batch: int = 100_000) -> Iterator[list[tuple[Any, ...]]]:
        """Typed canonical rows (columns as in lists.mapping.SCHEMA minus join helpers), in batches."""
        cols = [f for f in SCHEMA[table] if f not in ("customer_email", "customer_phone", "balance")]
        if table == "blocks":
            cols = ["e164" if c == "phone" else c for c in cols]
            cur = self.con.execute(f"SELECT {', '.join(cols)} FROM blocks_norm")
        else:
            cur = self.con.execute(f"SELECT {', '.join(cols)} FROM {table}")
        while rows := cur.fetchmany(batch):
            yield rows

    def close(self) -> None:
        self.con.close()
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)

    def __enter__(self) -> BuildResult:
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = con.execute(sql, params or []).fetchone()
    return row[0] if row else None


def _parse_into(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str, bool]], region: str, table: str,
                tmp: Path) -> None:
    """Parse phone cells in Python and append (key, idx, e164, kind, reason, flag) rows to `table`.

    keys: (cache key, text, is_digits): digits-only national numbers take the fast classifier.
    """
    path = tmp / f"{table}_new.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "idx", "e164", "kind", "reason", "flag"])
        for key, text, digits in keys:
            results = (classify_digits(text, region),) if digits else parse_phone_cell(text, region)
            if not results:
                w.writerow([key, -1, "", "", "empty", ""])
            for i, r in enumerate(results):
                w.writerow([key, i, r.e164, r.kind, r.reason, r.flag])
    con.execute(f"INSERT INTO {table} SELECT key, idx, coalesce(e164, ''), coalesce(kind, ''), coalesce(reason, ''), "
                "coalesce(flag, '') FROM read_csv(?, header=true, "
                "columns={'key': 'VARCHAR', 'idx': 'INTEGER', 'e164': 'VARCHAR', 'kind': 'VARCHAR', "
                "'reason': 'VARCHAR', 'flag': 'VARCHAR'}, quote='\"', escape='\"')", [str(path)])
    path.unlink()


def _open_cache(con: duckdb.DuckDBPyConnection, table: str, cache: Path | None, stamp: str) -> None:
    """Create `table` for parsed phone rows and fill it from the parquet CACHE when its `.code` file says STAMP
    (the parser's code, and what else its answers depend on). A cache another parser wrote is deleted (its
    answers may be stale); an unreadable or old-format one is just a cold start."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (key VARCHAR, idx INTEGER, e164 VARCHAR, kind VARCHAR, "
                "reason VARCHAR, flag VARCHAR)")
    if cache is None or not cache.exists():
        return
    code = cache.with_suffix(".code")
    if not code.exists() or code.read_text(encoding="utf-8").strip() != stamp:
        cache.unlink()
        return
    try:
        con.execute(f"INSERT INTO {table} SELECT key, idx, e164, kind, reason, flag FROM read_parquet(?)", [str(cache)])
    except duckdb.Error:
        pass


def _parse_misses(con: duckdb.DuckDBPyConnection, misses: list[tuple[str, str, bool]], region: str, table: str,
                  cache: Path | None, stamp: str, tmp: Path) -> int:
    """Parse the keys `table` does not hold yet (MISSES) into it and, when there were any, write the whole table
    back to CACHE under STAMP (`_open_cache` reads it next night). Returns how many were parsed."""
    if not misses:
        return 0
    _parse_into(con, misses, region, table, tmp)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY {table} TO {lit(str(cache))} (FORMAT parquet)")
        cache.with_suffix(".code").write_text(stamp, encoding="utf-8")
    return len(misses)


# SQL twin of phones._clean for the common shapes: full-width digits and dashes, a leading label, separators
_FW = "０１２３４５６７８９－ー−‐（）"
_HW = "0123456789----()"


def _norm_sql(col: str) -> str:
    return (f"regexp_replace(translate({col}, {lit(_FW)}, {lit(_HW)}), "
            "'^\\s*(TEL|Tel|tel|電話|携帯|自宅)\\s*[:：]?|^\\s*[(](携帯|自宅|会社)[)]|[\\s()-]', '', 'g')")


# the parsed cells depend on the customers table, the region and this code: a change to any is a cold parse
_PHONE_CODE = hashlib.sha256(b"".join(Path(m).read_bytes() for m in (__file__, phones_module.__file__))
                             + phonenumbers.__version__.encode()).hexdigest()


def _phones(con: duckdb.DuckDBPyConnection, mapping: Mapping, region: str, cache: Path | None, tmp: Path,
            tcache: TableCache | None = None) -> dict[str, int]:
    key = tcache.derived_key("customers", "cell_res", region, _PHONE_CODE) if tcache is not None else None
    got = tcache.restore_derived(con, "cell_res", key) if tcache is not None and key else None
    if got is not None:
        stats = {"cells": int(got["cells"]), "parsed_now": 0, "cached_before": int(got["cached_after"])}
    else:
        stats = _parse_cells(con, mapping, region, cache, tmp)
        if tcache is not None and key:
            tcache.store_derived(con, "cell_res", key, {"cells": stats["cells"], "cached_after": stats.pop("cached_after")})
        stats.pop("cached_after", None)
    con.execute("INSERT INTO rejects SELECT __file, __line, col, raw, 'phone ' || reason, 'cell' FROM cell_res "
                "WHERE reason <> ''")
    con.execute("INSERT INTO rejects SELECT __file, __line, col, raw, 'warning: ' || flag || ' (number used)', 'flag' "
                "FROM cell_res WHERE flag <> '' AND reason = ''")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE phones AS SELECT * FROM cell_res WHERE reason = ''
        QUALIFY row_number() OVER (PARTITION BY customer_id, e164 ORDER BY cell, idx) = 1""")
    return stats


def _parse_cells(con: duckdb.DuckDBPyConnection, mapping: Mapping, region: str, cache: Path | None,
                 tmp: Path) -> dict[str, int]:
    """customers.phone/phone2 -> `phones(customer_id, e164, kind, cell, idx, __file, __line, col, raw)`.

    Three tiers: plain JP mobiles are decided in SQL; other cells that reduce to a national digit string
    are classified per distinct digit string; anything else goes through the full text parser. Results
    are cached on disk by key, so a nightly rebuild with unchanged phones parses nothing.
    """
    tm = mapping.tables["customers"]
    lab = {f: "+".join(tm.columns[f].columns) if f in tm.columns else f for f in ("phone", "phone2")}
    jp = region == "JP"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cells AS
        SELECT *, CASE WHEN fast THEN NULL WHEN simple THEN 'd:' || nd ELSE raw END AS key FROM (
        SELECT *, {"regexp_full_match(nd, '0[789]0[1-9][0-9]{7}')" if jp else "false"} AS fast,
               {"regexp_full_match(nd, '0[1-9][0-9]{8,9}')" if jp else "false"} AS simple
          FROM (SELECT *, {_norm_sql('raw')} AS nd FROM (
            SELECT customer_id, 0 AS cell, phone AS raw, __file, __line, {lit(lab['phone'])} AS col
              FROM customers WHERE phone IS NOT NULL
            UNION ALL
            SELECT customer_id, 1, phone2, __file, __line, {lit(lab['phone2'])} FROM customers WHERE phone2 IS NOT NULL)))""")
    _open_cache(con, "pcache", cache, _PHONE_CODE)
    cached_before = int(_one(con, "SELECT count(DISTINCT key) FROM pcache") or 0)
    misses = [(k, t, bool(d)) for k, t, d in con.execute(
        "SELECT DISTINCT key, CASE WHEN simple THEN nd ELSE raw END, simple FROM cells "
        "WHERE NOT fast AND key NOT IN (SELECT key FROM pcache)").fetchall()]
    parsed = _parse_misses(con, misses, region, "pcache", cache, _PHONE_CODE, tmp)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE cell_res AS
        SELECT c.customer_id, c.cell, 0 AS idx, '+81' || substr(c.nd, 2) AS e164, 'mobile' AS kind,
               '' AS reason, '' AS flag, c.__file, c.__line, c.col, c.raw
          FROM cells c WHERE c.fast
        UNION ALL
        SELECT c.customer_id, c.cell, p.idx, p.e164, p.kind, p.reason, p.flag, c.__file, c.__line, c.col, c.raw
          FROM cells c JOIN pcache p ON p.key = c.key WHERE NOT c.fast AND p.idx >= 0""")
    return {"cells": int(_one(con, "SELECT count(*) FROM cells") or 0), "parsed_now": parsed,
            "cached_before": cached_before, "cached_after": int(_one(con, "SELECT count(DISTINCT key) FROM pcache") or 0)}


def _blocks(con: duckdb.DuckDBPyConnection, sup: Suppressions, region: str, as_of: date, tmp: Path,
            on_bad_phone: bool = True, cache: Path | None = None) -> int:
    """CRM blocks (raw phones) + the dialer's blocks -> `blocks_norm`, active on `as_of` only.

    `cache` (a parquet file) keeps the parsed block numbers by raw text: the block file changes by a few lines a
    night, and parsing its ~11k numbers again took 2 CPU-s of the 1M bench's next night. Like the customers'
    phone cache it keeps what it parsed (rows are read by the blocks' own numbers only). Returns how many
    numbers were parsed now."""
    stamp = f"{_PHONE_CODE} {region}"
    _open_cache(con, "bparse", cache, stamp)
    misses = [(r[0], r[0], False) for r in con.execute(
        "SELECT DISTINCT phone FROM blocks WHERE phone IS NOT NULL AND phone NOT IN (SELECT key FROM bparse)").fetchall()]
    parsed = _parse_misses(con, misses, region, "bparse", cache, stamp, tmp)
    # a block must never vanish without a trace: a number that cannot be read, a customer or product that
    # matches nothing are reported (the block itself is kept: it may match tomorrow)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE bad_block_phone AS
        SELECT b.__file, b.__line, b.phone, b.customer_id,
               coalesce((SELECT min(reason) FROM bparse p WHERE p.key = b.phone AND p.reason <> ''), 'no_digits') AS why
          FROM blocks b WHERE b.phone IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM bparse p WHERE p.key = b.phone AND p.e164 <> '')""")
    con.execute("INSERT INTO rejects SELECT __file, __line, 'phone', phone, 'block phone unreadable: ' || why || "
                "CASE WHEN customer_id IS NOT NULL AND ? THEN ' (customer ' || customer_id || ' blocked instead)' "
                "ELSE ' (block not applied)' END, 'row' FROM bad_block_phone", [on_bad_phone])
    has_products = bool(_one(con, "SELECT count(*) > 0 FROM products"))
    con.execute("INSERT INTO rejects SELECT __file, __line, 'customer_id', customer_id, "
                "'warning: block matches no customer (kept)', 'flag' FROM blocks "
                "WHERE customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM customers)")
    if has_products:
        con.execute("INSERT INTO rejects SELECT __file, __line, 'product_scope', product_scope, "
                    "'warning: block matches no product (kept)', 'flag' FROM blocks "
                    "WHERE product_scope IS NOT NULL AND product_scope NOT IN (SELECT sku FROM products)")
    con.execute("""
        CREATE OR REPLACE TABLE blocks_norm AS
        SELECT coalesce(p.e164, '') AS e164, coalesce(b.customer_id, '') AS customer_id, b.kind,
               coalesce(b.product_scope, '') AS product_scope, b.since, CAST(NULL AS DATE) AS until, 'crm' AS source,
               b.__file || ' line ' || b.__line AS ref
          FROM blocks b LEFT JOIN bparse p ON p.key = b.phone AND p.e164 <> ''
         WHERE p.e164 IS NOT NULL OR b.phone IS NULL OR (b.customer_id IS NOT NULL AND ?)""", [on_bad_phone])
    if sup.blocks:
        path = tmp / "dialer_blocks.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["e164", "customer_id", "kind", "product_scope", "until", "source"])
            for b in sup.blocks:
                w.writerow([b.phone_e164, b.customer_id, b.kind, b.product_scope,
                            b.until.isoformat() if b.until else "", b.source])
        con.execute("INSERT INTO blocks_norm SELECT coalesce(e164, ''), coalesce(customer_id, ''), kind, "
                    "coalesce(product_scope, ''), NULL, until, source, 'dialer ' || coalesce(source, '') "
                    "FROM read_csv(?, header=true, "
                    "columns={'e164': 'VARCHAR', 'customer_id': 'VARCHAR', 'kind': 'VARCHAR', "
                    "'product_scope': 'VARCHAR', 'until': 'DATE', 'source': 'VARCHAR'})", [str(path)])
        path.unlink()
    con.execute("DELETE FROM blocks_norm WHERE until IS NOT NULL AND until <= ?", [as_of])
    con.execute("CREATE OR REPLACE TEMP TABLE exhausted (customer_id VARCHAR, segment VARCHAR)")
    if sup.exhausted:
        con.executemany("INSERT INTO exhausted VALUES (?, ?)", [list(x) for x in sup.exhausted])
    return parsed


def _date_sanity(con: duckdb.DuckDBPyConnection, loader: Loader, as_of: date) -> tuple[str, list[str] | None]:
    """Order dates that cannot be true on `as_of` leave a reject line instead of silently moving a customer.

    An order dated after the build date has not happened: rejected. A shipped date after the build date (on a
    shipped order) or before the order date is not used (the order date is), with a cell reject. Returns a
    digest of which orders were dropped or lost their shipped date ("" when none) and their ids (None when
    there are more than TOUCHED_IDS_MAX): the mirrored orders differ from the export exactly by those, so the
    mirror re-writes only them when the export itself is unchanged. (The build date itself used to be in the
    fingerprint whenever any row was touched, so every next night re-mirrored 10M unchanged rows.)
    """
    a = lit(as_of.isoformat()) + "::DATE"
    od, sd = lit(loader._lab("orders", "ordered_at")), lit(loader._lab("orders", "shipped_at"))
    where = f"ordered_at > {a} OR shipped_at < ordered_at OR (shipped_at > {a} AND status = 'shipped')"
    touched = con.execute(
        f"SELECT count(*), md5(coalesce(string_agg(order_id || CASE WHEN ordered_at > {a} THEN ':d' ELSE ':s' END, "
        f"',' ORDER BY order_id, ordered_at > {a}), '')) FROM orders WHERE {where}").fetchone()
    n_touched = int(touched[0]) if touched else 0
    digest = str(touched[1]) if touched and n_touched else ""
    ids = [str(r[0]) for r in con.execute(f"SELECT DISTINCT order_id FROM orders WHERE {where} ORDER BY 1").fetchall()] \
        if n_touched <= TOUCHED_IDS_MAX else None
    con.execute(f"INSERT INTO rejects SELECT __file, __line, {od}, CAST(ordered_at AS VARCHAR), "
                f"'ordered_at after the build date {as_of} (an order from the future is not used)', 'row' "
                f"FROM orders WHERE ordered_at > {a}")
    con.execute(f"DELETE FROM orders WHERE ordered_at > {a}")
    con.execute(f"INSERT INTO rejects SELECT __file, __line, {sd}, CAST(shipped_at AS VARCHAR), "
                f"CASE WHEN shipped_at < ordered_at THEN 'shipped_at before ordered_at ' || ordered_at "
                f"ELSE 'shipped_at after the build date {as_of}' END || ' (not used; the order date is)', 'cell' "
                f"FROM orders WHERE shipped_at < ordered_at OR (shipped_at > {a} AND status = 'shipped')")
    con.execute(f"UPDATE orders SET shipped_at = NULL WHERE shipped_at < ordered_at OR (shipped_at > {a} AND status = 'shipped')")
    return digest, ids


def _estimate_shipments(con: duckdb.DuckDBPyConnection, mapping: Mapping, as_of: date, loader: Loader) -> None:
    """Exports without a shipment count (Recharge, Shopify Subscriptions): intervals elapsed since the start,
    up to the cancellation or today. An estimate, and summary.json says so."""
    tm = mapping.tables.get("subscriptions")
    if tm is None or "shipments_count" in tm.columns or "shipments_count" in tm.constants:
        return
    con.execute("""UPDATE subscriptions SET shipments_count = greatest(1, CAST(floor(
                     date_diff('day', started_at, least(coalesce(cancelled_at, ?::DATE), ?::DATE)) / interval_days)
                     AS BIGINT) + 1)
                   WHERE started_at IS NOT NULL AND interval_days > 0""", [as_of, as_of])
    loader.notes.append("subscriptions: no shipment count exported; estimated from started_at and interval_days")


def _metrics(con: duckdb.DuckDBPyConnection, s: ListSettings, as_of: date) -> None:
    a = lit(as_of.isoformat()) + "::DATE"
    con.execute("""
        CREATE OR REPLACE TEMP TABLE ord_val AS
        SELECT o.order_id, o.customer_id, o.status, coalesce(o.shipped_at, o.ordered_at) AS d,
               coalesce(o.ordered_at, o.shipped_at) AS od, coalesce(o.total, lv.amount, 0) AS value
          FROM orders o LEFT JOIN (SELECT order_id, sum(quantity * coalesce(unit_price, 0)) AS amount
                                   FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE total IS NULL)
                                   GROUP BY 1) lv USING (order_id)""")
    r, alpha, ba, bb = s.bgnbd
    # orders are summed per customer first and then joined to the (unique) customers: the 5M-row join before the
    # grouping cost a quarter more CPU at 1M customers
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE cm AS
        WITH per AS (
          SELECT v.customer_id,
                 count(v.order_id) FILTER (WHERE v.status = 'shipped' AND v.d IS NOT NULL) AS n,
                 max(v.d) FILTER (WHERE v.status = 'shipped') AS last_d,
                 min(v.d) FILTER (WHERE v.status = 'shipped') AS first_d,
                 sum(v.value) FILTER (WHERE v.status = 'shipped') AS revenue,
                 max(v.od) AS last_order_any
            FROM ord_val v GROUP BY 1),
        agg AS (
          SELECT c.customer_id, coalesce(per.n, 0) AS n, per.last_d, per.first_d, coalesce(per.revenue, 0) AS revenue,
                 per.last_order_any
            FROM customers c LEFT JOIN per USING (customer_id))
        SELECT *, revenue / greatest(n, 1) AS aov,
               n / greatest(date_diff('day', first_d, {a}) / 365.25, 1.0) AS freq,
               {p_alive_sql('n - 1', "date_diff('day', first_d, last_d) / 7.0", f"date_diff('day', first_d, {a}) / 7.0", r, alpha, ba, bb)} AS p_alive,
               customer_id IN (SELECT customer_id FROM subscriptions WHERE status = 'active') AS active_sub
          FROM agg""")
    # shipped lines (no order id: nothing reads it, and carrying 4.8M of them cost a third of the join)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE sl AS
        SELECT v.customer_id, v.d, l.sku, l.quantity FROM ord_val v JOIN order_lines l USING (order_id)
         WHERE v.status = 'shipped' AND v.d IS NOT NULL""")
    con.execute("""CREATE OR REPLACE TEMP TABLE nontrial AS SELECT DISTINCT sl.customer_id FROM sl
                   JOIN products p USING (sku) WHERE NOT coalesce(p.is_trial, false)""")
    # the customer's own rhythm for a sku, when it has shown itself at least twice; only upsell uses it, and
    # only customers without an active subscription with 3+ orders can have one, so the window stays small
    # lists.depletion is the rule; only trial-only buyers reach this table, so the trial threshold applies
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE own_iv AS
        SELECT customer_id, sku, median(gap) AS gap FROM (
          SELECT customer_id, sku, date_diff('day', lag(d) OVER (PARTITION BY customer_id, sku ORDER BY d), d) AS gap
            FROM (SELECT DISTINCT customer_id, sku, d FROM sl
                   WHERE customer_id IN (SELECT customer_id FROM cm WHERE n >= 3 AND NOT active_sub)
                     AND customer_id NOT IN (SELECT customer_id FROM nontrial)))
         WHERE gap IS NOT NULL AND gap > 0 GROUP BY 1, 2 HAVING count(*) >= {TRIAL_MIN_GAPS}""")


def _candidates(con: duckdb.DuckDBPyConnection, s: ListSettings, as_of: date) -> dict[int, float]:
    a = lit(as_of.isoformat()) + "::DATE"
    H = s.horizon_days
    L = s.ltv
    con.execute("""CREATE OR REPLACE TEMP TABLE cand (customer_id VARCHAR, segment VARCHAR, sub_segment VARCHAR,
                   sku VARCHAR, offer_sku VARCHAR, reason VARCHAR, cfrom DATE, cuntil DATE, value DOUBLE)""")
    con.execute(f"""
        INSERT INTO cand
        SELECT customer_id, 'dormant',
               CASE WHEN n = 1 THEN 'one_time' WHEN n >= {s.loyal_min_orders} THEN 'loyal' ELSE 'repeat' END, '', '',
               'last purchase ' || last_d || ' (' || date_diff('day', last_d, {a}) || ' days ago), ' || n ||
               ' orders, ¥' || CAST(round(revenue) AS BIGINT) || ', P(alive) ' || round(p_alive, 2),
               {a}, {a} + {H},
               {L.margin} * aov + p_alive * {ltv_sql('aov', 'freq', L)}
          FROM cm
         WHERE n >= 1 AND NOT active_sub AND date_diff('day', last_d, {a}) > {s.dormant_min_days}
           AND date_diff('day', last_d, {a}) <= {s.dormant_max_days}""")
    # Kaplan-Meier hazard per shipment number: C(k) cancelled at k over C(k) + R(k) that went past k
    con.execute("""
        CREATE OR REPLACE TEMP TABLE haz AS
        WITH n AS (SELECT shipments_count AS k, count(*) AS n, count(*) FILTER (WHERE status = 'cancelled') AS c
                     FROM subscriptions GROUP BY 1)
        SELECT k, c, coalesce(sum(n) OVER (ORDER BY k ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS r
          FROM n""")
    haz_rows = con.execute("SELECT k, c, r FROM haz ORDER BY k").fetchall()
    hazard = {int(k): (c / (c + r) if c + r else 0.0) for k, c, r in haz_rows}
    rem = remaining_shipments(hazard)
    con.execute("CREATE OR REPLACE TEMP TABLE hz (k BIGINT, h DOUBLE, rem DOUBLE)")
    if hazard:
        con.executemany("INSERT INTO hz VALUES (?, ?, ?)", [[k, h, rem[k]] for k, h in hazard.items()])
    lo, hi = s.pre_churn_days_before
    con.execute(f"""
        INSERT INTO cand
        SELECT customer_id, 'pre_churn', 'after_' || k, sku, sku,
               'subscription ' || subscription_id || ' (' || sku || ') after shipment ' || k || ': cancel hazard ' ||
               round(h, 2) || ', next ship ' || next_ship_date,
               next_ship_date - {lo}, next_ship_date - {hi}, value
          FROM (SELECT s.*, hz.k, hz.h,
                       hz.h * {ltv_sql('price', '365.0 / iv', L)} * least(1.0, hz.rem / ({L.years} * 365.0 / iv)) AS value
                  FROM (SELECT s.*, coalesce(p.price, 0) * s.quantity AS price,
                               greatest(coalesce(s.interval_days, CAST(p.days_per_unit * s.quantity AS BIGINT), 30), 1) AS iv
                          FROM subscriptions s LEFT JOIN products p USING (sku)) s
                  JOIN hz ON hz.k = s.shipments_count
                 WHERE s.status = 'active' AND s.next_ship_date IS NOT NULL AND hz.h >= {s.pre_churn_min_hazard})
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY value DESC, subscription_id) = 1""")
    con.execute(f"""
        INSERT INTO cand
        WITH eligible AS (
          SELECT cm.* FROM cm
           WHERE n >= 1 AND NOT active_sub AND (n = 1 OR customer_id NOT IN (SELECT customer_id FROM nontrial))),
        lines AS (
          SELECT sl.customer_id, sl.sku, sl.d, e.last_order_any,
                 sl.d + {depletion_days_sql('iv.gap', 'sl.quantity', 'p.days_per_unit')} AS dep,
                 iv.gap IS NOT NULL AS own,
                 coalesce(nullif(p.upgrade_sku, ''), sl.sku) AS target
            FROM sl JOIN eligible e ON e.customer_id = sl.customer_id AND sl.d = e.last_d
            JOIN products p USING (sku) LEFT JOIN own_iv iv ON iv.customer_id = sl.customer_id AND iv.sku = sl.sku
           WHERE coalesce(iv.gap, sl.quantity * p.days_per_unit) IS NOT NULL
          QUALIFY row_number() OVER (PARTITION BY sl.customer_id ORDER BY dep DESC, sl.sku) = 1)
        SELECT l.customer_id, 'upsell', CASE WHEN coalesce(p0.is_trial, false) THEN 'trial' ELSE 'one_time' END, l.sku,
               l.target,
               l.sku || ' bought ' || l.d || ', runs out ' || l.dep || CASE WHEN l.own THEN ' (own rhythm)' ELSE '' END ||
               '; offer ' || l.target || ' subscription',
               greatest(l.dep - {s.upsell_days_before}, l.last_order_any + {s.cooling_off_days}),
               l.dep + {s.upsell_days_after},
               {ltv_sql('coalesce(t.price, 0)', '365.0 / greatest(coalesce(t.days_per_unit, 30), 1)', L)}
          FROM lines l LEFT JOIN products t ON t.sku = l.target LEFT JOIN products p0 ON p0.sku = l.sku""")
    con.execute(f"""
        INSERT INTO cand
        WITH rel AS (
          SELECT s.customer_id, s.subscription_id, s.sku AS base, unnest(p.related_skus) AS rsku,
                 generate_subscripts(p.related_skus, 1) AS pos
            FROM subscriptions s JOIN products p USING (sku) WHERE s.status = 'active'),
        recent AS (SELECT DISTINCT customer_id, sku FROM sl WHERE d >= {a} - {s.cross_sell_lookback_days}
                   UNION SELECT customer_id, sku FROM subscriptions WHERE status = 'active')
        SELECT r.customer_id, 'cross_sell', r.base, r.base, r.rsku,
               'subscribes to ' || r.base || ', has not bought related ' || r.rsku || ' in {s.cross_sell_lookback_days} days',
               {a}, {a} + {H},
               {ltv_sql('coalesce(t.price, 0)', '365.0 / greatest(coalesce(t.days_per_unit, 30), 1)', L)}
          FROM rel r JOIN products t ON t.sku = r.rsku
         WHERE (r.customer_id, r.rsku) NOT IN (SELECT customer_id, sku FROM recent)
        QUALIFY row_number() OVER (PARTITION BY r.customer_id ORDER BY r.pos, r.subscription_id) = 1""")
    return hazard


def _suppress(con: duckdb.DuckDBPyConnection, s: ListSettings, as_of: date) -> None:
    a = lit(as_of.isoformat()) + "::DATE"
    H = s.horizon_days
    hard = ", ".join(lit(k) for k in HARD_KINDS)
    # numbers never to dial: blocked by phone, or belonging to a customer blocked outright
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE hard AS
        SELECT * FROM blocks_norm WHERE kind IN ({hard}) AND NOT (kind = 'refusal' AND product_scope <> '')""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE blocked_numbers AS
        SELECT e164, min(kind) AS kind, min(ref) AS ref FROM (
          SELECT e164, kind, ref FROM hard WHERE e164 <> ''
          UNION ALL SELECT p.e164, h.kind, 'a number of blocked customer ' || h.customer_id || ', ' || h.ref
            FROM hard h JOIN phones p ON p.customer_id = h.customer_id
           WHERE h.customer_id <> '') GROUP BY 1""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE cust_block AS
        SELECT customer_id, kind FROM (
          SELECT customer_id, kind FROM hard WHERE customer_id <> ''
          UNION ALL SELECT p.customer_id, b.kind FROM phones p JOIN blocked_numbers b USING (e164))""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE pre_supp AS
        SELECT c.customer_id,
          CASE WHEN coalesce(c.withdrawn, false) THEN 'withdrawn'
               WHEN NOT coalesce(c.tel_ok, true) THEN 'tel_ng'
               WHEN coalesce(c.caution, false) THEN 'caution'
               WHEN c.customer_id IN (SELECT customer_id FROM cust_block WHERE kind = 'dnc') THEN 'dnc'
               WHEN c.customer_id IN (SELECT customer_id FROM cust_block WHERE kind = 'refusal') THEN 'refusal'
               WHEN c.customer_id IN (SELECT customer_id FROM cust_block WHERE kind = 'no_consent') THEN 'no_consent'
          END AS reason
          FROM customers c""")
    # a customer dropped for one of their numbers leaves a line saying which number and which block (the block
    # file names the number, not this customer); blocked by their own id, the block's line already says so
    con.execute("""
        INSERT INTO rejects SELECT p.__file, p.__line, p.col, p.raw,
               'number blocked: customer ' || p.customer_id || ' not listed (' || b.kind || ', ' || b.ref || ')', 'flag'
          FROM pre_supp ps JOIN phones p USING (customer_id) JOIN blocked_numbers b USING (e164)
         WHERE ps.reason IN ('dnc', 'refusal', 'no_consent')
           AND ps.customer_id NOT IN (SELECT customer_id FROM hard WHERE customer_id <> '')
        QUALIFY row_number() OVER (PARTITION BY p.customer_id ORDER BY b.kind = ps.reason DESC, p.cell, p.idx) = 1""")
    # one number, one customer: the most recent buyer keeps a shared number
    con.execute("""
        CREATE OR REPLACE TEMP TABLE ph_rank AS
        SELECT p.*, row_number() OVER (PARTITION BY p.e164 ORDER BY cm.last_d DESC NULLS LAST, p.customer_id) AS owner_rank,
               first_value(p.customer_id) OVER (PARTITION BY p.e164 ORDER BY cm.last_d DESC NULLS LAST, p.customer_id) AS owner
          FROM phones p JOIN pre_supp ps USING (customer_id) JOIN cm USING (customer_id) WHERE ps.reason IS NULL""")
    con.execute("INSERT INTO rejects SELECT __file, __line, col, raw, 'phone duplicate_phone (kept for customer ' || "
                "owner || ')', 'cell' FROM ph_rank WHERE owner_rank > 1")
    # a customer's numbers mobile first, then in cell order: sorting the (not mobile, cell, idx, number) structs
    # of each list gives that order ((cell, idx) is unique for a customer) at about 2/3 of the CPU of list(...
    # ORDER BY ...), which sorts group by group
    con.execute("""
        CREATE OR REPLACE TEMP TABLE usable AS
        SELECT customer_id, list_transform(list_sort(list({'m': kind <> 'mobile', 'c': cell, 'i': idx, 'e': e164})),
                                           lambda x: x.e) AS phones
          FROM ph_rank WHERE owner_rank = 1 GROUP BY 1""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE cust_supp AS
        SELECT ps.customer_id, coalesce(ps.reason,
          CASE WHEN u.customer_id IS NOT NULL THEN NULL
               WHEN ps.customer_id IN (SELECT customer_id FROM ph_rank) THEN 'duplicate_phone'
               WHEN ps.customer_id IN (SELECT customer_id FROM cell_res WHERE reason IN
                    ('toll_free', 'premium_rate', 'shared_cost', 'pager', 'personal_number', 'voicemail',
                     'not_consumer_number')) THEN 'non_consumer_number'
               WHEN ps.customer_id IN (SELECT customer_id FROM cell_res WHERE reason <> '') THEN 'invalid_phone'
               ELSE 'no_phone' END) AS reason, u.phones
          FROM pre_supp ps LEFT JOIN usable u USING (customer_id)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE locks AS
        SELECT customer_id, max(until) AS until FROM (
          SELECT customer_id, until FROM blocks_norm WHERE kind = 'abandon_lock' AND customer_id <> ''
          UNION ALL SELECT p.customer_id, b.until FROM blocks_norm b JOIN phones p USING (e164)
           WHERE b.kind = 'abandon_lock' AND b.e164 <> '') GROUP BY 1""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE scoped AS
        SELECT DISTINCT customer_id, product_scope FROM (
          SELECT customer_id, product_scope FROM blocks_norm WHERE kind = 'refusal' AND product_scope <> ''
           AND customer_id <> ''
          UNION ALL SELECT p.customer_id, b.product_scope FROM blocks_norm b JOIN phones p USING (e164)
           WHERE b.kind = 'refusal' AND b.product_scope <> '' AND b.e164 <> '')""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE judged AS
        SELECT c.*, greatest(c.cfrom, {a}, coalesce(lk.until, {a})) AS eff_from,
          CASE WHEN c.cfrom > {a} + {H} OR c.cuntil < {a} THEN 'outside_horizon' END AS horizon,
          coalesce(cs.reason,
            CASE WHEN c.offer_sku <> '' AND (c.customer_id, c.offer_sku) IN (SELECT customer_id, product_scope FROM scoped)
                   THEN 'refusal_product'
                 WHEN (c.customer_id, c.segment) IN (SELECT customer_id, segment FROM exhausted) THEN 'max_attempts'
                 WHEN lk.until IS NOT NULL AND lk.until > c.cuntil THEN 'abandon_lock' END) AS supp,
          cs.phones
          FROM cand c JOIN cust_supp cs USING (customer_id) LEFT JOIN locks lk USING (customer_id)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE suppressed AS
                   SELECT customer_id, segment, supp AS reason FROM judged WHERE horizon IS NULL AND supp IS NOT NULL""")
    pr = s.p_convert
    pconv = "CASE segment " + " ".join(f"WHEN {lit(k)} THEN {float(v)}" for k, v in pr.items()) + " ELSE 0 END"
    con.execute(f"""
        CREATE OR REPLACE TABLE entries AS
        SELECT j.customer_id, segment, sub_segment, offer_sku, sku AS qualifying_sku, reason, phones,
               round({s.p_reach} * {pconv} * value - {s.cost_per_attempt}, 2) AS priority,
               eff_from AS cfrom, cuntil, cu.name
          FROM judged j JOIN customers cu USING (customer_id) WHERE horizon IS NULL AND supp IS NULL""")


def _summary(con: duckdb.DuckDBPyConnection, loader: Loader, as_of: date, phone_stats: dict[str, int],
             hazard: dict[int, float]) -> dict[str, Any]:
    def pairs(sql: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in con.execute(sql).fetchall()}

    n_customers = int(_one(con, "SELECT count(*) FROM customers") or 0)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE buckets AS
        SELECT c.customer_id,
          CASE WHEN c.customer_id IN (SELECT customer_id FROM entries) THEN 'listed'
               WHEN c.customer_id IN (SELECT customer_id FROM suppressed) THEN 'suppressed'
               ELSE 'not_eligible' END AS bucket,
          CASE WHEN c.customer_id IN (SELECT customer_id FROM entries) THEN ''
               WHEN c.customer_id IN (SELECT customer_id FROM suppressed) THEN
                    (SELECT min(reason) FROM suppressed s WHERE s.customer_id = c.customer_id)
               WHEN c.customer_id IN (SELECT customer_id FROM judged) THEN 'outside_horizon'
               WHEN cm.n = 0 THEN 'no_shipped_order'
               WHEN cm.active_sub THEN 'active_subscriber_no_rule'
               ELSE 'no_rule_matched' END AS reason
          FROM customers c JOIN cm USING (customer_id)""")
    b = pairs("SELECT bucket, count(*) FROM buckets GROUP BY 1")
    files = loader.files_by_table.get("customers", [])
    cust_read = sum(loader.rows_read.get(f, 0) for f in files)
    cust_rej = int(_one(con, "SELECT count(DISTINCT (file, line)) FROM rejects WHERE level = 'row' AND "
                             "list_contains(?::VARCHAR[], file)", [files]) or 0)
    listed, supp, ne = b.get("listed", 0), b.get("suppressed", 0), b.get("not_eligible", 0)
    return {
        "as_of": as_of.isoformat(),
        "rows_read": loader.rows_read,
        "rejected": pairs("SELECT regexp_replace(reason, '(: .*| \\(.*)$', ''), count(*) FROM rejects GROUP BY 1 ORDER BY 1"),
        "suppressed": pairs("SELECT reason, count(*) FROM suppressed GROUP BY 1 ORDER BY 1"),
        "suppressed_customers": pairs("SELECT reason, count(*) FROM buckets WHERE bucket = 'suppressed' GROUP BY 1 ORDER BY 1"),
        "not_eligible": pairs("SELECT reason, count(*) FROM buckets WHERE bucket = 'not_eligible' GROUP BY 1 ORDER BY 1"),
        "entries": {seg: int(_one(con, "SELECT count(*) FROM entries WHERE segment = ?", [seg]) or 0) for seg in SEGMENTS},
        "entries_total": int(_one(con, "SELECT count(*) FROM entries") or 0),
        "hazard": {str(k): round(v, 4) for k, v in sorted(hazard.items())},
        "blocks": {
            "rows": int(_one(con, "SELECT count(*) FROM blocks") or 0),
            "unreadable_phone": int(_one(con, "SELECT count(*) FROM bad_block_phone") or 0),
            "unmatched_customer": int(_one(con, "SELECT count(*) FROM rejects WHERE reason LIKE 'warning: block matches no customer%'") or 0),
            "unmatched_product": int(_one(con, "SELECT count(*) FROM rejects WHERE reason LIKE 'warning: block matches no product%'") or 0),
        },
        "phones": phone_stats,
        "notes": loader.notes,
        "conservation": {
            "customers": n_customers, "listed": listed, "suppressed": supp, "not_eligible": ne,
            "customers_ok": listed + supp + ne == n_customers,
            "customer_rows_read": cust_read, "customer_rows_rejected": cust_rej,
            "rows_ok": cust_read == n_customers + cust_rej,
        },
    }


def _write_call_list(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, tmp: Path,
                     with_group: bool = False) -> None:
    """call_list.csv, in UTF-8 or (for Japanese Excel) UTF-8 with a BOM or CP932."""
    target = path if encoding == "utf-8" else tmp / "call_list_utf8.csv"
    group = ", 'treatment' AS \"group\"" if with_group else ""
    # text cells from the CRM (names, skus, ids) go through the one CSV-injection rule (lists.csvsafe)
    con.execute(f"""COPY (SELECT {sql_safe('e.customer_id')} AS customer_id, segment, phones[1] AS phone_e164,
                           {sql_safe("array_to_string(phones, ';')")} AS phones,
                           {sql_safe('reason')} AS reason, priority, cfrom AS callable_from, cuntil AS callable_until,
                           {sql_safe("coalesce(e.name, '')")} AS name, {sql_safe('offer_sku')} AS offer_sku,
                           {sql_safe("coalesce(p.name, '')")} AS offer_name, {sql_safe('qualifying_sku')} AS qualifying_sku
                           {group}
                      FROM entries e LEFT JOIN products p ON p.sku = e.offer_sku
                     ORDER BY priority DESC, e.customer_id, segment)
                    TO {lit(str(target))} (HEADER, DELIMITER ',')""")
    if target == path:
        return
    text = target.read_text(encoding="utf-8")
    if encoding == "cp932":
        path.write_bytes(text.encode("cp932", errors="replace"))
    else:
        path.write_text(text, encoding="utf-8-sig")
    target.unlink()


def build_lists(mapping: Mapping, input_dir: str | Path, out_dir: str | Path, as_of: date,
                settings: ListSettings | None = None, suppressions: Suppressions | None = None,
                phone_cache: str | Path | None = None, table_cache: str | Path | None = None, memory_limit: str = "1500MB", threads: int | None = None,
                log: Callable[[str], None] | None = None) -> BuildResult:
    """Build the lists; writes call_list.csv, rejects.csv, summary.json into `out_dir`.

    The returned BuildResult keeps the DuckDB connection open for the caller to stream entries; close it.
    `table_cache` (a directory) keeps the typed tables, so a rebuild re-ingests only changed inputs.
    """
    s = settings or ListSettings()
    sup = suppressions or Suppressions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _m: None)
    tmpdir = Path(tempfile.mkdtemp(prefix="lists_", dir=out))
    con = duckdb.connect()
    con.execute(f"SET memory_limit = {lit(memory_limit)}")
    # spill files outlive this function (the caller streams from the connection): removed on close()
    spill = Path(tempfile.mkdtemp(prefix="lists_spill_", dir=out))
    con.execute(f"SET temp_directory = {lit(str(spill))}")
    con.execute("SET preserve_insertion_order = true")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        loader = Loader(con, mapping, Path(input_dir), tmpdir, log=say)
        tcache = TableCache(Path(table_cache), log=say) if table_cache else None
        loader.load_all(tcache)
        dated, touched_ids = _date_sanity(con, loader, as_of)
        t["load"] = time.perf_counter() - t0
        say("parsing phones")
        stats = _phones(con, mapping, s.region, Path(phone_cache) if phone_cache else None, tmpdir, tcache)
        blocks_parsed = _blocks(con, sup, s.region, as_of, tmpdir, s.block_customer_on_bad_phone,
                                Path(phone_cache).with_name(Path(phone_cache).stem + "_blocks.parquet")
                                if phone_cache else None)
        t["phones"] = time.perf_counter() - t0 - sum(t.values())
        say("segments")
        _estimate_shipments(con, mapping, as_of, loader)
        _metrics(con, s, as_of)
        hazard = _candidates(con, s, as_of)
        unpaid_note = add_unpaid_candidates(con, s.unpaid, as_of)
        _suppress(con, s, as_of)
        held = apply_holdout(con, s.holdout, as_of) if s.holdout.enabled else None
        if held is None:
            empty_holdout(con)
        t["rules"] = time.perf_counter() - t0 - sum(t.values())
        summary = _summary(con, loader, as_of, stats, hazard)
        summary["blocks"]["phones_parsed_now"] = blocks_parsed
        # which compliance columns tonight's files have: the caller refuses a build that lost one (lists.compliance)
        summary["compliance_columns"] = presence(mapping, {t: loader.files_for(t) for t in COMPLIANCE_FIELDS})
        if held is not None:
            summary["holdout"] = held
        if s.unpaid.enabled:
            summary["entries"]["unpaid"] = int(_one(con, "SELECT count(*) FROM entries WHERE segment = 'unpaid'") or 0)
        if unpaid_note:
            summary["notes"] = [*summary.get("notes", []), unpaid_note]
        # with a hold-out, every listed row says which group it is in (always treatment: control is not listed)
        _write_call_list(con, out / "call_list.csv", s.csv_encoding, tmpdir, with_group=held is not None)
        if held is not None:
            con.execute(f"""COPY (SELECT {sql_safe('customer_id')} AS customer_id, segment, grp AS "group", period
                                  FROM holdout ORDER BY holdout.customer_id, segment)
                            TO {lit(str(out / 'holdout.csv'))} (HEADER, DELIMITER ',')""")
        con.execute(f"""COPY (SELECT {sql_safe('file')} AS file, line, {sql_safe('"column"')} AS "column",
                                     {sql_safe('value')} AS value, {sql_safe('reason')} AS reason
                                FROM rejects r ORDER BY r.file, r.line, r."column", r.reason, r.value)
                        TO {lit(str(out / 'rejects.csv'))} (HEADER, DELIMITER ',')""")
        for private in ("rejects.csv", "call_list.csv"):
            os.chmod(out / private, 0o600)  # raw numbers, names and e-mails: the operator's eyes only
        t["write"] = time.perf_counter() - t0 - sum(t.values())
        # keep what the caller streams (canonical tables, entries, suppressed, blocks); free the rest
        for tmp_table in ("cells", "pcache", "cell_res", "misses", "ord_val", "sl", "own_iv", "nontrial", "cand", "judged",
                          "ph_rank", "usable", "cust_supp", "pre_supp", "buckets", "rejects", "phones", "hz", "haz"):
            con.execute(f"DROP TABLE IF EXISTS {tmp_table}")
        if tcache is not None:
            summary["table_cache"] = tcache.stats()
        summary["timings_s"] = {k: round(v, 3) for k, v in t.items()}
        (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    except BaseException:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
        raise
    finally:
        for p in sorted(tmpdir.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        tmpdir.rmdir()
    keys = dict(tcache.keys) if tcache is not None else {}
    if "orders" in keys:  # the orders the date checks dropped or changed tonight (the mirror's orders depend on them)
        keys["order_dates"] = dated or "none"
    return BuildResult(con=con, out_dir=out, summary=summary, timings=t, spill_dir=spill, table_keys=keys,
                       touched_orders=touched_ids)
