"""Pacing policies the simulator compares. `progressive` and `predictive` call pacing.engine.Pacer,
the same object the live dialer uses; the others are baselines and a ceiling."""

from __future__ import annotations

import heapq
import time
from collections import deque

from bench.pacing.scenario import Scenario
from bench.pacing.sim import ON_CALL, READY, STATE_NAMES, WRAP, Sim
from pacing.decision import power_count
from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot

BIG = 10**9


class _Quiet:
    on_events = True

    def on_dial(self, now: float) -> None:
        pass

    def on_outcome(self, now: float, outcome: str, ring_s: float) -> None:
        pass

    def on_connect(self, now: float, wait_s: float) -> None:
        pass

    def on_abandon(self, now: float, wait_s: float) -> None:
        pass

    def on_handle(self, talk_s: float, wrap_s: float) -> None:
        pass


def pacer_config(sc: Scenario, mode: str, ratio: float = 1.5) -> PacerConfig:
    """The pacer's config for a scenario; priors default to the truth (yesterday's state), `[pacer]` overrides."""
    pr = sc.prior
    return PacerConfig(
        mode=mode, abandon_target=min(sc.abandon_target, sc.abandon_limit), abandon_limit=sc.abandon_limit,
        abandon_window="day", connect_limit_s=sc.connect_limit_s, ring_timeout_s=sc.ring_timeout_s,
        max_lines_per_agent=sc.max_lines_per_agent, power_ratio=ratio,
        prior_hit_rate=pr.get("prior_hit_rate", min(0.99, max(0.01, sc.shares.human))),
        prior_talk_s=pr.get("prior_talk_s", sc.talk.mean()), prior_wrap_s=pr.get("prior_wrap_s", sc.wrap.mean()),
        prior_ring_median_s=pr.get("prior_ring_median_s", sc.setup_s + sc.ring.median()),
        bridge_s=sc.connect_delay_s + 0.2)


class EnginePolicy:
    """Drives pacing.engine.Pacer exactly as the live dialer does."""

    on_events = True

    def __init__(self, sc: Scenario, mode: str):
        self.name = mode
        self.pacer = Pacer(pacer_config(sc, mode))
        self.last_ms = 0.0

    def decide(self, sim: Sim, now: float) -> int:
        bp = sim.break_pending
        agents = [AgentView(STATE_NAMES[s], now - sim.since[a], bp[a] > 0.0)
                  for a, s in enumerate(sim.state) if s in STATE_NAMES]
        snap = Snapshot(now=now, agents=agents, ringing=[now - t for t in sim.ringing.values()],
                        waiting=len(sim.waiting), trunk_free=BIG, cps_headroom=sim.caps())
        t0 = time.perf_counter()
        d = self.pacer.decide(snap)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return d.dial

    def on_dial(self, now: float) -> None:
        self.pacer.record_dial(now)

    def on_outcome(self, now: float, outcome: str, ring_s: float) -> None:
        self.pacer.record_outcome(now, outcome, ring_s)

    def on_connect(self, now: float, wait_s: float) -> None:
        self.pacer.record_connect(now, wait_s)

    def on_abandon(self, now: float, wait_s: float) -> None:
        self.pacer.record_abandon(now, wait_s)

    def on_handle(self, talk_s: float, wrap_s: float) -> None:
        self.pacer.record_handle(talk_s, wrap_s)


class FixedPolicy(_Quiet):
    """Fixed dial level R: keep round(R x active agents) lines up, no brakes."""

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.name = f"fixed:{ratio:g}"

    def decide(self, sim: Sim, now: float) -> int:
        active = len(sim.ready) + sim.on_call_n
        return power_count(self.ratio, active, sim.in_progress())


