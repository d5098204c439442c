"""Online estimators the predictive decision needs: hit rate, answer times, handle times.

Why: the gain of a predictive dialer comes from state, and state is only useful through these
conditional distributions: P(a ringing line is answered by a person within h | it has rung e s),
P(a busy agent is free within h | elapsed time in call or wrap), and the hit rate with its
uncertainty (small teams and cold starts must be paced conservatively). Every estimator starts from
a prior (config or yesterday's state) that fresh observations wash out, and forgets old data so it
follows drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

F64 = npt.NDArray[np.float64]


def lognormal_params(mean: float, cv: float) -> tuple[float, float]:
    """(mu, sigma) of a lognormal with the given mean and coefficient of variation."""
    s2 = math.log(1.0 + cv * cv)
    return math.log(max(mean, 1e-9)) - s2 / 2.0, math.sqrt(s2)


def lognormal_sf(x: F64, mu: float, sigma: float) -> F64:
    """Survival function, vectorised; 1 for x <= 0."""
    lx = np.log(np.maximum(x, 1e-12))
    out: F64 = ndtr((mu - lx) / sigma)
    return np.where(x <= 0.0, 1.0, out)


class HitRate:
    """Discounted Beta posterior of P(person answers | dial), a fast and a slow one.

    The slow one (time constant `slow_s`) gives a steady estimate and its variance; the fast one
    (`fast_s`) catches a sudden list change. The decision uses the larger mean (more expected
    answers = fewer dials = safe side) and the slow posterior's variance.
    """

    def __init__(self, prior: float, weight: float = 30.0, fast_s: float = 240.0, slow_s: float = 1200.0):
        p = min(max(prior, 1e-4), 1 - 1e-4)
        self.a0, self.b0 = p * weight, (1 - p) * weight
        self.taus = (fast_s, slow_s)
        self.h = [0.0, 0.0]
        self.n = [0.0, 0.0]
        self.t: float | None = None

    def _decay(self, now: float) -> None:
        if self.t is not None and now > self.t:
            for i, tau in enumerate(self.taus):
                f = math.exp(-(now - self.t) / tau)
                self.h[i] *= f
                self.n[i] *= f
        if self.t is None or now > self.t:
            self.t = now

    def observe(self, now: float, human: bool) -> None:
        self._decay(now)
        for i in (0, 1):
            self.n[i] += 1.0
            self.h[i] += 1.0 if human else 0.0

    def _ab(self, i: int) -> tuple[float, float]:
        return self.a0 + self.h[i], self.b0 + self.n[i] - self.h[i]

    def mean(self, i: int = 1) -> float:
        a, b = self._ab(i)
        return a / (a + b)

    def var(self, i: int = 1) -> float:
        a, b = self._ab(i)
        return a * b / ((a + b) ** 2 * (a + b + 1.0))

    def conservative(self) -> tuple[float, float]:
        """(mean, variance) used for pacing: larger of fast/slow mean, slow variance."""
        return max(self.mean(0), self.mean(1)), self.var(1)

    def to_state(self) -> dict[str, Any]:
        return {"h": list(self.h), "n": list(self.n)}

    def load_state(self, st: dict[str, Any]) -> None:
        self.h = [float(x) for x in st.get("h", self.h)]
        self.n = [float(x) for x in st.get("n", self.n)]
        self.t = None  # a new day: keep the counts, not the clock


class RingTimes:
    """Competing-risks answer-time model on a 0.5 s grid (discounted histograms).

    Every dial ends in exactly one of: a person answers at T_h, or something else (machine, busy,
    failure, or the ring timeout, which right-censors the person's answer time) at T_o. We keep the
    distribution of T_h given a person answered and of T_o given not, so
    P(person answers in (e, e+h] | still ringing at e) = p (F_h(e+h) - F_h(e)) / (p S_h(e) + (1-p) S_o(e)).
    """

    DT = 0.5

    def __init__(self, ring_timeout_s: float, median_s: float = 9.0, sigma: float = 0.5,
                 weight: float = 20.0, memory: float = 3000.0):
        self.timeout = ring_timeout_s
        self.nbins = int(math.ceil((ring_timeout_s + 10.0) / self.DT)) + 1
        self.keep = 1.0 - 1.0 / memory
        centers = (np.arange(self.nbins) + 0.5) * self.DT
        edges = np.arange(self.nbins + 1, dtype=np.float64) * self.DT
        mu = math.log(median_s)
        cdf = 1.0 - lognormal_sf(edges, mu, sigma)
        hp = np.diff(cdf)
        hp[-1] += 1.0 - cdf[-1]
        self.human: F64 = hp / hp.sum() * weight
        other = 0.3 * hp / hp.sum() + 0.0  # machines ring like people
        other[self._bin(3.5)] += 0.15      # busy / SIT fast fails
        other[self._bin(ring_timeout_s)] += 0.55  # no answer at the timeout
        self.other: F64 = other / other.sum() * weight
        self._centers = centers
        self._cache: tuple[F64, F64] | None = None
        self._tables: tuple[F64, F64, F64, F64] | None = None
        self._tables_h: F64 | None = None
        self._tables_src: F64 | None = None  # the array object the tables were last asked for
        self._since = 0
        self.stale = False

    def _bin(self, t: float) -> int:
        return int(min(self.nbins - 1, max(0, math.floor(t / self.DT))))

    def observe(self, outcome: str, ring_s: float | None) -> None:
        if ring_s is None or not math.isfinite(ring_s):
            ring_s = self.timeout if outcome == "no_answer" else 0.0
        self.human *= self.keep
        self.other *= self.keep
        if outcome == "human":
            self.human[self._bin(ring_s)] += 1.0
        else:
            self.other[self._bin(ring_s)] += 1.0
        self._since += 1
        if self._since >= 20:  # the shape moves slowly: stale every 20 outcomes, rebuilt by refresh()
            self.stale = True

    def refresh(self, horizons: F64) -> None:
        """Rebuild the CDFs and lookup tables (called between ticks, never inside a decision)."""
        self._cache, self._tables, self._since, self.stale = None, None, 0, False
        self.tables(horizons)

    def cdfs(self) -> tuple[F64, F64]:
        """CDFs of T_h and T_o at the grid edges 0, DT, 2DT, ... (length nbins + 1)."""
        if self._cache is None:
            fh = np.concatenate(([0.0], np.cumsum(self.human) / self.human.sum()))
            fo = np.concatenate(([0.0], np.cumsum(self.other) / self.other.sum()))
            self._cache = (fh, fo)
        return self._cache

    def _at(self, f: F64, t: F64) -> F64:
        x = np.clip(t / self.DT, 0.0, self.nbins)
        i = np.minimum(x.astype(np.int64), self.nbins - 1)
        w = x - i
        out: F64 = f[i] * (1.0 - w) + f[i + 1] * w
        return out

    def tables(self, horizons: F64) -> tuple[F64, F64, F64, F64]:
        """Per elapsed grid point e_j = j DT: F_h(e_j + h_k) - F_h(e_j) [j, k], S_h(e_j), S_o(e_j), F_h(h_k)."""
        if self._tables is not None and horizons is self._tables_src:
            return self._tables  # the pacer passes the same horizons array every call: skip the compare
        if self._tables is None or self._tables_h is None or not np.array_equal(self._tables_h, horizons):
            fh, fo = self.cdfs()
            e = np.arange(self.nbins + 1, dtype=np.float64) * self.DT
            he = self._at(fh, e)
            dfh = self._at(fh, e[:, None] + horizons[None, :]) - he[:, None]
            self._tables = (dfh, 1.0 - he, 1.0 - self._at(fo, e), self._at(fh, horizons))
            self._tables_h = horizons.copy()
        self._tables_src = horizons
        return self._tables

    def answer_probs_fast(self, elapsed: F64, horizons: F64, p: float) -> F64:
        """answer_probs by table lookup on the 0.5 s elapsed grid (the hot path)."""
        dfh, sh, so, _ = self.tables(horizons)
        j = np.minimum(np.rint(elapsed / self.DT).astype(np.int64), self.nbins)
        den = p * sh[j] + (1.0 - p) * so[j]
        out: F64 = p * dfh[j] / np.maximum(den, 1e-9)[:, None]
        return np.minimum(out, 1.0)

    def answer_probs(self, elapsed: F64, horizons: F64, p: float) -> F64:
        """Matrix [line, horizon]: P(person answers within h more seconds | still ringing at e)."""
        fh, fo = self.cdfs()
        e = elapsed[:, None]
        he = self._at(fh, e)
        oe = self._at(fo, e)
        num = p * (self._at(fh, e + horizons[None, :]) - he)
        den = p * (1.0 - he) + (1.0 - p) * (1.0 - oe)
        out: F64 = np.where(den > 1e-9, num / np.maximum(den, 1e-9), 0.0)
        return np.clip(out, 0.0, 1.0)

    def new_dial_probs(self, horizons: F64, p: float) -> F64:
        fh, _ = self.cdfs()
        out: F64 = p * self._at(fh, horizons)
        return out

    def median_human(self) -> float:
        fh, _ = self.cdfs()
        return float(np.searchsorted(fh, 0.5)) * self.DT

    def to_state(self) -> dict[str, Any]:
        return {"human": self.human.tolist(), "other": self.other.tolist()}

    def load_state(self, st: dict[str, Any]) -> None:
        h, o = st.get("human"), st.get("other")
        if isinstance(h, list) and isinstance(o, list) and len(h) == self.nbins == len(o):
            self.human = np.asarray(h, dtype=np.float64)
            self.other = np.asarray(o, dtype=np.float64)
            self._cache = None


class _Samples:
    """Recent samples mixed with a lognormal prior worth `weight` observations."""

    def __init__(self, mean: float, cv: float, weight: float, size: int):
        self.mu, self.sigma = lognormal_params(mean, cv)
        self.prior_mean = mean
        self.weight = weight
        self.size = size
        self.buf: list[float] = []
        self._sorted: F64 | None = None

    def add(self, x: float) -> None:
        if not math.isfinite(x) or x < 0:
            return
        self.buf.append(x)
        if len(self.buf) > self.size:
            del self.buf[: len(self.buf) - self.size]
        self._sorted = None

    def sorted(self) -> F64:
        if self._sorted is None:
            self._sorted = np.sort(np.asarray(self.buf, dtype=np.float64))
        return self._sorted

    def sf(self, x: F64) -> F64:
        s = self.sorted()
        n = s.size
        above = n - np.searchsorted(s, x, side="right")
        out: F64 = (self.weight * lognormal_sf(x, self.mu, self.sigma) + above) / (self.weight + n)
        return out

    def mean(self) -> float:
        n = len(self.buf)
        return (self.weight * self.prior_mean + float(sum(self.buf))) / (self.weight + n)

    def quantiles(self, k: int) -> F64:
        """k mid-quantiles of the mixture (by bisection on the mixture survival)."""
        qs = (np.arange(k) + 0.5) / k
        lo = np.zeros(k)
        hi = np.full(k, max(self.prior_mean * 20.0, float(self.sorted()[-1]) if self.buf else 0.0) + 1.0)
        for _ in range(40):
            mid = (lo + hi) / 2.0
            cdf = 1.0 - self.sf(mid)
            below = cdf < qs
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out: F64 = (lo + hi) / 2.0
        return out


class HandleTimes:
    """Talk and wrap-up time distributions -> P(busy agent free within h | elapsed).

    On a call with elapsed e: P(T + W <= e + h | T > e), averaged over wrap quantiles. In wrap-up
    with elapsed e: P(W <= e + h | W > e). Both ratios carry a tiny epsilon so an agent far in the
    tail (beyond every sample) is treated as *not* about to free up: the safe side.
    """

    EPS = 1e-9

    def __init__(self, prior_talk_s: float, prior_wrap_s: float, weight: float = 10.0, size: int = 400,
                 wrap_points: int = 8):
        self.talk = _Samples(prior_talk_s, 1.0, weight, size)
        self.wrap = _Samples(prior_wrap_s, 0.5, weight, size)
        self.k = wrap_points
        self._wq: F64 | None = None
        self._tab: tuple[float, F64, float, F64] | None = None
        self._tab_h: F64 | None = None
        self._since = 0
        self.stale = False

    def observe(self, talk_s: float, wrap_s: float) -> None:
        """Add a finished call. The lookup tables go stale every `REFRESH` calls; `refresh` rebuilds them.

        Why not rebuild here or in `free_fast`: a rebuild costs ~10 ms at 400 samples, far above the
        ~0.3 ms a decision may take. The caller rebuilds between ticks (the Pacer does it when it
        records a handle time, which never happens inside `decide`); the decision keeps using the
        previous table meanwhile, which is at most `REFRESH` calls old.
        """
        self.talk.add(talk_s)
        self.wrap.add(wrap_s)
        self._since += 1
        if self._since >= self.REFRESH:
            self.stale = True

    REFRESH = 50

    def refresh(self, horizons: F64) -> None:
        """Rebuild the lookup tables for these horizons (off the decision path)."""
        self._wq = None
        self._tab = self._build(horizons)
        self._tab_h = horizons.copy()
        self._since, self.stale = 0, False

    def _build(self, horizons: F64) -> tuple[float, F64, float, F64]:
        qs = self.talk.quantiles(1000)
        e_max = float(min(7200.0, qs[-1] * 1.5 + 60.0))
        step_c = max(1.0, e_max / 1000.0)
        ec = np.arange(0.0, e_max + step_c, step_c)
        tab_c = self.free_on_call(ec, horizons)
        w_max = float(min(3600.0, self.wrap.quantiles(200)[-1] * 1.5 + 30.0))
        step_w = max(0.5, w_max / 1000.0)
        ew = np.arange(0.0, w_max + step_w, step_w)
        tab_w = self.free_in_wrap(ew, horizons)
        return step_c, tab_c, step_w, tab_w

    def free_fast(self, on_call: F64, in_wrap: F64, horizons: F64) -> F64:
        """[agent, horizon] free probabilities for on-call then wrap-up agents, by table lookup."""
        if self._tab is None or self._tab_h is None or not np.array_equal(self._tab_h, horizons):
            self.refresh(horizons)  # first use or new horizons only; staleness is handled by refresh()
        assert self._tab is not None
        step_c, tab_c, step_w, tab_w = self._tab
        ic = np.minimum(np.rint(on_call / step_c).astype(np.int64), tab_c.shape[0] - 1)
        iw = np.minimum(np.rint(in_wrap / step_w).astype(np.int64), tab_w.shape[0] - 1)
        out: F64 = np.concatenate([tab_c[ic], tab_w[iw]], axis=0)
        return out

    def wrap_quantiles(self) -> F64:
        if self._wq is None:
            self._wq = self.wrap.quantiles(self.k)
        return self._wq

    def free_on_call(self, elapsed: F64, horizons: F64) -> F64:
        """Matrix [agent, horizon]."""
        if elapsed.size == 0:
            return np.zeros((0, horizons.size))
        wq = self.wrap_quantiles()
        s_e = self.talk.sf(elapsed)[:, None, None]
        x = elapsed[:, None, None] + horizons[None, :, None] - wq[None, None, :]
        s_x = np.where(x > elapsed[:, None, None], self.talk.sf(x), s_e)
        p = 1.0 - (s_x + self.EPS) / (s_e + self.EPS)
        out: F64 = np.clip(p, 0.0, 1.0).mean(axis=2)
        return out

    def free_in_wrap(self, elapsed: F64, horizons: F64) -> F64:
        if elapsed.size == 0:
            return np.zeros((0, horizons.size))
        s_e = self.wrap.sf(elapsed)[:, None]
        s_x = self.wrap.sf(elapsed[:, None] + horizons[None, :])
        out: F64 = np.clip(1.0 - (s_x + self.EPS) / (s_e + self.EPS), 0.0, 1.0)
        return out

    def aht(self) -> float:
        return self.talk.mean() + self.wrap.mean()

    def to_state(self) -> dict[str, Any]:
        return {"talk": list(self.talk.buf[-200:]), "wrap": list(self.wrap.buf[-200:])}

    def load_state(self, st: dict[str, Any]) -> None:
        for x in st.get("talk", []):
            self.talk.add(float(x))
        for x in st.get("wrap", []):
            self.wrap.add(float(x))
        self._wq, self._tab = None, None
        self.stale = False
