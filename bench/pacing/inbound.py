"""The return-call world (issue 30): customers who missed our call call back, and take agents.

A share of the people who did not answer (`rate`, the issue's 10-20 %) call the number back within two hours, after
an exponential delay (mean `mean_s`, cut at `window_s`). A return caller takes a ready agent at once; with nobody
ready they queue, and with inbound first (the default) they get the next agent to free up before any outbound answer
waiting; a caller queued `max_wait_s` goes to the IVR menu (an inbound abandon, reported apart from the outbound one).
Return calls take the scenario's talk and wrap-up times, drawn per lead on their own stream, so every policy meets
the same callers (common random numbers) and a world with `rate = 0` is the outbound world, draw for draw.

Policies: `predictive` is the pacer as it ran before issue 30 (an agent on a return call looks like any busy agent,
no load counted); `predictive-inbound` feeds it what the live runner feeds it (dialer/runner/return_calls.py): the
ages of the calls left unanswered, the return-call rate measured from them with the prior, the callers queued, and
which agents are on return calls, through the same `pacing.inbound` functions and `Pacer.decide`.

    python -m bench.pacing.inbound --agents 12 20 --seeds 10 --procs 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from bench.pacing.policies import EnginePolicy
from bench.pacing.run import metrics
from bench.pacing.scenario import Scenario, scenario_from_dict
from bench.pacing.sim import CHUNK, ON_CALL, READY, STATE_NAMES, WRAP, Policy, Sim
from pacing.engine import Snapshot
from pacing.inbound import PRIOR_RATE, PRIOR_WEIGHT, InboundLoad, Priority, inbound_load, measured_rate

IN_ARRIVE, IN_GIVE_UP, IN_TALK_END, IN_WRAP_END = 101, 102, 103, 104
REFRESH_S = 15.0  # the live runner reads the unanswered calls this often (dialer/runner/return_calls.py)


@dataclass(frozen=True)
class Returns:
    """How customers call back. `priority` is who gets the next free agent (and what the aware pacer keeps)."""

    rate: float = 0.15
    mean_s: float = 1800.0
    window_s: float = 7200.0
    max_wait_s: float = 30.0
    priority: Priority = Priority.INBOUND_FIRST


@dataclass
class InboundResult:
    arrivals: int = 0
    answered: int = 0
    gave_up: int = 0            # queued max_wait_s: to the IVR menu (an inbound abandon)
    waits: list[float] = field(default_factory=list)  # every caller's wait (max_wait_s for those who gave up)
    busy_s: float = 0.0         # agent time on return calls (talk + wrap), inside the shift
    unfinished: int = 0         # still queued at the end of the shift


class InboundSim(Sim):
    """The outbound simulator with return calls (the same events, agents and pacer; new event kinds in `other`)."""

    def __init__(self, sc: Scenario, seed: int, policy: Policy, returns: Returns):
        super().__init__(sc, seed, policy)
        self.ret = returns
        self.inb = InboundResult()
        self.in_queue: dict[int, float] = {}   # lead -> when it called (insertion ordered: first come first)
        self.on_return = [False] * sc.agents    # the agent is on (or wrapping up) a return call
        self.unanswered: list[float] = []       # dial times of calls the dialer saw unanswered (what the store has)
        self.open_calls: dict[int, float] = {}  # those of them that have not come back (yet)
        self.returned = 0                       # return calls seen so far (what the store counts)
        self._chunks: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ the callers' own draws
    def _draw(self, i: int) -> np.ndarray:
        c, k = divmod(i, CHUNK)
        ch = self._chunks.get(c)
        if ch is None:
            rng = np.random.default_rng([self.seed, c, 30, 20261207])
            sc = self.sc
            ch = np.stack([rng.random(CHUNK), rng.random(CHUNK), sc.talk.draw(rng, CHUNK), sc.wrap.draw(rng, CHUNK)])
            self._chunks[c] = ch
        out: np.ndarray = ch[:, k]
        return out

    def line_end(self, i: int) -> None:
        reported, _ = self.fate[i]
        true, dialled = self.truth[i], self.ringing[i]
        super().line_end(i)
        if reported in ("no_answer", "busy", "machine"):  # what the store counts as unanswered
            self.unanswered.append(dialled)
            self.open_calls[i] = dialled
        r = self.ret
        if true != "no_answer" or r.rate <= 0.0:
            return
        u, v, _, _ = self._draw(i)
        if u >= r.rate:
            return
        delay = -r.mean_s * math.log1p(-v * -math.expm1(-r.window_s / r.mean_s))  # exponential cut at the window
        if self.now + delay < self.sc.shift_s:
            self.push(self.now + delay, IN_ARRIVE, i)

    # ------------------------------------------------------------------ return calls
    def other(self, kind: int, arg: int) -> None:
        if kind == IN_ARRIVE:
            self.arrive(arg)
        elif kind == IN_GIVE_UP:
            if self.in_queue.pop(arg, None) is not None:
                self.inb.gave_up += 1
                self.inb.waits.append(self.ret.max_wait_s)
        elif kind == IN_TALK_END:
            self.set_state(arg, WRAP)
        elif kind == IN_WRAP_END:
            self.on_return[arg] = False
            self.available(arg)

    def arrive(self, i: int) -> None:
        self.inb.arrivals += 1
        self.returned += 1
        self.open_calls.pop(i, None)
        if self.ready and not (self.ret.priority is Priority.OUTBOUND_FIRST and self.waiting):
            self.take(self.ready.pop(), i, self.now)
            return
        self.in_queue[i] = self.now
        self.push(self.now + self.ret.max_wait_s, IN_GIVE_UP, i)

    def take(self, a: int, i: int, called: float) -> None:
        self.ready.discard(a)
        self.set_state(a, ON_CALL)
        self.on_return[a] = True
        self.inb.answered += 1
        self.inb.waits.append(self.now - called)
        _, _, talk, wrap = self._draw(i)
        shift = self.sc.shift_s
        self.inb.busy_s += max(0.0, min(self.now + talk + wrap, shift) - min(self.now, shift))
        self.free_at[a] = self.now + talk + wrap
        self.push(self.now + talk, IN_TALK_END, a)
        self.push(self.now + talk + wrap, IN_WRAP_END, a)

    def available(self, a: int) -> None:
        """Inbound first: a queued return caller takes the agent before an outbound answer waiting; outbound first:
        after them. A break asked for, or nobody queued: as in the outbound world."""
        if self.in_queue and not (self.break_pending[a] > 0 and self.now < self.sc.shift_s):
            if not (self.ret.priority is Priority.OUTBOUND_FIRST and self.waiting):
                i = next(iter(self.in_queue))
                called = self.in_queue.pop(i)
                self.break_pending[a] = 0.0
                self.set_state(a, READY)
                self.take(a, i, called)
                return
        super().available(a)

    def run_all(self) -> tuple[Any, InboundResult]:
        r = self.run()
        self.inb.unfinished = len(self.in_queue)
        return r, self.inb


class _Aware:
    """Pacer.decide with what the live runner adds for return calls (dialer/runner/return_calls.py): the same
    pacing.inbound functions, fed from the world's record of unanswered calls and queued callers."""

    def __init__(self, pacer: Any, returns: Returns):
        self.pacer, self.ret = pacer, returns
        self.sim: InboundSim | None = None
        self.load = InboundLoad()
        self.rate = PRIOR_RATE
        self._next = -math.inf

    def decide(self, snap: Snapshot) -> Any:
        sim = self.sim
        assert sim is not None
        now = snap.now
        if now >= self._next:  # the slow part: ages of the unanswered calls, the measured rate (every REFRESH_S)
            self._next = now + REFRESH_S
            self.rate = measured_rate([now - t for t in sim.unanswered], sim.returned, prior_rate=PRIOR_RATE,
                                      prior_weight=PRIOR_WEIGHT, mean_s=self.ret.mean_s, window_s=self.ret.window_s)
            # the calls that came back are not waiting to any more (the store leaves them out too)
            self.load = inbound_load(queued=0, unanswered_ages_s=[now - t for t in sim.open_calls.values()],
                                     rate=self.rate, priority=self.ret.priority, mean_s=self.ret.mean_s,
                                     window_s=self.ret.window_s)
        load = replace(self.load, queued=len(sim.in_queue))
        ids = [a for a, s in enumerate(sim.state) if s in STATE_NAMES]
        agents = [replace(v, inbound=True) if sim.on_return[a] and v.state in ("on_call", "wrap_up") else v
                  for a, v in zip(ids, snap.agents, strict=True)]
        return self.pacer.decide(replace(snap, agents=agents, inbound=load))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pacer, name)


