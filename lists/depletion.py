"""When a customer's product runs out: the one rule, used by the list builder and the agent's screen pop.

Cosmetics and supplements are used at each customer's own pace, so the customer's own repurchase interval
wins when the history shows it: the median gap between distinct purchase days of the product (a median, so
one late reorder does not move it), once there are enough gaps: one for a regular product, two for a trial
pack (buying a trial twice is two trials, not yet a rhythm). Otherwise the product's nominal days per unit
times the quantity bought on the last day. The date is the last purchase day plus that many days (rounded
half up).

`lists/build.py` runs the same rule in SQL for the customers it asks about (trial-only buyers: hence
`TRIAL_MIN_GAPS` in its HAVING clause); tests hold the two to the same answers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from datetime import date, timedelta

MIN_GAPS = 1  # gaps needed before the customer's own rhythm is trusted, for a regular product
TRIAL_MIN_GAPS = 2  # ... and for a trial pack (three purchase days)
OWN = "own repurchase interval"
NOMINAL = "product days per unit"


def depletion_days_sql(own_gap: str, quantity: str, days_per_unit: str) -> str:
    """The SQL twin of `depletion_date`'s day count: own median gap, else quantity x days per unit."""
    return f"CAST(round(coalesce({own_gap}, {quantity} * {days_per_unit})) AS INTEGER)"


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def depletion_date(purchases: Iterable[tuple[date, int]], days_per_unit: float | None,
                   is_trial: bool = False) -> tuple[date | None, str]:
    """(day, how) from the customer's (purchase day, quantity) of ONE product; (None, "") when unknown."""
    by_day: dict[date, int] = {}
    for day, qty in purchases:
        by_day[day] = max(by_day.get(day, 0), qty)
    if not by_day:
        return None, ""
    days = sorted(by_day)
    last = days[-1]
    gaps = [(b - a).days for a, b in zip(days, days[1:], strict=False) if (b - a).days > 0]
    if len(gaps) >= (TRIAL_MIN_GAPS if is_trial else MIN_GAPS):
        return last + timedelta(days=_round_half_up(statistics.median(gaps))), OWN
    if days_per_unit:
        return last + timedelta(days=_round_half_up(days_per_unit * by_day[last])), NOMINAL
    return None, ""


__all__ = ["MIN_GAPS", "NOMINAL", "OWN", "TRIAL_MIN_GAPS", "depletion_date", "depletion_days_sql"]
