"""Scenario files (TOML) for the pacing simulator: the world a campaign shift runs in."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class ScenarioError(ValueError):
    """A scenario file is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Dist:
    kind: str
    a: float
    b: float = 0.0

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "lognormal":  # a = mu, b = sigma
            return rng.lognormal(self.a, self.b, n)
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b, n)
        if self.kind == "exponential":
            return rng.exponential(self.a, n)
        return np.full(n, self.a)

    def mean(self) -> float:
        if self.kind == "lognormal":
            return math.exp(self.a + self.b * self.b / 2)
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a

    def median(self) -> float:
        if self.kind == "lognormal":
            return math.exp(self.a)
        return self.mean() if self.kind != "exponential" else self.a * math.log(2)


def parse_dist(src: str, key: str, d: Any) -> Dist:
    if not isinstance(d, dict) or "dist" not in d:
        raise ScenarioError(f"{src}: [{key}] needs dist = \"lognormal\"|\"uniform\"|\"exponential\"|\"fixed\"")
    kind = d["dist"]
    try:
        if kind == "lognormal":
            if "median" in d:
                return Dist("lognormal", math.log(float(d["median"])), float(d.get("sigma", 0.5)))
            mean, cv = float(d["mean"]), float(d.get("cv", 1.0))
            s2 = math.log(1 + cv * cv)
            return Dist("lognormal", math.log(mean) - s2 / 2, math.sqrt(s2))
        if kind == "uniform":
            return Dist("uniform", float(d["low"]), float(d["high"]))
        if kind == "exponential":
            return Dist("exponential", float(d["mean"]))
        if kind == "fixed":
            return Dist("fixed", float(d["value"]))
    except KeyError as e:
        raise ScenarioError(f"{src}: [{key}] dist {kind!r} is missing {e.args[0]!r}") from None
    raise ScenarioError(f"{src}: [{key}] unknown dist {kind!r}")


@dataclass(frozen=True)
class Shares:
    human: float
    machine: float
    busy: float
    failed: float


@dataclass(frozen=True)
class Break:
    at_s: float
    duration_s: float
    spread_s: float
    share: float = 1.0  # share of agents taking it (drawn per seed); a duration past the shift is a logout
    # (issue 31) a share of the agents taking it press "pause after this call" announce_s before it: on a call or in
    # wrap-up then, they leave when that call ends (the pacer is told: AgentView.leaving); ready then, nothing changes
    announce_s: float = 0.0
    announce_share: float = 0.0


@dataclass(frozen=True)
class Amd:
    """Answering-machine detection as the live path has it: a verdict delay and both error rates.

    A person is reported `delay_s` after answering (the connect clock starts at the verdict); a
    machine `machine_delay_s` after. A false positive hangs up on a person (reported "machine"); a
    false negative sends a machine to the agent queue (reported "human"; the agent drops it after
    `fn_talk_s`)."""

    delay_s: float = 1.0
    machine_delay_s: float = 3.0
    false_positive: float = 0.02
    false_negative: float = 0.10
    fn_talk_s: float = 8.0


@dataclass(frozen=True)
class Scenario:
    name: str
    agents: int
    shift_s: float
    seeds: int
    abandon_limit: float
    abandon_target: float
    connect_limit_s: float
    ring_timeout_s: float
    setup_s: float
    connect_delay_s: float
    tick_s: float
    trunks: int
    cps: int
    max_lines_per_agent: float
    shares: Shares
    ring: Dist
    machine_ring: Dist
    busy_time: Dist
    talk: Dist
    wrap: Dist
    drift: float = 1.0
    list_changes: tuple[tuple[float, Shares], ...] = ()
    login_over_s: float = 0.0
    breaks: tuple[Break, ...] = ()
    prior: dict[str, float] = field(default_factory=dict)
    amd: Amd = Amd()
    shift_start_hhmm: int = 900    # local clock at t = 0 (VICIdial's ADAPT_TAPERED reads the wall clock)
    extra_policies: tuple[str, ...] = ()  # e.g. warm start rows for the cold-start scenarios
    tags: tuple[str, ...] = ()
    # a pause (break or logout) asked for while calls are ringing takes the agent out of new dials at
    # once but leaves them on standby for those calls (the live runner does the same: dialer.agents)
    pause_after_calls: bool = True
    # the abandon regime the pacer runs under (pacing/regimes.py); "" = the bench's historical setting:
    # legacy "us" counting over the shift's calendar day, guarded per rolling hour at the scenario's limit
    regime: str = ""

    def shares_at(self, t: float) -> Shares:
        s = self.shares
        for at, new in self.list_changes:
            if t >= at:
                s = new
        if self.drift != 1.0:
            f = 1.0 + (self.drift - 1.0) * min(1.0, max(0.0, t / self.shift_s))
            s = Shares(s.human * f, s.machine, s.busy, s.failed)
        return s


