"""The agent's leg of a worker (agents on their own phones, called per customer): place it with the
auto-answer hints, bridge it to the answered customer, play the campaign's recording notice, and hand the
customer back when the agent's phone answers and drops or goes silent (issue 25).

A mixin of `Worker` (worker.py) over `legs.WorkerCore`; nailed-up agent sessions are `nailed.NailedLegs`.
"""

from __future__ import annotations

import time
from typing import Any

from dialer.sounds import wav_seconds
from dialer.telephony.legs import PJ_ETOOMANY, Att, WorkerCore
from dialer.telephony.protocol import AgentTone, CallState, ConnectAgent

AGENT_HEADERS = (
    ("Call-Info", "<sip:{host}>;answer-after=0"),
    ("Alert-Info", "<http://localhost>;info=alert-autoanswer"),
)


def agent_call_params(pj: Any, host: str) -> Any:
    """The call parameters of a leg to a person's own phone (an agent, a supervisor joining): audio only, with
    the auto-answer hints softphones and PBXs honour."""
    prm = pj.CallOpParam(True)
    prm.opt.audioCount = 1
    prm.opt.videoCount = 0
    for name, value in AGENT_HEADERS:
        h = pj.SipHeader()
        h.hName = name
        h.hValue = value.format(host=host)
        prm.txOption.headers.append(h)
    return prm


