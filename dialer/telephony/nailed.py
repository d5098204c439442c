"""Nailed-up agent legs: the dialer calls each agent once at log-in and keeps that call up for the session.

Why: placing the agent leg when a customer answers costs an INVITE round trip to the agent's softphone (plus
its auto-answer) on every call, relies on auto-answer headers, and can fail per call. With a nailed leg the
answered customer is bridged into the agent's conference slot at once. It needs one process that holds
every agent leg plus the campaign's lines (conference audio only flows inside one process), which the
high-capacity site build of pjsua2 allows (`scripts/build-pjsua2`) and the PyPI wheel (4 calls) does not.

Three parts, each used through a few hooks:
- `NailedLegs` lives in the worker: dials, keeps, bridges and re-establishes the legs (pjsua2 objects).
- `NailedAgents` lives in the supervisor: which agents are logged in and whose leg is up; re-logs them in
  when their worker is restarted.
- `AgentLegSync` lives in the campaign runner: turns agent log-ins/outs into leg commands and leg events
  into agent states (`unreachable` while the leg is down).

Events (CallEvent.kind): `agent_leg_up` (agent_id), `agent_leg_down` (agent_id, sip_status, detail; `stats`
with the leg's RTP counters). A dropped leg is dialled again after 1, 2, 4 ... 30 s while the agent stays
logged in; a dropped leg bridged to a customer ends that call (`hangup` by `agent`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dialer.domain.vocabulary import AgentState
from dialer.telephony.events import CallEvent, EventKind
from dialer.telephony.protocol import AgentLogin, AgentLogout, CallState

if TYPE_CHECKING:
    from dialer.telephony.worker import Att, Worker

AgentLegs = Literal["nailed", "on_connect"]
RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
RING_S = 30.0  # an agent's phone that rings this long unanswered is hung up and called again later


def choose_agent_legs(setting: str, capacity: int, agents: int, lines: int) -> AgentLegs:
    """`auto` means nailed when one process can hold every agent leg plus the lines, else on_connect."""
    if setting in ("nailed", "on_connect"):
        return setting  # type: ignore[return-value]
    return "nailed" if agents > 0 and capacity >= agents + lines else "on_connect"


def nailed_capacity_error(capacity: int, agents: int, lines: int) -> str | None:
    """Why `agent_legs = "nailed"` cannot work with this pjsua2 (None when it can)."""
    if capacity >= agents + max(1, lines):
        return None
    return (f'[telephony] agent_legs = "nailed" needs one worker process holding {agents} agent leg(s) plus '
            f"{lines} line(s) = {agents + lines} calls, but this pjsua2 holds {capacity} per process; build "
            f'the high-capacity pjsua2 (scripts/build-pjsua2) or set agent_legs = "on_connect"')


def _counts(call: Any) -> dict[str, int]:
    """RTP counters of a live leg's audio stream (pjmedia's RTCP stats), zeros when there is no stream."""
    try:
        s = call.getStreamStat(0)
        return {"rx": int(s.rtcp.rxStat.pkt), "tx": int(s.rtcp.txStat.pkt), "loss": int(s.rtcp.rxStat.loss)}
    except Exception:  # noqa: BLE001 - no media yet / already gone (a pj.Error)
        return {"rx": 0, "tx": 0, "loss": 0}


# ================================================================================================ worker
@dataclass
class NailedLeg:
    """One agent's session leg. `call` is referenced only while the call is alive (gotcha 1)."""

    agent_id: int
    uri: str
    call: Any = None
    up: bool = False
    logged_in: bool = True
    attempt_id: int | None = None  # the customer bridged to this agent right now
    failures: int = 0
    retry_at: float = 0.0
    ring_until: float = 0.0
    base: dict[str, int] = field(default_factory=dict)  # counters when the current customer was bridged
    last_counts: dict[str, int] = field(default_factory=dict)


