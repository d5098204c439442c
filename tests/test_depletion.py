"""One depletion rule for the list builder (SQL) and the screen pop (Python): they must give the same day."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from lists.depletion import NOMINAL, OWN, TRIAL_MIN_GAPS, depletion_date, depletion_days_sql

BASE = date(2026, 1, 1)


def _sql_depletion(purchases: list[tuple[date, int]], days_per_unit: float) -> date:
    """The builder's own_iv + dep expressions (lists/build.py) on one customer's trial purchases."""
    con = duckdb.connect()
    con.execute("CREATE TABLE sl (d DATE, quantity INTEGER)")
    con.executemany("INSERT INTO sl VALUES (?, ?)", purchases)
    row = con.execute(f"""
        WITH iv AS (SELECT median(gap) AS gap FROM (
                      SELECT date_diff('day', lag(d) OVER (ORDER BY d), d) AS gap FROM (SELECT DISTINCT d FROM sl))
                    WHERE gap IS NOT NULL AND gap > 0 HAVING count(*) >= {TRIAL_MIN_GAPS}),
             last AS (SELECT d, max(quantity) AS quantity FROM sl WHERE d = (SELECT max(d) FROM sl) GROUP BY d)
        SELECT last.d + {depletion_days_sql('iv.gap', 'last.quantity', '?')}
          FROM last LEFT JOIN iv ON true""", [days_per_unit]).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 3)), min_size=1, max_size=6),
       st.sampled_from([7.0, 14.0, 30.0, 10.5]))
def test_builder_and_screen_pop_agree(raw: list[tuple[int, int]], days_per_unit: float) -> None:
    purchases = [(BASE + timedelta(days=d), q) for d, q in raw]
    day, how = depletion_date(purchases, days_per_unit, is_trial=True)
    assert day == _sql_depletion(purchases, days_per_unit)
    distinct = len({d for d, _ in purchases})
    assert how == (OWN if distinct - 1 >= TRIAL_MIN_GAPS else NOMINAL)


def test_median_not_mean() -> None:
    """One late reorder does not move a customer's rhythm (the console used to take the mean)."""
    days = [BASE, BASE + timedelta(days=30), BASE + timedelta(days=60), BASE + timedelta(days=150)]
    assert depletion_date([(d, 1) for d in days], 30.0) == (days[-1] + timedelta(days=30), OWN)
    # a regular product trusts one gap; a trial pack needs two
    two = [(BASE, 1), (BASE + timedelta(days=20), 1)]
    assert depletion_date(two, 30.0) == (BASE + timedelta(days=40), OWN)
    assert depletion_date(two, 7.0, is_trial=True) == (BASE + timedelta(days=27), NOMINAL)
