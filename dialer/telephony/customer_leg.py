"""The customer's leg of a worker: place the INVITE with the campaign's identity, follow its ringing and early
media, check every answer (announcement, answering machine) before an agent hears it, and end it truthfully
(the outcome the network gave, or the abandon with its message when no agent came in time).

A mixin of `Worker` (worker.py) over `legs.WorkerCore`: the method bodies use the worker's state as before
the split (issue 28); the identity helpers (From, P-Asserted-Identity) live here with the leg that sends them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from dialer.amd.announce import AnnounceKind
from dialer.sounds import wav_seconds
from dialer.telephony import pjinv, rawsip
from dialer.telephony.amdtap import AmdOrder, AmdSession, EarlySession, ring_seconds
from dialer.telephony.events import outcome_for_status
from dialer.telephony.legs import PJ_ETOOMANY, Att, WorkerCore
from dialer.telephony.protocol import CallState, EarlyDialog, Originate, TrunkSpec


class CustomerLeg(WorkerCore):
    """Why: one place for everything the customer's leg does, from the INVITE to its outcome."""

    def _originate(self, msg: Originate) -> None:
        now = time.monotonic()
        att = Att(attempt_id=msg.attempt_id, trunk=msg.trunk, uri=msg.uri,
                  ring_deadline=now + msg.ring_timeout_s, connect_limit=msg.connect_limit_s,
                  info_wav=msg.info_wav, record_path=msg.record_path, place_until=now + 5.0, amd_order=msg.amd,
                  sent_at=now, notice_wav=msg.notice_wav)
        if msg.trunk in self.trunk_specs:
            # (issue 24) the number the customer sees: From (with the display name), the identity header, Privacy
            att.from_uri, att.identity = presented_identity(self.trunk_specs[msg.trunk], self.host, msg.from_user,
                                                            msg.display_name)
        self.atts[att.attempt_id] = att
        self._place(att)

    def _place(self, att: Att) -> None:
        pj = self.pj
        leg = self.new_leg(self.accounts[att.trunk], att, "customer")
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        if att.from_uri:
            prm.txOption.localUri = att.from_uri  # the campaign's caller ID at the carrier's domain
        for name, value in att.identity:
            h = pj.SipHeader()
            h.hName = name
            h.hValue = value
            prm.txOption.headers.append(h)
        try:
            leg.makeCall(att.uri, prm)
        except pj.Error as exc:
            if exc.status == PJ_ETOOMANY and time.monotonic() < att.place_until:
                return  # slot still held by a finishing transaction: retry from the loop
            del self.atts[att.attempt_id]
            outcome = "invalid" if "uri" in str(exc.reason).lower() else "failed"
            self.emit("failed", att, outcome=outcome, detail=f"makeCall: {exc.reason}")
            return
        att.cust = leg
        att.state = CallState.CALLING
        self.emit("trying", att)

    def _check_answer_codec(self, leg: Any, att: Att) -> None:
        """(issue 24) A 200 whose SDP has no codec we offered: pjsua sends its BYE before its ACK (RFC 3261 wants
        the ACK first). ACK it here, before pjsua sees the SDP; the call then ends as failed_codec."""
        if att.codec_acked or not att.last_msg or not att.last_msg.startswith("SIP/2.0 2") or self._media_ok(leg):
            return
        if pjinv.sdp_has_codec(att.last_msg, self.offered) is not False:
            return
        att.await_media = True
        ids = pjinv.dialog_ids(att.last_msg)
        cseq = rawsip.cseq_number(rawsip.parse(att.last_msg).get("cseq"))
        if ids is not None and cseq and pjinv.ack(self.pj, ids, cseq):
            att.codec_acked = True

    def _unanswered(self, att: Att, status: int, reason: str) -> None:
        self.atts.pop(att.attempt_id, None)
        if status == 503 and att.last_msg:
            att.retry_after_s = rawsip.retry_after_s(rawsip.parse(att.last_msg))
        early = att.early.kind if att.early is not None else None
        if att.early is not None:
            att.early.close()
            att.early = None
        if att.await_media:
            outcome, detail = "failed_codec", f"200 OK without a codec we offered (then {status} {reason})"
        elif status == 433 or (status == 403 and early is not None):
            outcome, detail = "anonymous_rejected", f"{status} {reason}: the callee refuses calls without caller ID" \
                + (" (after an announcement in early media)" if early is not None else "")
        elif early is not None and status not in (404, 410, 484, 604, 486, 600) and not 300 <= status < 400 \
                and status not in (401, 407) and not (att.dialer_cancel and not att.ring_timed_out):
            outcome = "invalid" if early is AnnounceKind.SIT else "unreachable"
            detail = f"the network announced ({early}) in early media, then " + (
                "nothing until the ring timeout" if att.ring_timed_out else f"{status} {reason}")
        elif att.ring_timed_out and not att.provisional:
            outcome, detail = "congestion", "no response from the trunk before the ring timeout"
        elif att.ring_timed_out and not att.rang:
            outcome, detail = "congestion", "100 Trying, then nothing until the ring timeout (no ringing)"
        elif 300 <= status < 400:
            outcome, detail = "redirected", f"{status} {reason}: not followed" + (
                f" (to {att.redirect_to})" if att.redirect_to else "")
        elif status in (401, 407):
            outcome, detail = "trunk_error", f"{status} {reason}: the trunk refused our credentials"
        else:
            outcome = outcome_for_status(status, ring_timeout=att.ring_timed_out, cancelled=att.dialer_cancel)
            detail = f"{status} {reason}"
        self.emit("failed", att, outcome=outcome, sip_status=status or None, detail=detail,
                  retry_after_s=att.retry_after_s if status == 503 else None)

    def _report_early(self, att: Att, m: rawsip.SipMessage) -> None:
        """The ringing INVITE as the far end knows it (from its provisional answer): a dead worker's CANCEL."""
        tspec = self.trunk_specs.get(att.trunk)
        if tspec is None or tspec.transport != "udp" or not m.get("call-id"):
            return
        to = re.sub(r";\s*tag=[^;>\s]*", "", m.get("to") or "")
        # our Via as we sent it: the far end may have added received= / rport=N to the copy it returned
        via = re.sub(r";\s*rport=\d+", ";rport", re.sub(r";\s*received=[^;]*", "", (m.all("via") or [""])[0]))
        hop = tspec.outbound_proxy or tspec.proxy
        att.early_sent = True
        self.send(EarlyDialog(rawsip.Early(
            attempt_id=att.attempt_id, request_uri=att.uri, via=via, from_value=m.get("from") or "",
            to_value=to, call_id=m.get("call-id") or "", cseq=rawsip.cseq_number(m.get("cseq")),
            dest=rawsip.host_port(rawsip.uri_of(hop)),
            route=(f"<{_loose(tspec.outbound_proxy)}>",) if tspec.outbound_proxy else ())))

    def _auth_failed(self, att: Att) -> None:
        """Report now; the leg may wait for its INVITE transaction to time out (no CANCEL before a 1xx)."""
        if att.state is not CallState.CALLING or att.cust is None:
            return
        del self.atts[att.attempt_id]
        att.state = CallState.ZOMBIE
        self.zombies[att.attempt_id] = att
        self.emit("failed", att, outcome="trunk_error", sip_status=401,
                  detail=f"challenged {att.challenges} times: the trunk refused our credentials")
        self._hangup_leg(att.cust)

    def _answer(self, att: Att) -> None:
        att.await_media = False
        att.state = CallState.ANSWERED
        att.answered_at = time.monotonic()
        early = att.early.kind if att.early is not None else None
        if att.early is not None:
            att.early.close()
            att.early = None
        # (issue 24) every 200 is checked before an agent hears it: a person, a machine (AMD asked) or the
        # network's announcement ("fake answer"). "answered" waits for the verdict; the connect limit runs from it.
        att.amd = AmdSession(att.amd_order or AmdOrder(), ring_seconds(att.answered_at, att.ringing_at, att.sent_at),
                             att.answered_at, amd_wanted=att.amd_order is not None, early=early)
        att.connect_deadline = float("inf")
        self.todo.append(("amd_tap", att.attempt_id))
        if att.record_path:
            self.todo.append(("record", att.attempt_id))

    def _early_tap(self, att: Att) -> None:
        if att.state is not CallState.CALLING or att.cust is None:
            return
        a = self._aud(att.cust)
        if a is None:
            return
        if att.early is None:
            att.early = EarlySession()
        att.early.attach(self.pj, a)

    def _amd_tap(self, att: Att) -> None:
        if att.amd is not None and att.cust is not None:
            a = self._aud(att.cust)
            if a is not None:
                att.amd.attach(self.pj, a)

    def _amd_step(self, att: Att, now: float) -> bool:
        """AMD owns an answered call until its verdict; a person's (or unsure) is then announced as answered."""
        s = att.amd
        if s.result is not None and s.phase == "done":
            return False
        if s.step(self, att, now):
            return True
        att.connect_deadline = now + att.connect_limit  # the connect limit runs from the verdict
        # without AMD the event still says how long the announcement check listened, so the attempt's
        # answered_at stays the moment the far end picked up (ring times, the pacer's ring estimates)
        checked = {"decided_after_s": round(s.result.decided_after_s, 3)} if s.result is not None else None
        crossed = "the 200 OK crossed our ring-timeout CANCEL (answered)" if att.cancel_sent else ""
        self.emit("answered", att, sip_status=200, amd=s.summary() if s.amd_wanted else checked, detail=crossed)
        return False

    def _abandon(self, att: Att, now: float) -> None:
        if att.agent is not None and not att.agent_confirmed:
            att.agent_silent = True
            self.emit("agent_failed", att, agent_id=att.agent_id, leg="agent",
                      detail=f"agent did not answer within the {att.connect_limit:g} s connect limit")
            self._hangup_leg(att.agent)
        att.agent_pending = None
        att.state = CallState.ABANDONING
        att.hangup_by = "dialer"
        secs = wav_seconds(att.info_wav) if att.info_wav else 0.0
        note = "" if secs or not att.info_wav else f"; MESSAGE NOT PLAYED: {att.info_wav} is missing or not a WAV"
        self.emit("abandoned", att, by="dialer", detail=f"no agent within {att.connect_limit:g} s{note}")
        att.play_until = now + (secs + 0.3 if secs else 0.0)
        if secs and att.cust is not None:
            a = self._aud(att.cust)
            try:
                p = self.pj.AudioMediaPlayer()
                p.createPlayer(att.info_wav, self.pj.PJMEDIA_FILE_NO_LOOP)
                if a is not None:
                    p.startTransmit(a)
                if att.recorder is not None:
                    p.startTransmit(att.recorder)
                att.player = p
            except self.pj.Error:
                att.play_until = now


