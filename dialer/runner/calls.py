"""Telephony events applied to the calls in flight: ringing, answered, machine, connected, abandoned, DTMF,
failed, hung up."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dialer.amd.detector import AmdVerdict
from dialer.domain.vocabulary import (
    AgentState,
    AttemptState,
    CallOutcome,
    DispositionSource,
    NetworkDisposition,
    RunnerEvent,
)
from dialer.runner.state import Live, Wrap, utc
from dialer.store.outbox import DispositionRecord
from dialer.telephony import CallEvent
from dialer.telephony.events import EventKind

# (issue 24) outcomes that tell the CRM the number is bad (a `bad_number` disposition with the outcome as reason)
BAD_NUMBER_OUTCOMES = frozenset({CallOutcome.INVALID, CallOutcome.UNREACHABLE})

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


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


class CallEvents:
    """Why apart from the loop: every state change of a call comes from the telephony as an event, and the
    rules for each kind (what the pacer learns, what the attempt row records, who is routed next) read best side by
    side. Agent-leg faults are `faults.AgentFaults`'s; this class dispatches them there; a call
    this campaign did not place goes up to the switchboard."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def handle(self, ev: CallEvent) -> None:
        """Apply one telephony event: trunk/worker news to the event log, call events by `_CALL_HANDLERS`."""
        kind = ev.kind
        if kind == EventKind.INCOMING:  # (issue 30) a call this campaign did not place belongs to the owner above
            self.r.switchboard.unowned(ev)
            return
        if kind in (EventKind.AGENT_LEG_UP, EventKind.AGENT_LEG_DOWN):
            if self.r.legs is not None:
                self.r.legs.on_event(ev, self.r.board, utc(ev.at))
            else:
                self.r.faults.on_probe(ev)
            return
        if kind in (EventKind.TRUNK_DOWN, EventKind.TRUNK_UP, EventKind.WORKER_DOWN):
            self.r._event(kind, ev.detail, "warning" if kind != EventKind.TRUNK_UP else "info")
            if ev.attempt_id is None:
                return
        if kind in (EventKind.AGENT_REACHABLE, EventKind.AGENT_UNREACHABLE):
            self.r.faults.reachability(ev)
            return
        call = self.r.live.get(ev.attempt_id) if ev.attempt_id is not None else None
        if call is None:
            return
        handler = _CALL_HANDLERS.get(kind)
        if handler is not None:
            handler(self, call, ev)

    def on_ringing(self, call: Live, ev: CallEvent) -> None:
        if call.ringing is None:
            call.ringing = ev.at
            self.r.writes.update_attempt(call.attempt_id, state=AttemptState.RINGING.value, ringing_at=utc(ev.at),
                                         worker=ev.worker)

    def on_answered(self, call: Live, ev: CallEvent) -> None:
        call.answered = ev.at  # with AMD: the verdict, from which the connect limit runs
        picked_up = _picked_up(ev)
        self.r.pacer.record_outcome(ev.at, "human", self.r.span(picked_up - call.dialed, call.dialed_mono))
        self.r.writes.update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value, answered_at=utc(picked_up),
                                     sip_status=200, outcome="answered", worker=ev.worker, **_amd_fields(ev.amd))
        self.r._count("answered")
        self.r.waiting.append(call.attempt_id)
        self.r.routing.route_waiting(ev.at)

    def on_machine(self, call: Live, ev: CallEvent) -> None:
        # a machine answered: the pacer counts it as a machine (not a hit), no agent is reserved
        call.machine = True
        picked_up = _picked_up(ev)
        self.r.pacer.record_outcome(ev.at, "machine", self.r.span(picked_up - call.dialed, call.dialed_mono))
        self.r.writes.update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value, answered_at=utc(picked_up),
                                     sip_status=200, machine=True, worker=ev.worker, **_amd_fields(ev.amd))
        self.r._count("machine")

    def on_agent_connected(self, call: Live, ev: CallEvent) -> None:
        call.connected = ev.at
        call.connected_mono = self.r.mono()
        if call.attempt_id in self.r.waiting:
            self.r.waiting.remove(call.attempt_id)
        wait = ev.at - (call.answered or ev.at)
        self.r.pacer.record_connect(ev.at, wait)
        if call.agent_id is not None:
            self.r.board.set_state(call.agent_id, AgentState.ON_CALL, utc(ev.at), attempt_id=call.attempt_id)
        self.r.writes.update_attempt(call.attempt_id, state=AttemptState.CONNECTED.value, agent_connected_at=utc(ev.at),
                                     agent_id=call.agent_id)
        self.r._count("connected")

    def on_abandoned(self, call: Live, ev: CallEvent) -> None:
        call.abandoned = True
        if call.attempt_id in self.r.waiting:
            self.r.waiting.remove(call.attempt_id)
        self.r.pacer.record_abandon(ev.at, ev.at - (call.answered or ev.at))
        if call.agent_id is not None:
            self.r.board.set_state(call.agent_id, AgentState.READY, utc(ev.at), force=True)
            call.agent_id = None
        self.r.writes.update_attempt(call.attempt_id, abandoned=True)
        self.r._count("abandoned")

    def on_dtmf(self, call: Live, ev: CallEvent) -> None:
        if ev.leg == "agent" and ev.digit:
            keys = call.dtmf.feed(ev.digit)
            if keys:
                self.r.wrapup.dtmf_disposition(call, keys, ev.at)

    def on_failed(self, call: Live, ev: CallEvent) -> None:
        if ev.outcome == CallOutcome.TRUNK_ERROR:
            # (issue 13) the trunk refused our credentials: not an attempt on this contact
            self.r.live.pop(call.attempt_id, None)
            if call.attempt_id in self.r.waiting:
                self.r.waiting.remove(call.attempt_id)
            self.r.writes.not_an_attempt(call.attempt_id, call.entry_id, utc(ev.at))
            self.r._count("not_attempted_trunk_error")
            return
        # (issue 24) the manager must see that the trunk hides the number
        if ev.outcome == CallOutcome.ANONYMOUS_REJECTED:
            self.r._event(RunnerEvent.CALLER_ID_HIDDEN, f"attempt {call.attempt_id}: the callee refuses calls without caller ID "
                                            f"({ev.sip_status}); trunk {ev.trunk or '?'} is not presenting the "
                                            "campaign's number (check caller_id / P-Asserted-Identity)", "warning")
        self.finish(call, ev.outcome or "failed", ev.at, ev.sip_status, by="", detail=ev.detail)

    def on_hangup(self, call: Live, ev: CallEvent) -> None:
        if call.answered:
            outcome = "answered"
        elif ev.cause == AmdVerdict.ANNOUNCEMENT:  # (issue 24) the network's recording: never a person, never an abandon
            outcome = ev.outcome or "unreachable"
            self.r.writes.update_attempt(call.attempt_id, machine=False, **_amd_fields(ev.amd))
        elif call.machine:
            outcome = CallOutcome.MACHINE_MESSAGE_LEFT if ev.cause == CallOutcome.MACHINE_MESSAGE_LEFT \
                else CallOutcome.MACHINE
        elif ev.amd is not None:  # the callee hung up while AMD listened: answered, by whom we cannot say
            outcome = "answered"
            self.r.writes.update_attempt(call.attempt_id, **_amd_fields(ev.amd))
        else:
            outcome = ev.outcome or "failed"
        self.finish(call, outcome, ev.at, ev.sip_status, by=ev.by or "", detail=ev.detail,
                    recording=ev.recording_path)

    def finish(self, call: Live, outcome: str, at: float, sip_status: int | None, *, by: str, detail: str,
               recording: str | None = None) -> None:
        self.r.live.pop(call.attempt_id, None)
        if call.attempt_id in self.r.waiting:
            self.r.waiting.remove(call.attempt_id)
        if call.answered is None and not call.machine:
            ring = self.r.span(at - call.dialed, call.dialed_mono)
            pacing_outcome = {"busy": "busy", "no_answer": "no_answer", "machine": "machine"}.get(outcome, "failed")
            self.r.pacer.record_outcome(at, pacing_outcome, ring)
            self.r._count(outcome)
        fields: dict[str, Any] = {"state": "ended", "ended_at": utc(at), "outcome": outcome, "hangup_by": by,
                                  "detail": "; ".join([*call.notes, detail] if detail else call.notes)[:500]}
        if sip_status is not None and call.answered is None:
            fields["sip_status"] = sip_status
        if recording:
            fields["recording_path"] = recording
        self.r.writes.update_attempt(call.attempt_id, **fields)
        self.r.writes.record_result(call.entry_id, outcome, utc(at), abandoned=call.abandoned, phone_e164=call.phone)
        if outcome in BAD_NUMBER_OUTCOMES:  # (issue 24) the CRM hears of a dead or unreachable number
            self.r.writes.record_disposition(DispositionRecord(
                outcome=NetworkDisposition.BAD_NUMBER.value, attempt_id=call.attempt_id, customer_id=call.customer_id,
                campaign_id=self.r.campaign_id, sku=call.sku, reason_code=outcome,
                source=DispositionSource.NETWORK.value))
        if call.agent_id is not None and call.connected is not None:
            talk = self.r.span(at - call.connected, call.connected_mono)
            self.r.board.set_state(call.agent_id, "wrap_up", utc(at), attempt_id=call.attempt_id)
            self.r.wraps[call.agent_id] = Wrap(call.agent_id, call.attempt_id, call.entry_id, talk, at, call.disposed,
                                               started_mono=self.r.mono())
            if call.disposed:
                self.r.wrapup.end_wrap(call.agent_id, at)
        elif call.agent_id is not None:
            self.r.board.set_state(call.agent_id, "ready", utc(at), force=True)
        elif call.preview_agent is not None:  # the call the agent dialled ended before it reached them
            a = self.r.board.agents.get(call.preview_agent)
            if a is not None and a.state == AgentState.RESERVED and a.attempt_id == call.attempt_id:
                self.r.board.set_state(a.id, AgentState.READY, utc(at), force=True)


# how each call event kind is applied (trunk and worker news are handled before: they need no call)
_CALL_HANDLERS: dict[EventKind, Callable[[CallEvents, Live, CallEvent], None]] = {
    EventKind.RINGING: CallEvents.on_ringing,
    EventKind.ANSWERED: CallEvents.on_answered,
    EventKind.MACHINE: CallEvents.on_machine,
    EventKind.AGENT_CONNECTED: CallEvents.on_agent_connected,
    EventKind.AGENT_FAILED: lambda self, call, ev: self.r.faults.on_agent_failed(call, ev),
    EventKind.ABANDONED: CallEvents.on_abandoned,
    EventKind.DTMF: CallEvents.on_dtmf,
    EventKind.FAILED: CallEvents.on_failed,
    EventKind.HANGUP: CallEvents.on_hangup,
    EventKind.AGENT_LOST: lambda self, call, ev: self.r.faults.on_agent_lost(call, ev),
}
