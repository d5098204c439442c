"""Pacing policies the simulator compares. `progressive` and `predictive` call pacing.engine.Pacer,
the same object the live dialer uses; the others are baselines and a ceiling."""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from typing import Any

from bench.pacing.scenario import Scenario
from bench.pacing.sim import ON_CALL, PAUSED, READY, STATE_NAMES, WRAP, Sim
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


# A fixed, documented industry prior for a campaign with no history (not the scenario's truth):
# live-person answer rate 20 % of dials (B2C outbound lists commonly report 10-35 %), talk 180 s,
# wrap-up 30 s (the brief's reference call), dial-to-answer median 10 s (people answer after 2-3
# rings). A scenario's `[pacer]` table overrides it (the cold-start scenarios set it off by 2x).
INDUSTRY_PRIOR = {"prior_hit_rate": 0.20, "prior_talk_s": 180.0, "prior_wrap_s": 30.0, "prior_ring_median_s": 10.0}


def pacer_config(sc: Scenario, mode: str, ratio: float = 1.5, warm: bool = False) -> PacerConfig:
    """The pacer's config for a scenario. Cold (default): the industry prior, or the scenario's
    `[pacer]` override, and the conservative start. Warm: yesterday's state, i.e. priors at the
    scenario's true means worth a full ramp of evidence (reported as separate rows)."""
    pr = dict(INDUSTRY_PRIOR)
    pr.update(sc.prior)
    extra: dict[str, float] = {}
    if warm:
        pr = {"prior_hit_rate": min(0.99, max(0.01, sc.shares.human)), "prior_talk_s": sc.talk.mean(),
              "prior_wrap_s": sc.wrap.mean(), "prior_ring_median_s": sc.setup_s + sc.ring.median() + sc.amd.delay_s}
        extra["prior_answers"] = 1000.0
    opts: dict[str, Any] = dict(extra)
    if sc.regime:
        # a named regime counts the share of machine verdicts that were people: the bench gives the pacer the
        # scenario's true share (the live runner uses the AMD's measured figure)
        h, m = sc.shares.human, sc.shares.machine
        fp = h * sc.amd.false_positive
        opts["abandon_regime"] = sc.regime
        opts["amd_false_positive_rate"] = fp / (fp + m * (1.0 - sc.amd.false_negative)) if fp > 0 else 0.0
    if "model_bias_prior" in pr:
        opts["model_bias_prior"] = pr["model_bias_prior"]
    return PacerConfig(
        mode=mode, abandon_target=min(sc.abandon_target, sc.abandon_limit), abandon_limit=sc.abandon_limit,
        abandon_window="day", connect_limit_s=sc.connect_limit_s, ring_timeout_s=sc.ring_timeout_s,
        max_lines_per_agent=sc.max_lines_per_agent, power_ratio=ratio,
        prior_hit_rate=pr["prior_hit_rate"], prior_talk_s=pr["prior_talk_s"], prior_wrap_s=pr["prior_wrap_s"],
        prior_ring_median_s=pr["prior_ring_median_s"], bridge_s=sc.connect_delay_s + 0.2,
        **opts)