class VicidialPolicy(_Quiet):
    """Re-implementation of AST_VDadapt.pl as described in the brief (ADAPT_HARD_LIMIT drop method)."""

    on_events = False

    def __init__(self, sc: Scenario, intensity: float = 0.0, diff_target: float = 0.0, max_level: float = 3.0):
        self.name = "vicidial"
        self.limit = sc.abandon_limit
        self.k, self.diff, self.max_level = intensity, diff_target, min(max_level, sc.max_lines_per_agent)
        self.level = 1.0
        self.samples: deque[tuple[int, int, int]] = deque(maxlen=15)
        self.last_sample = self.last_update = self.last_loop = self.last_stats = -1e9
        self.events: deque[tuple[float, bool]] = deque()  # (time, dropped) per answered person
        self.today_ans = self.today_drop = 0
        self.min_ans = self.min_drop = 0
        self.stat_today = (0, 0)
        self.stat_min = (0, 0)

    def on_connect(self, now: float, wait_s: float) -> None:
        self.events.append((now, False))
        self.today_ans += 1

    def on_abandon(self, now: float, wait_s: float) -> None:
        self.events.append((now, True))
        self.today_ans += 1
        self.today_drop += 1

    def decide(self, sim: Sim, now: float) -> int:
        if now - self.last_sample >= 1.0:
            self.last_sample = now
            self.samples.append((len(sim.ready), len(sim.waiting), sim.logged()))
        if now - self.last_stats >= 60.0:  # drop statistics refresh every 60 s
            self.last_stats = now
            while self.events and self.events[0][0] < now - 60.0:
                self.events.popleft()
            self.stat_min = (len(self.events), sum(1 for _, d in self.events if d))
            self.stat_today = (self.today_ans, self.today_drop)
        if now - self.last_update >= 15.0 and self.samples:
            self.last_update = now
            n = len(self.samples)
            r = sum(s[0] for s in self.samples) / n
            w = sum(s[1] for s in self.samples) / n
            lg = sum(s[2] for s in self.samples) / n
            if lg > 0:
                m = ((r - w) + self.diff) / lg
                m = m * (1 + self.k) if m > 0 else m * (1 - self.k)
                self.level = min(self.max_level, max(1.0, self.level * (1 + m)))
            ans_m, drop_m = self.stat_min
            if ans_m > 20 and drop_m > 0.5 * ans_m:
                self.level = max(1.0, self.level / 2)
            ans_d, drop_d = self.stat_today
            if ans_d > 50 and drop_d > self.limit * ans_d:
                self.level = 1.0  # ADAPT_HARD_LIMIT
        if now - self.last_loop < 2.5:
            return 0
        self.last_loop = now
        active = len(sim.ready) + sim.on_call_n
        return max(0, round(self.level * active) - sim.in_progress())


class OraclePolicy(_Quiet):
    """Knows every lead's fate and every agent's end of call: dials a person only when an agent will be
    free to take them within the connect limit. A ceiling, not a competitor."""

    def __init__(self, sc: Scenario):
        self.name = "oracle"
        self.sc = sc
        self.slack = max(0.0, sc.connect_limit_s - sc.connect_delay_s - 0.05)

    def decide(self, sim: Sim, now: float) -> int:
        cap = sim.caps()
        if cap <= 0:
            return 0
        avail = [now if s == READY else sim.free_at[a] for a, s in enumerate(sim.state)
                 if s in (READY, ON_CALL, WRAP) and sim.break_pending[a] == 0.0]
        if not avail:
            return 0
        heapq.heapify(avail)
        pending = sorted([(now, i) for i in sim.waiting]
                         + [(end, i) for i, (o, end) in sim.fate.items() if o == "human"])
        for ans, i in pending:
            f = avail[0]
            if f <= ans + self.slack:
                lead = sim.world.lead(i)
                heapq.heapreplace(avail, max(f, ans) + self.sc.connect_delay_s + lead[5] + lead[6])
        n, j = 0, sim.next_lead
        while n < cap:
            outcome, dt = sim.world.outcome(j, now)
            if outcome == "human":
                f = avail[0]
                if f > now + dt + self.slack:
                    break
                lead = sim.world.lead(j)
                heapq.heapreplace(avail, max(f, now + dt) + self.sc.connect_delay_s + lead[5] + lead[6])
            n += 1
            j += 1
        return n


def make_policy(name: str, sc: Scenario) -> EnginePolicy | FixedPolicy | VicidialPolicy | OraclePolicy:
    if name in ("progressive", "predictive", "power", "preview"):
        return EnginePolicy(sc, name)
    if name.startswith("fixed:"):
        try:
            return FixedPolicy(float(name.split(":", 1)[1]))
        except ValueError:
            raise ValueError(f"bad policy {name!r}: use fixed:R with R a number, e.g. fixed:1.5") from None
    if name == "vicidial":
        return VicidialPolicy(sc)
    if name == "oracle":
        return OraclePolicy(sc)
    raise ValueError(f"unknown policy {name!r}: use progressive, fixed:R, fixed (best R), vicidial, predictive, oracle")

