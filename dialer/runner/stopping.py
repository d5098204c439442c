"""Stopping (issue 25): a stop drains (no new dials, calls end by themselves), a hard stop hangs up, and the
store is left consistent even when it is down."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dialer.domain.vocabulary import CampaignState, RunnerEvent
from dialer.runner.state import utc
from dialer.store import agent_time as agent_time_store
from dialer.store import campaigns as campaigns_store

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class Stopping:
    """Why: a stop never cuts a conversation; the drain deadline, what is left and the last writes are one
    concern, apart from the tick loop that only asks whether the drain is done."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def request_stop(self, why: str, *, now: bool = False) -> str:
        """Stop dialling now; the loop ends once every call and wrap-up has ended by itself, or at once (hanging
        up what is left) when NOW or when `[telephony] drain_s` has passed. Returns what the manager is told."""
        if now:
            self.r.hard_stop = True
            self.r.state = CampaignState.STOPPED.value
            left = self.left()
            self.r._event(RunnerEvent.STOP_NOW, f"{why}: hanging up {left['calls']} call(s) "
                                    f"({left['conversations']} in conversation)", "warning")
            return f"stopping now: hanging up {left['calls']} call(s)"
        if self.r.drain_until is not None:
            left = self.left()
            return f"already draining: {left['calls']} call(s), {left['wraps']} wrap-up(s) left (stop_now hangs up)"
        self.r.drain_until = time.monotonic() + float(self.r.cfg.telephony.drain_s)
        self.r.drain_why = why
        self.r.state = CampaignState.DRAINING.value
        self.r.previews.release_all(utc(self.r.clock()))
        left = self.left()
        self.r._event(RunnerEvent.DRAINING, f"{why}: no new dials; waiting for {left['calls']} call(s) and {left['wraps']} "
                                f"wrap-up(s) to end (at most {self.r.cfg.telephony.drain_s:g}s)")
        return f"draining: {left['calls']} call(s), {left['wraps']} wrap-up(s) left"

    def left(self) -> dict[str, int]:
        return {"calls": len(self.r.live),
                "conversations": sum(1 for c in self.r.live.values() if c.connected is not None),
                "ringing": sum(1 for c in self.r.live.values() if c.answered is None and not c.machine),
                "wraps": len(self.r.wraps)}

    def drained(self) -> bool:
        """Nothing left to wait for, or the drain time ran out (then `shutdown` hangs up what is left)."""
        if not self.r.live and not self.r.wraps and not self.r.waiting:
            return True
        if self.r.drain_until is not None and time.monotonic() >= self.r.drain_until:
            left = self.left()
            self.r.hard_stop = True
            self.r._event(RunnerEvent.DRAIN_TIMEOUT, f"drain_s {self.r.cfg.telephony.drain_s:g}s passed: hanging up "
                                         f"{left['calls']} call(s) ({left['conversations']} in conversation)",
                          "warning")
            return True
        return False

    def status(self) -> dict[str, Any]:
        """(issue 25) For the monitor while draining: what is left and when the rest would be hung up."""
        if self.r.drain_until is None:
            return {}
        left_s = max(0.0, self.r.drain_until - time.monotonic())
        return {**self.left(), "why": self.r.drain_why, "hard_stop_in_s": round(left_s, 1),
                "hard_stop_at": (datetime.now(UTC) + timedelta(seconds=left_s)).isoformat()}

    def shutdown(self) -> None:
        """Release what was leased, hang up what a drain left (a hard stop, drain_s ran out, or the loop failed)
        and leave the store consistent."""
        self.r.state = "stopped"
        self.r.previews.release_all(utc(self.r.clock()))
        end = time.monotonic() + 5
        if self.r.live:
            left = self.left()
            self.r._event(RunnerEvent.CALLS_CUT, f"runner stopping: {left['calls']} call(s) hung up by the dialer "
                                     f"({left['conversations']} in conversation)", "warning")
            self.r.counts["cut_at_stop"] = self.r.counts.get("cut_at_stop", 0) + left["calls"]
        for attempt_id in list(self.r.live):
            self.r.tel.hangup(attempt_id)
        while self.r.live and time.monotonic() < end:
            for ev in self.r.tel.events(timeout_s=0.2):
                self.r.calls.handle(ev)
        now = self.r.clock()
        for agent_id in list(self.r.wraps):
            self.r.wrapup.end_wrap(agent_id, now)
        self.r.switchboard.detach(self.r.policy.name)  # the last campaign out stops the telephony
        for call in list(self.r.live.values()):
            self.r.calls.finish(call, "interrupted", now, None, by="dialer", detail="runner stopped")
        self.after_stop_guarded(now)
        self.r._event("stopped", f"runner {self.r.runner_id} stopped: {self.r.counts}")

    def after_stop_guarded(self, now: float) -> None:
        """(issue 25) Leave the store consistent if it is there; if it is still down, the journal keeps what it
        missed and the next run of the campaign replays it before anything else."""
        try:
            if self.r.guard.degraded and not self.r.guard.recover_now():
                raise ConnectionError(self.r.guard.error)
            self.r._after_stop(now)
        except Exception as error:
            if not isinstance(error, ConnectionError) and not self.r.guard.absorb(error):
                raise
            self.r.on_event(f"store_{self.r.guard.health.value}: stopped without the store: {self.r.guard.journalled} "
                            f"write(s) wait in {self.r.guard.journal.path}; the next run replays them")

    def after_stop(self, now: float) -> None:
        """The only runner of the campaign leaves: settle the hopper, end its agents' open stretches (issue 27)
        and mark the campaign stopped."""
        self.r.hopper.recover(utc(now))
        if self.r.board.state_logger is not None:
            agent_time_store.close_at_stop(self.r.engine, self.r.campaign_id, self.r.board.logins, utc(now))
        campaigns_store.mark_stopped(self.r.engine, self.r.campaign_id)
