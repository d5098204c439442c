"""Decision cost at 100 and 500 agents: p50 / p99 of Pacer.decide over a simulated hour.

Why a separate bench: the issue's target is p99 <= 2 ms at 500 agents with every table rebuild
(handle times every 50 calls, answer times every 20 outcomes) kept off the decision path. CPU time
of the call is the figure (the machine is shared; wall time is printed alongside).
`python -m bench.pacing.decide_time [--agents 100 500] [--shift-s 3600]`
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.pacing.run import run_once
from bench.pacing.scenario import Scenario, scenario_from_dict


def scenario(agents: int, shift_s: float) -> Scenario:
    return scenario_from_dict({
        "name": f"decide-n{agents}", "agents": agents, "shift_s": shift_s, "seeds": 1,
        "outcomes": {"human": 0.20, "machine": 0.15, "busy": 0.10, "failed": 0.02},
        "talk": {"dist": "lognormal", "mean": 180.0, "cv": 1.0},
        "wrap": {"dist": "uniform", "low": 15.0, "high": 45.0},
        "agents_ramp": {"login_over_s": 120}})


def measure(agents: int, shift_s: float, seed: int = 0) -> dict[str, float]:
    r = run_once(scenario(agents, shift_s), "predictive", seed)
    cpu = np.asarray(r.decide_ms)
    wall = np.asarray(r.decide_wall_ms)
    return {"agents": float(agents), "decisions": float(cpu.size),
            "cpu_p50": float(np.percentile(cpu, 50)), "cpu_p99": float(np.percentile(cpu, 99)),
            "cpu_max": float(cpu.max()), "wall_p50": float(np.percentile(wall, 50)),
            "wall_p99": float(np.percentile(wall, 99))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pacing.decide_time")
    ap.add_argument("--agents", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--shift-s", type=float, default=3600.0)
    args = ap.parse_args(argv)
    print("| agents | decisions | CPU p50 ms | CPU p99 ms | CPU max ms | wall p50 ms | wall p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for n in args.agents:
        m = measure(n, args.shift_s)
        print(f"| {n} | {m['decisions']:.0f} | {m['cpu_p50']:.3f} | {m['cpu_p99']:.3f} | {m['cpu_max']:.2f} "
              f"| {m['wall_p50']:.3f} | {m['wall_p99']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
