"""Discrete-event simulator of one campaign shift, with common random numbers.

Every lead index i has its outcome draw, ring times, talk and wrap drawn from a generator seeded by
(seed, chunk of i), so every policy dialling lead i meets the same person, machine or busy tone. The
only thing a policy changes is *when* it dials each lead (which matters under drift and list change).
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bench.pacing.scenario import Scenario

CHUNK = 4096
LINE_END, ABANDON, TALK_END, WRAP_END, TICK, LOGIN, BREAK_START, BREAK_END, DECIDE, ANNOUNCE = range(10)
OUT, READY, ON_CALL, WRAP, PAUSED = range(5)
STATE_NAMES = {READY: "ready", ON_CALL: "on_call", WRAP: "wrap_up", PAUSED: "paused"}


class World:
    """Lazily generated per-lead draws for one seed."""

    def __init__(self, sc: Scenario, seed: int):
        self.sc, self.seed = sc, seed
        self.chunks: dict[int, list[tuple[float, ...]]] = {}

    def lead(self, i: int) -> tuple[float, ...]:
        c, k = divmod(i, CHUNK)
        ch = self.chunks.get(c)
        if ch is None:
            rng = np.random.default_rng([self.seed, c, 20261123])
            sc = self.sc
            cols = [rng.random(CHUNK), sc.ring.draw(rng, CHUNK), sc.machine_ring.draw(rng, CHUNK),
                    sc.busy_time.draw(rng, CHUNK), rng.uniform(0.5, 2.0, CHUNK), sc.talk.draw(rng, CHUNK),
                    sc.wrap.draw(rng, CHUNK), rng.random(CHUNK)]
            ch = list(zip(*[col.tolist() for col in cols], strict=True))
            self.chunks[c] = ch
        return ch[k]

    def outcome(self, i: int, t: float) -> tuple[str, float]:
        """(outcome, seconds from dial to answer or failure) if lead i is dialled at time t."""
        u, rh, rm, bt, ft = self.lead(i)[:5]
        s = self.sc.shares_at(t)
        to, setup = self.sc.ring_timeout_s, self.sc.setup_s
        if u < s.human:
            return ("human", setup + rh) if setup + rh < to else ("no_answer", to)
        u -= s.human
        if u < s.machine:
            return ("machine", setup + rm) if setup + rm < to else ("no_answer", to)
        u -= s.machine
        if u < s.busy:
            return "busy", bt
        if u - s.busy < s.failed:
            return "failed", ft
        return "no_answer", to

    def reported(self, i: int, t: float) -> tuple[str, float, str]:
        """(outcome the dialer sees, seconds from dial to that verdict, true outcome) under imperfect AMD."""
        true, dt = self.outcome(i, t)
        amd = self.sc.amd
        u = self.lead(i)[7]
        if true == "human":
            if u < amd.false_positive:
                return "machine", dt + amd.delay_s, true
            return "human", dt + amd.delay_s, true
        if true == "machine":
            if u < amd.false_negative:
                return "human", dt + amd.machine_delay_s, true
            return "machine", dt + amd.machine_delay_s, true
        return true, dt, true

    def handle(self, i: int, machine: bool) -> tuple[float, float]:
        """(talk, wrap) of lead i once it reaches an agent; a machine passed by AMD is dropped quickly.

        MACHINE is what lead i truly was *when it was dialled* (the caller knows: the outcome depends on
        the dial time under drift and list changes). Re-deriving it here from time 0 gave 36-42 % of the
        people answering after a hit-rate jump the machine's 8 s handle time (issue 31)."""
        if machine:
            return self.sc.amd.fn_talk_s, 2.0
        lead = self.lead(i)
        return lead[5], lead[6]


class Policy(Protocol):
    name: str
    on_events: bool

    def decide(self, sim: Sim, now: float) -> int: ...
    def on_dial(self, now: float) -> None: ...
    def on_outcome(self, now: float, outcome: str, ring_s: float) -> None: ...
    def on_connect(self, now: float, wait_s: float) -> None: ...
    def on_abandon(self, now: float, wait_s: float) -> None: ...
    def on_handle(self, talk_s: float, wrap_s: float) -> None: ...


