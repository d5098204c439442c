"""Listen, whisper, barge (issue 29): a supervisor joins a live call on their own phone, inside the worker.

Conference-bridge audio works only inside one process, so the worker that holds the customer and the agent leg
also calls the supervisor's phone (from the local account, with the auto-answer hints an agent leg gets) and
routes the bridge's ports:

    listen   customer -> supervisor, agent -> supervisor                  (the supervisor speaks to nobody)
    whisper  + supervisor -> agent                                         (the customer never hears them)
    barge    + supervisor -> customer, and into the call's recording       (three-way)

A second `Listen` for a call from the same phone changes the routes on the same leg (no new call); another phone
is another supervisor on the same call, up to `MAX_PER_CALL` (a further one is refused with supervisor_failed).
With several, every supervisor hears what the agent hears: the customer, the agent and each supervisor who is
whispering or barging; a listening supervisor is heard by nobody; a whisper never reaches the customer (nor the
recording), a barge reaches everyone and the recording. Each join, mode change and leave is its own event naming
who (`"<mode> by <login>"`). The supervisor leaves by hanging up their phone; the legs are hung up by the worker
when the customer's call ends.

Each stretch (from a join or a mode change to the next change or the end) reports the maximum conference levels
per leg: `in` is what the port feeds into the bridge (heard from that phone), `out` what the bridge sends to it.
They are the proof of the routes (a whisper shows the supervisor's level on the agent's `out`, never on the
customer's), measured from the bridge itself rather than asserted from the code that set it up.

Gotchas of the worker apply (dialer/telephony/README.md): every reference to a leg is dropped in its
DISCONNECTED callback; callbacks only record facts, routes are changed from the worker's loop (`timers`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dialer.domain.vocabulary import ListenMode
from dialer.telephony.protocol import CallState, Listen, WorkerError

if TYPE_CHECKING:
    from dialer.telephony.worker import Att, Worker

SAMPLE_S = 0.05
MAX_PER_CALL = 3  # supervisors' phones on one call (each is a conference port and a leg on this worker)
SPEAKS = (ListenMode.WHISPER, ListenMode.BARGE)


@dataclass
class Session:
    attempt_id: int
    uri: str
    mode: ListenMode
    by: str
    leg: Any = None
    confirmed: bool = False
    joined: bool = False  # supervisor_joined sent
    routed: ListenMode | None = None  # the mode whose routes are in place (None: route at the next timers())
    gone: bool = False  # DISCONNECTED seen: report and forget at the next timers()
    hanging_up: bool = False
    status: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    next_sample: float = 0.0


class Listeners:
    """The supervisor legs of one worker, keyed by (attempt, supervisor's phone): several supervisors per call."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.sessions: dict[tuple[int, str], Session] = {}
        self._cls: Any = None

    # ------------------------------------------------------------------ commands
    def join(self, msg: Listen) -> None:
        w = self.w
        try:
            mode = ListenMode(msg.mode)
        except ValueError:
            self._emit("supervisor_failed", msg.attempt_id, None, detail=f"unknown mode {msg.mode!r}")
            return
        att = w.atts.get(msg.attempt_id)
        if att is None or att.state is not CallState.CONNECTED:
            self._emit("supervisor_failed", msg.attempt_id, att,
                       detail=f"{mode.value} by {msg.by}: the call is not in progress on this worker")
            return
        s = self.sessions.get((msg.attempt_id, msg.uri))
        if s is not None and not s.gone:
            if s.mode is not mode:
                if s.joined:
                    w.emit("supervisor_mode", att, detail=f"{s.mode.value} -> {mode.value} by {msg.by}",
                           stats=self._stats(s))
                s.levels = {}
                s.mode, s.by, s.routed = mode, msg.by, None
            return
        on_call = [o.by for o in self.sessions.values() if o.attempt_id == msg.attempt_id and not o.gone]
        if len(on_call) >= MAX_PER_CALL:
            w.emit("supervisor_failed", att, detail=f"{mode.value} by {msg.by}: already {len(on_call)} supervisors "
                                                    f"on the call ({', '.join(on_call)}; at most {MAX_PER_CALL})")
            return
        s = Session(attempt_id=msg.attempt_id, uri=msg.uri, mode=mode, by=msg.by)
        pj = w.pj
        leg = self._leg_class()(w.local_acc, s)
        from dialer.telephony.worker import agent_call_params  # the same auto-answer hints as an agent leg

        prm = agent_call_params(pj, w.host)
        try:
            leg.makeCall(msg.uri, prm)
        except pj.Error as exc:
            w.emit("supervisor_failed", att, detail=f"{mode.value} by {msg.by}: makeCall: {exc.reason}")
            return
        s.leg = leg
        self.sessions[(msg.attempt_id, msg.uri)] = s

    def _emit(self, kind: str, attempt_id: int, att: Att | None, **kw: Any) -> None:
        if att is None:
            self.w.emit(kind, None, attempt_id=attempt_id, **kw)
        else:
            self.w.emit(kind, att, **kw)

    # ------------------------------------------------------------------ callbacks (facts only)
    def on_state(self, leg: Any, s: Session) -> None:
        pj = self.w.pj
        try:
            ci = leg.getInfo()
        except pj.Error:
            return
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            s.confirmed = True
            s.routed = None
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            s.status = int(ci.lastStatusCode)
            s.gone = True
            s.leg = None  # drop the reference inside DISCONNECTED (a reused call id must not be hung up)

    def on_media(self, s: Session) -> None:
        s.routed = None  # a (re-)negotiated stream may have a new conference port: route again

    # ------------------------------------------------------------------ loop
    def timers(self, now: float) -> None:
        for key, s in list(self.sessions.items()):
            att = self.w.atts.get(s.attempt_id)
            if s.gone:
                del self.sessions[key]
                if s.joined:
                    self._emit("supervisor_left", s.attempt_id, att,
                               detail=f"{s.mode.value} by {s.by}", stats=self._stats(s))
                else:
                    self._emit("supervisor_failed", s.attempt_id, att, sip_status=s.status or None,
                               detail=f"{s.mode.value} by {s.by}: the supervisor's phone did not answer")
                continue
            if att is None or att.state is not CallState.CONNECTED or att.cust is None:
                self._hangup(s)  # the call ended (or is ending): the supervisor has nothing left to hear
                continue
            if not s.confirmed:
                continue
            if s.routed is not s.mode:
                self._route(s, att)
            if s.routed is s.mode and now >= s.next_sample:
                s.next_sample = now + SAMPLE_S
                self._sample(s, att)

    def _agent_leg(self, att: Att) -> Any:
        return self.w.nailed.call_of(att) if att.nailed else (att.agent if att.agent_confirmed else None)

    def _route(self, s: Session, att: Att) -> None:
        w = self.w
        sup, cust = w._aud(s.leg), w._aud(att.cust)
        agent_leg = self._agent_leg(att)
        agent = w._aud(agent_leg) if agent_leg is not None else None
        if sup is None or cust is None or agent is None:
            return  # media not up yet: the next loop tries again
        try:
            cust.startTransmit(sup)
            agent.startTransmit(sup)
            if s.mode in (ListenMode.WHISPER, ListenMode.BARGE):
                sup.startTransmit(agent)
            else:
                sup.stopTransmit(agent)
            if s.mode is ListenMode.BARGE:
                sup.startTransmit(cust)
                if att.recorder is not None:
                    sup.startTransmit(att.recorder)  # a barging supervisor is a party of the recorded call
            else:
                sup.stopTransmit(cust)
                if att.recorder is not None:
                    sup.stopTransmit(att.recorder)
            for o in self.sessions.values():  # the other supervisors on this call, both directions
                other = w._aud(o.leg) if o is not s and o.attempt_id == s.attempt_id and o.leg is not None \
                    and o.confirmed and not o.gone else None
                if other is None:
                    continue  # not up yet: its own routing connects the two
                (other.startTransmit if o.mode in SPEAKS else other.stopTransmit)(sup)
                (sup.startTransmit if s.mode in SPEAKS else sup.stopTransmit)(other)
        except w.pj.Error as exc:
            w.send(WorkerError(where="listen.route", error=repr(exc)))
            return
        s.routed = s.mode
        s.next_sample = time.monotonic() + 0.1  # frames already in flight under the old routes are not counted
        if not s.joined:
            s.joined = True
            w.emit("supervisor_joined", att, detail=f"{s.mode.value} by {s.by}")

    def _sample(self, s: Session, att: Att) -> None:
        w = self.w
        agent_leg = self._agent_leg(att)
        for role, leg in (("customer", att.cust), ("agent", agent_leg), ("supervisor", s.leg)):
            a = w._aud(leg) if leg is not None else None
            if a is None:
                continue
            try:
                # the bridge port's view (see Worker._sample_levels): tx = heard from the phone, rx = sent to it
                lin, lout = int(a.getTxLevel()), int(a.getRxLevel())
            except w.pj.Error:
                continue
            s.levels[f"{role}_in"] = max(s.levels.get(f"{role}_in", 0), lin)
            s.levels[f"{role}_out"] = max(s.levels.get(f"{role}_out", 0), lout)

    @staticmethod
    def _stats(s: Session) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": s.mode.value}
        for role in ("customer", "agent", "supervisor"):
            out[role] = {"in": s.levels.get(f"{role}_in", 0), "out": s.levels.get(f"{role}_out", 0)}
        return out

    def _hangup(self, s: Session) -> None:
        if s.hanging_up or s.leg is None:
            return
        s.hanging_up = True
        self.w._hangup_leg(s.leg)

    # ------------------------------------------------------------------ worker bookkeeping
    def live(self) -> int:
        return sum(1 for s in self.sessions.values() if s.leg is not None)

    def hangup_all(self) -> None:
        for s in self.sessions.values():
            self._hangup(s)

    def drop_all(self) -> None:
        for s in self.sessions.values():
            s.leg = None
        self.sessions.clear()

    def _leg_class(self) -> Any:
        if self._cls is None:
            self._cls = _supervisor_leg_class(self.w.pj, self)
        return self._cls


def _supervisor_leg_class(pj: Any, owner: Listeners) -> Any:
    class SupervisorLeg(pj.Call):  # type: ignore[misc]
        def __init__(self, acc: Any, s: Session) -> None:
            super().__init__(acc)
            self.s = s

        def onCallState(self, prm: Any) -> None:
            try:
                owner.on_state(self, self.s)
            except Exception as exc:  # noqa: BLE001 - an exception into SWIG aborts the process
                owner.w.send(WorkerError(where="listen.onCallState", error=repr(exc)))

        def onCallMediaState(self, prm: Any) -> None:
            try:
                owner.on_media(self.s)
            except Exception as exc:  # noqa: BLE001
                owner.w.send(WorkerError(where="listen.onCallMediaState", error=repr(exc)))

        def onCallTransferRequest(self, prm: Any) -> None:
            prm.statusCode = 603  # a supervisor's phone never moves the call elsewhere

        def onCallReplaceRequest(self, prm: Any) -> None:
            prm.statusCode = 603

    return SupervisorLeg
