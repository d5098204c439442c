"""Queueing formulas: Erlang B and C, service level, ASA, staffing, and M/M/N+D abandonment.

Why these exist: state-blind (open-loop) pacing behaves like a loss system because an answered
person only waits ~2 s, so Erlang B is the abandon probability of a dialer that ignores state, and
M/M/N+D (deterministic patience D) is the right "abandon within D seconds" model. They are used for
sanity bounds and for reporting, not in the per-decision hot path.

All functions are numerically stable for servers up to 10,000 and load up to ~servers: Erlang B uses
the recursion B_0 = 1, B_n = A B_{n-1} / (n + A B_{n-1}) (every term in [0, 1], no factorials), and
everything else is derived from B.
"""

from __future__ import annotations

import math


def _check(servers: int, load: float) -> None:
    if servers < 0:
        raise ValueError(f"servers must be >= 0, got {servers}")
    if not math.isfinite(load) or load < 0:
        raise ValueError(f"load must be a finite number >= 0, got {load}")


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of M/M/N/N with offered load `load` erlangs (stable recursion)."""
    _check(servers, load)
    if load == 0.0:
        return 1.0 if servers == 0 else 0.0
    b = 1.0
    for n in range(1, servers + 1):
        b = load * b / (n + load * b)
    return b


def erlang_c(servers: int, load: float) -> float:
    """Probability an arrival waits in M/M/N; 1.0 when load >= servers (unstable queue)."""
    _check(servers, load)
    if servers == 0 or load >= servers:
        return 1.0
    if load == 0.0:
        return 0.0
    b = erlang_b(servers, load)
    c = servers * b / (servers - load * (1.0 - b))
    return min(1.0, max(0.0, c))


def service_level(servers: int, load: float, aht_s: float, answer_within_s: float) -> float:
    """P(wait <= t) in M/M/N: 1 - C * exp(-(N - A) t / AHT)."""
    if aht_s <= 0:
        raise ValueError("aht_s must be > 0")
    c = erlang_c(servers, load)
    if load >= servers:
        return 0.0
    return max(0.0, 1.0 - c * math.exp(-(servers - load) * answer_within_s / aht_s))


def asa(servers: int, load: float, aht_s: float) -> float:
    """Average speed of answer C * AHT / (N - A); infinite when load >= servers."""
    if aht_s <= 0:
        raise ValueError("aht_s must be > 0")
    if load >= servers:
        return math.inf
    return erlang_c(servers, load) * aht_s / (servers - load)


def required_agents(load: float, aht_s: float, target_sl: float, answer_within_s: float,
                    max_servers: int = 100_000) -> int:
    """Smallest N with service_level >= target_sl (the usual Erlang C staffing answer)."""
    if not 0.0 < target_sl < 1.0:
        raise ValueError("target_sl must be in (0, 1)")
    _check(0, load)
    n = max(1, math.floor(load) + 1)
    while n <= max_servers:
        if service_level(n, load, aht_s, answer_within_s) >= target_sl:
            return n
        n += 1
    raise ValueError(f"no staffing up to {max_servers} servers reaches the target")


def mmnd_abandon(servers: int, arrival_rate: float, service_rate: float, patience_s: float) -> float:
    """P(abandon) in M/M/N+D: Poisson arrivals, exponential service, every caller waits exactly D.

    Zeltyn & Mandelbaum (2005), M/M/n+G with G deterministic at D, H(x) = min(x, D):
        J = integral_0^inf exp(lambda H(x) - n mu x) dx
          = (exp((lambda - n mu) D) - 1) / (lambda - n mu) + exp((lambda - n mu) D) / (n mu)
        eps = 1 / ErlangB(n - 1, lambda / mu)
        P(Ab) = (1 + (lambda - n mu) J) / (eps + lambda J)
    With D -> 0 this tends to Erlang B (a loss system), with D -> inf to 0 for lambda < n mu.
    Use it as the open-loop (state-blind) abandon rate of answered calls with patience D.
    """
    if servers < 1:
        return 1.0
    if arrival_rate <= 0:
        return 0.0
    if service_rate <= 0 or patience_s < 0:
        raise ValueError("service_rate must be > 0 and patience_s >= 0")
    lam, nmu, d = arrival_rate, servers * service_rate, patience_s
    x = (lam - nmu) * d
    if x > 700.0:  # hopeless overload: nearly every arrival beyond capacity leaves
        return max(0.0, 1.0 - nmu / lam)
    first = d if lam == nmu else math.expm1(x) / (lam - nmu)
    j = first + math.exp(x) / nmu
    b = erlang_b(servers - 1, lam / service_rate)
    if b <= 0.0:
        return 0.0
    eps = 1.0 / b
    p = (1.0 + (lam - nmu) * j) / (eps + lam * j)
    return min(1.0, max(0.0, p))
