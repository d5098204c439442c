"""Rule thresholds and EV parameters, as plain data so `lists/` never needs the dialer's config loader."""

from __future__ import annotations

from dataclasses import dataclass, field

from lists.holdout import HoldoutSettings
from lists.unpaid import UnpaidSettings


@dataclass(frozen=True)
class LtvSettings:
    # aov_freq_years | revenue_margin_years | aov_freq_years_minus_cost | discounted_profit
    formula: str = "aov_freq_years"
    years: float = 5.0
    margin: float = 0.6
    acquisition_cost: float = 0.0
    retention_cost: float = 0.0
    discount_rate: float = 0.1


@dataclass(frozen=True)
class ListSettings:
    region: str = "JP"
    dormant_min_days: int = 180
    dormant_max_days: int = 1460
    loyal_min_orders: int = 5
    pre_churn_min_hazard: float = 0.15
    pre_churn_days_before: tuple[int, int] = (5, 1)
    upsell_days_before: int = 5
    upsell_days_after: int = 7
    cooling_off_days: int = 8
    cross_sell_lookback_days: int = 365
    horizon_days: int = 14
    cost_per_attempt: float = 50.0
    p_reach: float = 0.5
    # P(convert | segment); pre_churn's is P(save). Practitioner figures from the domain brief.
    p_convert: dict[str, float] = field(
        default_factory=lambda: {"dormant": 0.05, "pre_churn": 0.3, "upsell": 0.4, "cross_sell": 0.3}
    )
    # BG/NBD parameters (per week) for P(alive); the CDNOW fit until a weekly fit replaces them
    bgnbd: tuple[float, float, float, float] = (0.243, 4.414, 0.793, 2.426)
    ltv: LtvSettings = field(default_factory=LtvSettings)
    holdout: HoldoutSettings = field(default_factory=HoldoutSettings)
    unpaid: UnpaidSettings = field(default_factory=UnpaidSettings)
    # a block row whose number cannot be read still blocks the customer it names (the safe reading)
    block_customer_on_bad_phone: bool = True
    csv_encoding: str = "utf-8"  # call_list.csv: utf-8 | utf-8-sig | cp932 (the last two open in Japanese Excel)