class AgentLeg(WorkerCore):
    """Why: one place for the agent's side of a call, from its INVITE to a customer handed back."""

    def _connect_agent(self, msg: ConnectAgent) -> None:
        cur = self.atts.get(msg.attempt_id)
        if cur is None or cur.state is not CallState.ANSWERED or cur.cust is None:
            return  # customer gone or already abandoning: the campaign sees that from other events
        cur.rescue_s, cur.silence_s = msg.rescue_s, msg.silence_s
        if self.nailed.has(msg.agent_id):
            self.nailed.connect(cur, msg.agent_id)
            return
        if cur.agent is not None:
            # the campaign moved on to another agent while this leg is still pending: cancel it quietly
            self._hangup_leg(cur.agent)
            cur.agent_silent = True
        cur.agent_pending = (msg.agent_id, msg.uri)
        self._place_agent(cur)

    def _agent_tone(self, msg: AgentTone) -> None:
        """(issue 25) RFC 2833 tones to the call's agent leg (a keyed callback moved); a leg gone is no error."""
        att = self.atts.get(msg.attempt_id)
        if att is None:
            return
        leg = self.nailed.call_of(att) if att.nailed else (att.agent if att.agent_confirmed else None)
        if leg is None:
            return
        try:
            leg.dialDtmf(msg.digits)
        except self.pj.Error:
            pass  # the leg is ending: the booked time stands, the tone was a courtesy

    def _place_agent(self, att: Att) -> None:
        if att.agent_pending is None or att.agent is not None:
            return
        pj = self.pj
        agent_id, uri = att.agent_pending
        leg = self.new_leg(self.local_acc, att, "agent")
        prm = agent_call_params(pj, self.host)
        try:
            leg.makeCall(uri, prm)
        except pj.Error as exc:
            if exc.status == PJ_ETOOMANY:
                return  # retried by the loop until the connect limit
            att.agent_pending = None
            self.emit("agent_failed", att, agent_id=agent_id, leg="agent", detail=f"makeCall: {exc.reason}")
            return
        att.agent_pending = None
        att.agent = leg
        att.agent_id = agent_id
        att.agent_confirmed = False
        att.agent_silent = False

    def _bridge(self, att: Att) -> None:
        if att.nailed:
            return self.nailed.bridge(att)
        if att.bridged or att.state is not CallState.CONNECTED or att.cust is None or att.agent is None:
            return
        a, b = self._aud(att.cust), self._aud(att.agent)
        if a is None or b is None:
            return  # media not ready yet: on_media will ask again
        try:
            a.startTransmit(b)
            b.startTransmit(a)
            if att.recorder is not None:
                b.startTransmit(att.recorder)
            att.bridged = True
        except self.pj.Error:
            pass
        if att.bridged:
            self.play_notice(att, a, b)

    def play_notice(self, att: Att, cust: Any, agent: Any) -> None:
        """(issue 29) The campaign's spoken recording notice, once per call, right after the bridge (on-connect
        and nailed legs alike): to the customer, into the recording, and to the agent (who then knows not to
        talk over it). The agent is already connected: the notice never delays the bridge, so the connect
        limit and the abandon rule are untouched. A notice that cannot be played is said in the detail."""
        if not att.notice_wav or att.notice_player is not None or att.notice_note:
            return
        secs = wav_seconds(att.notice_wav)
        if not secs:
            att.notice_note = f"RECORDING NOTICE NOT PLAYED: {att.notice_wav} is missing or not a WAV"
            return
        try:
            p = self.pj.AudioMediaPlayer()
            p.createPlayer(att.notice_wav, self.pj.PJMEDIA_FILE_NO_LOOP)
            p.startTransmit(cust)
            p.startTransmit(agent)
            if att.recorder is not None:
                p.startTransmit(att.recorder)
            att.notice_player = p
            after = time.monotonic() - att.answered_at if att.answered_at else 0.0
            att.notice_note = f"recording notice played ({secs:.1f} s, from {after:.1f} s after the answer)"
            att.stats["notice"] = {"seconds": round(secs, 2), "after_answer_s": round(after, 3)}
        except self.pj.Error as exc:
            att.notice_note = f"RECORDING NOTICE NOT PLAYED: {exc.reason}"

    def _rescuable(self, att: Att) -> bool:
        """The agent's leg ended this soon after the bridge: a phone that answered and dropped, not a call."""
        return att.rescue_s > 0 and time.monotonic() - att.connected_at <= att.rescue_s

    def _agent_dropped(self, att: Att) -> None:
        """A nailed leg ended under its customer: at once after the bridge = hand the customer back; later = the
        agent ended the call (hanging up the phone is how a nailed agent ends one)."""
        if att.state is CallState.CONNECTED and att.cust is not None and self._rescuable(att):
            self._hand_back(att, f"the agent's leg dropped {time.monotonic() - att.connected_at:.1f} s after "
                                 "the bridge")
        else:
            self._end(att, "agent")

    def _hand_back(self, att: Att, why: str) -> None:
        """The customer stays up, unbridged, with a fresh connect limit: the campaign routes them to another
        agent (or the limit runs out and they hear the message, as any answered call nobody took)."""
        agent_id = att.agent_id
        if att.nailed:
            self.nailed.release(att)  # the stretch's RTP counters; the leg is no longer this customer's
        att.nailed = att.agent_confirmed = att.bridged = False
        att.state = CallState.ANSWERED
        att.agent_id = None
        att.agent_rx = (-1, 0.0)
        att.rtp_seen.pop("agent", None)
        att.connect_deadline = time.monotonic() + att.connect_limit
        self.emit("agent_lost", att, agent_id=agent_id, leg="agent", detail=why)

    def _check_agent_silent(self, att: Att, now: float) -> None:
        """No RTP from a bridged agent for silence_s (a dead PBX or NAT binding sends no BYE): the customer would
        hear dead air. Hang that leg up (a nailed one is called again after its back-off) and hand them back."""
        if att.silence_s <= 0 or att.state is not CallState.CONNECTED or att.cust is None or not att.bridged:
            return
        leg = self.nailed.call_of(att) if att.nailed else att.agent
        if leg is None:
            return
        try:
            rx = int(leg.getStreamStat(0).rtcp.rxStat.pkt)
        except self.pj.Error:
            return
        seen, since = att.agent_rx
        if rx != seen:
            att.agent_rx = (rx, now)
            return
        if now - since < att.silence_s:
            return
        if not att.nailed:
            att.agent_silent = True  # its DISCONNECTED reports nothing more
        self._hand_back(att, f"no RTP from the agent for {now - since:.1f} s while bridged (no BYE)")
        self._hangup_leg(leg)
