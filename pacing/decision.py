"""How many calls to place now, per mode.

Why the predictive rule looks like this: an answered person waits only ~2 s, so the risk is a
*race* between answers arriving and agents freeing up. For a grid of horizons h (1 s .. ring
timeout) we compare cumulative live answers by h (answered calls already waiting, ringing lines by
their answer hazard given how long they have rung, new dials by the answer-time CDF, all scaled by
the hit rate) with cumulative agents available by h + connect window (ready now, plus each busy agent's
P(free | elapsed in call / wrap-up)). Demand minus supply is a sum of independent Bernoullis plus the
hit-rate uncertainty: a normal approximation gives the expected overflow (abandons). The n-th new dial
is placed only while its marginal expected abandons per expected live answer, worst over the
horizons, stays under the controller's allowed risk. Progressive's count is always a floor, so
predictive never places fewer calls than progressive would.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from pacing.estimators import HandleTimes, RingTimes

F64 = npt.NDArray[np.float64]
MODES = ("preview", "progressive", "power", "predictive")
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOGISTIC = math.sqrt(3.0) / math.pi  # logistic scale per unit standard deviation


def progressive_count(ready: int, ringing: int, waiting: int) -> int:
    """One line per ready agent not already covered by a ringing line or a waiting answer."""
    return max(0, ready - ringing - waiting)


def power_count(ratio: float, active_agents: int, lines_in_progress: int) -> int:
    """Fixed ratio: keep round(ratio x active agents) lines up (the VICIdial dial-level rule)."""
    return max(0, int(round(ratio * active_agents)) - lines_in_progress)


def horizons(ring_timeout_s: float) -> F64:
    """Check points for the answers-vs-agents race, denser where answers come (5-15 s), up to the timeout."""
    base = np.array([1.0, 2.5, 4.0, 5.5, 7.0, 8.5, 10.0, 12.0, 14.5, 17.5, 21.0, 25.0, 30.0, 36.0, 45.0, 60.0])
    out: F64 = np.append(base[base < ring_timeout_s], ring_timeout_s)
    return out


def predictive_count(*, ready: int, waiting: int, ringing: F64, on_call: F64, in_wrap: F64,
                     ring: RingTimes, handle: HandleTimes, hit: float, hit_var: float,
                     allowed_risk: float, window_s: float, n_max: int, hs: F64,
                     max_overflow: float = math.inf) -> tuple[int, float]:
    """Largest n <= n_max whose marginal abandon risk per live answer is <= allowed_risk and whose expected
    abandons (of the lines in flight and the n new ones) are <= max_overflow (the window's budget left).

    Returns (n, expected live answers per dial), the second for notes and reports.
    """
    if n_max <= 0:
        return 0, 0.0
    p = max(hit, 1e-4)
    q = ring.answer_probs_fast(ringing, hs, p)
    a = p * ring.tables(hs)[3]  # [K] new dial answered within h
    per_dial = float(a[-1])
    if per_dial <= 1e-6:
        return 0, per_dial
    f = handle.free_fast(on_call, in_wrap, hs + window_s)
    mean_d0 = waiting + q.sum(axis=0)                   # [K]
    var_d0 = (q * (1.0 - q)).sum(axis=0)
    mean_s = ready + f.sum(axis=0)
    var_s = (f * (1.0 - f)).sum(axis=0)
    # beyond the n where expected answers exceed expected agents at the last check point the marginal
    # risk is near 1/2, far above any allowed risk: no need to evaluate further
    slack = float(mean_s[-1] - mean_d0[-1])
    n_hi = min(n_max, max(1, math.ceil(max(0.0, slack) / max(float(a[-1]), 1e-6)) + 2))
    n = np.arange(n_hi + 1, dtype=np.float64)[:, None]  # [N, 1]
    lines = q.sum(axis=0)[None, :] + n * a[None, :]
    m = mean_d0[None, :] + n * a[None, :] - mean_s[None, :]                     # [N, K]
    v = var_d0[None, :] + n * (a * (1.0 - a))[None, :] + var_s[None, :] + hit_var * (lines / p) ** 2 + 0.05
    over = expected_sup_overflow(m, v)                                          # [N]
    marg = np.diff(over) / per_dial                                             # n = 1..n_max
    bad = np.nonzero(marg > allowed_risk)[0]
    count = int(bad[0]) if bad.size else n_hi
    if math.isfinite(max_overflow):
        # over[n] grows with n: the largest n whose expected abandons still fit what the window has left
        fits = int(np.searchsorted(over, max_overflow, side="right")) - 1
        count = min(count, max(0, fits))
    return count, per_dial


def expected_sup_overflow(m: F64, v: F64) -> F64:
    """E[(max_k X_k - 0.5)+] for a random walk X_k with means m[:, k], variances v[:, k].

    Why the supremum: excess answers are lost (abandoned) while excess agents wait, so abandons over
    the horizon are the one-sided reflection sup_k (answers_k - agents_k)+, not the deficit at any
    single horizon. The max over the walk uses Clark's (1961) moment matching, carrying the covariance
    of the running max with the walk, all vectorised over the candidate numbers of dials.
    """
    # Rows are horizons below (contiguous slices); the recursion is written with d = mu - mb and
    # pb = 1 - pa folded in, which halves the number of array operations per step (the hot path).
    mt, vt = np.ascontiguousarray(m.T), np.ascontiguousarray(v.T)
    second = mt * mt + vt                                   # E[X_k^2] of every horizon, at once
    mu, var, cov = mt[0].copy(), vt[0].copy(), vt[0].copy()
    for k in range(1, mt.shape[0]):
        mb, vb, sb = mt[k], vt[k], second[k]
        th = np.sqrt(np.maximum(var + vb - (cov + cov), 1e-9))
        d = mu - mb
        al = d / th
        pa = ndtr(al)
        tph = th * np.exp(al * al * -0.5) * _INV_SQRT_2PI
        new_mu = mb + d * pa + tph
        e2 = sb + pa * (mu * mu + var - sb) + (mu + mb) * tph
        var = np.maximum(e2 - new_mu * new_mu, 1e-12)
        cov = vb + pa * (cov - vb)
        mu = new_mu
    # The final overflow uses a logistic law with the matched mean and variance, not the normal: the
    # deficit is a difference of small, skewed counts whose right tail decays exponentially, and
    # a Gaussian tail would understate rare abandons by orders of magnitude at small risk levels.
    s = np.sqrt(var) * _LOGISTIC
    out: F64 = s * np.logaddexp(0.0, (mu - 0.5) / s)
    return out
