"""Erlang B/C against exact rational arithmetic, published tables and numerical extremes."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from pacing.erlang import asa, erlang_b, erlang_c, mmnd_abandon, required_agents, service_level


def exact_b(n: int, a: Fraction) -> Fraction:
    terms = [Fraction(1)]
    for k in range(1, n + 1):
        terms.append(terms[-1] * a / k)
    return terms[-1] / sum(terms)


def exact_c(n: int, a: Fraction) -> Fraction:
    terms = [Fraction(1)]
    for k in range(1, n + 1):
        terms.append(terms[-1] * a / k)
    top = terms[-1] * n / (n - a)
    return top / (sum(terms[:-1]) + top)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 20])
@pytest.mark.parametrize("a", [Fraction(1, 10), Fraction(1, 2), Fraction(3, 2), Fraction(7, 1), Fraction(19, 2)])
def test_b_and_c_match_exact_fractions(n: int, a: Fraction) -> None:
    assert erlang_b(n, float(a)) == pytest.approx(float(exact_b(n, a)), rel=1e-12)
    if a < n:
        assert erlang_c(n, float(a)) == pytest.approx(float(exact_c(n, a)), rel=1e-12)
    else:
        assert erlang_c(n, float(a)) == 1.0


def test_published_values() -> None:
    # Erlang B table: 10 trunks, 5 erlangs -> 1.84 % blocking
    assert erlang_b(10, 5.0) == pytest.approx(0.01838, abs=1e-5)
    # the textbook call-centre example: 10 erlangs, 11 agents -> 68.2 % wait
    assert erlang_c(11, 10.0) == pytest.approx(0.6821, abs=1e-4)
    # ... 20 s service level and ASA of the same example (AHT 180 s)
    assert service_level(11, 10.0, 180.0, 20.0) == pytest.approx(0.3896, abs=1e-3)
    assert asa(11, 10.0, 180.0) == pytest.approx(122.8, abs=0.1)
    assert required_agents(10.0, 180.0, 0.8, 20.0) == 14


@pytest.mark.parametrize("n,a", [(10_000, 9_999.0), (10_000, 9_999.9), (10_000, 5_000.0), (170, 169.99), (1, 1e-9)])
def test_extremes_are_finite_and_in_range(n: int, a: float) -> None:
    b, c = erlang_b(n, a), erlang_c(n, a)
    for x in (b, c):
        assert math.isfinite(x) and 0.0 <= x <= 1.0
    assert c >= b  # waiting is at least as likely as blocking
    assert erlang_c(n, float(n)) == 1.0
    assert erlang_c(n, n * 1.5) == 1.0


def test_load_approaching_servers_tends_to_certain_wait() -> None:
    cs = [erlang_c(1000, 1000 * (1 - eps)) for eps in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert cs == sorted(cs) and cs[-1] > 0.97


def test_mmnd_limits() -> None:
    lam, mu = 18 / 210, 1 / 210  # 18 erlangs on 20 agents
    # no patience at all is a loss system: Erlang B
    assert mmnd_abandon(20, lam, mu, 0.0) == pytest.approx(erlang_b(20, lam / mu), rel=1e-9)
    # 2 s patience helps only a little against a 210 s service, and more patience helps more
    p2, p60, p_inf = (mmnd_abandon(20, lam, mu, d) for d in (2.0, 60.0, 1e7))
    assert p_inf < p60 < p2 < erlang_b(20, lam / mu)
    assert p_inf == pytest.approx(0.0, abs=1e-9)
    for n in (1, 100, 10_000):
        x = mmnd_abandon(n, 1.2 * n * mu, mu, 2.0)
        assert math.isfinite(x) and 0.0 <= x <= 1.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        erlang_b(-1, 1.0)
    with pytest.raises(ValueError):
        erlang_c(3, float("nan"))
