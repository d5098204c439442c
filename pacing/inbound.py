"""Return calls (折り返し) as load on the agents the pacer dials for (issue 30).

Why: in Japan many people call back a number they missed. Every outbound call left unanswered is a return call
that may come within about two hours, and it takes an agent. A pacer that counts every agent as its own dials for
agents the return callers will take: the outbound answer then waits too long (an abandon the law counts), or the
return caller does. This module turns the facts the caller gathers (the ages of the campaign's recent unanswered
calls, the measured return-call rate, the callers queued now) into the load the pacer counts, `InboundLoad`, and
`Pacer.decide` (pacing/engine.py) counts that many fewer ready agents. Pure: numbers in, numbers out; no clock (ages are given), no I/O.

What the pacer keeps: the callers queued now, who take the next free agent, and a reserve of ready agents for the
callers to come, so that one arriving finds an agent within `answer_s` (the return caller's service level): under
inbound first the number of arrivals within `answer_s` that is exceeded with probability at most `risk` (a Poisson
quantile), blended their mean rounded to the nearest agent, outbound first none. `Pacer.decide` counts that many
fewer ready agents (in every mode), so predictive dialling leaves them free.

The model: a call left unanswered comes back with probability `rate` (the campaign's measured return-call rate),
after a delay that is exponential with mean `mean_s`, cut at `window_s` (past the window nobody calls back, or the
call is not tied to ours). A call AGE seconds old that has not come back yet (the caller drops the ones that did)
comes back within the next H seconds with probability rate x (F(a + H) - F(a)) / (1 - rate x F(a)), and its
hazard now is rate x f(a) / (1 - rate x F(a)); the sum over the calls is the expected return calls (and their
arrival rate now). The rate is measured as return calls / exposure, exposure being the share of each unanswered
call's window already passed (a call 10 minutes old has had a third of its chance), with a prior worth
`prior_weight` calls so a campaign with little history starts from a sane figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

RETURN_WINDOW_S = 7200.0
"""Return calls come within about two hours of the missed call (the issue's 10-20 % within 2 h)."""
RETURN_MEAN_S = 1800.0
"""Mean delay of a return call within the window (exponential: most come in the first half hour)."""
PRIOR_RATE = 0.10
"""The return-call rate before the campaign has measured its own (the low side of the issue's 10-20 %)."""
PRIOR_WEIGHT = 50.0
"""Unanswered calls (whole windows of exposure) the prior rate is worth against the measured one."""
ANSWER_S = 20.0
"""A return caller should find an agent within this (the reserve covers the arrivals of this long)."""
RISK = 0.2
"""Inbound first: the reserve is exceeded by the arrivals within `answer_s` with at most this probability."""


class Priority(StrEnum):
    """Who gets the next free agent when a return caller and an answered outbound call both wait, and so what the
    pacer keeps agents for."""

    # default: the caller chose to call us, the outbound call is ours to pace. The pacer keeps the queued callers'
    # agents and enough ready agents that the arrivals within answer_s exceed them with probability <= risk
    INBOUND_FIRST = "inbound_first"
    # the queued callers' agents and the mean arrivals within answer_s, rounded: return callers still go first,
    # but the reserve is the average, not the safe side (more outbound, some return callers wait)
    BLENDED = "blended"
    # only the queued callers' agents: the arrivals to come wait for agents outbound leaves over
    OUTBOUND_FIRST = "outbound_first"


@dataclass(frozen=True)
class ReturnCallModel:
    """A campaign's return-call settings (config: `inbound_priority`, `return_call_prior_rate`,
    `return_call_mean_s`, `return_call_window_s`, `return_call_answer_s`). Refuses NaN, infinity, negatives."""

    priority: Priority = Priority.INBOUND_FIRST
    prior_rate: float = PRIOR_RATE
    mean_s: float = RETURN_MEAN_S
    window_s: float = RETURN_WINDOW_S
    answer_s: float = ANSWER_S
    risk: float = RISK
    prior_weight: float = PRIOR_WEIGHT

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", Priority(self.priority))
        _check("prior_rate", self.prior_rate, top=1.0)
        _check("mean_s", self.mean_s, positive=True)
        _check("window_s", self.window_s, positive=True)
        _check("answer_s", self.answer_s)
        _check("risk", self.risk, top=1.0)
        _check("prior_weight", self.prior_weight)

    def rate(self, all_ages_s: Iterable[float], returned: int) -> float:
        """The measured return-call rate (`measured_rate`) from the ages of every unanswered call of the
        measuring period and the return calls that came for them."""
        return measured_rate(all_ages_s, returned, prior_rate=self.prior_rate, prior_weight=self.prior_weight,
                             mean_s=self.mean_s, window_s=self.window_s)

    def load(self, queued: int, open_ages_s: Iterable[float], rate: float) -> InboundLoad:
        """The load the pacer counts (`inbound_load`) from the callers queued and the ages of the unanswered calls
        that have not come back yet."""
        return inbound_load(queued=queued, unanswered_ages_s=open_ages_s, rate=rate, priority=self.priority,
                            mean_s=self.mean_s, window_s=self.window_s, answer_s=self.answer_s, risk=self.risk)


def _count(name: str, n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{name} must be a count >= 0, got {n!r}")
    return n


@dataclass(frozen=True)
class InboundLoad:
    """What the pacer counts for return calls: callers queued now for an agent, the ready agents kept for the
    callers to come (`reserve`), and their arrival rate (per second: for the monitor and the notes). Refuses NaN,
    infinity and negatives."""

    queued: int = 0
    reserve: int = 0
    arrivals_per_s: float = 0.0

    def __post_init__(self) -> None:
        _count("queued", self.queued)
        _count("reserve", self.reserve)
        if not math.isfinite(self.arrivals_per_s) or self.arrivals_per_s < 0.0:
            raise ValueError(f"arrivals_per_s must be a finite number >= 0, got {self.arrivals_per_s!r}")

    @property
    def kept(self) -> int:
        """Agents the pacer does not count as ready for outbound: every queued caller's, and the reserve."""
        return self.queued + self.reserve


NO_INBOUND = InboundLoad()


def _check(name: str, x: float, *, positive: bool = False, top: float | None = None) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    if x < 0.0 or (positive and x == 0.0) or (top is not None and x > top):
        bound = f"in [0, {top:g}]" if top is not None else ("> 0" if positive else ">= 0")
        raise ValueError(f"{name} must be {bound}, got {x!r}")
    return float(x)


def _ages(ages_s: Iterable[float], window_s: float) -> np.ndarray:
    """The ages inside the window; an age that is NaN, negative (a clock stepped back) or past the window is not a
    call that can still come back and is left out."""
    a = np.asarray(list(ages_s), dtype=np.float64)
    ok = np.isfinite(a) & (a >= 0.0) & (a < window_s)
    return a[ok]


def return_cdf(age_s: np.ndarray, mean_s: float, window_s: float) -> np.ndarray:
    """F(age): the share of return calls that have come by AGE_S (exponential with MEAN_S, cut at WINDOW_S)."""
    z = -math.expm1(-window_s / mean_s)
    out: np.ndarray = np.clip(-np.expm1(-np.clip(age_s, 0.0, window_s) / mean_s) / z, 0.0, 1.0)
    return out


def _params(rate: float, mean_s: float, window_s: float) -> tuple[float, float, float]:
    return (_check("rate", rate, top=1.0), _check("mean_s", mean_s, positive=True),
            _check("window_s", window_s, positive=True))


def expected_return_calls(unanswered_ages_s: Iterable[float], rate: float, *, horizon_s: float = 60.0,
                          mean_s: float = RETURN_MEAN_S, window_s: float = RETURN_WINDOW_S) -> float:
    """Return calls to expect in the next HORIZON_S from the calls left unanswered AGES seconds ago (those that
    have not come back yet)."""
    rate, mean_s, window_s = _params(rate, mean_s, window_s)
    horizon_s = _check("horizon_s", horizon_s)
    a = _ages(unanswered_ages_s, window_s)
    if rate == 0.0 or a.size == 0:
        return 0.0
    f0 = return_cdf(a, mean_s, window_s)
    f1 = return_cdf(a + horizon_s, mean_s, window_s)
    return float(np.sum(rate * (f1 - f0) / np.maximum(1.0 - rate * f0, 1e-12)))


def arrival_rate(unanswered_ages_s: Iterable[float], rate: float, *, mean_s: float = RETURN_MEAN_S,
                 window_s: float = RETURN_WINDOW_S) -> float:
    """Return calls a second expected now (the hazard summed over the calls that have not come back yet)."""
    rate, mean_s, window_s = _params(rate, mean_s, window_s)
    a = _ages(unanswered_ages_s, window_s)
    if rate == 0.0 or a.size == 0:
        return 0.0
    z = -math.expm1(-window_s / mean_s)
    dens = np.exp(-a / mean_s) / (mean_s * z)
    f0 = return_cdf(a, mean_s, window_s)
    return float(np.sum(rate * dens / np.maximum(1.0 - rate * f0, 1e-12)))


def measured_rate(unanswered_ages_s: Iterable[float], returned: int, *, prior_rate: float = PRIOR_RATE,
                  prior_weight: float = PRIOR_WEIGHT, mean_s: float = RETURN_MEAN_S,
                  window_s: float = RETURN_WINDOW_S) -> float:
    """The return-call rate: (RETURNED + prior x weight) / (exposure + weight), where UNANSWERED_AGES_S are the
    ages of ALL the unanswered calls of the measuring period (those that came back too) and a call's exposure is
    F(its age), 1 past the window. In [0, 1]."""
    prior_rate, mean_s, window_s = _params(prior_rate, mean_s, window_s)
    prior_weight = _check("prior_weight", prior_weight)
    returned = _count("returned", returned)
    a = np.asarray(list(unanswered_ages_s), dtype=np.float64)
    a = a[np.isfinite(a) & (a >= 0.0)]
    exposure = float(return_cdf(a, mean_s, window_s).sum())
    if exposure + prior_weight <= 0.0:
        return 0.0
    return min(1.0, (returned + prior_rate * prior_weight) / (exposure + prior_weight))


def poisson_quantile(mean: float, risk: float) -> int:
    """The smallest k with P(Poisson(MEAN) > k) <= RISK."""
    mean, risk = _check("mean", mean), _check("risk", risk, top=1.0)
    if risk >= 1.0 or mean == 0.0:
        return 0
    term = math.exp(-mean)
    cdf, k = term, 0
    while 1.0 - cdf > risk and k < 10_000:
        k += 1
        term *= mean / k
        cdf += term
    return k


def agents_kept_for_inbound(queued: int, expected: float, priority: Priority = Priority.INBOUND_FIRST,
                            risk: float = RISK) -> int:
    """Agents the outbound pacer does not count as ready: every QUEUED caller's, plus a reserve for the EXPECTED
    arrivals within the answer time: inbound first, the count they exceed with probability <= RISK; blended, their
    mean rounded to the nearest agent; outbound first, none."""
    expected, queued = _check("expected", expected), _count("queued", queued)
    return queued + _reserve(expected, Priority(priority), risk)


def _reserve(expected: float, priority: Priority, risk: float) -> int:
    if priority is Priority.OUTBOUND_FIRST:
        return 0
    if priority is Priority.BLENDED:
        return int(expected + 0.5)
    return poisson_quantile(expected, risk)


def inbound_load(*, queued: int, unanswered_ages_s: Iterable[float], rate: float,
                 priority: Priority = Priority.INBOUND_FIRST, mean_s: float = RETURN_MEAN_S,
                 window_s: float = RETURN_WINDOW_S, answer_s: float = ANSWER_S, risk: float = RISK) -> InboundLoad:
    """The load the pacer counts under PRIORITY, from the QUEUED callers and the ages of the calls left unanswered
    that have not come back yet (see `agents_kept_for_inbound` for the reserve)."""
    lam = arrival_rate(unanswered_ages_s, rate, mean_s=mean_s, window_s=window_s)
    answer_s = _check("answer_s", answer_s)
    return InboundLoad(_count("queued", queued), _reserve(lam * answer_s, Priority(priority), risk), lam)


__all__ = ["ANSWER_S", "NO_INBOUND", "PRIOR_RATE", "PRIOR_WEIGHT", "RETURN_MEAN_S", "RETURN_WINDOW_S", "RISK",
           "InboundLoad", "Priority", "ReturnCallModel", "agents_kept_for_inbound", "arrival_rate", "expected_return_calls",
           "inbound_load", "measured_rate", "poisson_quantile", "return_cdf"]