@dataclass
class RunResult:
    dials: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("human", "machine", "busy", "no_answer", "failed"), 0))
    connects: int = 0
    abandons: int = 0          # people (truly human) not reached within the connect limit
    fn_drops: int = 0          # machines AMD passed as people, dropped unanswered (not abandons)
    amd_fp: int = 0            # people AMD hung up on as machines (same in every policy: common numbers)
    people: int = 0            # truly human answers that reached the queue
    answer_times: list[float] = field(default_factory=list)
    abandon_times: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    busy_s: float = 0.0
    talk_s: float = 0.0
    avail_s: float = 0.0
    decide_ms: list[float] = field(default_factory=list)
    decide_wall_ms: list[float] = field(default_factory=list)
    unfinished: int = 0


class Sim:
    def __init__(self, sc: Scenario, seed: int, policy: Policy, min_gap_s: float = 0.25):
        self.sc, self.seed, self.policy = sc, seed, policy
        self.world = World(sc, seed)
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.now = 0.0
        n = sc.agents
        self.state = [OUT] * n
        self.since = [0.0] * n
        self.free_at = [0.0] * n        # when the current call + wrap ends (oracle uses it)
        self.cur = [-1] * n             # lead on the agent's current call
        self.break_pending = [0.0] * n
        self.back_at = [math.inf] * n   # a paused agent's scheduled return (a break under way, its end known)
        self.ready: set[int] = set()
        self.ringing: dict[int, float] = {}   # lead -> dial time
        self.fate: dict[int, tuple[str, float]] = {}   # lead -> (reported outcome, verdict time)
        self.truth: dict[int, str] = {}
        self.talk_wrap = [(0.0, 0.0)] * n
        self.waiting: dict[int, float] = {}   # lead -> answer time (insertion ordered)
        self.dialled_at: dict[int, float] = {}  # waiting lead -> dial time
        self.last_dialled = 0.0               # dial time of the call just abandoned (VICIdial logs by it)
        self.next_lead = 0
        self.r = RunResult()
        self.min_gap = min_gap_s
        self.last_decide = -math.inf
        self.decide_pending = False
        self.cps_second = -1
        self.cps_used = 0
        self.on_call_n = 0
        self.logged_n = 0
        self.fn_leads: set[int] = set()
        # a ready agent who pauses while calls are in flight stays on standby for those calls (the pacer
        # dialled them counting this agent): agent -> leads still unresolved; lead -> agents holding it
        self.standby: dict[int, set[int]] = {}
        self.standby_of: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ plumbing
    def push(self, t: float, kind: int, arg: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, arg))

    def set_state(self, a: int, new: int) -> None:
        old, shift = self.state[a], self.sc.shift_s
        d = min(self.now, shift) - min(self.since[a], shift)
        if d > 0:
            if old in (ON_CALL, WRAP):
                self.r.busy_s += d
                if old == ON_CALL:
                    self.r.talk_s += d
            if old in (READY, ON_CALL, WRAP):
                self.r.avail_s += d
        if old == READY:
            self.ready.discard(a)
        if old == ON_CALL:
            self.on_call_n -= 1
        if old in (READY, ON_CALL, WRAP):
            self.logged_n -= 1
        if new in (READY, ON_CALL, WRAP):
            self.logged_n += 1
        self.state[a], self.since[a] = new, self.now
        if new == READY:
            self.ready.add(a)
        if new == ON_CALL:
            self.on_call_n += 1

    def logged(self) -> int:
        return self.logged_n

    def in_progress(self) -> int:
        return len(self.ringing) + len(self.waiting) + self.on_call_n

    def caps(self) -> int:
        """Lines the trunk, the CPS limit and max lines per agent allow right now."""
        sc = self.sc
        cap = math.floor(sc.max_lines_per_agent * self.logged() + 1e-9) - self.in_progress()
        if sc.trunks > 0:
            cap = min(cap, sc.trunks - len(self.ringing) - len(self.waiting) - self.on_call_n)
        if sc.cps > 0:
            sec = int(self.now)
            if sec != self.cps_second:
                self.cps_second, self.cps_used = sec, 0
            cap = min(cap, sc.cps - self.cps_used)
        return max(0, cap)

    # ------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        sc = self.sc
        rng = np.random.default_rng([self.seed, 55, 20261123])
        ann = np.random.default_rng([self.seed, 56, 20261123])
        for a in range(sc.agents):
            self.push(sc.login_over_s * a / sc.agents, LOGIN, a)
            for b in sc.breaks:
                start = b.at_s + float(rng.uniform(-b.spread_s, b.spread_s)) if b.spread_s else b.at_s
                takes = float(rng.random()) < b.share
                if takes:
                    self.push(max(0.0, start), BREAK_START, a * 100000 + int(min(b.duration_s, 99999)))
                    # its own stream: a scenario without announcements keeps every draw it had
                    if b.announce_s > 0 and float(ann.random()) < b.announce_share:
                        self.push(max(0.0, start - b.announce_s), ANNOUNCE, a * 100000 + int(min(b.duration_s, 99999)))
        self.push(0.0, TICK)
        while self.heap:
            t, _, kind, arg = heapq.heappop(self.heap)
            self.now = t
            if kind == LINE_END:
                self.line_end(arg)
            elif kind == ABANDON:
                self.abandon(arg)
            elif kind == TALK_END:
                self.set_state(arg, WRAP)
            elif kind == WRAP_END:
                talk, wrap = self.talk_wrap[arg]
                self.policy.on_handle(talk, wrap)
                self.available(arg)
            elif kind == TICK:
                if t < sc.shift_s:
                    self.decide()
                    self.push(t + sc.tick_s, TICK)
            elif kind == DECIDE:
                self.decide_pending = False
                self.decide()
            elif kind == LOGIN:
                self.available(arg)
            elif kind == BREAK_START:
                self.break_start(arg // 100000, float(arg % 100000))
            elif kind == BREAK_END:
                self.available(arg)
            elif kind == ANNOUNCE:
                self.announce(arg // 100000, float(arg % 100000))
            else:  # a world built on this one (bench/pacing/inbound.py: return calls)
                self.other(kind, arg)
        for a in range(sc.agents):
            self.now = max(self.now, sc.shift_s)
            self.set_state(a, OUT)
        return self.r

    def other(self, kind: int, arg: int) -> None:
        """An event kind this world does not know: a subclass's (issue 30, the return-call world)."""

    def request_decision(self) -> None:
        if not self.policy.on_events or self.now >= self.sc.shift_s:
            return
        if self.now - self.last_decide >= self.min_gap:
            self.decide()
        elif not self.decide_pending:
            self.decide_pending = True
            self.push(self.last_decide + self.min_gap, DECIDE)

    def decide(self) -> None:
        if self.now >= self.sc.shift_s:
            return
        self.last_decide = self.now
        t0 = time.perf_counter()
        n = self.policy.decide(self, self.now)
        own = getattr(self.policy, "last_ms", None)  # engine policies time the pacer call alone (CPU)
        self.r.decide_ms.append(own if own is not None else (time.perf_counter() - t0) * 1000.0)
        wall = getattr(self.policy, "last_wall_ms", None)
        if wall is not None:
            self.r.decide_wall_ms.append(wall)
        n = min(n, self.caps())
        for _ in range(max(0, n)):
            self.dial()

    def dial(self) -> None:
        i = self.next_lead
        self.next_lead += 1
        outcome, dt, true = self.world.reported(i, self.now)
        self.ringing[i] = self.now
        self.fate[i] = (outcome, self.now + dt)
        self.truth[i] = true
        self.cps_used += 1
        self.r.dials += 1
        self.policy.on_dial(self.now)
        self.push(self.now + dt, LINE_END, i)

    def line_end(self, i: int) -> None:
        t0 = self.ringing.pop(i)
        outcome, _ = self.fate.pop(i)
        true = self.truth.pop(i)
        self.r.outcomes[outcome] += 1
        self.policy.on_outcome(self.now, outcome, self.now - t0)
        holders = self.standby_of.pop(i, None)
        if true == "human" and outcome != "human":
            self.r.amd_fp += 1
        if outcome != "human":
            self._release_standby(i, holders)
            return
        if true == "human":
            self.r.people += 1
            self.r.answer_times.append(self.now)
        else:
            self.fn_leads.add(i)
        if self.ready:
            self._release_standby(i, holders)
            self.connect(self.ready.pop(), i, self.now)
            return
        taker = next((a for a in holders or () if self.state[a] == PAUSED and a in self.standby), None)
        if taker is not None:  # nobody ready: an agent who paused after this call was dialled takes it
            self._end_standby(taker, start_break=False)  # first: the break waits for the end of this call
        self._release_standby(i, holders)
        if taker is not None:
            self.connect(taker, i, self.now)
        else:
            self.waiting[i] = self.now
            self.dialled_at[i] = t0
            self.push(self.now + max(0.0, self.sc.connect_limit_s - self.sc.connect_delay_s), ABANDON, i)

    def abandon(self, i: int) -> None:
        at = self.waiting.pop(i, None)
        if at is None:
            return
        self.last_dialled = self.dialled_at.pop(i, self.now)
        if i in self.fn_leads:
            self.fn_leads.discard(i)
            self.r.fn_drops += 1
        else:
            self.r.abandons += 1
            self.r.abandon_times.append(self.now)
        self.policy.on_abandon(self.now, self.now - at + self.sc.connect_delay_s)

    def connect(self, a: int, i: int, answered: float) -> None:
        self.dialled_at.pop(i, None)
        self.ready.discard(a)
        self.set_state(a, ON_CALL)
        wait = self.now - answered + self.sc.connect_delay_s
        self.r.connects += 1
        machine = i in self.fn_leads  # a machine AMD passed as a person (its truth at the dial time)
        if machine:
            self.fn_leads.discard(i)
        else:
            self.r.waits.append(wait)
        self.policy.on_connect(self.now, wait)
        talk, wrap = self.world.handle(i, machine)
        self.talk_wrap[a] = (talk, wrap)
        self.cur[a] = i
        end_talk = self.now + self.sc.connect_delay_s + talk
        self.free_at[a] = end_talk + wrap
        self.push(end_talk, TALK_END, a)
        self.push(end_talk + wrap, WRAP_END, a)

    def available(self, a: int) -> None:
        """Agent logs in, ends wrap-up or comes back from a break."""
        if self.break_pending[a] > 0 and self.now < self.sc.shift_s:
            self.set_state(a, PAUSED)
            self._standby(a, self.break_pending[a])
            return
        self.break_pending[a] = 0.0
        self.back_at[a] = math.inf
        if self.waiting:
            i = next(iter(self.waiting))
            answered = self.waiting.pop(i)
            self.set_state(a, READY)
            self.connect(a, i, answered)
            return
        self.set_state(a, READY)
        self.free_at[a] = self.now
        self.request_decision()

    def _release_standby(self, i: int, holders: list[int] | None) -> None:
        """Lead i is resolved: agents on standby for it go on their break once nothing they hold is left."""
        for a in holders or ():
            leads = self.standby.get(a)
            if leads is None:
                continue
            leads.discard(i)
            if not leads:
                self._end_standby(a, start_break=True)

    def _standby(self, a: int, dur: float) -> None:
        """Paused agent a stays on standby for the calls ringing now; the break starts when they resolve."""
        if not self.ringing or not self.sc.pause_after_calls:
            self.push(self.now + dur, BREAK_END, a)
            self.back_at[a] = self.now + dur
            self.break_pending[a] = 0.0
            return
        self.break_pending[a] = dur
        self.standby[a] = set(self.ringing)
        for i in self.ringing:
            self.standby_of.setdefault(i, []).append(a)

    def _end_standby(self, a: int, start_break: bool) -> None:
        leads = self.standby.pop(a, set())
        for j in leads:
            hs = self.standby_of.get(j)
            if hs is not None and a in hs:
                hs.remove(a)
        if start_break:
            self.push(self.now + self.break_pending[a], BREAK_END, a)
            self.back_at[a] = self.now + self.break_pending[a]
            self.break_pending[a] = 0.0

    def break_start(self, a: int, dur: float) -> None:
        if self.now >= self.sc.shift_s:
            return
        st = self.state[a]
        if st == READY:
            # the pause shows at once (no new dial counts this agent), but the agent still takes a call
            # dialled before the pause if nobody else is free, and the break starts once those resolve
            self.set_state(a, PAUSED)
            self._standby(a, dur)
        elif st in (ON_CALL, WRAP):
            self.break_pending[a] = dur
        elif st == OUT:  # not logged in yet: the break is skipped
            pass

    def announce(self, a: int, dur: float) -> None:
        """Agent a presses "pause after this call" some minutes before a break: on a call or in wrap-up, the break
        starts when that call ends (the pacer sees `leaving`); ready, nothing changes (the break comes at its time)."""
        if self.now < self.sc.shift_s and self.state[a] in (ON_CALL, WRAP) and self.break_pending[a] == 0.0:
            self.break_pending[a] = dur
