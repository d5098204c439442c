"""The `unpaid` segment: customers with a small outstanding balance, reached by an SMS payment link.

A call costs more than a ¥2,000 balance is worth, and a letter takes a week; an SMS with a payment link is the
practice the domain brief describes. The segment goes through the same suppression and hold-out as the call
segments, so a customer who refused contact or is in the control group is never messaged either.

Needs `orders.balance` (the outstanding amount in yen) from the mapping; an export without it has no unpaid
segment (noted in summary.json), never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

SEGMENT = "unpaid"


@dataclass(frozen=True)
class UnpaidSettings:
    """From `[sms]`: which balances are small enough for an SMS and old enough to chase."""

    enabled: bool = False
    max_amount: float = 5000.0  # each order's balance and the customer's total must be below this (yen)
    min_age_days: int = 14  # days since the order was placed before it is chased
    max_age_days: int = 365  # older balances go to collections, not to an SMS
    window_days: int = 14  # the entry's window from as_of


def has_balance(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'").fetchall()
    return "balance" in {str(r[0]) for r in rows}


def add_unpaid_candidates(con: duckdb.DuckDBPyConnection, u: UnpaidSettings, as_of: date) -> str:
    """Insert one `unpaid` candidate per customer into `cand` and keep the amounts in `unpaid`.

    Returns a note for summary.json ("" when the segment was built normally).
    """
    con.execute("CREATE OR REPLACE TABLE unpaid (customer_id VARCHAR, order_ids VARCHAR, amount DOUBLE, since DATE)")
    if not u.enabled:
        return ""
    if not has_balance(con):
        return "unpaid: the orders mapping has no balance column; no unpaid segment"
    a = f"DATE '{as_of.isoformat()}'"
    con.execute(f"""
        INSERT INTO unpaid
        SELECT customer_id, string_agg(order_id, ';' ORDER BY order_id), sum(balance), min(d)
          FROM (SELECT o.customer_id, o.order_id, o.balance, coalesce(o.ordered_at, o.shipped_at) AS d
                  FROM orders o
                 WHERE o.customer_id IS NOT NULL AND coalesce(o.balance, 0) > 0 AND o.balance < {float(u.max_amount)!r}
                   AND o.status NOT IN ('cancelled', 'returned'))
         WHERE d IS NOT NULL AND d <= {a} - {int(u.min_age_days)} AND d >= {a} - {int(u.max_age_days)}
         GROUP BY customer_id
        HAVING sum(balance) < {float(u.max_amount)!r}""")
    con.execute(f"""
        INSERT INTO cand (customer_id, segment, sub_segment, sku, offer_sku, reason, cfrom, cuntil, value)
        SELECT customer_id, '{SEGMENT}', 'sms', '', '',
               'unpaid ¥' || CAST(round(amount) AS BIGINT) || ' on ' || order_ids || ' since ' || since,
               {a}, {a} + {int(u.window_days)}, amount
          FROM unpaid""")
    return ""