def _shares(src: str, key: str, d: Any) -> Shares:
    if not isinstance(d, dict):
        raise ScenarioError(f"{src}: [{key}] must be a table with human, machine, busy")
    s = Shares(float(d.get("human", 0.2)), float(d.get("machine", 0.15)), float(d.get("busy", 0.1)),
               float(d.get("failed", 0.02)))
    if min(s.human, s.machine, s.busy, s.failed) < 0 or s.human + s.machine + s.busy + s.failed > 1.0:
        raise ScenarioError(f"{src}: [{key}] shares must be >= 0 and sum to <= 1")
    return s


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{p}: no such scenario file") from None
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{p}: not valid TOML: {e}") from None
    return scenario_from_dict(raw, str(p))


def scenario_from_dict(raw: dict[str, Any], src: str = "<scenario>") -> Scenario:
    try:
        agents = int(raw["agents"])
    except KeyError:
        raise ScenarioError(f"{src}: 'agents' is required") from None
    if agents < 1:
        raise ScenarioError(f"{src}: agents must be >= 1")
    limit = float(raw.get("abandon_limit", 0.03))
    ring = parse_dist(src, "ring_to_answer", raw.get("ring_to_answer", {"dist": "lognormal", "median": 9.0,
                                                                        "sigma": 0.5}))
    changes = []
    for i, ch in enumerate(raw.get("list_change", []) if isinstance(raw.get("list_change"), list)
                           else ([raw["list_change"]] if "list_change" in raw else [])):
        if "at_s" not in ch:
            raise ScenarioError(f"{src}: list_change #{i + 1} needs at_s")
        changes.append((float(ch["at_s"]), _shares(src, f"list_change #{i + 1}", ch)))
    breaks = tuple(Break(float(b["at_s"]), float(b["duration_s"]), float(b.get("spread_s", 0.0)),
                         float(b.get("share", 1.0)), float(b.get("announce_s", 0.0)),
                         float(b.get("announce_share", 0.0)))
                   for b in raw.get("breaks", []))
    a = raw.get("amd", {})
    if not isinstance(a, dict):
        raise ScenarioError(f"{src}: [amd] must be a table")
    amd = Amd(float(a.get("delay_s", 1.0)), float(a.get("machine_delay_s", 3.0)),
              float(a.get("false_positive", 0.02)), float(a.get("false_negative", 0.10)),
              float(a.get("fn_talk_s", 8.0)))
    if not (0 <= amd.false_positive < 1 and 0 <= amd.false_negative < 1 and amd.delay_s >= 0):
        raise ScenarioError(f"{src}: [amd] rates must be in [0, 1) and delays >= 0")
    drift = raw.get("drift", {})
    prior = {k: float(v) for k, v in raw.get("pacer", {}).items()}
    return Scenario(
        name=str(raw.get("name", Path(src).stem)), agents=agents, shift_s=float(raw.get("shift_s", 28800)),
        seeds=int(raw.get("seeds", 30)), abandon_limit=limit,
        abandon_target=float(raw.get("abandon_target", round(limit * 2 / 3, 4))),
        connect_limit_s=float(raw.get("connect_limit_s", 2.0)), ring_timeout_s=float(raw.get("ring_timeout_s", 24)),
        setup_s=float(raw.get("setup_s", 1.0)), connect_delay_s=float(raw.get("connect_delay_s", 0.3)),
        tick_s=float(raw.get("tick_s", 1.0)), trunks=int(raw.get("trunks", 0)), cps=int(raw.get("cps", 0)),
        max_lines_per_agent=float(raw.get("max_lines_per_agent", 3.0)),
        shares=_shares(src, "outcomes", raw.get("outcomes", {})), ring=ring,
        machine_ring=parse_dist(src, "machine_ring", raw["machine_ring"]) if "machine_ring" in raw else ring,
        busy_time=parse_dist(src, "busy_time", raw.get("busy_time", {"dist": "uniform", "low": 2.0, "high": 5.0})),
        talk=parse_dist(src, "talk", raw.get("talk", {"dist": "lognormal", "mean": 180.0, "cv": 1.0})),
        wrap=parse_dist(src, "wrap", raw.get("wrap", {"dist": "uniform", "low": 15.0, "high": 45.0})),
        drift=float(drift.get("factor", 1.0)) if isinstance(drift, dict) else float(drift),
        list_changes=tuple(changes), login_over_s=float(raw.get("agents_ramp", {}).get("login_over_s", 0.0)),
        breaks=breaks, prior=prior, amd=amd, shift_start_hhmm=int(raw.get("shift_start_hhmm", 900)),
        extra_policies=tuple(str(x) for x in raw.get("extra_policies", [])),
        tags=tuple(str(x) for x in raw.get("tags", [])),
        pause_after_calls=bool(raw.get("pause_after_calls", True)), regime=str(raw.get("regime", "")))
