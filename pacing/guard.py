"""Rolling-hour guard and surge watch: the rules that keep every rolling hour under the limit.

Why: the controller aims the *mean* abandon rate below the target, but the promise users are given
is per rolling hour. In a small team one abandon is already several percent of an hour's answers,
and after a hit-rate jump or a mass pause the estimators lag by minutes while calls are in flight.
So, besides the controller:

* the rolling-hour budget: from the book's last-hour counts (A1 abandons, N1 answers) and a low
  quantile of the answers the window will hold, B = floor(limit x N_low) - A1 abandons are left.
  B < `min_budget`: progressive (cannot abandon except through pauses). Otherwise the realised rate is
  capped so the abandons of the next `horizon` seconds, counted in bursts, exceed B with probability
  <= `risk`;
* the surge watch: a sudden rise of the hit rate (the last few dozen outcomes far above the slow
  estimate) or a drop of the logged-in count (a mass pause or logouts: the busy agents are likely to
  follow) switches to progressive at once for a calm period, before the estimators catch up.

Pure: counts and times in, numbers out; the caller passes its clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from scipy.special import pdtri

Z_LOW = 1.6448536269514722  # one-sided 95 % normal quantile


def low_count(mean: float) -> float:
    """A low (about 5 %) quantile of a Poisson count with this mean (normal approximation, >= 0)."""
    if mean <= 0.0:
        return 0.0
    return max(0.0, mean - Z_LOW * math.sqrt(mean))


def hour_budget(limit: float, a1: float, n_kept: float, new_low: float, whole: bool = True) -> int:
    """Abandons still allowed before the rolling hour breaks the limit: floor(limit x N) - A1.

    `n_kept`: answers of the last hour still in the window at the guard's horizon; `new_low`: a low
    quantile of the answers still to come into it. The result may be negative (already over).
    `whole`: a fractional A1 (the AMD false-positive estimate) counts as a whole abandon (a hard limit);
    False (a soft cap): floor(limit x N - A1)."""
    if not whole:
        return math.floor(limit * max(0.0, n_kept + new_low) - a1 + 1e-9)
    return math.floor(limit * max(0.0, n_kept + new_low) + 1e-9) - math.ceil(a1 - 1e-9)


_MU_CACHE: dict[tuple[int, float], float] = {}


def poisson_room(budget: int, risk: float) -> float:
    """Largest mean m with P(Poisson(m) > budget) <= risk (0 for a negative budget)."""
    if budget < 0:
        return 0.0
    key = (budget, risk)
    m = _MU_CACHE.get(key)
    if m is None:
        m = float(pdtri(budget, 1.0 - risk))  # m with P(X <= budget) = 1 - risk
        if not math.isfinite(m) or m < 0.0:
            m = 0.0
        _MU_CACHE[key] = m
    return m


def rate_cap(budget: int, answers_in_horizon: float, risk: float, cluster: float = 1.0) -> float:
    """Largest realised abandon rate (per answer) whose abandons over the horizon stay within the
    budget with probability 1 - risk; infinite when no answer is expected.

    `cluster`: abandons come in bursts (when the walk of answers overshoots the agents, several people
    answer within seconds of each other: 3 in 6 s in a traced 20-agent hour), so they are counted as
    Poisson bursts of `cluster` abandons each: P(cluster x Poisson(m / cluster) > budget) <= risk."""
    if budget < 1:
        return 0.0
    if answers_in_horizon <= 0.0:
        return math.inf
    c = max(1.0, cluster)
    return c * poisson_room(math.floor(budget / c + 1e-9), risk) / answers_in_horizon


@dataclass
class SurgeWatch:
    """Detects a hit-rate jump up and a drop of the logged-in count; holds progressive while calm_until."""

    window: int = 40            # last outcomes compared with the slow hit-rate estimate
    z: float = 4.0              # how far above the estimate counts as a jump (false alarm ~1e-5 a check)
    # a drop of at least `drop_share` of the recent maximum and at least `drop_min` agents within
    # `drop_window_s`: a mass pause (30 s after a team meeting starts, the ready agents and a sixth of
    # the busy ones are gone) is far faster than staggered breaks (100 agents over 20 min: 2-3 in 30 s)
    drop_window_s: float = 30.0
    drop_share: float = 0.10
    drop_min: int = 4
    calm_s: float = 300.0
    outcomes: deque[bool] = field(default_factory=deque)
    humans: int = 0
    logged: deque[tuple[float, int]] = field(default_factory=deque)
    calm_until: float = -math.inf
    reason: str = ""

    def outcome(self, now: float, human: bool, slow_hit: float) -> bool:
        """Record one outcome; True (and calm) when the recent window is far above `slow_hit`, the
        estimate the pacer is using."""
        self.outcomes.append(human)
        self.humans += int(human)
        if len(self.outcomes) > self.window:
            self.humans -= int(self.outcomes.popleft())
        if len(self.outcomes) < self.window:
            return False
        p = min(max(slow_hit, 1e-4), 1.0 - 1e-4)
        mean = self.window * p
        if self.humans > mean + self.z * math.sqrt(mean * (1.0 - p)) + 1.0:
            self._calm(now, f"hit-rate jump ({self.humans}/{self.window} answered, expected {mean:.1f})")
            self.outcomes.clear()
            self.humans = 0
            return True
        return False

    def agents(self, now: float, logged: int) -> bool:
        """Record the logged-in count; True (and calm) when it fell fast (mass pause, logouts)."""
        q = self.logged
        while len(q) >= 2 and q[1][0] <= now - self.drop_window_s:
            q.popleft()  # the first kept entry is the count in force at the window's start
        if not q or q[-1][1] != logged:
            q.append((now, logged))
        top = max(n for _, n in q)
        drop = top - logged
        if drop >= self.drop_min and drop >= self.drop_share * top:
            self._calm(now, f"logged-in fell {top} -> {logged} within {self.drop_window_s:.0f} s")
            return True
        return False

    def calm(self, now: float) -> bool:
        return now < self.calm_until

    def _calm(self, now: float, why: str) -> None:
        self.calm_until = max(self.calm_until, now + self.calm_s)
        self.reason = why