class EnginePolicy:
    """Drives pacing.engine.Pacer exactly as the live dialer does: it sees agent states and elapsed
    times, ringing lines and waiting answers, who will pause after this call (the live runner reads the agent's
    pending state) and when a paused agent on a scheduled break is due back (the bench's schedule)."""

    on_events = True

    def __init__(self, sc: Scenario, mode: str, warm: bool = False):
        self.name = mode + ("-warm" if warm else "")
        self.pacer = Pacer(pacer_config(sc, mode, warm=warm))
        self.last_ms = 0.0
        self.last_wall_ms = 0.0

    def decide(self, sim: Sim, now: float) -> int:
        since, pend, back = sim.since, sim.break_pending, sim.back_at
        # (issue 31) what the live runner knows of its agents too: who pressed "pause after this call" (pending) and,
        # for a scheduled break under way, when the agent is due back
        agents = [AgentView(STATE_NAMES[s], now - since[a], leaving=s in (ON_CALL, WRAP) and pend[a] > 0.0,
                            back_in_s=back[a] - now if s == PAUSED and back[a] < math.inf else None)
                  for a, s in enumerate(sim.state) if s in STATE_NAMES]
        snap = Snapshot(now=now, agents=agents, ringing=[now - t for t in sim.ringing.values()],
                        waiting=len(sim.waiting), trunk_free=BIG, cps_headroom=sim.caps())
        # CPU time of the pacer call alone: on a machine shared by many processes wall time measures
        # the scheduler's preemptions, not the code (both are kept; the report states which it shows)
        t0, c0 = time.perf_counter(), time.thread_time()
        d = self.pacer.decide(snap)
        self.last_ms = (time.thread_time() - c0) * 1000.0
        self.last_wall_ms = (time.perf_counter() - t0) * 1000.0
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


VICI_METHODS = ("ADAPT_HARD_LIMIT", "ADAPT_TAPERED", "ADAPT_AVERAGE")


