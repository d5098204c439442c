"""Abandon accounting over the legal windows, and the closed-loop controller that keeps it low.

Why: the law measures abandons per campaign over a window (US: 30 days or the campaign, abandoned /
answered by a person; UK: 24 h midnight to midnight, with answering-machine false positives counted
as abandons). The pacer must know where each window stands, and must aim below the limit with a
margin that grows as the window's budget is spent, and that accounts for volume: with 85 answers an
hour, a 2 % average still breaks 3 % in a quarter of the hours.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from scipy.special import pdtrc

from pacing.regimes import REGIMES

WINDOWS: dict[str, float | None] = {"1h": 3600.0, "24h": 86400.0, "30d": 30 * 86400.0,
                                    "day": None, "campaign": None}
BUCKET_S = 60.0


@dataclass
class AbandonBook:
    """Per-minute buckets of (person answers, abandons, machine answers) with prefix sums."""

    regime: str = "us"
    amd_false_positive_rate: float = 0.0
    times: list[float] = field(default_factory=list)
    cum: list[tuple[float, float, float]] = field(default_factory=list)  # totals up to and incl. bucket
    # (issue 31) a regime counted per call centre (uk_ofcom): the site's other campaigns, added to every count and
    # never saved with this book (the caller rebuilds it from the store on each start, so nothing counts twice)
    others: AbandonBook | None = None

    def _add(self, now: float, ans: float, ab: float, mach: float) -> None:
        b = math.floor(now / BUCKET_S) * BUCKET_S
        last = self.cum[-1] if self.cum else (0.0, 0.0, 0.0)
        new = (last[0] + ans, last[1] + ab, last[2] + mach)
        if self.times and b <= self.times[-1]:
            self.cum[-1] = new  # late or same-minute event goes to the newest bucket
        else:
            self.times.append(b)
            self.cum.append(new)

    def answered(self, now: float) -> None:
        self._add(now, 1.0, 0.0, 0.0)

    def abandoned(self, now: float) -> None:
        self._add(now, 0.0, 1.0, 0.0)

    def machine(self, now: float) -> None:
        self._add(now, 0.0, 0.0, 1.0)

    def totals_since(self, start: float | None) -> tuple[float, float, float]:
        own = self._own_since(start)
        if self.others is None:
            return own
        o = self.others.totals_since(start)
        return own[0] + o[0], own[1] + o[1], own[2] + o[2]

    def _own_since(self, start: float | None) -> tuple[float, float, float]:
        if not self.cum:
            return 0.0, 0.0, 0.0
        last = self.cum[-1]
        if start is None:
            return last
        i = bisect.bisect_left(self.times, math.floor(start / BUCKET_S) * BUCKET_S)
        if i == 0:
            return last
        prev = self.cum[i - 1]
        return last[0] - prev[0], last[1] - prev[1], last[2] - prev[2]

    def _fp(self) -> bool:
        """Whether the regime counts AMD false positives: "uk" and every named regime (pacing.regimes) that
        says so; the legacy "us" does not."""
        r = REGIMES.get(self.regime)
        return self.regime == "uk" or (r is not None and r.count_amd_fp)

    def counts(self, now: float, window: str, day_start_s: float | None = None) -> tuple[float, float]:
        """(abandons, answers) in the window under the regime (UK and the named regimes add AMD false positives)."""
        ans, ab, mach = self.totals_since(self.window_start(now, window, day_start_s))
        if self._fp():
            fp = self.amd_false_positive_rate * mach
            return ab + fp, ans + fp
        return ab, ans

    def counts_since(self, start: float) -> tuple[float, float]:
        """(abandons, answers) since `start` (minute buckets) under the regime."""
        ans, ab, mach = self.totals_since(start)
        if self._fp():
            fp = self.amd_false_positive_rate * mach
            return ab + fp, ans + fp
        return ab, ans

    def first_time(self) -> float | None:
        """Start of the oldest bucket kept (the site's other campaigns included), None for an empty book."""
        firsts = [t for t in (self.times[0] if self.times else None,
                              self.others.first_time() if self.others is not None else None) if t is not None]
        return min(firsts) if firsts else None

    def rate(self, now: float, window: str, day_start_s: float | None = None) -> float:
        ab, ans = self.counts(now, window, day_start_s)
        return ab / ans if ans > 0 else 0.0

    @staticmethod
    def window_start(now: float, window: str, day_start_s: float | None) -> float | None:
        if window not in WINDOWS:
            raise ValueError(f"unknown abandon window {window!r}; use one of {', '.join(WINDOWS)}")
        length = WINDOWS[window]
        if length is not None:
            return now - length
        if window == "day":
            base = 0.0 if day_start_s is None else day_start_s
            return base + math.floor((now - base) / 86400.0) * 86400.0
        return None

    def prune(self, now: float) -> None:
        """Drop buckets older than 31 days (campaign totals stay in the first kept prefix)."""
        if self.others is not None:
            self.others.prune(now)
        cut = bisect.bisect_left(self.times, now - 31 * 86400.0)
        if cut > 1:
            del self.times[: cut - 1]
            del self.cum[: cut - 1]

    def to_state(self) -> dict[str, Any]:
        return {"times": list(self.times), "cum": [list(c) for c in self.cum]}

    def load_state(self, st: dict[str, Any]) -> None:
        self.times = [float(t) for t in st.get("times", [])]
        self.cum = [(float(c[0]), float(c[1]), float(c[2])) for c in st.get("cum", [])]


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam) (scipy's regularised incomplete gamma: O(1), no loop over k)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    return float(pdtrc(k - 1, lam))


def volume_safe_rate(limit: float, answers: float, risk: float) -> float:
    """Largest mean abandon rate r with P(abandons > limit * answers) <= risk, abandons ~ Poisson(r * answers).

    Why: on low volume the abandon count is lumpy; the mean must sit far below the limit for the
    window (an hour, a small campaign) to stay under it with high probability.
    """
    if answers <= 0:
        return limit
    k = math.floor(limit * answers) + 1  # first count that breaks the limit
    lo, hi = 0.0, float(k)
    for _ in range(40):
        mid = (lo + hi) / 2
        if poisson_sf(k, mid) <= risk:
            lo = mid
        else:
            hi = mid
    return min(limit, lo / answers)


@dataclass
class AbandonController:
    """Turns the abandon target into the marginal risk index the decision may take per call.

    allowed = aim / bias * squeeze, where
      * aim = min(target, volume-safe rate for an hour of answers): the goal, with a volume margin;
      * bias = realised abandon rate / risk index in force, a discounted ratio estimator (memory
        ~`memory` answers) with a prior worth `prior_abandons` abandons at `prior_bias`. The decision's
        risk index is a model (Gaussian walk, discrete horizons) that under-states real abandons by a
        factor that depends on team size and state; learning that factor online closes the loop. It is
        a ratio, not an integrator: a spike raises it at once (allowed risk falls) and it decays back
        as the spike is forgotten, with no overshoot;
      * squeeze: if the window's *projected* rate (window so far + one more hour at the realised rate)
        is above the target, allowed shrinks linearly to 0 as the projection approaches the limit.
    """

    target: float
    limit: float
    hour_risk: float = 0.005
    memory: float = 600.0
    prior_bias: float = 3.0
    prior_abandons: float = 4.0
    hour_limit: float | None = None  # the rolling-hour cap the volume margin aims under (None: the limit)
    ab: float = 0.0
    ans: float = 0.0
    index_sum: float = 0.0
    current: float = 0.0
    _safe_cache: dict[tuple[int, float, float], float] = field(default_factory=dict)

    def observe(self, abandoned: bool) -> None:
        keep = 1.0 - 1.0 / self.memory
        self.ab = self.ab * keep + (1.0 if abandoned else 0.0)
        self.ans = self.ans * keep + 1.0
        self.index_sum = self.index_sum * keep + self.current

    def aim(self, answers_per_hour: float) -> float:
        # coarse key (2 significant digits): the volume-safe rate moves slowly with volume, and a
        # cache miss must stay rare at 500 agents where answers an hour change with every call
        aph = float(f"{max(answers_per_hour, 0.0):.2g}")
        hl = self.limit if self.hour_limit is None else self.hour_limit
        key = (int(round(aph)), hl, self.hour_risk)
        safe = self._safe_cache.get(key)
        if safe is None:
            safe = volume_safe_rate(hl, float(key[0]), self.hour_risk)
            if len(self._safe_cache) > 4096:
                self._safe_cache.clear()
            self._safe_cache[key] = safe
        return max(1e-4, min(self.target, safe))

    def bias(self, aim: float) -> float:
        k = self.prior_abandons
        return (self.ab + k) / (self.index_sum + k / self.prior_bias)

    def realised(self, aim: float) -> float:
        return (self.ab + self.prior_abandons) / (self.ans + self.prior_abandons / aim)

    def allowed(self, answers_per_hour: float, window_ab: float, window_ans: float) -> tuple[float, str]:
        aim = self.aim(answers_per_hour)
        bias = min(100.0, max(0.5, self.bias(aim)))
        out = aim / bias
        real = self.realised(aim)
        tot = window_ans + answers_per_hour
        proj = (window_ab + real * answers_per_hour) / tot if tot > 0 else 0.0
        note = f"aim {aim:.4f} bias {bias:.1f} realised {real:.4f}"
        if proj > self.target and self.limit > self.target:
            squeeze = max(0.0, (self.limit - proj) / (self.limit - self.target))
            out *= squeeze
            note += f" projected {proj:.4f} squeeze {squeeze:.2f}"
        self.current = out
        return out, note

    def to_state(self) -> dict[str, Any]:
        return {"ab": self.ab, "ans": self.ans, "index_sum": self.index_sum}

    def load_state(self, st: dict[str, Any]) -> None:
        self.ab = float(st.get("ab", 0.0))
        self.ans = float(st.get("ans", 0.0))
        self.index_sum = float(st.get("index_sum", 0.0))
