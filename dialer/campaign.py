"""The live campaign: every tick, ask the pacer how many to dial, lease that many, originate, route answers.

Crash safety rests on one ordering: the attempt row is committed (and its entry marked dialing) BEFORE the
INVITE leaves, and nothing is re-dialled on restart: in-flight attempts found at start-up are closed as
`interrupted` and their entries get the ordinary retry delay. The store is the only memory that matters;
the runner's dicts are caches of it.

This module is the tick loop: start-up and recovery, each turn's order (events, agents, commands, dispositions,
wrap-ups, routing, dialling, status), the pacer's snapshot and the dial itself. What the loop does with each
concern lives in a handler module of dialer/runner/ (calls, routing, faults, stopping, previews, wrapup, commands,
writes, report), each holding a reference to the runner, whose attributes are the one copy of the state.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.agents import BUSY, AgentBoard, sync_agents
from dialer.config import Config, TrunkConfig
from dialer.domain.vocabulary import AgentState, AttemptState, CampaignState, Mode
from dialer.journal import Journal, StoreGuard, journal_path
from dialer.node.budget import SiteFeed
from dialer.runner.calls import CallEvents
from dialer.runner.commands import Commands
from dialer.runner.faults import AgentFaults
from dialer.runner.previews import Previews
from dialer.runner.report import Reporting
from dialer.runner.return_calls import ReturnCalls
from dialer.runner.routing import Routing
from dialer.runner.state import (
    HEARTBEAT_STALE_S,
    MODES,
    PREVIEW_LEASE_S,
    PREVIEW_RENEW_S,
    TICK_S,
    Live,
    TickLag,
    Wrap,
    utc,
)
from dialer.runner.stopping import Stopping
from dialer.runner.wrapup import WrapUp
from dialer.runner.writes import StoreWrites
from dialer.settings import campaign_settings
from dialer.store import Engine
from dialer.store import agent_time as agent_time_store
from dialer.store import attempts as attempts_store
from dialer.store import campaigns as campaigns_store
from dialer.store import outbox as outbox_store
from dialer.store import preview as preview_store
from dialer.store.agents import StateLogger
from dialer.store.campaigns import RunnerBusy
from dialer.store.entries import Hopper, Lease
from dialer.store.outbox import DispositionRecord
from dialer.telephony import CallEvent
from dialer.telephony.amdtap import AmdOrder
from dialer.telephony.nailed import AgentLegSync
from dialer.telephony.switchboard import Switchboard
from pacing.engine import AgentView as PacingAgent
from pacing.engine import Decision, Pacer, Snapshot


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


class CampaignRunner:
    """The live campaign of one host (or, as dialer.node.runner.NodeRunner, of one node): the tick loop."""

    def __init__(self, cfg: Config, name: str, engine: Engine, *, switchboard: Switchboard | None = None,
                 clock: Callable[[], float] = time.time, mono: Callable[[], float] | None = None,
                 auto_login: bool = False,
                 state_logger: StateLogger | None = None, on_event: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        # the feature handlers the loop calls (dialer/runner/): each keeps its rules, the state stays here
        self.writes: StoreWrites = StoreWrites(self)
        self.report: Reporting = Reporting(self)
        self.routing: Routing = Routing(self)
        self.faults: AgentFaults = AgentFaults(self)
        self.previews: Previews = Previews(self)
        self.wrapup: WrapUp = WrapUp(self)
        self.commands: Commands = Commands(self)
        self.stopping: Stopping = Stopping(self)
        self.calls: CallEvents = CallEvents(self)
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
        # (issue 30) the telephony belongs to the switchboard above the campaigns (the process running them makes
        # it); a runner made without one (a test, a one-off) gets a private one, stopped when the runner leaves
        self.switchboard = switchboard if switchboard is not None else Switchboard(cfg)
        self.tel = self.switchboard.attach(name)
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
                                self.runner_id, self.on_event, self.writes.apply_journalled)
        self.board.guard = self.guard
        self.lag = TickLag(float(cfg.telephony.max_tick_lag_s))
        self.auto_login = auto_login
        self.pacer = self._restore_pacer()
        self.site = SiteFeed.for_pacer(engine, self.campaign_id, self.pacer, clock())  # (issue 31) uk_ofcom: per site
        self.returns: ReturnCalls = ReturnCalls(self)  # (issue 30) the inbound desk's agents and the return calls to come
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

    def claim(self) -> None:
        """Refuse to run beside another live runner; take over from a dead one (stale heartbeat)."""
        self.prior_beat = agent_time_store.last_heartbeat(self.engine, self.campaign_id)[1]  # issue 27: see recover
        self.prior_runner = campaigns_store.claim(self.engine, self.campaign_id, self.runner_id, self.mode,
                                                  self.policy.name, stale_s=HEARTBEAT_STALE_S, alive=_alive)

    def recover(self) -> dict[str, int]:
        """Close what a previous runner left in flight; nothing is dialled again because of it."""
        now = utc(self.clock())
        interrupted = attempts_store.interrupt_live(self.engine, self.campaign_id, now)
        self.last_disposition_id = outbox_store.last_disposition_id(self.engine)
        self.last_command_id = campaigns_store.last_applied_command_id(self.engine, self.policy.name)
        counts = self.hopper.recover(now)
        # a killed runner's unexpired leases (taken for the dial it never made) are released now, not at expiry
        counts["leases_released"] += self.hopper.release_owner(getattr(self, "prior_runner", ""), now)
        counts["preview_released"] = preview_store.release_all(self.engine, self.policy.name, now)
        beat = getattr(self, "prior_beat", None)
        if self.board.state_logger is not None:  # issue 27: a crash left stretches open; a stop closed them
            if beat is not None:
                agent_time_store.close_after_crash(self.engine, self.campaign_id, self.board.logins, beat, now)
            agent_time_store.reopen_stretches(self.engine, self.campaign_id, self.board.logins, now)
        self.board.refresh()
        from dialer.store.inbound import held_by_live_desk

        desk = held_by_live_desk(self.engine, list(self.board.agents), now)  # (issue 30) the desk's, not ours
        for a in self.board.agents.values():
            if a.id in desk:
                continue
            if a.state in BUSY or a.state in (AgentState.UNAVAILABLE, AgentState.UNREACHABLE):
                self.board.set_state(a.id, AgentState.READY, now, force=True)
            elif self.auto_login and a.state == AgentState.LOGGED_OUT:
                self.board.set_state(a.id, AgentState.READY, now)
        result = {"attempts_interrupted": interrupted, **{f"entries_{k}": v for k, v in counts.items()}}
        if interrupted or any(counts.values()):
            self._event("recovered", f"previous run left {interrupted} call(s) in flight; closed as interrupted; "
                                     f"hopper: {counts}")
        return result

    def run(self, duration_s: float | None = None, should_stop: Callable[[], bool] | None = None,
            hard_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Run until stopped. DURATION_S expiring or SHOULD_STOP returning true starts a drain (`request_stop`):
        nothing new is dialled, calls and wrap-ups end by themselves, then the loop ends; HARD_STOP returning
        true (or `stop_now`, or `[telephony] drain_s` running out) hangs up what is left."""
        self.claim()
        self.switchboard.start()  # after the claim: a campaign another runner holds starts no workers
        if getattr(self.tel, "agent_legs", "on_connect") == "nailed":
            self.legs = AgentLegSync(self.tel.agent_login, self.tel.agent_logout, self.tel.agent_leg_up,
                                     lambda kind, msg: self._event(kind, msg, "warning"))
        self.writes.replay()
        self.recover()
        self.faults.check_agents(wait=True)  # (issue 13) no agent counts as ready before its phone answered OPTIONS
        self._event("started", f"mode {self.mode}, target {self.pacer_target():.3f}, runner {self.runner_id}")
        start = self.mono()
        try:
            while self.state != CampaignState.STOPPED:
                if should_stop is not None and should_stop() and self.drain_until is None:
                    self.stopping.request_stop("asked to stop")
                if duration_s is not None and self.mono() - start >= duration_s and self.drain_until is None:
                    self.stopping.request_stop(f"--for {duration_s:g}s ran out")
                if hard_stop is not None and hard_stop():
                    self.stopping.request_stop("asked to stop now", now=True)
                if self.drain_until is not None and self.stopping.drained():
                    break
                self.tick()
        finally:
            self.stopping.shutdown()
        return self.counts

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
            self.calls.handle(ev)
        if self.guard.recover():
            return  # back: the next tick re-reads agents, commands and dispositions and dials again
        now = self.clock()
        self.last_decision = None
        self.wrapup.end_wraps(now)
        self.routing.route_waiting(now)
        if time.monotonic() - self.guard.last_said >= 5.0:
            self.guard.last_said = time.monotonic()
            st = self.guard.status()
            self.on_event(f"store_{st['health']}: for {st['down_s']:.0f}s: no new dials; {len(self.live)} live "
                          f"call(s) kept; {st['journalled']} write(s) journalled to {self.guard.journal.path}")

    def _tick(self) -> None:
        for ev in self.tel.events(timeout_s=TICK_S):
            self.calls.handle(ev)
        now = self.clock()
        self.board.refresh()
        if self.legs is not None:
            self.legs.tick(self.board, utc(now))
        self.apply_commands()
        self.previews.apply_orders(now)
        self.wrapup.apply_dispositions(now)
        self.wrapup.end_wraps(now)
        self.routing.route_waiting(now)
        if self.state == CampaignState.RUNNING:
            if self.site is not None:
                self.site.poll(self.pacer, self.mono())
            self.dial(now)
        if self.cfg.telephony.agent_check_s and self.mono() - self.last_agent_check >= self.cfg.telephony.agent_check_s:
            self.faults.check_agents(wait=False)
        self.faults.probe_refusing()
        if self.mono() - self.last_status >= 1.0:
            self.publish(now)
            self.last_status = self.mono()

    def snapshot(self, now: float) -> Snapshot:
        self.returns.refresh(now)
        agents = []
        for a in self.board.agents.values():
            if a.state in (AgentState.LOGGED_OUT, AgentState.UNAVAILABLE, AgentState.UNREACHABLE,
                           AgentState.REFUSING):  # (issue 25) a refusing phone is no agent to dial for
                continue
            state = "on_call" if a.state in ("on_call",) else a.state
            # (issue 31) an agent who asked to pause or log out after this call is not counted on to take the next one
            leaving = a.state in BUSY and a.pending in (AgentState.PAUSED, AgentState.LOGGED_OUT)
            agents.append(PacingAgent(state=state, elapsed_s=self.state_age(a.id, a.state_since, now),
                                      inbound=a.id in self.returns.on_return, leaving=leaving))
        ringing = [self.age(c.dialed_mono, now - c.dialed) for c in self.live.values()
                   if c.answered is None and not c.machine]
        free = self.tel.free_lines(self.trunk.name)
        return Snapshot(now=now, agents=agents, ringing=ringing, waiting=len(self.waiting), trunk_free=free,
                        cps_headroom=self.tel.cps_headroom(self.trunk.name), inbound=self.returns.load())

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
            self.previews.reserve(now)
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
            self.writes.not_an_attempt(attempt_id, lease.entry_id, at)  # journalled: undone once the store is back
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
            self.writes.not_an_attempt(attempt_id, lease.entry_id, at)
            return "membership lapsed"
        ok = self.tel.originate(attempt_id, lease.phone_e164, self.trunk.name, ring_timeout_s=self.policy.ring_timeout_s,
                                connect_limit_s=self.policy.connect_limit_s,
                                info_wav=self.policy.info_message or None, record_path=record, amd=self._amd_order(),
                                caller_id=self.cc.caller_id, caller_name=self.cc.caller_name,
                                notice_wav=self.cc.recording_notice or None)
        if not ok:
            # no slot: the INVITE never left, so this is not an attempt; give the entry back untouched
            self.writes.not_an_attempt(attempt_id, lease.entry_id, at)
            return "no free line"
        self.pacer.record_dial(now)
        self.live[attempt_id] = Live(attempt_id, lease.entry_id, lease.customer_id, lease.segment,
                                     lease.phone_e164, lease.sku, now, preview_agent=agent_id,
                                     dialed_mono=self.mono())
        self._count("dialled")
        return None

    def _attempt_fields(self) -> dict[str, Any]:
        return {}

    def _dial_token(self, lease: Lease) -> str:
        return ""

    def _may_dial(self) -> bool:
        return True

    def _callback_agent(self, lease: Lease) -> int | None:
        return None

    def _count(self, key: str) -> None:
        key = str(key)  # an outcome enum counts under its value: the counts are printed and saved as JSON
        self.counts[key] = self.counts.get(key, 0) + 1

    def _lagging(self) -> bool:
        """(issue 25) The loop runs late (a starved host): dial nothing until it has caught up; said once each way."""
        changed = self.lag.changed()
        if changed is True:
            self._event("tick_lag", f"runner loop {self.lag.worst():.1f}s late (limit {self.lag.limit_s:g}s, "
                                    "[telephony] max_tick_lag_s): no new dials until it catches up", "warning")
        elif changed is False:
            self._event("tick_lag_cleared", f"runner loop on time again (worst {self.lag.worst():.1f}s): dialling")
        return self.lag.lagging

    # ---------------------------------------------------------------- the public face and the hooks
    # hooks a multi-node runner (dialer.node.runner) overrides: the handlers call them through the runner
    def _event(self, kind: str, message: str, level: str = "info") -> None:
        self.report.event(kind, message, level)

    def publish(self, now: float) -> None:
        self.report.publish(now)

    def apply_commands(self) -> None:
        self.commands.apply_commands()

    def _apply_command(self, command: str, arg: str, created_at: datetime, now: datetime) -> str:
        return self.commands.apply_command(command, arg, created_at, now)

    def _apply_disposition(self, row: DispositionRecord, now: float) -> None:
        self.wrapup.apply_disposition(row, now)

    def _after_stop(self, now: float) -> None:
        self.stopping.after_stop(now)

    # what callers and tests drive directly
    def handle(self, ev: CallEvent) -> None:
        """Apply one telephony event (`calls.CallEvents.handle`)."""
        self.calls.handle(ev)

    def route_waiting(self, now: float) -> None:
        self.routing.route_waiting(now)

    def end_wrap(self, agent_id: int, now: float) -> None:
        self.wrapup.end_wrap(agent_id, now)

    def end_wraps(self, now: float) -> None:
        self.wrapup.end_wraps(now)

    def request_stop(self, why: str, *, now: bool = False) -> str:
        """Stop dialling; drain, or hang up at once when NOW (`stopping.Stopping.request_stop`)."""
        return self.stopping.request_stop(why, now=now)

    def shutdown(self) -> None:
        self.stopping.shutdown()

    def replay_journal(self) -> None:
        self.writes.replay()


__all__ = ["HEARTBEAT_STALE_S", "MODES", "PREVIEW_LEASE_S", "PREVIEW_RENEW_S", "TICK_S", "CampaignRunner", "Live",
           "RunnerBusy", "TickLag", "Wrap", "utc"]