def _loose(uri: str) -> str:
    """An outbound proxy is a loose router (RFC 3261 16.12): pjsip wants ';lr' on it."""
    return uri if ";lr" in uri else uri + ";lr"


def trunk_from_uri(t: TrunkSpec, host: str, from_user: str = "") -> str:
    """The From URI presented to the carrier: the campaign's (or the trunk's) number at the carrier's domain."""
    user = from_user or t.from_user or t.caller_id or t.username or "dialer"
    if user.startswith(("sip:", "sips:", "<", '"')):
        return user
    return f"sip:{user}@{t.from_domain or host}"


def presented_identity(t: TrunkSpec, host: str, from_user: str = "",
                       display_name: str = "") -> tuple[str, tuple[tuple[str, str], ...]]:
    """From (name-addr with the display name) and the identity headers for one call (issue 24).

    Japanese customers refuse or ignore 非通知 calls: the number goes in From, in P-Asserted-Identity (trusted
    trunks, RFC 3325) or P-Preferred-Identity as the trunk says, with `Privacy: none` (RFC 3323).
    """
    uri = trunk_from_uri(t, host, from_user)
    name = (display_name or t.display_name).replace('"', "").replace("\\", "")
    addr = uri if uri.startswith(("<", '"')) else f"<{uri}>"
    shown = f'"{name}" {addr}' if name else addr
    headers: list[tuple[str, str]] = []
    number = from_user or t.from_user or t.caller_id
    if number and t.identity_header in ("pai", "ppi"):
        hdr = "P-Asserted-Identity" if t.identity_header == "pai" else "P-Preferred-Identity"
        headers += [(hdr, shown), ("Privacy", "none")]
    return (shown if name else uri), tuple(headers)