def make(policy: str, sc: Scenario, returns: Returns) -> EnginePolicy:
    if policy == "predictive":
        return EnginePolicy(sc, "predictive")
    if policy == "predictive-inbound":
        p = EnginePolicy(sc, "predictive")
        p.name = policy
        p.pacer = _Aware(p.pacer, returns)  # type: ignore[assignment]
        return p
    raise ValueError(f"unknown policy {policy!r}: use predictive or predictive-inbound")


def run_one(sc: Scenario, policy: str, seed: int, returns: Returns) -> dict[str, float]:
    pol = make(policy, sc, returns)
    sim = InboundSim(sc, seed, pol, returns)
    if isinstance(pol.pacer, _Aware):
        pol.pacer.sim = sim
    r, inb = sim.run_all()
    m = metrics(sc, r)
    waits = np.asarray(inb.waits) if inb.waits else np.zeros(1)
    m.update({
        "outbound_occupancy": (r.busy_s - inb.busy_s) / r.avail_s if r.avail_s > 0 else 0.0,
        "inbound_calls": float(inb.arrivals), "inbound_answered": float(inb.answered),
        "inbound_abandon": inb.gave_up / inb.arrivals if inb.arrivals else 0.0,
        "inbound_wait_p50_s": float(np.percentile(waits, 50)), "inbound_wait_p95_s": float(np.percentile(waits, 95)),
        "inbound_wait_mean_s": float(waits.mean()), "connects": float(r.connects),
        "inbound_unfinished": float(inb.unfinished),
    })
    return m


