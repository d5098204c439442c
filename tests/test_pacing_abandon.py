"""Abandon accounting per window and regime, and the controller's reaction to a spike."""

from __future__ import annotations

import pytest

from pacing.abandon import AbandonBook, AbandonController, poisson_sf, volume_safe_rate
from pacing.engine import Pacer, PacerConfig

H = 3600.0
D = 86400.0


def test_windows_count_what_falls_inside() -> None:
    b = AbandonBook()
    # day 0 10:00: 100 answers, 4 abandons; day 1 09:00: 50 answers, 0 abandons; day 1 11:00: 50 answers, 3 abandons
    for t0, ans, ab in ((10 * H, 100, 4), (D + 9 * H, 50, 0), (D + 11 * H, 50, 3)):
        for i in range(ans):
            b.answered(t0 + i)
        for i in range(ab):
            b.abandoned(t0 + 200 + i)
    now = D + 11 * H + 1000
    assert b.counts(now, "1h") == (3, 50)
    assert b.counts(now, "day") == (3, 100)
    assert b.counts(now, "24h") == (3, 100)          # day 0 10:00 is more than 24 h back
    assert b.counts(now, "30d") == (7, 200)
    assert b.counts(now, "campaign") == (7, 200)
    assert b.rate(now, "day") == pytest.approx(0.03)
    # a "day" window with a local midnight offset (e.g. UTC+9 -> midnight at 15:00 UTC)
    assert b.counts(now, "day", day_start_s=-9 * H) == (3, 100)
    with pytest.raises(ValueError):
        b.counts(now, "fortnight")


def test_uk_regime_counts_amd_false_positives() -> None:
    us, uk = AbandonBook("us"), AbandonBook("uk", amd_false_positive_rate=0.1)
    for b in (us, uk):
        for i in range(100):
            b.answered(float(i))
        for i in range(50):
            b.machine(float(i))
        b.abandoned(120.0)
    assert us.rate(200.0, "24h") == pytest.approx(1 / 100)
    assert uk.rate(200.0, "24h") == pytest.approx((1 + 5) / (100 + 5))


def test_pacer_reports_all_windows() -> None:
    p = Pacer(PacerConfig(abandon_window="30d"))
    for i in range(200):
        p.record_outcome(float(i), "human", 8.0)
    p.record_abandon(300.0, 2.0)
    rates = p.abandon_rates(400.0)
    assert set(rates) == {"1h", "24h", "30d", "day", "campaign", "window"}
    assert rates["window"] == rates["30d"] == pytest.approx(1 / 200)


def test_volume_safe_rate_is_lower_on_low_volume() -> None:
    lo, mid, hi = (volume_safe_rate(0.03, a, 0.02) for a in (60.0, 300.0, 3000.0))
    assert lo < mid < hi <= 0.03
    # at the safe rate the chance of breaking the limit is at most the risk
    for a in (60.0, 300.0, 3000.0):
        r = volume_safe_rate(0.03, a, 0.02)
        assert poisson_sf(int(0.03 * a) + 1, r * a) <= 0.02 + 1e-9


def _feed(c: AbandonController, n: int, every: int | None, trace: list[float]) -> None:
    for i in range(n):
        allowed, _ = c.allowed(1000.0, 0.0, 1.0)
        trace.append(allowed)
        c.observe(every is not None and i % every == every - 1)


def test_controller_reacts_to_spike_then_recovers_without_oscillating() -> None:
    c = AbandonController(target=0.02, limit=0.03, prior_bias=3.0)
    trace: list[float] = []
    _feed(c, 3000, 100, trace)            # steady: 1 % abandons
    before = trace[-1]
    _feed(c, 40, 2, trace)                # spike: 50 % of 40 answers abandoned
    after_spike = trace[-1]
    assert after_spike < 0.6 * before     # allowed risk falls at once
    rec: list[float] = []
    _feed(c, 4000, 100, rec)              # back to 1 %
    assert rec[-1] == pytest.approx(before, rel=0.25)   # recovers
    assert max(rec) <= before * 1.25                    # no overshoot above the pre-spike level
    # no oscillation: smoothed trajectory rises (almost) monotonically
    means = [sum(rec[i:i + 200]) / 200 for i in range(0, 4000, 200)]
    downs = sum(1 for a, b in zip(means, means[1:], strict=False) if b < a * 0.97)
    assert downs == 0


def test_projected_window_rate_squeezes_allowed_risk() -> None:
    c = AbandonController(target=0.02, limit=0.03)
    free, _ = c.allowed(1000.0, window_ab=0.0, window_ans=1000.0)
    tight, note = c.allowed(1000.0, window_ab=27.0, window_ans=1000.0)
    spent, _ = c.allowed(1000.0, window_ab=50.0, window_ans=1000.0)  # projection (50 + 18.5) / 2000 > 3 %
    assert spent == 0.0 < tight < free and "squeeze" in note
