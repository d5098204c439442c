"""The live campaign: every tick, ask the pacer how many to dial, lease that many, originate, route answers.

Crash safety rests on one ordering: the attempt row is committed (and its entry marked dialing) BEFORE the
INVITE leaves, and nothing is re-dialled on restart: in-flight attempts found at start-up are closed as
`interrupted` and their entries get the ordinary retry delay. The store is the only memory that matters;
the runner's dicts are caches of it.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dialer.agents import BUSY, AgentBoard, AgentView, sync_agents
from dialer.config import Config, TrunkConfig
from dialer.control import expiry_reason
from dialer.domain import preview
from dialer.domain.callbacks import callback_slot
from dialer.domain.calling_hours import contact_zones
from dialer.domain.dtmf import CALLBACK_MOVED_TONE, DtmfCollector, DtmfDecodeError, decode
from dialer.domain.vocabulary import AgentState, AttemptState, CampaignState, Mode, RunnerEvent
from dialer.journal import Journal, JournalOp, Record, StoreGuard, apply_record, journal_path
from dialer.settings import campaign_settings
from dialer.store import Engine
from dialer.store import agent_time as agent_time_store
from dialer.store import attempts as attempts_store
from dialer.store import campaigns as campaigns_store
from dialer.store import outbox as outbox_store
from dialer.store import preview as preview_store
from dialer.store.agents import StateLogger
from dialer.store.campaigns import RunnerBusy, StatusUpdate
from dialer.store.entries import Hopper, Lease
from dialer.store.models import Disposition
from dialer.telephony import CallEvent, Telephony
from dialer.telephony.amdtap import AmdOrder
from dialer.telephony.nailed import AgentLegSync
from pacing.engine import AgentView as PacingAgent
from pacing.engine import Decision, Pacer, Snapshot

TICK_S = 0.2
PREVIEW_LEASE_S = 600.0  # a reservation an agent sits on is renewed (released and re-leased) before this
PREVIEW_RENEW_S = 60.0
HEARTBEAT_STALE_S = 10.0
MODES = tuple(m.value for m in Mode)


def _alive(runner: str) -> bool:
    """A runner on this host whose process is gone is dead whatever its heartbeat says (kill -9)."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host: only the heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _amd_fields(amd: dict[str, Any] | None) -> dict[str, Any]:
    """The attempt columns for an AMD result (nothing when AMD was off: the announcement check alone only says
    how long it listened, which `_picked_up` uses)."""
    if not amd or "verdict" not in amd:
        return {}
    return {"amd_verdict": str(amd.get("verdict", "")), "amd_decided_s": amd.get("decided_after_s"),
            "amd_features": json.dumps({"reason": amd.get("reason"), **(amd.get("features") or {})},
                                       ensure_ascii=False)[:4000]}


def _picked_up(ev: CallEvent) -> float:
    """When the far end answered: an AMD verdict event arrives `decided_after_s` later than that."""
    d = (ev.amd or {}).get("decided_after_s")
    return ev.at - float(d) if isinstance(d, int | float) else ev.at


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class Live:
    """What the runner tracks for a call in flight (the attempt row holds the durable copy)."""

    attempt_id: int
    entry_id: int
    customer_id: str
    segment: str
    phone: str
    sku: str
    dialed: float
    ringing: float | None = None
    answered: float | None = None
    connected: float | None = None
    agent_id: int | None = None
    tried_agents: set[int] = field(default_factory=set)
    abandoned: bool = False
    dtmf: DtmfCollector = field(default_factory=DtmfCollector)
    disposed: bool = False
    machine: bool = False  # AMD said machine: occupies a line, never an agent
    preview_agent: int | None = None  # preview mode: the agent who dialled it gets it on answer
    dialed_mono: float | None = None  # (issue 31) the runner's monotonic clock at the dial: ages never use the wall
    connected_mono: float | None = None
    standby: bool = False  # agent_id was taken off standby (paused after this call was dialled)
    notes: list[str] = field(default_factory=list)  # (issue 25) what happened on the way (an agent leg lost)


class TickLag:
    """How late the runner's loop runs (issue 25: a starved host must not burst abandons).

    A turn is due every TICK_S at most (the telephony wait returns early when events come); the lag of a turn is
    how much longer than that the previous turn took. The loop is *lagging* while any turn in the last
    `WINDOW_S` was later than `limit_s`: dialling waits that long after the last late turn, so a host that
    catches up for a moment does not dial a burst into a queue it cannot serve."""

    WINDOW_S = 3.0

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.last: float | None = None
        self.recent: list[tuple[float, float]] = []  # (monotonic time, lag) of the last WINDOW_S
        self.lagging = False
        self._said = False
        self.max_s = 0.0  # worst lag this run (for the monitor and the log)

    def turn(self, t: float) -> None:
        if self.last is not None:
            lag = max(0.0, t - self.last - TICK_S)
            self.recent.append((t, lag))
            self.max_s = max(self.max_s, lag)
        self.last = t
        self.recent = [(at, lag) for at, lag in self.recent if t - at <= self.WINDOW_S]
        self.lagging = self.limit_s > 0 and any(lag > self.limit_s for _, lag in self.recent)

    def worst(self) -> float:
        return max((lag for _, lag in self.recent), default=0.0)

    def now_s(self) -> float:
        return self.recent[-1][1] if self.recent else 0.0

    def changed(self) -> bool | None:
        """True when lagging started since the last call, False when it ended, None when unchanged."""
        if self.lagging == self._said:
            return None
        self._said = self.lagging
        return self.lagging

    def status(self) -> dict[str, Any]:
        return {"now_s": round(self.now_s(), 3), "worst_s": round(self.worst(), 3), "max_s": round(self.max_s, 3),
                "limit_s": self.limit_s, "lagging": self.lagging}


@dataclass
class Wrap:
    agent_id: int
    attempt_id: int
    entry_id: int
    talk_s: float
    started: float
    disposed: bool
    started_mono: float | None = None  # (issue 31) the monotonic clock at the start of the wrap-up


