"""Run policies over seeds (two processes), compute the metrics and aggregate them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from multiprocessing import Pool
from typing import Any

import numpy as np

from bench.pacing.policies import make_policy
from bench.pacing.scenario import Scenario
from bench.pacing.sim import RunResult, Sim

METRICS = ("abandon_rate", "worst_hour_abandon", "p_hour_over_limit", "occupancy", "talk_minutes_per_hour",
           "wait_p50_s", "wait_p95_s", "wait_p99_s", "connects_per_agent_hour", "dials_per_connect",
           "decide_ms_p50")


def run_once(sc: Scenario, policy: str, seed: int) -> RunResult:
    return Sim(sc, seed, make_policy(policy, sc)).run()


def metrics(sc: Scenario, r: RunResult) -> dict[str, float]:
    limit = sc.abandon_limit
    humans = r.outcomes["human"]
    ans = np.asarray(r.answer_times)
    ab = np.asarray(r.abandon_times)
    worst = 0.0
    start = 0.0
    while start + 3600.0 <= max(sc.shift_s, 3600.0):
        n_ans = int(((ans >= start) & (ans < start + 3600)).sum())
        n_ab = int(((ab >= start) & (ab < start + 3600)).sum())
        if n_ans:
            worst = max(worst, n_ab / n_ans)
        start += 300.0
    over = total = 0
    for h in range(max(1, int(sc.shift_s // 3600))):
        n_ans = int(((ans >= h * 3600) & (ans < (h + 1) * 3600)).sum())
        n_ab = int(((ab >= h * 3600) & (ab < (h + 1) * 3600)).sum())
        total += 1
        over += int(n_ans > 0 and n_ab / n_ans > limit)
    hours = r.avail_s / 3600.0 if r.avail_s > 0 else math.nan
    waits = np.asarray(r.waits) if r.waits else np.zeros(1)
    return {
        "abandon_rate": r.abandons / humans if humans else 0.0,
        "worst_hour_abandon": worst,
        "hours_over": float(over), "hours": float(total),
        "occupancy": r.busy_s / r.avail_s if r.avail_s > 0 else 0.0,
        "talk_minutes_per_hour": r.talk_s / 60.0 / hours,
        "wait_p50_s": float(np.percentile(waits, 50)), "wait_p95_s": float(np.percentile(waits, 95)),
        "wait_p99_s": float(np.percentile(waits, 99)),
        "connects_per_agent_hour": r.connects / hours,
        "dials_per_connect": r.dials / max(1, r.connects),
        "decide_ms_p50": float(np.median(r.decide_ms)) if r.decide_ms else 0.0,
        "dials": float(r.dials), "accounted": float(sum(r.outcomes.values())),
    }


def _job(args: tuple[Scenario, str, int]) -> tuple[str, int, dict[str, float]]:
    sc, policy, seed = args
    return policy, seed, metrics(sc, run_once(sc, policy, seed))


def run_jobs(jobs: list[tuple[Scenario, str, int]], procs: int) -> list[tuple[str, int, dict[str, float]]]:
    if procs <= 1 or len(jobs) <= 1:
        return [_job(j) for j in jobs]
    with Pool(procs) as pool:
        return pool.map(_job, jobs, chunksize=1)


def aggregate(sc: Scenario, per_seed: Iterable[dict[str, float]]) -> dict[str, Any]:
    rows = list(per_seed)
    out: dict[str, Any] = {}
    for k in METRICS:
        if k == "p_hour_over_limit":
            tot = sum(r["hours"] for r in rows)
            out[k] = sum(r["hours_over"] for r in rows) / tot if tot else 0.0
            continue
        vals = [r[k] for r in rows]
        out[k] = statistics.fmean(vals)
        out[k + "_ci95"] = 1.96 * statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else 0.0
    out["abandon_rate_max_seed"] = max(r["abandon_rate"] for r in rows)
    out["seeds"] = len(rows)
    out["seeds_over_limit"] = sum(1 for r in rows if r["abandon_rate"] > sc.abandon_limit)
    return out


def evaluate(sc: Scenario, policies: list[str], seeds: int, procs: int = 2,
             fixed_ratios: tuple[float, ...] = (1.0, 1.1, 1.2, 1.35, 1.5, 2.0)) -> dict[str, dict[str, Any]]:
    """{policy: aggregated metrics}. 'fixed' means the best fixed ratio in hindsight: highest occupancy
    among the ratios whose whole-shift abandon stayed under the limit in every seed."""
    names: list[str] = []
    for p in policies:
        names += [f"fixed:{r:g}" for r in fixed_ratios] if p == "fixed" else [p]
    names = list(dict.fromkeys(names))
    jobs = [(sc, p, s) for p in names for s in range(seeds)]
    results = run_jobs(jobs, procs)
    by: dict[str, list[dict[str, float]]] = {}
    for p, _, m in results:
        by.setdefault(p, []).append(m)
    agg = {p: aggregate(sc, rows) for p, rows in by.items()}
    if "fixed" in policies:
        fixed = {p: a for p, a in agg.items() if p.startswith("fixed:")}
        ok = [p for p, a in fixed.items() if a["seeds_over_limit"] == 0]
        best = max(ok, key=lambda p: fixed[p]["occupancy"]) if ok else min(
            fixed, key=lambda p: float(p.split(":")[1]))
        agg["fixed"] = dict(fixed[best], ratio=float(best.split(":")[1]))
        for p in fixed:
            if p not in policies:
                del agg[p]
    return {p: agg[p] for p in policies if p in agg}