class NailedLegs:
    """The worker's agent session legs. Called from the worker loop and its SWIG callbacks (facts only)."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.legs: dict[int, NailedLeg] = {}

    # ---------------------------------------------------------------- commands
    def login(self, msg: AgentLogin) -> None:
        leg = self.legs.get(msg.agent_id)
        if leg is not None and leg.logged_in and leg.uri == msg.uri:
            if leg.up:  # already up (a repeated log-in): say so again
                self.w.emit("agent_leg_up", None, agent_id=leg.agent_id, leg="agent", detail="already up")
            return
        if leg is not None and leg.call is not None:
            self.w._hangup_leg(leg.call)  # another URI: the old leg goes, the new one is dialled on DISCONNECTED
        leg = NailedLeg(agent_id=msg.agent_id, uri=msg.uri) if leg is None else leg
        leg.uri, leg.logged_in, leg.failures, leg.retry_at = msg.uri, True, 0, 0.0
        self.legs[msg.agent_id] = leg
        if leg.call is None:
            self._dial(leg)

    def logout(self, msg: AgentLogout) -> None:
        leg = self.legs.get(msg.agent_id)
        if leg is None:
            return
        leg.logged_in = False
        if leg.call is not None:
            self.w._hangup_leg(leg.call)  # agent_leg_down follows at DISCONNECTED
        else:
            del self.legs[msg.agent_id]
            self.w.emit("agent_leg_down", None, agent_id=leg.agent_id, leg="agent", detail="logged out")

    def _dial(self, leg: NailedLeg) -> None:
        w = self.w
        pj = w.pj
        from dialer.telephony.worker import _make_call

        call = _make_call(pj, w, w.local_acc, leg, "nailed")  # type: ignore[arg-type]
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        try:
            call.makeCall(leg.uri, prm)
        except pj.Error as exc:
            self._failed(leg, f"makeCall: {exc.reason}", None)
            return
        leg.call = call
        leg.ring_until = time.monotonic() + RING_S

    def _failed(self, leg: NailedLeg, detail: str, status: int | None) -> None:
        """The leg is down (never came up, or dropped): tell the supervisor, dial again later if logged in."""
        was_up = leg.up
        leg.up = False
        stats = {"agent": leg.last_counts} if leg.last_counts else None
        if not leg.logged_in:
            self.legs.pop(leg.agent_id, None)
            self.w.emit("agent_leg_down", None, agent_id=leg.agent_id, leg="agent", sip_status=status,
                        detail="logged out", stats=stats)
            return
        delay = RETRY_S[min(leg.failures, len(RETRY_S) - 1)]
        leg.failures += 1
        leg.retry_at = time.monotonic() + delay
        self.w.emit("agent_leg_down", None, agent_id=leg.agent_id, leg="agent", sip_status=status, stats=stats,
                    detail=f"{'dropped' if was_up else 'not answered'}: {detail}; calling again in {delay:g} s")

    # ---------------------------------------------------------------- callbacks (record facts only)
    def on_state(self, call: Any, leg: NailedLeg) -> None:
        pj = self.w.pj
        try:
            ci = call.getInfo()
        except pj.Error:
            return
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.up:
            leg.up, leg.failures = True, 0
            self.w.emit("agent_leg_up", None, agent_id=leg.agent_id, leg="agent")
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            leg.call = None  # gotcha 1
            attempt_id, leg.attempt_id = leg.attempt_id, None
            self._failed(leg, f"{ci.lastStatusCode} {ci.lastReason}", int(ci.lastStatusCode) or None)
            att = self.w.atts.get(attempt_id) if attempt_id is not None else None
            if att is not None:
                self.w.todo.append(("agent_dropped", att.attempt_id))

    def on_media(self, call: Any, leg: NailedLeg) -> None:
        if leg.attempt_id is not None:
            att = self.w.atts.get(leg.attempt_id)
            if att is not None:
                att.bridged = False  # a re-INVITE may have given the leg a new conference port
                self.w.todo.append(("bridge", att.attempt_id))

    def on_dtmf(self, leg: NailedLeg, digit: str) -> None:
        att = self.w.atts.get(leg.attempt_id) if leg.attempt_id is not None else None
        self.w.emit("dtmf", att, digit=digit, leg="agent", agent_id=leg.agent_id)

    def on_stream_destroyed(self, call: Any, leg: NailedLeg) -> None:
        leg.last_counts = _counts(call)

    # ---------------------------------------------------------------- bridging
    def has(self, agent_id: int) -> bool:
        return agent_id in self.legs

    def connect(self, att: Att, agent_id: int) -> None:
        """Bridge an answered customer to the agent's session leg at once (no SIP involved)."""
        leg = self.legs[agent_id]
        if not leg.up or leg.call is None:
            self.w.emit("agent_failed", att, agent_id=agent_id, leg="agent",
                        detail="the agent's nailed leg is not up")
            return
        if leg.attempt_id is not None and leg.attempt_id in self.w.atts:
            self.w.emit("agent_failed", att, agent_id=agent_id, leg="agent",
                        detail=f"the agent is still bridged to attempt {leg.attempt_id}")
            return
        leg.attempt_id = att.attempt_id
        leg.base = _counts(leg.call)
        att.nailed, att.agent_id, att.agent_confirmed = True, agent_id, True
        att.state = CallState.CONNECTED
        att.connected_at, att.agent_rx = time.monotonic(), (-1, 0.0)
        att.bridged = False
        self.bridge(att)
        self.w.emit("agent_connected", att, agent_id=agent_id, leg="agent",
                    detail=f"{(time.monotonic() - att.answered_at) * 1000:.1f} ms after answer (nailed leg)")

    def call_of(self, att: Att) -> Any:
        leg = self.legs.get(att.agent_id) if att.agent_id is not None else None
        return leg.call if leg is not None and leg.attempt_id == att.attempt_id else None

    def bridge(self, att: Att) -> None:
        call = self.call_of(att)
        if att.bridged or att.cust is None or call is None:
            return
        a, b = self.w._aud(att.cust), self.w._aud(call)
        if a is None or b is None:
            return  # media not ready yet: on_media asks again
        try:
            a.startTransmit(b)
            b.startTransmit(a)
            if att.recorder is not None:
                b.startTransmit(att.recorder)
            att.bridged = True
        except self.w.pj.Error:
            pass
        if att.bridged:
            self.w.play_notice(att, a, b)

    def release(self, att: Att) -> None:
        """The customer is gone: the agent's leg stays up, heard by nobody (silence) until the next one.
        Records the leg's RTP counters for this customer's stretch as the attempt's agent stats."""
        leg = self.legs.get(att.agent_id) if att.agent_id is not None else None
        if leg is None or leg.attempt_id != att.attempt_id:
            return
        leg.attempt_id = None
        now = _counts(leg.call) if leg.call is not None else leg.last_counts
        if now:
            att.stats["agent"] = {k: now.get(k, 0) - leg.base.get(k, 0) for k in ("rx", "tx", "loss")} | {
                "level_in": att.levels.get("agent_in", 0), "level_out": att.levels.get("agent_out", 0)}
        if leg.call is not None and att.recorder is not None:
            b = self.w._aud(leg.call)
            try:
                if b is not None:
                    b.stopTransmit(att.recorder)
            except self.w.pj.Error:
                pass

    # ---------------------------------------------------------------- loop
    def timers(self, now: float) -> None:
        for leg in list(self.legs.values()):
            if leg.call is None and leg.logged_in and now >= leg.retry_at:
                self._dial(leg)
            elif leg.call is not None and not leg.up and leg.logged_in and now >= leg.ring_until:
                leg.ring_until = now + RING_S
                self.w._hangup_leg(leg.call)  # DISCONNECTED -> down, dialled again after the back-off

    def live(self) -> int:
        return sum(leg.call is not None for leg in self.legs.values())

    def hangup_all(self) -> None:
        for leg in list(self.legs.values()):
            leg.logged_in = False
            if leg.call is not None:
                self.w._hangup_leg(leg.call)

    def drop_all(self) -> None:
        for leg in list(self.legs.values()):
            leg.call = None
        self.legs.clear()