def scenario(agents: int, shift_s: float) -> Scenario:
    """A Japanese B2C list: a quarter of the dials answered by a person, half unanswered (the people who may call
    back), 3-minute calls; the US 3 % rule as the outbound abandon limit."""
    return scenario_from_dict({
        "name": f"inbound-{agents}", "agents": agents, "shift_s": shift_s, "abandon_limit": 0.03,
        "outcomes": {"human": 0.25, "machine": 0.15, "busy": 0.05, "failed": 0.03},
        "talk": {"dist": "lognormal", "mean": 180.0, "cv": 1.0},
        "wrap": {"dist": "uniform", "low": 15.0, "high": 45.0},
        "agents_ramp": {"login_over_s": 120},
    }, "bench.pacing.inbound")


PACERS = ("predictive", "predictive-inbound")
KEYS = ("abandon_rate", "occupancy", "outbound_occupancy", "connects_per_agent_hour", "inbound_calls",
        "inbound_wait_p50_s", "inbound_wait_p95_s", "inbound_abandon", "worst_hour_abandon")


def _job(args: tuple[int, float, str, int, Returns]) -> tuple[int, str, int, dict[str, float]]:
    agents, shift_s, policy, seed, returns = args
    return agents, policy, seed, run_one(scenario(agents, shift_s), policy, seed, returns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pacing.inbound", description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, nargs="+", default=[12, 20])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--shift-h", type=float, default=8.0)
    ap.add_argument("--rate", type=float, default=0.15, help="share of no-answers that call back (default 0.15)")
    ap.add_argument("--mean-min", type=float, default=30.0, help="mean delay of a return call, minutes")
    ap.add_argument("--max-wait-s", type=float, default=30.0)
    ap.add_argument("--priority", choices=[p.value for p in Priority], default=Priority.INBOUND_FIRST.value)
    ap.add_argument("--pacers", nargs="+", choices=PACERS, default=list(PACERS))
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/pacing/last_run/inbound.json"))
    a = ap.parse_args(argv)
    ret = Returns(rate=a.rate, mean_s=a.mean_min * 60.0, max_wait_s=a.max_wait_s, priority=Priority(a.priority))
    jobs = [(n, a.shift_h * 3600.0, p, s, ret) for n in a.agents for p in a.pacers for s in range(a.seeds)]
    t0 = time.time()
    if a.procs > 1:
        with Pool(a.procs) as pool:
            rows = list(pool.imap_unordered(_job, jobs, chunksize=1))
    else:
        rows = [_job(j) for j in jobs]
    out: dict[str, Any] = {"returns": {"rate": ret.rate, "mean_s": ret.mean_s, "window_s": ret.window_s,
                                       "max_wait_s": ret.max_wait_s, "priority": ret.priority.value},
                           "seeds": a.seeds, "shift_h": a.shift_h, "wall_s": round(time.time() - t0, 1),
                           "loadavg": os.getloadavg(), "results": {}}
    print(f"return calls: {ret.rate:.0%} of no-answers within {ret.window_s / 3600:g} h (mean {ret.mean_s / 60:g} min),"
          f" queue {ret.max_wait_s:g} s, {ret.priority.value}; {a.seeds} seeds, {a.shift_h:g} h shift")
    print(f"{'agents':>6} {'pacer':<19} " + " ".join(f"{k[:18]:>18}" for k in KEYS))
    for n in a.agents:
        for p in a.pacers:
            ms = [m for (nn, pp, _, m) in rows if nn == n and pp == p]
            agg = {k: statistics.fmean(m[k] for m in ms) for k in KEYS}
            agg["abandon_rate_max_seed"] = max(m["abandon_rate"] for m in ms)
            agg["inbound_wait_p95_max_seed"] = max(m["inbound_wait_p95_s"] for m in ms)
            out["results"].setdefault(str(n), {})[p] = agg
            print(f"{n:>6} {p:<19} " + " ".join(f"{agg[k]:>18.4f}" for k in KEYS))
    print(f"wall {out['wall_s']} s, load average {out['loadavg'][0]:.2f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