class VicidialPolicy(_Quiet):
    """VICIdial's adaptive predictive pacing, reproduced from its own scripts.

    Read in `bin/AST_VDadapt.pl` (public mirrors of VICIdial 2.x; the copy read carries the
    dial_level_threshold options) and `bin/AST_VDauto_dial.pl`. Subroutines and rules reproduced:
      * master loop, 1 s delay (`$CLIdelay = 1`): every loop `count_agents_lines` samples READY|DONE
        agents, LIVE calls waiting for an agent and *all* live agents (paused included), and keeps
        the last 15 samples (`$stat_it = 15`, fewer at start-up) as plain averages;
      * `calculate_drops` runs when `$drop_count_updater >= 60` (it starts at 61, so at once, then
        every 60 s): calls, answers and drops *today* (vicidial_log since 00:00:01: every dial is a
        call) and in the last minute, by the call's placement time; percentages `sprintf("%.2f")`;
      * `calculate_dial_level` runs when `$diff_ratio_updater >= 15` (every 15 s, first at 15 s):
        differential = (ready avg - waiting avg) + adaptive_dl_diff_target; mul = differential /
        agents avg; intensity k = adaptive_intensity / 100 skews it (x (1 + k) up, x |k - 1| down);
        level = level x (1 + mul'), `sprintf("%.3f")`, capped at adaptive_maximum_level, floored
        at 1.0; then the brakes:
          - one-minute rule: more than 20 *calls* (dials) in the last minute and drops > 50 % of those
            calls -> level / 2;
          - daily rule: more than 50 *calls* today and drops > adaptive_dropped_percentage % of
            today's *answers* -> ADAPT_HARD_LIMIT: 1.0; ADAPT_AVERAGE: level / 2; ADAPT_TAPERED:
            1.0 after adaptive_latest_server_time, else level x (hhmm left / 1000, capped at 1);
          - level below 1.0 -> 1.0.
      * AST_VDauto_dial.pl, the dial loop (every 2.5 s here): goal = sprintf("%.0f", level x agents),
        agents = READY + INCALL (non-paused); with available_only_ratio_tally = Y, agents = READY
        only and the calls live with agents (XFER) are added to the goal; then place goal - calls
        active (SENT, RINGING, LIVE, XFER).
    The one thing kept from the sim, not VICIdial: a call is dropped after connect_limit_s (the
    legal 2 s), not drop_call_seconds (default 5), so every policy faces the same rule.
    """

    on_events = False  # driven by the 1 s ticks, like the script's master loop

    def __init__(self, sc: Scenario, method: str = "ADAPT_HARD_LIMIT", intensity: float = 0.0,
                 diff_target: float = 0.0, max_level: float = 3.0, available_only: bool = False,
                 start_level: float = 1.0, name: str = "vicidial"):
        if method not in VICI_METHODS:
            raise ValueError(f"VICIdial dial method must be one of {', '.join(VICI_METHODS)}")
        self.name = name
        self.sc = sc
        self.method, self.intensity, self.diff = method, intensity, diff_target
        self.max_level = min(max_level, sc.max_lines_per_agent)
        self.available_only = available_only
        self.drop_pct = round(sc.abandon_limit * 100, 2)   # adaptive_dropped_percentage
        self.latest_hhmm = 2100                             # adaptive_latest_server_time
        self.level = start_level
        self.samples: deque[tuple[int, int, int]] = deque(maxlen=15)
        self.next_loop = 0.0
        self.next_dial = 0.0
        self.diff_updater = 0
        self.drop_updater = 61
        self.dial_times: deque[float] = deque()       # placement times in the last minute
        self.drop_dial_times: deque[float] = deque()  # placement times of dropped calls, last minute
        self.placed: dict[int, float] = {}            # lead -> placement time (drops are logged by it)
        self.calls_today = self.answers_today = self.drops_today = 0
        self.sim: Sim | None = None
        self.stats = (0, 0.0, 0, 0.0)                 # calls_one, drops_one_pct, calls_today, drops/answers pct

    # the dialer-side logs VICIdial's queries read
    def on_dial(self, now: float) -> None:
        self.dial_times.append(now)
        self.calls_today += 1

    def on_connect(self, now: float, wait_s: float) -> None:
        self.answers_today += 1

    def on_abandon(self, now: float, wait_s: float) -> None:
        self.answers_today += 1
        self.drops_today += 1
        # vicidial_log rows carry the call's placement time (call_date): the last-minute query
        # counts a drop by when it was dialled
        self.drop_dial_times.append(self.sim.last_dialled if self.sim is not None else now)

    def _calculate_drops(self, now: float) -> None:
        while self.dial_times and self.dial_times[0] <= now - 60.0:
            self.dial_times.popleft()
        while self.drop_dial_times and self.drop_dial_times[0] <= now - 60.0:
            self.drop_dial_times.popleft()
        calls_one = len(self.dial_times)
        drops_one = sum(1 for t in self.drop_dial_times if t > now - 60.0)
        one_pct = round(drops_one / calls_one * 100, 2) if calls_one and drops_one else 0.0
        ans = max(1, self.answers_today)
        today_pct = round(self.drops_today / ans * 100, 2) if self.drops_today else 0.0
        self.stats = (calls_one, one_pct, self.calls_today, today_pct)

    def _hhmm(self, now: float) -> int:
        start = self.sc.shift_start_hhmm
        minutes = (start // 100) * 60 + start % 100 + int(now // 60)
        return (minutes // 60 % 24) * 100 + minutes % 60

    def _calculate_dial_level(self, now: float) -> None:
        n = len(self.samples)
        r = sum(x[0] for x in self.samples) / n
        w = sum(x[1] for x in self.samples) / n
        tot = sum(x[2] for x in self.samples) / n
        if tot <= 0:
            return
        target = (r - w) + self.diff
        mul = target / tot if target != 0 else 0.0
        pct = mul * 100.0
        k = self.intensity / 100.0
        idiff = pct * abs(k - 1.0) if pct < 0 else pct * (k + 1.0)
        level = round(self.level * (idiff / 100.0 + 1.0), 3)
        level = min(level, self.max_level)
        level = max(level, 1.0)
        calls_one, one_pct, calls_today, today_pct = self.stats
        if calls_one > 20 and one_pct > 50:
            level = level / 2.0
        if calls_today > 50 and today_pct > self.drop_pct:
            if self.method == "ADAPT_HARD_LIMIT":
                level = 1.0
            elif self.method == "ADAPT_AVERAGE":
                level = level / 2.0
            else:
                left = self.latest_hhmm - self._hhmm(now)
                level = 1.0 if left < 0 else level * (1.0 if left > 1000 else left / 1000.0)
        self.level = max(level, 1.0)

    def decide(self, sim: Sim, now: float) -> int:
        self.sim = sim
        while now >= self.next_loop:  # the 1 s master loop (catch up if the sim skipped a tick)
            self.next_loop += 1.0
            paused = sum(1 for s in sim.state if s == PAUSED)
            self.samples.append((len(sim.ready), len(sim.waiting), sim.logged() + paused))
            if self.drop_updater >= 60:
                self._calculate_drops(now)
                self.drop_updater = 0
            if self.diff_updater >= 15 and self.samples:
                self._calculate_dial_level(now)
                self.diff_updater = 0
            self.diff_updater += 1
            self.drop_updater += 1
        if now < self.next_dial:
            return 0
        self.next_dial = now + 2.5
        if self.available_only:
            goal = round(self.level * len(sim.ready)) + sim.on_call_n
        else:
            goal = round(self.level * (len(sim.ready) + sim.on_call_n))
        return max(0, goal - sim.in_progress())


def vicidial_grid(sc: Scenario) -> list[str]:
    """Settings a VICIdial admin can tune, for the hindsight-best ("tuned") baseline."""
    out = [f"vicidial:ADAPT_HARD_LIMIT:{k}:{t}" for k in (0, 40) for t in ("N", "Y")]
    out += [f"vicidial:{m}:{k}:N" for m in ("ADAPT_AVERAGE", "ADAPT_TAPERED") for k in (0, 40)]
    return out  # 8 settings: dial method x adaptive_intensity x available_only_ratio_tally


def _vicidial_from_name(name: str, sc: Scenario) -> VicidialPolicy:
    parts = name.split(":")
    method = parts[1] if len(parts) > 1 else "ADAPT_HARD_LIMIT"
    try:
        k = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        raise ValueError(f"bad policy {name!r}: use vicidial:METHOD:INTENSITY:TALLY") from None
    tally = len(parts) > 3 and parts[3].upper() == "Y"
    return VicidialPolicy(sc, method=method, intensity=k, available_only=tally, name=name)


class OraclePolicy(_Quiet):
    """Knows every lead's fate (as AMD will report it) and every agent's end of call: dials a
    reported person only when an agent will be free to take them within the connect limit.
    A ceiling, not a competitor."""

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
                machine = i in sim.fn_leads if i in sim.waiting else sim.truth.get(i) == "machine"
                talk, wrap = sim.world.handle(i, machine)
                heapq.heapreplace(avail, max(f, ans) + self.sc.connect_delay_s + talk + wrap)
        n, j = 0, sim.next_lead
        while n < cap:
            outcome, dt, true = sim.world.reported(j, now)
            if outcome == "human":
                f = avail[0]
                if f > now + dt + self.slack:
                    break
                talk, wrap = sim.world.handle(j, true == "machine")
                heapq.heapreplace(avail, max(f, now + dt) + self.sc.connect_delay_s + talk + wrap)
            n += 1
            j += 1
        return n


def make_policy(name: str, sc: Scenario) -> EnginePolicy | FixedPolicy | VicidialPolicy | OraclePolicy:
    if name in ("progressive", "predictive", "power", "preview"):
        return EnginePolicy(sc, name)
    if name == "predictive-warm":
        return EnginePolicy(sc, "predictive", warm=True)
    if name.startswith("fixed:"):
        try:
            return FixedPolicy(float(name.split(":", 1)[1]))
        except ValueError:
            raise ValueError(f"bad policy {name!r}: use fixed:R with R a number, e.g. fixed:1.5") from None
    if name == "vicidial" or name.startswith("vicidial:"):
        return _vicidial_from_name(name, sc)
    if name == "oracle":
        return OraclePolicy(sc)
    raise ValueError(f"unknown policy {name!r}: use progressive, fixed:R, fixed (best R), vicidial, "
                     "vicidial:METHOD:INTENSITY:TALLY, vicidial-tuned, predictive, predictive-warm, oracle")
