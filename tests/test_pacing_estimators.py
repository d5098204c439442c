"""The estimators converge to the truth, follow drift, and handle censoring and tails safely."""

from __future__ import annotations

import numpy as np
import pytest

from pacing.estimators import HandleTimes, HitRate, RingTimes


def test_hit_rate_converges_and_follows_drift() -> None:
    rng = np.random.default_rng(1)
    h = HitRate(prior=0.2)
    t = 0.0
    for _ in range(6000):
        t += 0.5
        h.observe(t, bool(rng.random() < 0.10))
    assert h.mean() == pytest.approx(0.10, abs=0.02)
    for _ in range(6000):                    # the list changes: 0.10 -> 0.30
        t += 0.5
        h.observe(t, bool(rng.random() < 0.30))
    assert h.mean() == pytest.approx(0.30, abs=0.03)
    assert h.mean(0) == pytest.approx(0.30, abs=0.05)   # the fast one too
    p, v = h.conservative()
    assert p >= h.mean() and 0 < v < 0.001


def test_answer_hazard_from_censored_ring_times() -> None:
    rng = np.random.default_rng(2)
    r = RingTimes(24.0, median_s=5.0)       # prior deliberately wrong (true median 10 s)
    for _ in range(6000):
        u = rng.random()
        if u < 0.25:
            t = float(rng.lognormal(np.log(10.0), 0.4))
            r.observe("human", t) if t < 24 else r.observe("no_answer", None)
        elif u < 0.35:
            r.observe("busy", float(rng.uniform(2, 5)))
        else:
            r.observe("no_answer", None)    # censored at the ring timeout
    assert r.median_human() == pytest.approx(10.0, abs=1.0)
    hs = np.array([5.0, 10.0, 20.0])
    fresh, old = r.answer_probs(np.array([0.0, 15.0]), hs, 0.25)
    # a fresh line: P(person answers within 10 s) ~ 0.25 * 0.5
    assert fresh[1] == pytest.approx(0.125, abs=0.03)
    # a line that already rang 15 s is mostly a no-answer: lower chance of a person soon
    assert old[2] < fresh[2]
    fast = r.answer_probs_fast(np.array([0.0, 15.0]), hs, 0.25)
    assert np.allclose(fast, np.vstack([fresh, old]), atol=0.02)


def test_agent_free_probability_matches_the_distribution() -> None:
    rng = np.random.default_rng(3)
    talk = rng.lognormal(np.log(150.0), 0.6, 400)
    wrap = rng.uniform(15, 45, 400)
    h = HandleTimes(prior_talk_s=60.0, prior_wrap_s=10.0)   # wrong prior, washed out by data
    for a, b in zip(talk, wrap, strict=True):
        h.observe(float(a), float(b))
    big_t = rng.lognormal(np.log(150.0), 0.6, 200_000)
    big_w = rng.uniform(15, 45, 200_000)
    for e in (30.0, 150.0, 400.0):
        keep = big_t > e
        truth = float(np.mean(big_t[keep] + big_w[keep] <= e + 60.0))
        est = float(h.free_on_call(np.array([e]), np.array([60.0]))[0, 0])
        assert est == pytest.approx(truth, abs=0.06)
    # wrap-up: 40 s in, uniform 15..45 -> free within 5 s for sure; 0 s in -> not within 10 s
    w = h.free_in_wrap(np.array([40.0, 0.0]), np.array([5.0, 10.0]))
    assert w[0, 0] > 0.9 and w[1, 1] < 0.05
    # far in the tail (beyond every sample): not counted on to free up
    assert float(h.free_on_call(np.array([20_000.0]), np.array([20.0]))[0, 0]) < 0.2
    tab = h.free_fast(np.array([30.0, 150.0]), np.array([40.0]), np.array([60.0]))
    direct = np.vstack([h.free_on_call(np.array([30.0, 150.0]), np.array([60.0])),
                        h.free_in_wrap(np.array([40.0]), np.array([60.0]))])
    assert np.allclose(tab, direct, atol=0.03)


def test_handle_time_follows_drift() -> None:
    h = HandleTimes(prior_talk_s=180.0, prior_wrap_s=30.0)
    for _ in range(400):
        h.observe(100.0, 20.0)
    assert h.aht() == pytest.approx(120.0, rel=0.1)
    for _ in range(400):                    # talk gets longer: the window keeps the recent 400
        h.observe(300.0, 20.0)
    assert h.aht() == pytest.approx(320.0, rel=0.1)
