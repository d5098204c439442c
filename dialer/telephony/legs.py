"""What a telephony worker holds per attempt (`Att`) and the core every leg kind uses (`WorkerCore`).

Why a module of its own: the worker's code is split by leg (issue 28) — the customer's leg
(`customer_leg.CustomerLeg`: placing, ringing, the answer check, the abandon), the agent's leg
(`agent_leg.AgentLeg`: placing, bridging, the recording notice, legs that die under a customer) and the
nailed-up agent session (`nailed.NailedLegs`) — while one `Worker` (`worker.py`) owns the endpoint, the
callbacks and the loop. They share this record of an attempt and the few actions every leg needs: report an
event, hang a leg up, end an attempt, reach a leg's audio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from dialer.privacy import mask_text
from dialer.telephony import pjinv
from dialer.telephony.events import CallEvent, EventKind
from dialer.telephony.protocol import CallState, Event, Report, TrunkSpec, WorkerSpec

if TYPE_CHECKING:
    from dialer.telephony.listen import Listeners
    from dialer.telephony.nailed import NailedLegs

PJ_ETOOMANY = 70010
BYE_WAIT_S = 4.0  # (issue 24) how long a hangup waits for the far end's answer to our BYE before it is reported


@dataclass
class Att:
    """Plain data about one attempt in this worker. Legs are referenced only while they are alive."""

    attempt_id: int
    trunk: str
    uri: str
    ring_deadline: float
    connect_limit: float
    info_wav: str | None
    record_path: str | None
    state: CallState = CallState.PLACING
    cust: Any = None
    agent: Any = None
    agent_id: int | None = None
    agent_confirmed: bool = False
    agent_silent: bool = False  # we cancelled the agent leg ourselves (abandon/hangup): no agent_failed
    agent_pending: tuple[int, str] | None = None  # waiting for a free slot
    provisional: bool = False  # any 1xx (a CANCEL can be sent)
    rang: bool = False  # a 1xx above 100 (the callee's side is alerting): ring timeout = no_answer, not congestion
    redirect_to: str = ""  # a 3xx we refused to follow
    retry_after_s: float | None = None  # Retry-After on a 503
    from_uri: str = ""
    rtp_seen: dict[str, tuple[int, int, float, float]] = field(default_factory=dict)  # leg -> rx, tx, changed at
    next_rtp_check: float = 0.0
    dialogs: set[str] = field(default_factory=set)  # legs whose confirmed dialog the supervisor knows
    challenges: int = 0
    await_media: bool = False  # CONFIRMED, but no usable audio (yet): not answered
    last_msg: str = ""
    rtp_detail: str = ""
    ringing_sent: bool = False
    answered_at: float = 0.0
    connect_deadline: float = 0.0
    ring_timed_out: bool = False
    dialer_cancel: bool = False
    hangup_by: str | None = None
    place_until: float = 0.0
    play_until: float = 0.0
    recorder: Any = None
    player: Any = None
    bridged: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)  # max conference levels seen while bridged/playing
    next_sample: float = 0.0
    ended_status: int | None = None
    amd_order: Any = None  # AmdOrder: listen before treating the answer as a person's
    amd: Any = None  # AmdSession while answering-machine detection runs on the customer leg
    sent_at: float = 0.0
    ringing_at: float = 0.0
    cause: str | None = None  # why the dialer ended the call, on "hangup" (machine, machine_message_left)
    nailed: bool = False  # bridged to the agent's nailed-up leg (dialer.telephony.nailed), not an own leg
    # (issue 25) an agent leg that dies under the customer hands them back (ConnectAgent.rescue_s / silence_s)
    rescue_s: float = 0.0
    silence_s: float = 0.0
    connected_at: float = 0.0  # monotonic time of the current agent's bridge
    agent_rx: tuple[int, float] = (-1, 0.0)  # the agent leg's RTP packets received, and when that last changed
    early: Any = None  # EarlySession: listening to early media (183 with SDP) for the network's announcement
    early_sent: bool = False  # the supervisor knows this INVITE (it CANCELs it if this process dies)
    identity: tuple[tuple[str, str], ...] = ()  # P-Asserted-/P-Preferred-Identity and Privacy headers to send
    # (issue 29) the campaign's spoken recording notice: played once when the customer is bridged to the agent
    notice_wav: str | None = None
    notice_player: Any = None
    notice_note: str = ""  # what happened to it, in the hangup's detail (the attempt's record proves it)
    # (issue 24) the dialog as the far end names it (Call-ID, our tag, its tag): CANCEL/BYE/ACK through pjsip's
    # INVITE session (dialer.telephony.pjinv) so pjsua keeps reporting what the far end answers
    sip_ids: tuple[str, str, str] | None = None
    cancel_sent: bool = False  # our ring-timeout CANCEL went through the session: a crossing 200 is an answer
    bye_sent_at: float = 0.0  # our BYE went through the session: its final response ends the leg
    bye_status: tuple[int, str] | None = None  # what the far end answered to our BYE
    codec_acked: bool = False  # a 200 with no codec we offered, ACKed before pjsua's BYE


class WorkerCore:
    """The worker's state and the actions every leg kind calls. `Worker` (worker.py) sets the state up in its
    constructor and `start`; the leg mixins only use it."""

    pj: Any
    ep: Any
    spec: WorkerSpec
    conn: Connection
    name: str
    atts: dict[int, Att]
    zombies: dict[int, Att]
    todo: list[Any]
    stop: bool
    accounts: dict[str, Any]
    trunk_specs: dict[str, TrunkSpec]
    host: str
    local_acc: Any
    lingering: dict[int, Any]
    offered: list[str]
    nailed: NailedLegs
    listen: Listeners
    commands: dict[type[Any], Callable[[Any], None]]
    actions: dict[str, Callable[[Att], None]]

    def new_leg(self, acc: Any, att: Att, role: str) -> Any:
        """A pjsua2 call object of ACC for ATT's ROLE leg, whose callbacks reach this worker (worker.py)."""
        raise NotImplementedError

    def send(self, msg: Report) -> None:
        try:
            self.conn.send(msg)
        except (OSError, EOFError, BrokenPipeError):
            self.stop = True

    def emit(self, kind: str, att: Att | None = None, **kw: Any) -> None:
        ev = CallEvent(kind=EventKind(kind), attempt_id=att.attempt_id if att else kw.pop("attempt_id", None),
                       worker=self.name, trunk=att.trunk if att else kw.pop("trunk", None), **kw)
        ev.detail = mask_text(ev.detail)
        self.send(Event(ev))

    def _hangup_leg(self, leg: Any, code: int = 0) -> None:
        att = getattr(leg, "att", None)
        if not code and getattr(leg, "role", "") == "customer" and isinstance(att, Att) and att.cust is leg \
                and att.sip_ids is not None and att.state in (CallState.ANSWERED, CallState.CONNECTED,
                                                               CallState.ABANDONING, CallState.ENDING):
            # (issue 24) our BYE through the INVITE session: its final response (a 481, say) is reported
            if att.bye_sent_at:
                return  # already sent: its answer, or BYE_WAIT_S, ends the leg
            if pjinv.bye(self.pj, att.sip_ids):
                att.bye_sent_at = time.monotonic()
                return
        prm = self.pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        try:
            leg.hangup(prm)
        except self.pj.Error:
            pass

    def _end(self, att: Att, by: str) -> None:
        """Hang up both legs of an attempt (the dialer's decision, or the release of the other side)."""
        if att.state is CallState.PLACING:
            del self.atts[att.attempt_id]
            self.emit("failed", att, outcome="cancelled", detail="hung up before the INVITE left")
            return
        if att.state is CallState.CALLING:
            att.dialer_cancel = att.dialer_cancel or by == "dialer"
        elif att.hangup_by is None:
            att.hangup_by = by
        if att.state is not CallState.CALLING:
            att.state = CallState.ENDING
        if att.agent is not None:
            if not att.agent_confirmed:
                att.agent_silent = True
            self._hangup_leg(att.agent)
        att.agent_pending = None
        if att.cust is not None:
            self._hangup_leg(att.cust)

    def _aud(self, leg: Any) -> Any:
        try:
            return leg.getAudioMedia(-1)
        except self.pj.Error:
            return None

    def _media_ok(self, leg: Any) -> bool:
        pj = self.pj
        try:
            ci = leg.getInfo()  # kept referenced while its media vector is read (SWIG)
            return any(m.type == pj.PJMEDIA_TYPE_AUDIO and m.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
                for m in ci.media)
        except pj.Error:
            return False