# ================================================================================================ supervisor
@dataclass
class NailedAgents:
    """The supervisor's view: who is logged in (to re-login after a worker restart) and whose leg is up."""

    logged_in: dict[int, str] = field(default_factory=dict)
    up: set[int] = field(default_factory=set)

    def login(self, agent_id: int, uri: str) -> AgentLogin:
        self.logged_in[agent_id] = uri
        return AgentLogin(agent_id=agent_id, uri=uri)

    def logout(self, agent_id: int) -> AgentLogout:
        self.logged_in.pop(agent_id, None)
        return AgentLogout(agent_id=agent_id)

    def on_event(self, ev: CallEvent) -> None:
        if ev.kind == EventKind.AGENT_LEG_UP and ev.agent_id is not None:
            self.up.add(ev.agent_id)
        elif ev.kind == EventKind.AGENT_LEG_DOWN and ev.agent_id is not None:
            self.up.discard(ev.agent_id)

    def worker_lost(self, worker: str) -> list[CallEvent]:
        """Every leg died with the worker: report them down (they are dialled again once it is back)."""
        down = [CallEvent(kind=EventKind.AGENT_LEG_DOWN, agent_id=a, leg="agent", worker=worker,
                          detail=f"worker {worker} died; calling again once it is restarted")
                for a in sorted(self.up)]
        self.up.clear()
        return down

    def relogin(self) -> list[AgentLogin]:
        return [AgentLogin(agent_id=a, uri=u) for a, u in sorted(self.logged_in.items())]


