"""LTV formulas and the pieces of the expected value of a call, as SQL (for the bulk build) and Python.

EV = P(reach) x P(convert | segment) x delta-value - cost per attempt; delta-value is built on the LTV
formula chosen in `[lists.ltv]` so a business ranks calls by the definition of value it already reports.
"""

from __future__ import annotations

from lists.settings import LtvSettings

FORMULAS = ("aov_freq_years", "revenue_margin_years", "aov_freq_years_minus_cost", "discounted_profit")


def _annuity(years: float, rate: float) -> float:
    """Sum of 1/(1+r)^t for t = 1..years (years may be fractional)."""
    if rate <= 0:
        return years
    return float((1 - (1 + rate) ** -years) / rate)


def ltv(aov: float, freq_per_year: float, s: LtvSettings) -> float:
    """Customer lifetime value in yen for one customer (the scalar twin of `ltv_sql`)."""
    if s.formula == "aov_freq_years":
        return aov * freq_per_year * s.years
    if s.formula == "revenue_margin_years":
        return aov * freq_per_year * s.margin * s.years
    if s.formula == "aov_freq_years_minus_cost":
        return aov * freq_per_year * s.years - (s.acquisition_cost + s.retention_cost)
    if s.formula == "discounted_profit":
        return aov * freq_per_year * s.margin * _annuity(s.years, s.discount_rate)
    raise ValueError(f"unknown LTV formula {s.formula!r} (expected one of {', '.join(FORMULAS)})")


def ltv_sql(aov: str, freq: str, s: LtvSettings) -> str:
    """The same formula as a SQL expression over columns `aov` and `freq`."""
    base = f"(({aov}) * ({freq}))"
    if s.formula == "aov_freq_years":
        return f"({base} * {float(s.years)})"
    if s.formula == "revenue_margin_years":
        return f"({base} * {float(s.margin)} * {float(s.years)})"
    if s.formula == "aov_freq_years_minus_cost":
        return f"({base} * {float(s.years)} - {float(s.acquisition_cost + s.retention_cost)})"
    if s.formula == "discounted_profit":
        return f"({base} * {float(s.margin)} * {_annuity(s.years, s.discount_rate)})"
    raise ValueError(f"unknown LTV formula {s.formula!r} (expected one of {', '.join(FORMULAS)})")


def p_alive(x: float, t_x: float, T: float, r: float, alpha: float, a: float, b: float) -> float:
    """BG/NBD P(alive | x repeat purchases, last at t_x, observed for T); 1 when there is no repeat."""
    if x <= 0:
        return 1.0
    return float(1.0 / (1.0 + (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x)) ** (r + x)))


def p_alive_sql(x: str, t_x: str, T: str, r: float, alpha: float, a: float, b: float) -> str:
    return (f"(CASE WHEN ({x}) <= 0 THEN 1.0 ELSE 1.0 / (1.0 + ({a} / ({b} + ({x}) - 1)) * "
            f"power(({alpha} + ({T})) / ({alpha} + ({t_x})), {r} + ({x}))) END)")


def remaining_shipments(hazard: dict[int, float]) -> dict[int, float]:
    """Expected further shipments of a subscription now at k: sum over j > k of S(j)/S(k) (Kaplan-Meier).

    Beyond the last shipment number observed the curve stops, so the value is never extrapolated.
    """
    if not hazard:
        return {}
    kmax = max(hazard)
    out: dict[int, float] = {}
    for k in hazard:
        total, surv = 0.0, 1.0
        for i in range(k, kmax):
            surv *= 1.0 - hazard.get(i, 0.0)
            total += surv
        out[k] = total
    return out
