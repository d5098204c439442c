"""Read a later CRM export back to measure what happened to customers after a campaign (the lift report).

The same mapping and loader as the nightly build, so "after" is read exactly as "before" was: bad rows are
rejected the same way and counted. Returns plain per-customer outcomes; the statistics live in the dialer.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from lists.ingest import Loader
from lists.mapping import Mapping

BUYING = ("shipped", "pending")  # an order that was not cancelled or returned counts as a purchase


@dataclass(frozen=True)
class CustomerOutcome:
    customer_id: str
    orders: int  # purchases in the customer's window
    revenue: float
    active_subscription: bool  # at the time of the export


@dataclass(frozen=True)
class Readback:
    outcomes: dict[str, CustomerOutcome]
    rows_read: dict[str, int]
    rejected: int
    notes: list[str]


def read_outcomes(mapping: Mapping, input_dir: Path, windows: Iterable[tuple[str, date, date]],
                  memory_limit: str = "1000MB") -> Readback:
    """Per customer: purchases and revenue ordered in [start, end] (inclusive), and an active subscription now.

    `windows`: (customer_id, start, end). Customers missing from the export count as no purchase.
    """
    work = Path(tempfile.mkdtemp(prefix="readback_"))
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        loader = Loader(con, mapping, input_dir, work)
        loader.load_all(None)
        con.execute("CREATE TEMP TABLE win (customer_id VARCHAR, d0 DATE, d1 DATE)")
        con.executemany("INSERT INTO win VALUES (?, ?, ?)", [[c, a, b] for c, a, b in windows])
        buying = ", ".join(f"'{s}'" for s in BUYING)
        rows = con.execute(f"""
            SELECT w.customer_id,
                   count(o.order_id) AS n, coalesce(sum(o.total), 0) AS revenue,
                   w.customer_id IN (SELECT customer_id FROM subscriptions WHERE status = 'active') AS active
              FROM win w LEFT JOIN orders o ON o.customer_id = w.customer_id AND o.status IN ({buying})
                   AND coalesce(o.ordered_at, o.shipped_at) BETWEEN w.d0 AND w.d1
             GROUP BY w.customer_id""").fetchall()
        rej = con.execute("SELECT count(*) FROM rejects WHERE level = 'row'").fetchone()
        return Readback(
            outcomes={str(r[0]): CustomerOutcome(str(r[0]), int(r[1]), float(r[2]), bool(r[3])) for r in rows},
            rows_read=dict(loader.rows_read), rejected=int(rej[0]) if rej else 0, notes=list(loader.notes))
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