class CampaignRunner:
    def __init__(self, cfg: Config, name: str, engine: Engine, *, telephony: Telephony | None = None,
                 clock: Callable[[], float] = time.time, mono: Callable[[], float] | None = None,
                 auto_login: bool = False,
                 state_logger: StateLogger | None = None, on_event: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.clock = clock
        # (issue 31) the wall clock is not trusted for ages (NTP steps it, an operator sets it): every age and
        # elapsed time is read on a monotonic clock. A test that fakes the wall clock and gives no MONO drives time
        # through the `now` it passes: ages are then the clamped wall differences, as before
        self._mono: Callable[[], float] | None = mono or (time.monotonic if clock is time.time else None)
        self._since_mono: dict[int, tuple[datetime, float]] = {}  # agent id -> (state_since seen, mono start)
        cc = cfg.campaign(name)
        self.cc = cc
        trunk = cfg.trunk(cc.trunk) if cc.trunk else (cfg.trunks[0] if cfg.trunks else None)
        if trunk is None:
            raise ValueError(f"campaign {name!r} has no trunk and none is configured")
        self.trunk: TrunkConfig = trunk
        self.tel = telephony or Telephony(cfg)
        self.owns_tel = telephony is None
        # config is the source of truth on every start (dialer.settings): rules and pacer come from it
        self.settings = campaign_settings(cfg, name, utc(clock()))
        self.policy = self.settings.policy
        self.campaign_id, changes = campaigns_store.sync_campaign(engine, self.policy, self.settings.retry_rules,
                                                                  utc(clock()))
        measured = self._amd_fp_share()
        if measured is not None:  # the AMD's own record of people it dropped as machines, when higher
            self.settings = campaign_settings(cfg, name, utc(clock()), measured_fp_share=measured)
        self.on_event = on_event or (lambda msg: None)
        for key, old, new in changes:
            self.on_event(f"config_changed: {key}: {old!r} -> {new!r}")
        sync_agents(engine, cfg.agents)
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}"
        self.hopper = Hopper(engine, self.policy, respect_calling_hours=not self.trunk.sandbox)
        self.board = AgentBoard(engine, self.campaign_id, [a.login for a in cfg.agents], state_logger)
        # (issue 25) the store down or full never costs a live call: writes go to a local journal meanwhile
        self.guard = StoreGuard(engine, Journal(journal_path(cfg.database.journal_dir, name, socket.gethostname())),
                                self.runner_id, self.on_event, self._apply_journalled)
        self.board.guard = self.guard
        self.lag = TickLag(float(cfg.telephony.max_tick_lag_s))
        self.auto_login = auto_login
        self.pacer = self._restore_pacer()
        self.live: dict[int, Live] = {}
        self.waiting: list[int] = []  # answered attempts waiting for an agent, oldest first
        self.wraps: dict[int, Wrap] = {}  # by agent id
        # agents sent back to paused after a standby call failed to reach them: not offered again in that pause
        self.standby_failed: dict[int, datetime] = {}  # agent id -> start of the pause they went back to
        self.last_disposition_id = 0
        self.applied_here: set[int] = set()  # DTMF dispositions this runner wrote and already applied
        self.last_command_id = 0
        self.started_at = datetime.now(UTC)  # commands given before this run are never applied by it
        self.state: str = CampaignState.RUNNING.value
        self.mode: str = self.policy.mode.value
        self.dropped = False
        self.last_status = -math.inf  # monotonic (issue 31)
        self.last_agent_check = -math.inf
        self.setups: list[float] = []
        self.counts: dict[str, int] = {}
        self.last_decision: Decision | None = None
        self.legs: AgentLegSync | None = None  # nailed-up agent legs, when telephony runs that way
        # preview mode: the entry reserved for each ready agent, entries each agent passed on this run,
        # and the dial/skip commands read this tick (applied after the command transaction closed)
        self.reserved: dict[int, Lease] = {}
        self.passed: dict[int, set[int]] = {}
        self.preview_orders: list[tuple[str, str]] = []
        # (issue 25) a stop drains: no new dials, calls end by themselves, bounded by drain_s (monotonic deadline)
        self.drain_until: float | None = None
        self.drain_why = ""
        self.hard_stop = False  # stop_now, a second SIGTERM, or the drain time ran out: hang up what is left
        # (issue 25) refusing agents' phones get a real call now and then: agent id -> monotonic time of the next,
        # and the probes in flight (agent id -> answered yet)
        self.next_probe: dict[int, float] = {}
        self.probing: dict[int, bool] = {}

    # ---------------------------------------------------------------- set-up and recovery
    def _restore_pacer(self) -> Pacer:
        """Yesterday's (or the crashed run's) estimates and abandon book: the window's budget survives restarts.

        The configuration (target, window, day start, priors...) is today's config, never the saved one.
        """
        saved = campaigns_store.saved_stats(self.engine, self.campaign_id).get("pacer")
        cfg = self.settings.pacer
        return Pacer.from_state(cfg, saved) if saved else Pacer(cfg)

    def _amd_fp_share(self) -> float | None:
        """People dropped as machines, as a share of machine verdicts (UK abandons): corpus or agents, the higher.

        None when the campaign does not detect machines."""
        if self.cc.amd != "detect":
            return None
        from dialer.amd.share import corpus_fp_share, fp_share
        from dialer.store.amd import amd_counts

        c = amd_counts(self.engine, self.campaign_id)
        return fp_share(corpus_fp_share(), c["agent_marked_person"], c["machine_reviewed"])

    def _amd_order(self) -> AmdOrder | None:
        cc = self.cc
        if cc.amd != "detect":
            return None
        msg = str(Path(cc.amd_message).resolve()) if cc.amd_message else None
        return AmdOrder(action=cc.amd_machine_action, message_wav=msg, budget_s=cc.amd_budget_s)

    def _event(self, kind: str, message: str, level: str = "info") -> None:
        at = datetime.now(UTC)
        self.guard.write(JournalOp.EVENT, {"kind": kind, "message": message, "level": level, "at": at},
                         lambda: campaigns_store.record_event(self.engine, self.campaign_id, kind, message, level,
                                                              at=at), None)
        self.on_event(f"{kind}: {message}")

    def _apply_journalled(self, rec: Record, conn: Any) -> None:
        apply_record(rec, conn, hopper=self.hopper, campaign_id=self.campaign_id,
                     state_logger=self.board.state_logger)

    def replay_journal(self) -> None:
        """(issue 25) Writes a runner journalled during a store outage and could not replay before it ended."""
        n = self.guard.replay()
        if n:
            self._event("journal_replayed", f"{n} write(s) journalled by an earlier run during a store outage "
                                            f"replayed from {self.guard.journal.path}")

    def claim(self) -> None:
        """Refuse to run beside another live runner; take over from a dead one (stale heartbeat)."""
        self.prior_beat = agent_time_store.last_heartbeat(self.engine, self.campaign_id)[1]  # issue 27: see recover
        campaigns_store.claim(self.engine, self.campaign_id, self.runner_id, self.mode, self.policy.name,
                              stale_s=HEARTBEAT_STALE_S, alive=_alive)

    def recover(self) -> dict[str, int]:
        """Close what a previous runner left in flight; nothing is dialled again because of it."""
        now = utc(self.clock())
        interrupted = attempts_store.interrupt_live(self.engine, self.campaign_id, now)
        self.last_disposition_id = outbox_store.last_disposition_id(self.engine)
        self.last_command_id = campaigns_store.last_applied_command_id(self.engine, self.policy.name)
        counts = self.hopper.recover(now)
        counts["preview_released"] = preview_store.release_all(self.engine, self.policy.name, now)
        beat = getattr(self, "prior_beat", None)
        if self.board.state_logger is not None:  # issue 27: a crash left stretches open; a stop closed them
            if beat is not None:
                agent_time_store.close_after_crash(self.engine, self.campaign_id, self.board.logins, beat, now)
            agent_time_store.reopen_stretches(self.engine, self.campaign_id, self.board.logins, now)
        self.board.refresh()
        for a in self.board.agents.values():
            if a.state in BUSY or a.state in (AgentState.UNAVAILABLE, AgentState.UNREACHABLE):
                self.board.set_state(a.id, AgentState.READY, now, force=True)
            elif self.auto_login and a.state == AgentState.LOGGED_OUT:
                self.board.set_state(a.id, AgentState.READY, now)
        result = {"attempts_interrupted": interrupted, **{f"entries_{k}": v for k, v in counts.items()}}
        if interrupted or any(counts.values()):
            self._event("recovered", f"previous run left {interrupted} call(s) in flight; closed as interrupted; "
                                     f"hopper: {counts}")
        return result

    # ---------------------------------------------------------------- the loop
    def run(self, duration_s: float | None = None, should_stop: Callable[[], bool] | None = None,
            hard_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run until stopped. DURATION_S expiring or SHOULD_STOP returning true starts a drain (`request_stop`):
        nothing new is dialled, calls and wrap-ups end by themselves, then the loop ends; HARD_STOP returning
        true (or `stop_now`, or `[telephony] drain_s` running out) hangs up what is left."""
        self.claim()
        if self.owns_tel:
            self.tel.start()
        if getattr(self.tel, "agent_legs", "on_connect") == "nailed":
            self.legs = AgentLegSync(self.tel.agent_login, self.tel.agent_logout, self.tel.agent_leg_up,
                                     lambda kind, msg: self._event(kind, msg, "warning"))
        self.replay_journal()
        self.recover()
        self._check_agents(wait=True)  # (issue 13) no agent counts as ready before its phone answered OPTIONS
        self._event("started", f"mode {self.mode}, target {self.pacer_target():.3f}, runner {self.runner_id}")
        start = self.mono()
        try:
            while self.state != CampaignState.STOPPED:
                if should_stop is not None and should_stop() and self.drain_until is None:
                    self.request_stop("asked to stop")
                if duration_s is not None and self.mono() - start >= duration_s and self.drain_until is None:
                    self.request_stop(f"--for {duration_s:g}s ran out")
                if hard_stop is not None and hard_stop():
                    self.request_stop("asked to stop now", now=True)
                if self.drain_until is not None and self._drained():
                    break
                self.tick()
        finally:
            self.shutdown()
        return self.counts

    # ---------------------------------------------------------------- stopping (issue 25): drain, never cut
    def request_stop(self, why: str, *, now: bool = False) -> str:
        """Stop dialling now; the loop ends once every call and wrap-up has ended by itself, or at once (hanging
        up what is left) when NOW or when `[telephony] drain_s` has passed. Returns what the manager is told."""
        if now:
            self.hard_stop = True
            self.state = CampaignState.STOPPED.value
            left = self._drain_left()
            self._event(RunnerEvent.STOP_NOW, f"{why}: hanging up {left['calls']} call(s) "
                                    f"({left['conversations']} in conversation)", "warning")
            return f"stopping now: hanging up {left['calls']} call(s)"
        if self.drain_until is not None:
            left = self._drain_left()
            return f"already draining: {left['calls']} call(s), {left['wraps']} wrap-up(s) left (stop_now hangs up)"
        self.drain_until = time.monotonic() + float(self.cfg.telephony.drain_s)
        self.drain_why = why
        self.state = CampaignState.DRAINING.value
        self.release_previews(utc(self.clock()))
        left = self._drain_left()
        self._event(RunnerEvent.DRAINING, f"{why}: no new dials; waiting for {left['calls']} call(s) and {left['wraps']} "
                                f"wrap-up(s) to end (at most {self.cfg.telephony.drain_s:g}s)")
        return f"draining: {left['calls']} call(s), {left['wraps']} wrap-up(s) left"

    def _drain_left(self) -> dict[str, int]:
        return {"calls": len(self.live),
                "conversations": sum(1 for c in self.live.values() if c.connected is not None),
                "ringing": sum(1 for c in self.live.values() if c.answered is None and not c.machine),
                "wraps": len(self.wraps)}

    def _drained(self) -> bool:
        """Nothing left to wait for, or the drain time ran out (then `shutdown` hangs up what is left)."""
        if not self.live and not self.wraps and not self.waiting:
            return True
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            left = self._drain_left()
            self.hard_stop = True
            self._event(RunnerEvent.DRAIN_TIMEOUT, f"drain_s {self.cfg.telephony.drain_s:g}s passed: hanging up "
                                         f"{left['calls']} call(s) ({left['conversations']} in conversation)",
                        "warning")
            return True
        return False

    def pacer_target(self) -> float:
        return float(self.pacer.cfg.abandon_target)

    def tick(self) -> None:
        """One turn of the loop. (issue 25) While the store is down or full nothing is dialled and the calls that are
        up go on (`_degraded_tick`); how late the loop runs is measured, and a late loop dials nothing."""
        self.lag.turn(time.monotonic())
        if self.guard.degraded:
            self._degraded_tick()
            return
        try:
            self._tick()
        except Exception as error:
            if not self.guard.absorb(error):
                raise

    def _degraded_tick(self) -> None:
        """The store cannot take writes: handle call events (their writes are journalled), route answered calls to
        the agents the board already knows, end wrap-ups by their timeout, and try the store again every second."""
        for ev in self.tel.events(timeout_s=TICK_S):
            self.handle(ev)
        if self.guard.recover():
            return  # back: the next tick re-reads agents, commands and dispositions and dials again
        now = self.clock()
        self.last_decision = None
        self.end_wraps(now)
        self.route_waiting(now)
        if time.monotonic() - self.guard.last_said >= 5.0:
            self.guard.last_said = time.monotonic()
            st = self.guard.status()
            self.on_event(f"store_{st['health']}: for {st['down_s']:.0f}s: no new dials; {len(self.live)} live "
                          f"call(s) kept; {st['journalled']} write(s) journalled to {self.guard.journal.path}")

    def _tick(self) -> None:
        for ev in self.tel.events(timeout_s=TICK_S):
            self.handle(ev)
        now = self.clock()
        self.board.refresh()
        if self.legs is not None:
            self.legs.tick(self.board, utc(now))
        self.apply_commands()
        self.apply_preview_orders(now)
        self.apply_dispositions(now)
        self.end_wraps(now)
        self.route_waiting(now)
        if self.state == "running":
            self.dial(now)
        if self.cfg.telephony.agent_check_s and self.mono() - self.last_agent_check >= self.cfg.telephony.agent_check_s:
            self._check_agents(wait=False)
        self._probe_refusing()
        if self.mono() - self.last_status >= 1.0:
            self.publish(now)
            self.last_status = self.mono()

    def snapshot(self, now: float) -> Snapshot:
        agents = []
        for a in self.board.agents.values():
            if a.state in (AgentState.LOGGED_OUT, AgentState.UNAVAILABLE, AgentState.UNREACHABLE,
                           AgentState.REFUSING):  # (issue 25) a refusing phone is no agent to dial for
                continue
            state = "on_call" if a.state in ("on_call",) else a.state
            agents.append(PacingAgent(state=state, elapsed_s=self.state_age(a.id, a.state_since, now)))
        ringing = [self.age(c.dialed_mono, now - c.dialed) for c in self.live.values()
                   if c.answered is None and not c.machine]
        free = self.tel.free_lines(self.trunk.name)
        return Snapshot(now=now, agents=agents, ringing=ringing, waiting=len(self.waiting), trunk_free=free,
                        cps_headroom=self.tel.cps_headroom(self.trunk.name))

    def mono(self) -> float:
        """The monotonic clock (the wall clock when a test fakes it and gives none)."""
        return self._mono() if self._mono is not None else self.clock()

    def age(self, mono_start: float | None, wall_age: float) -> float:
        """Seconds since a monotonic mark (issue 31); a mark we lack (an older record) falls back to the wall
        difference, clamped to >= 0 (NaN reads 0)."""
        if mono_start is not None and self._mono is not None:
            return max(0.0, self.mono() - mono_start)
        return wall_age if wall_age > 0.0 and math.isfinite(wall_age) else 0.0

    def span(self, wall_s: float, mono_start: float | None) -> float:
        """A duration measured between event times (the worker's wall clock: ring time, talk time) checked
        against the monotonic clock: outside [0, monotonic age + 1 s] the wall stepped, and the monotonic age
        (which also holds the event's queueing delay) is used instead."""
        if mono_start is None or self._mono is None:
            return wall_s if wall_s > 0.0 and math.isfinite(wall_s) else 0.0
        mono = max(0.0, self.mono() - mono_start)
        return wall_s if 0.0 <= wall_s <= mono + 1.0 else mono

    def state_age(self, agent_id: int, since: datetime, now: float) -> float:
        """Seconds AGENT_ID has been in its state, on the monotonic clock from the first time this runner saw
        that state (state_since is a wall time written to the store, possibly by another process): the age at
        first sight is the clamped wall difference, after that it only grows with the monotonic clock."""
        wall = now - since.timestamp()
        wall = wall if wall > 0.0 and math.isfinite(wall) else 0.0
        if self._mono is None:
            return wall
        seen = self._since_mono.get(agent_id)
        if seen is None or seen[0] != since:
            seen = (since, self.mono() - wall)
            self._since_mono[agent_id] = seen
        return max(0.0, self.mono() - seen[1])

    def dial(self, now: float) -> None:
        if self._lagging():
            self.last_decision = None
            return
        decision = self.pacer.decide(self.snapshot(now))
        self.last_decision = decision
        if decision.mode != self.mode and not self.dropped and self.pacer.budget_exhausted(now):
            self.dropped = True
            self._event("mode_drop", f"abandon budget for the {self.policy.abandon_window} window is spent: "
                                     f"dialling progressive until it recovers ({decision.note})", "warning")
        elif self.dropped and not self.pacer.budget_exhausted(now):
            self.dropped = False
            self._event("mode_restore", f"abandon budget recovered: back to {self.mode}")
        if self.mode == Mode.PREVIEW.value:
            self.reserve_previews(now)
            return
        if decision.dial <= 0:
            return
        at = utc(now)
        leases = self.hopper.lease(decision.dial, self.runner_id, at)
        for lease in leases:
            self.place(lease, now, agent_id=self._callback_agent(lease))

    def place(self, lease: Lease, now: float, agent_id: int | None = None) -> str | None:
        """Check, commit the attempt, send the INVITE; AGENT_ID (preview) gets the call on answer.

        Returns None when the INVITE left, else why not (the entry is back in the hopper)."""
        at = utc(now)
        why = self.hopper.check_dialable(lease.entry_id, lease.phone_e164, at)
        if why is not None:
            self.hopper.release(lease.entry_id, at)
            self.counts["skipped_at_dial_time"] = self.counts.get("skipped_at_dial_time", 0) + 1
            return why
        attempt_id = attempts_store.create_attempt(
            self.engine, campaign_id=self.campaign_id, entry_id=lease.entry_id, customer_id=lease.customer_id,
            segment=lease.segment, phone_e164=lease.phone_e164, trunk=self.trunk.name,
            state=AttemptState.DIALING.value, dialed_at=at, **self._attempt_fields())
        try:
            marked = self.hopper.mark_dialing(lease.entry_id, attempt_id, at, lease_token=self._dial_token(lease))
        except Exception as error:  # (issue 25) the store went away between the attempt row and the dial mark
            if not self.guard.absorb(error):
                raise
            self._not_an_attempt(attempt_id, lease.entry_id, at)  # journalled: undone once the store is back
            return "store unreachable"
        if not marked:
            attempts_store.delete_attempt(self.engine, attempt_id)  # the lease was lost: not ours to dial
            self._count("lease_lost")
            return "lease lost"
        record = None
        if self.policy.record_calls:
            d = Path(self.cfg.telephony.recordings_dir) / self.policy.name
            d.mkdir(parents=True, exist_ok=True)
            record = str((d / f"{attempt_id}.wav").resolve())
        if not self._may_dial():  # (issue 18) the node's membership lapsed between the lease and the INVITE
            self._not_an_attempt(attempt_id, lease.entry_id, at)
            return "membership lapsed"
        ok = self.tel.originate(attempt_id, lease.phone_e164, self.trunk.name, ring_timeout_s=self.policy.ring_timeout_s,
                                connect_limit_s=self.policy.connect_limit_s,
                                info_wav=self.policy.info_message or None, record_path=record, amd=self._amd_order(),
                                caller_id=self.cc.caller_id, caller_name=self.cc.caller_name,
                                notice_wav=self.cc.recording_notice or None)
        if not ok:
            # no slot: the INVITE never left, so this is not an attempt; give the entry back untouched
            self._not_an_attempt(attempt_id, lease.entry_id, at)
            return "no free line"
        self.pacer.record_dial(now)
        self.live[attempt_id] = Live(attempt_id, lease.entry_id, lease.customer_id, lease.segment,
                                     lease.phone_e164, lease.sku, now, preview_agent=agent_id,
                                     dialed_mono=self.mono())
        self._count("dialled")
        return None

    # hooks a multi-node runner (dialer.node.runner) overrides; a single-host runner needs none of them
    def _attempt_fields(self) -> dict[str, Any]:
        return {}

    def _dial_token(self, lease: Lease) -> str:
        return ""

    def _may_dial(self) -> bool:
        return True

    def _callback_agent(self, lease: Lease) -> int | None:
        return None

    # ---------------------------------------------------------------- preview mode
    def reserve_previews(self, now: float) -> None:
        """One reserved entry per ready agent (the console shows its pop); stale or orphaned ones go back."""
        at = utc(now)
        for agent_id, lease in list(self.reserved.items()):
            a = self.board.agents.get(agent_id)
            expiring = lease.lease_expires_at is not None and (lease.lease_expires_at - at).total_seconds() < PREVIEW_RENEW_S
            if a is None or a.state != AgentState.READY or expiring:
                self.release_preview(agent_id, at)
        for a in self.board.agents.values():
            if a.state != AgentState.READY or a.id in self.reserved:
                continue
            got = self.hopper.lease(1, preview.owner(self.policy.name, a.login), at, lease_s=PREVIEW_LEASE_S,
                                    exclude=self.passed.get(a.id, set()))
            if got:
                self.reserved[a.id] = got[0]

    def release_preview(self, agent_id: int, at: datetime) -> Lease | None:
        lease = self.reserved.pop(agent_id, None)
        if lease is not None:
            self.hopper.release(lease.entry_id, at)
        return lease

    def release_previews(self, at: datetime) -> None:
        for agent_id in list(self.reserved):
            self.release_preview(agent_id, at)

    def apply_preview_orders(self, now: float) -> None:
        orders, self.preview_orders = self.preview_orders, []
        for command, arg in orders:
            login, result = self._preview_order(command, arg, now)
            self._event(command, f"{login}: {result}")  # the console shows its agent's latest one

    def _preview_order(self, command: str, arg: str, now: float) -> tuple[str, str]:
        """(agent login, result): dial or pass on the entry reserved for an agent; a dial re-checks dialability
        like any call."""
        at = utc(now)
        try:
            entry_id, login, reason = preview.parse_argument(arg)
        except ValueError as exc:
            return "?", f"refused: {exc}"
        return login, self._preview_apply(command, entry_id, login, reason, now, at)

    def _preview_apply(self, command: str, entry_id: int, login: str, reason: str, now: float,
                       at: datetime) -> str:
        agent = next((a for a in self.board.agents.values() if a.login == login), None)
        lease = self.reserved.get(agent.id) if agent is not None else None
        if agent is None or lease is None or lease.entry_id != entry_id:
            return f"refused: entry {entry_id} is not reserved for {login}"
        if command == preview.SKIP:
            self.release_preview(agent.id, at)
            self.passed.setdefault(agent.id, set()).add(entry_id)
            return f"entry {entry_id} skipped: {reason or 'next'} (back to the hopper)"
        if self.state != "running" or self.mode != Mode.PREVIEW.value or agent.state != AgentState.READY:
            return f"refused: campaign {self.state}/{self.mode}, agent {agent.state}"
        self.reserved.pop(agent.id)
        why = self.place(lease, now, agent_id=agent.id)
        if why is not None:
            return f"refused: entry {entry_id} not dialled: {why}"
        attempt_id = max(a for a, c in self.live.items() if c.entry_id == entry_id)
        self.board.set_state(agent.id, AgentState.RESERVED, at, attempt_id=attempt_id)
        return f"entry {entry_id} dialled: attempt {attempt_id}"

    def _not_an_attempt(self, attempt_id: int, entry_id: int, at: datetime) -> None:
        """The call never reached the contact (no slot, or the trunk's own failure such as refused
        credentials): drop the attempt row and give the entry back to the hopper untouched."""
        def do() -> None:
            attempts_store.delete_attempt(self.engine, attempt_id)
            self.hopper.release(entry_id, at)

        self.guard.write(JournalOp.NOT_AN_ATTEMPT, {"attempt_id": attempt_id, "entry_id": entry_id, "at": at},
                         do, None)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    # ---------------------------------------------------------------- events from telephony
    def _update_attempt(self, attempt_id: int, **fields: Any) -> None:
        self.guard.write(JournalOp.ATTEMPT, {"attempt_id": attempt_id, "fields": fields},
                         lambda: attempts_store.update_attempt(self.engine, attempt_id, **fields), None)

    def _record_result(self, entry_id: int, outcome: str, at: datetime, *, abandoned: bool, phone_e164: str) -> None:
        self.guard.write(JournalOp.ENTRY_RESULT, {"entry_id": entry_id, "outcome": outcome, "at": at,
                                                  "abandoned": abandoned, "phone_e164": phone_e164},
                         lambda: self.hopper.record_result(entry_id, outcome, at, abandoned=abandoned,
                                                           phone_e164=phone_e164), None)

    def _record_disposition(self, d: Disposition) -> Disposition:
        """The verdict and its outbox row; journalled (and returned without an id) while the store is away."""
        args = d.model_dump(exclude={"id"})
        return self.guard.write(JournalOp.DISPOSITION, args, lambda: outbox_store.record_disposition(self.engine, d),
                                d)

    def _lagging(self) -> bool:
        """(issue 25) The loop runs late (a starved host): dial nothing until it has caught up; said once each way."""
        changed = self.lag.changed()
        if changed is True:
            self._event("tick_lag", f"runner loop {self.lag.worst():.1f}s late (limit {self.lag.limit_s:g}s, "
                                    "[telephony] max_tick_lag_s): no new dials until it catches up", "warning")
        elif changed is False:
            self._event("tick_lag_cleared", f"runner loop on time again (worst {self.lag.worst():.1f}s): dialling")
        return self.lag.lagging

    def handle(self, ev: CallEvent) -> None:
        """Apply one telephony event: trunk/worker news to the event log, call events by `_CALL_HANDLERS`."""
        kind = ev.kind
        if kind in ("agent_leg_up", "agent_leg_down"):
            if self.legs is not None:
                self.legs.on_event(ev, self.board, utc(ev.at))
            else:
                self._on_probe(ev)
            return
        if kind in ("trunk_down", "trunk_up", "worker_down"):
            self._event(kind, ev.detail, "warning" if kind != "trunk_up" else "info")
            if ev.attempt_id is None:
                return
        if kind in ("agent_reachable", "agent_unreachable"):
            self._reachability(ev)
            return
        call = self.live.get(ev.attempt_id) if ev.attempt_id is not None else None
        if call is None:
            return
        handler = _CALL_HANDLERS.get(kind)
        if handler is not None:
            handler(self, call, ev)

    def _on_ringing(self, call: Live, ev: CallEvent) -> None:
        if call.ringing is None:
            call.ringing = ev.at
            self._update_attempt(call.attempt_id, state=AttemptState.RINGING.value, ringing_at=utc(ev.at),
                                 worker=ev.worker)

    def _on_answered(self, call: Live, ev: CallEvent) -> None:
        call.answered = ev.at  # with AMD: the verdict, from which the connect limit runs
        picked_up = _picked_up(ev)
        self.pacer.record_outcome(ev.at, "human", self.span(picked_up - call.dialed, call.dialed_mono))
        self._update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value, answered_at=utc(picked_up),
                             sip_status=200, outcome="answered", worker=ev.worker, **_amd_fields(ev.amd))
        self._count("answered")
        self.waiting.append(call.attempt_id)
        self.route_waiting(ev.at)

    def _on_machine(self, call: Live, ev: CallEvent) -> None:
        # a machine answered: the pacer counts it as a machine (not a hit), no agent is reserved
        call.machine = True
        picked_up = _picked_up(ev)
        self.pacer.record_outcome(ev.at, "machine", self.span(picked_up - call.dialed, call.dialed_mono))
        self._update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value, answered_at=utc(picked_up),
                             sip_status=200, machine=True, worker=ev.worker, **_amd_fields(ev.amd))
        self._count("machine")

    def _on_agent_connected(self, call: Live, ev: CallEvent) -> None:
        call.connected = ev.at
        call.connected_mono = self.mono()
        if call.attempt_id in self.waiting:
            self.waiting.remove(call.attempt_id)
        wait = ev.at - (call.answered or ev.at)
        self.pacer.record_connect(ev.at, wait)
        if call.agent_id is not None:
            self.board.set_state(call.agent_id, AgentState.ON_CALL, utc(ev.at), attempt_id=call.attempt_id)
        self._update_attempt(call.attempt_id, state=AttemptState.CONNECTED.value, agent_connected_at=utc(ev.at),
                             agent_id=call.agent_id)
        self._count("connected")

    def _on_agent_failed(self, call: Live, ev: CallEvent) -> None:
        if call.agent_id is not None and call.standby:
            # the pause stands: back to it (not ready, not checked), and not offered another call in it
            self._event("agent_standby_failed", f"agent leg to agent {call.agent_id} (on standby) failed: "
                                                f"{ev.detail}; back to paused", "warning")
            at = utc(ev.at)
            if self.board.set_state(call.agent_id, AgentState.PAUSED, at) == AgentState.PAUSED:
                self.standby_failed[call.agent_id] = at
            call.agent_id, call.standby = None, False
        elif call.agent_id is not None:
            # (issue 13) 404/480/410/604: the phone is not registered: unreachable until OPTIONS answers
            gone = ev.sip_status in (404, 410, 480, 604)
            if not gone and ev.sip_status is not None and ev.sip_status >= 400:
                self._agent_refused(call.agent_id, ev)
            else:
                self._event("agent_unreachable" if gone else "agent_unavailable",
                            f"agent leg to agent {call.agent_id} failed: {ev.detail}", "warning")
                self.board.set_state(call.agent_id, AgentState.UNREACHABLE if gone else AgentState.UNAVAILABLE,
                                     utc(ev.at))
            call.agent_id = None
        if call.attempt_id not in self.waiting:
            self.waiting.insert(0, call.attempt_id)
        self.route_waiting(ev.at)

    def _on_agent_lost(self, call: Live, ev: CallEvent) -> None:
        """(issue 25) The agent's leg died under the customer (answered and dropped at once, or went silent): the
        customer is still up, unbridged, with a fresh connect limit. Another ready agent takes them; the lost
        agent is out of routing (nailed: until the leg is up again; per-call: as a phone that did not answer)."""
        lost = call.agent_id if call.agent_id is not None else ev.agent_id
        a = self.board.agents.get(lost) if lost is not None else None
        login = a.login if a is not None else str(lost)
        self._event(RunnerEvent.AGENT_LEG_LOST, f"attempt {call.attempt_id}: agent {login}: {ev.detail}; the "
                                                "customer is handed to another agent", "warning")
        self._count("agent_lost")
        call.notes.append(f"agent {login} lost: {ev.detail}")
        if a is not None and a.state in (AgentState.ON_CALL, AgentState.RESERVED):
            self.board.set_state(a.id, AgentState.UNREACHABLE if self.legs is not None else AgentState.UNAVAILABLE,
                                 utc(ev.at), force=True)
        call.agent_id, call.connected, call.standby = None, None, False
        self._update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value)
        if call.attempt_id not in self.waiting:
            self.waiting.insert(0, call.attempt_id)
        self.route_waiting(ev.at)

    def _probe_refusing(self) -> None:
        """(issue 25) OPTIONS 200 is no proof, a real call is: each `refusing_probe_s` a refusing agent's phone is
        called once (a session-leg call, no auto-answer: the phone rings). Nailed legs need none: their own
        re-dial after a drop is that call."""
        every = self.cfg.telephony.refusing_probe_s
        login = getattr(self.tel, "agent_login", None)
        if every <= 0 or self.legs is not None or not callable(login):
            return
        now = time.monotonic()
        for a in self.board.agents.values():
            if a.state != AgentState.REFUSING:
                self.next_probe.pop(a.id, None)
                continue
            due = self.next_probe.setdefault(a.id, now + every)
            if a.id not in self.probing and now >= due:
                self.probing[a.id] = False
                self.next_probe[a.id] = now + every
                login(a.id, a.sip_uri)

    def _on_probe(self, ev: CallEvent) -> None:
        """A probe call's news: answered -> hang it up, and once it is gone the agent is ready; refused or not
        answered -> stop it (no re-dial) and wait for the next probe."""
        aid = ev.agent_id
        if aid is None or aid not in self.probing:
            return
        if ev.kind == "agent_leg_up":
            self.probing[aid] = True
            self.tel.agent_logout(aid)  # agent_leg_down "logged out" follows once the leg is gone
            return
        answered = self.probing.pop(aid)
        self.tel.agent_logout(aid)  # a refused probe is not dialled again by the leg's own back-off
        a = self.board.agents.get(aid)
        if answered and a is not None and a.state == AgentState.REFUSING:
            self._event(RunnerEvent.AGENT_BACK, f"agent {a.login}: the phone took a call again; ready")
            self.board.set_state(aid, AgentState.READY, utc(ev.at))
            self.next_probe.pop(aid, None)
        else:
            self._count("probe_refused")

    def _agent_refused(self, agent_id: int, ev: CallEvent) -> None:
        """(issue 25) The phone said no to a real call (486/603/600 -- DND behind a PBX, which still answers
        OPTIONS 200): the agent is `refusing` -- out of routing and of the pacer's agents at once, and no OPTIONS
        answer brings them back; the agent's own `r` on the console (or logging in again) does."""
        a = self.board.agents.get(agent_id)
        login = a.login if a is not None else str(agent_id)
        self._event(RunnerEvent.AGENT_REFUSING, f"agent {login}: the phone refused a call ({ev.sip_status} "
                                                f"{ev.detail}); out of routing until the agent is ready again "
                                                "on the console or the phone takes a call", "warning")
        self._count("agent_refused")
        if a is not None and a.state in (AgentState.RESERVED, AgentState.READY):  # not if the console moved them
            self.board.set_state(agent_id, AgentState.REFUSING, utc(ev.at), force=True)

    def _on_abandoned(self, call: Live, ev: CallEvent) -> None:
        call.abandoned = True
        if call.attempt_id in self.waiting:
            self.waiting.remove(call.attempt_id)
        self.pacer.record_abandon(ev.at, ev.at - (call.answered or ev.at))
        if call.agent_id is not None:
            self.board.set_state(call.agent_id, AgentState.READY, utc(ev.at), force=True)
            call.agent_id = None
        self._update_attempt(call.attempt_id, abandoned=True)
        self._count("abandoned")

    def _on_dtmf(self, call: Live, ev: CallEvent) -> None:
        if ev.leg == "agent" and ev.digit:
            keys = call.dtmf.feed(ev.digit)
            if keys:
                self.dtmf_disposition(call, keys, ev.at)

    def _on_failed(self, call: Live, ev: CallEvent) -> None:
        if ev.outcome == "trunk_error":
            # (issue 13) the trunk refused our credentials: not an attempt on this contact
            self.live.pop(call.attempt_id, None)
            if call.attempt_id in self.waiting:
                self.waiting.remove(call.attempt_id)
            self._not_an_attempt(call.attempt_id, call.entry_id, utc(ev.at))
            self._count("not_attempted_trunk_error")
            return
        if ev.outcome == "anonymous_rejected":  # (issue 24) the manager must see that the trunk hides the number
            self._event(RunnerEvent.CALLER_ID_HIDDEN, f"attempt {call.attempt_id}: the callee refuses calls without caller ID "
                                            f"({ev.sip_status}); trunk {ev.trunk or '?'} is not presenting the "
                                            "campaign's number (check caller_id / P-Asserted-Identity)", "warning")
        self.finish(call, ev.outcome or "failed", ev.at, ev.sip_status, by="", detail=ev.detail)

    def _on_hangup(self, call: Live, ev: CallEvent) -> None:
        if call.answered:
            outcome = "answered"
        elif ev.cause == "announcement":  # (issue 24) the network's recording: never a person, never an abandon
            outcome = ev.outcome or "unreachable"
            self._update_attempt(call.attempt_id, machine=False, **_amd_fields(ev.amd))
        elif call.machine:
            outcome = "machine_message_left" if ev.cause == "machine_message_left" else "machine"
        elif ev.amd is not None:  # the callee hung up while AMD listened: answered, by whom we cannot say
            outcome = "answered"
            self._update_attempt(call.attempt_id, **_amd_fields(ev.amd))
        else:
            outcome = ev.outcome or "failed"
        self.finish(call, outcome, ev.at, ev.sip_status, by=ev.by or "", detail=ev.detail,
                    recording=ev.recording_path)

    def finish(self, call: Live, outcome: str, at: float, sip_status: int | None, *, by: str, detail: str,
               recording: str | None = None) -> None:
        self.live.pop(call.attempt_id, None)
        if call.attempt_id in self.waiting:
            self.waiting.remove(call.attempt_id)
        if call.answered is None and not call.machine:
            ring = self.span(at - call.dialed, call.dialed_mono)
            pacing_outcome = {"busy": "busy", "no_answer": "no_answer", "machine": "machine"}.get(outcome, "failed")
            self.pacer.record_outcome(at, pacing_outcome, ring)
            self._count(outcome)
        fields: dict[str, Any] = {"state": "ended", "ended_at": utc(at), "outcome": outcome, "hangup_by": by,
                                  "detail": "; ".join([*call.notes, detail] if detail else call.notes)[:500]}
        if sip_status is not None and call.answered is None:
            fields["sip_status"] = sip_status
        if recording:
            fields["recording_path"] = recording
        self._update_attempt(call.attempt_id, **fields)
        self._record_result(call.entry_id, outcome, utc(at), abandoned=call.abandoned, phone_e164=call.phone)
        if call.agent_id is not None and call.connected is not None:
            talk = self.span(at - call.connected, call.connected_mono)
            self.board.set_state(call.agent_id, "wrap_up", utc(at), attempt_id=call.attempt_id)
            self.wraps[call.agent_id] = Wrap(call.agent_id, call.attempt_id, call.entry_id, talk, at, call.disposed,
                                             started_mono=self.mono())
            if call.disposed:
                self.end_wrap(call.agent_id, at)
        elif call.agent_id is not None:
            self.board.set_state(call.agent_id, "ready", utc(at), force=True)
        elif call.preview_agent is not None:  # the call the agent dialled ended before it reached them
            a = self.board.agents.get(call.preview_agent)
            if a is not None and a.state == AgentState.RESERVED and a.attempt_id == call.attempt_id:
                self.board.set_state(a.id, AgentState.READY, utc(at), force=True)

    # ---------------------------------------------------------------- routing answered calls to agents
    def route_waiting(self, now: float) -> None:
        for attempt_id in list(self.waiting):
            call = self.live.get(attempt_id)
            if call is None or call.abandoned:
                self.waiting.remove(attempt_id)
                continue
            if call.agent_id is not None:
                continue
            own = self.board.agents.get(call.preview_agent) if call.preview_agent is not None else None
            if own is not None and own.id not in call.tried_agents and own.state in (AgentState.RESERVED,
                                                                                       AgentState.READY):
                agent: AgentView | None = own
            else:
                agent = self.board.choose(call.segment)
            standby = agent is None
            if agent is None:  # nobody ready: someone who paused after this call was dialled takes it
                agent = self.board.standby(utc(call.dialed), utc(now), self.standby_window_s(),
                                           exclude=call.tried_agents | self._standby_spent())
            if agent is None:
                continue  # a later call may have been dialled before somebody's pause
            if agent.state != AgentState.RESERVED:  # a preview agent is reserved from its dial on
                try:
                    self.board.set_state(agent.id, "reserved", utc(now), attempt_id=attempt_id)
                except ValueError as exc:  # the console moved the agent since this tick's refresh
                    self._event("agent_moved", f"attempt {attempt_id} not routed: {exc}", "warning")
                    self.board.refresh()
                    continue
            if call.tried_agents:  # (issue 25) an agent's phone failed this customer: another one takes them
                self._event(RunnerEvent.AGENT_REROUTED, f"attempt {attempt_id} re-routed to agent {agent.login} "
                                                        f"({len(call.tried_agents)} agent(s) failed before)")
                self._count("rerouted")
            call.agent_id = agent.id
            call.tried_agents.add(agent.id)
            call.standby = standby
            if standby:
                self._event("agent_standby", f"agent {agent.login} on standby took attempt {attempt_id}, "
                                             "dialled before their pause (back to the pause after the call)")
            self._update_attempt(attempt_id, agent_id=agent.id)
            self.tel.connect_agent(attempt_id, agent.id, agent.sip_uri, rescue_s=self.cfg.telephony.agent_rescue_s,
                                   silence_s=self.cfg.telephony.agent_silence_s)

    def standby_window_s(self) -> float:
        """How long a paused agent stays on standby: no call dialled before the pause can still wait longer
        (ring timeout, the AMD's listening when on, then the connect limit)."""
        amd = self.cc.amd_budget_s if self.cc.amd == "detect" else 0.0
        return float(self.policy.ring_timeout_s + amd + self.policy.connect_limit_s)

    def _standby_spent(self) -> set[int]:
        """Agents whose standby call failed to reach them, still in the pause the runner put them back in."""
        for agent_id, since in list(self.standby_failed.items()):
            a = self.board.agents.get(agent_id)
            if a is None or a.state != AgentState.PAUSED or a.state_since != since:
                del self.standby_failed[agent_id]
        return set(self.standby_failed)

    # ---------------------------------------------------------------- dispositions and wrap-up
    def dtmf_disposition(self, call: Live, keys: str, at: float) -> None:
        try:
            d = decode(keys)
        except DtmfDecodeError as exc:
            self._event("dtmf_error", f"attempt {call.attempt_id}: {exc}", "warning")
            return
        cb = utc(at) + timedelta(hours=d.callback_hours) if d.outcome == "callback" else None
        if cb is not None:  # (issues 25, 27) the one callback rule; the keypad has no screen: a tone says "moved"
            cb, moved = callback_slot(cb, self.policy.hours, contact_zones(call.phone))
            if moved:
                self.tel.agent_tone(call.attempt_id, CALLBACK_MOVED_TONE)
                self._event("callback_moved", f"attempt {call.attempt_id}: keyed callback outside calling hours, "
                                              f"booked for the next calling slot {cb.isoformat()}")
        row = self._record_disposition(Disposition(
            attempt_id=call.attempt_id, agent_id=call.agent_id, customer_id=call.customer_id,
            campaign_id=self.campaign_id, outcome=d.outcome, amount=d.amount, sku=call.sku,
            reason_code=d.reason_code, callback_at=cb, source="dtmf"))
        # not via last_disposition_id: a console row with a lower id may not have been read yet
        self.applied_here.add(int(row.id or 0))
        self._apply_disposition(row, at)

    def apply_dispositions(self, now: float) -> None:
        """Dispositions typed in agent consoles (other processes) since the last tick."""
        rows = outbox_store.dispositions_after(self.engine, self.last_disposition_id)
        for row in rows:
            self.last_disposition_id = max(self.last_disposition_id, int(row.id or 0))
            if int(row.id or 0) in self.applied_here:
                self.applied_here.discard(int(row.id or 0))
                continue
            if row.campaign_id not in (None, self.campaign_id):
                continue
            self._apply_disposition(row, now)

    def _apply_disposition(self, row: Disposition, now: float) -> None:
        entry_id = None
        agent_login = ""
        live = self.live.get(row.attempt_id) if row.attempt_id is not None else None
        if live is not None:
            live.disposed = True
            entry_id = live.entry_id
        else:
            entry_id = attempts_store.entry_of(self.engine, row.attempt_id)
        if row.agent_id is not None and row.agent_id in self.board.agents:
            agent_login = self.board.agents[row.agent_id].login
        if entry_id is not None:
            at, eid = utc(now), entry_id
            self.guard.write(JournalOp.ENTRY_DISPOSITION,
                             {"entry_id": eid, "outcome": row.outcome, "at": at, "callback_at": row.callback_at,
                              "agent_login": agent_login, "sku": row.sku},
                             lambda: self.hopper.apply_disposition(eid, row.outcome, at, callback_at=row.callback_at,
                                                                   agent_login=agent_login, sku=row.sku), None)
        self._count(f"disposition_{row.outcome}")
        if row.agent_id is not None and row.agent_id in self.wraps:
            self.end_wrap(row.agent_id, now)

    def end_wrap(self, agent_id: int, now: float) -> None:
        w = self.wraps.pop(agent_id, None)
        if w is None:
            return
        self.pacer.record_handle(w.talk_s, self.age(w.started_mono, now - w.started))
        self.board.set_state(agent_id, self.legs.after_wrap(agent_id) if self.legs else "ready", utc(now))

    def end_wraps(self, now: float) -> None:
        for agent_id, w in list(self.wraps.items()):
            if self.age(w.started_mono, now - w.started) >= self.policy.wrap_up_timeout_s:
                self._event("wrap_timeout", f"agent {agent_id} wrap-up timed out without a disposition")
                self.end_wrap(agent_id, now)
        # unavailable agents get another chance after a minute (a softphone that was restarted)
        for a in list(self.board.agents.values()):
            if a.state == "unavailable" and self.state_age(a.id, a.state_since, now) >= 60:
                self.board.set_state(a.id, "ready", utc(now))

    # ---------------------------------------------------------------- manager commands
    def apply_commands(self) -> None:
        rows = campaigns_store.apply_commands(self.engine, self.policy.name, self.campaign_id, self._apply_command,
                                              lambda: (self.state, self.mode, self.pacer_target()))
        for cmd in rows:
            self._event("command", f"{cmd.command} {cmd.argument}: {cmd.result}".strip())

    def _apply_command(self, command: str, arg: str, created_at: datetime, now: datetime) -> str:
        """A command not applied within `[ui] command_ttl`, or given before this run, is expired, never applied."""
        stale = expiry_reason(created_at, self.started_at, now, self.cfg.ui.command_ttl_s())
        if stale is None and command in (preview.DIAL, preview.SKIP):
            self.preview_orders.append((command, arg))  # applied once the command transaction is closed
            return "accepted"
        return stale or self._command(command, arg)

    def _command(self, command: str, arg: str) -> str:
        if command == "listen":
            return self._listen(arg)  # (issue 29) also while draining: the conversations go on
        if command == "stop_now":
            return self.request_stop("stop_now command", now=True)
        if self.state == CampaignState.DRAINING:
            if command == "stop":
                return self.request_stop("stop command")
            if command in ("pause", "resume"):
                return f"refused: the campaign is stopping (draining); {command} does not apply"
        if command == "pause":
            self.state = "paused"
            return "paused: no new dials; calls in progress continue"
        if command == "resume":
            self.state = "running"
            return "running"
        if command == "stop":
            return self.request_stop("stop command")
        if command == "mode":
            if arg not in MODES:
                return f"refused: mode must be one of {', '.join(MODES)}"
            self.mode = arg
            self.pacer.set_mode(arg)
            if arg != Mode.PREVIEW.value:
                self.release_previews(datetime.now(UTC))
            return f"mode {arg}"
        if command == "target":
            try:
                value = float(arg)
            except ValueError:
                return f"refused: {arg!r} is not a number"
            if not 0 < value <= self.policy.abandon_limit:
                return f"refused: target must be in (0, {self.policy.abandon_limit}]"
            self.pacer.set_target(value)
            return f"abandon target {value:.3f}"
        return f"refused: unknown command {command!r}"

    def _listen(self, arg: str) -> str:
        """(issue 29) A supervisor's phone joins a live call on the worker that holds it."""
        from dialer.domain.listen import parse_listen
        from dialer.errors import UserError

        try:
            order = parse_listen(arg)
        except UserError as exc:
            return f"refused: {exc}"
        join = getattr(self.tel, "listen", None)
        if join is None or not join(order.attempt_id, order.mode.value, order.uri, order.by):
            return f"refused: call {order.attempt_id} is not in progress here"
        return f"{order.mode.value}: call {order.attempt_id} by {order.by}"

    # ---------------------------------------------------------------- status for monitors
    def publish(self, now: float) -> None:
        d = self.last_decision
        rates = self.pacer.abandon_rates(now)
        campaigns_store.publish_status(self.engine, self.campaign_id, StatusUpdate(
            runner=self.runner_id, heartbeat_at=utc(now), mode=d.mode if d is not None else self.mode,
            dial_level=float(d.level) if d is not None else 0.0,
            lines_dialing=sum(1 for c in self.live.values() if c.ringing is None and c.answered is None),
            lines_ringing=sum(1 for c in self.live.values() if c.ringing is not None and c.answered is None),
            waiting_for_agent=len(self.waiting), hit_rate=float(self.pacer.hit_rate()), aht_s=float(self.pacer.aht()),
            stats={"abandon": rates, "state": self.state, "counts": dict(self.counts),
                   "note": d.note if d is not None else "", "target": self.pacer_target(),
                   "dropped_to_progressive": self.dropped, "pacer": self.pacer.to_state(),
                   "budget": self.pacer.budget(now),  # (issue 31) the regime's window budget, for the monitor
                   "telephony": self._telephony_status(), "drain": self._drain_status(),
                   "store": self.guard.status(), "lag": self.lag.status()},
            state=self.state))

    def _drain_status(self) -> dict[str, Any]:
        """(issue 25) For the monitor while draining: what is left and when the rest would be hung up."""
        if self.drain_until is None:
            return {}
        left_s = max(0.0, self.drain_until - time.monotonic())
        return {**self._drain_left(), "why": self.drain_why, "hard_stop_in_s": round(left_s, 1),
                "hard_stop_at": (datetime.now(UTC) + timedelta(seconds=left_s)).isoformat()}

    def _check_agents(self, *, wait: bool) -> None:
        """OPTIONS to the phones of idle agents (results come back as agent_reachable/unreachable events)."""
        self.last_agent_check = self.mono()
        check = getattr(self.tel, "check_agents", None)
        if not self.cfg.telephony.agent_check_s or not callable(check) or self.legs is not None:
            return  # nailed-up legs: the agent's session leg itself says whether the phone is there
        uris = {a.id: a.sip_uri for a in self.board.agents.values()
                if a.state in (AgentState.READY, AgentState.UNAVAILABLE, AgentState.UNREACHABLE)}
        check(uris, wait=wait)

    def _reachability(self, ev: CallEvent) -> None:
        a = self.board.agents.get(ev.agent_id) if ev.agent_id is not None else None
        if a is None:
            return
        if ev.kind == "agent_unreachable" and a.state in (AgentState.READY, AgentState.UNAVAILABLE):
            self._event("agent_unreachable", f"agent {a.login}: {ev.detail}", "warning")
            self.board.set_state(a.id, AgentState.UNREACHABLE, utc(ev.at))
        elif ev.kind == "agent_reachable" and a.state in (AgentState.UNREACHABLE, AgentState.UNAVAILABLE):
            self._event("agent_reachable", f"agent {a.login} reachable again: {ev.detail}")
            self.board.set_state(a.id, AgentState.READY, utc(ev.at))

    def _telephony_status(self) -> dict[str, Any]:
        """(issue 13) For the monitor: the trunk's state (down and why) and what this host can carry."""
        status = getattr(self.tel, "trunk_status", None)
        cap = getattr(self.tel, "capacity_info", None)
        return {"trunk": status(self.trunk.name) if callable(status) else {},
                "capacity": cap() if callable(cap) else {}}

    def shutdown(self) -> None:
        """Release what was leased, hang up what a drain left (a hard stop, drain_s ran out, or the loop failed)
        and leave the store consistent."""
        self.state = "stopped"
        self.release_previews(utc(self.clock()))
        end = time.monotonic() + 5
        if self.live:
            left = self._drain_left()
            self._event(RunnerEvent.CALLS_CUT, f"runner stopping: {left['calls']} call(s) hung up by the dialer "
                                     f"({left['conversations']} in conversation)", "warning")
            self.counts["cut_at_stop"] = self.counts.get("cut_at_stop", 0) + left["calls"]
        for attempt_id in list(self.live):
            self.tel.hangup(attempt_id)
        while self.live and time.monotonic() < end:
            for ev in self.tel.events(timeout_s=0.2):
                self.handle(ev)
        now = self.clock()
        for agent_id in list(self.wraps):
            self.end_wrap(agent_id, now)
        if self.owns_tel:
            self.tel.stop()
        for call in list(self.live.values()):
            self.finish(call, "interrupted", now, None, by="dialer", detail="runner stopped")
        self._after_stop_guarded(now)
        self._event("stopped", f"runner {self.runner_id} stopped: {self.counts}")

    def _after_stop_guarded(self, now: float) -> None:
        """(issue 25) Leave the store consistent if it is there; if it is still down, the journal keeps what it
        missed and the next run of the campaign replays it before anything else."""
        try:
            if self.guard.degraded and not self.guard.recover_now():
                raise ConnectionError(self.guard.error)
            self._after_stop(now)
        except Exception as error:
            if not isinstance(error, ConnectionError) and not self.guard.absorb(error):
                raise
            self.on_event(f"store_{self.guard.health.value}: stopped without the store: {self.guard.journalled} "
                          f"write(s) wait in {self.guard.journal.path}; the next run replays them")

    def _after_stop(self, now: float) -> None:
        """The only runner of the campaign leaves: settle the hopper, end its agents' open stretches (issue 27)
        and mark the campaign stopped."""
        self.hopper.recover(utc(now))
        if self.board.state_logger is not None:
            agent_time_store.close_at_stop(self.engine, self.campaign_id, self.board.logins, utc(now))
        campaigns_store.mark_stopped(self.engine, self.campaign_id)



# how each call event kind is applied (trunk and worker news are handled before: they need no call)
_CALL_HANDLERS: dict[str, Callable[[CampaignRunner, Live, CallEvent], None]] = {
    "ringing": CampaignRunner._on_ringing,
    "answered": CampaignRunner._on_answered,
    "machine": CampaignRunner._on_machine,
    "agent_connected": CampaignRunner._on_agent_connected,
    "agent_failed": CampaignRunner._on_agent_failed,
    "abandoned": CampaignRunner._on_abandoned,
    "dtmf": CampaignRunner._on_dtmf,
    "failed": CampaignRunner._on_failed,
    "hangup": CampaignRunner._on_hangup,
    "agent_lost": CampaignRunner._on_agent_lost,
}

__all__ = ["CampaignRunner", "Live", "RunnerBusy", "TickLag", "Wrap", "utc"]