# ================================================================================================ campaign
class _Board(Protocol):
    """What AgentLegSync needs of dialer.agents.AgentBoard (structural: telephony does not import it)."""

    agents: dict[int, Any]

    def set_state(self, agent_id: int, new: str, at: Any, *, attempt_id: int | None = None,
                  force: bool = False) -> str: ...


class AgentLegSync:
    """Campaign-side glue: logged-in agents get a nailed leg; an agent whose leg is down is `unreachable`.

    An agent is only routed to while `ready`; in nailed mode `ready` also means "leg up", so a freshly
    logged-in agent waits in `unreachable` until the phone is answered, and a dropped leg moves an idle agent
    there at once (a busy one when their call or wrap-up ends).
    """

    IDLE = ("ready", "paused")

    def __init__(self, login: Callable[[int, str], None], logout: Callable[[int], None],
                 is_up: Callable[[int], bool], note: Callable[[str, str], None]) -> None:
        self.login, self.logout, self.is_up, self.note = login, logout, is_up, note
        self.sessions: dict[int, str] = {}  # agent id -> URI of the leg asked for

    def tick(self, board: _Board, now: Any) -> None:
        for a in list(board.agents.values()):
            if a.state == AgentState.LOGGED_OUT:
                if a.id in self.sessions:
                    del self.sessions[a.id]
                    self.logout(a.id)
                continue
            if self.sessions.get(a.id) != a.sip_uri:
                self.sessions[a.id] = a.sip_uri
                self.login(a.id, a.sip_uri)
            if a.state == AgentState.READY and not self.is_up(a.id):
                board.set_state(a.id, "unreachable", now, force=True)

    def on_event(self, ev: CallEvent, board: _Board, now: Any) -> None:
        a = board.agents.get(ev.agent_id) if ev.agent_id is not None else None
        if a is None:
            return
        if ev.kind == EventKind.AGENT_LEG_UP and a.state == AgentState.UNREACHABLE:
            board.set_state(a.id, "ready", now, force=True)
        elif ev.kind == EventKind.AGENT_LEG_DOWN and a.id in self.sessions:
            self.note("agent_unreachable", f"agent {a.login}: nailed leg down ({ev.detail})")
            if a.state in self.IDLE:
                board.set_state(a.id, "unreachable", now, force=True)

    def after_wrap(self, agent_id: int) -> str:
        """The state an agent goes to when wrap-up ends: ready only with the leg up."""
        return "ready" if self.is_up(agent_id) else "unreachable"

    @staticmethod
    def pacing_excluded() -> Iterable[str]:
        return ("logged_out", "unavailable", "unreachable", "refusing")

