"""One telephony worker process: a pjsua2 endpoint that places customer and agent legs and bridges them.

Why a process per endpoint: the wheel allows 4 calls per process (PJSUA_MAX_CALLS), and conference-bridge
audio only flows between calls of one process, so the worker that holds an answered customer also places
that customer's agent leg. Everything runs on this process's main thread (threadCnt=0, mainThreadOnly):
`libHandleEvents` fires the callbacks, which only record facts; actions that touch another call are
deferred to the loop body (never done inside a SWIG callback).

Commands arrive and events leave over one multiprocessing Connection (a pipe per worker, so a killed
worker breaks only its own pipe). Messages are the dataclasses of `protocol` (commands in, reports out),
dispatched by type through a table.

The code is split by leg (issue 28): `customer_leg.CustomerLeg` and `agent_leg.AgentLeg` (mixins over
`legs.WorkerCore`, which also holds the per-attempt record `Att`), the nailed-up agent sessions in
`nailed.NailedLegs`, supervisors' listen legs in `listen.Listeners`. This module keeps the endpoint, the
pjsua2 callbacks (which only record facts), the deferred actions, the timers and the loop.
"""

from __future__ import annotations

import ctypes
import faulthandler
import gc
import os
import re
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dialer.amd.announce import AnnounceKind
from dialer.amd.detector import AmdVerdict
from dialer.domain.vocabulary import CallOutcome
from dialer.privacy import mask_text
from dialer.telephony import pjinv, rawsip
from dialer.telephony.agent_leg import AGENT_HEADERS, AgentLeg, agent_call_params
from dialer.telephony.customer_leg import CustomerLeg, _loose, presented_identity, trunk_from_uri
from dialer.telephony.legs import BYE_WAIT_S, PJ_ETOOMANY, Att
from dialer.telephony.listen import Listeners
from dialer.telephony.nailed import NailedLegs
from dialer.telephony.protocol import (
    AgentLogin,
    AgentLogout,
    AgentTone,
    CallState,
    Command,
    ConnectAgent,
    Dialog,
    DialogGone,
    Fatal,
    Hangup,
    Listen,
    Originate,
    Ready,
    Register,
    RegState,
    Slots,
    Stop,
    Stopped,
    TrunkSpec,
    WorkerError,
    WorkerSpec,
)

_FN: dict[str, Any] = {}


def _pjsua_fn(pj: Any, name: str) -> Any:
    """A C function of the linked pjsua (not wrapped by SWIG), looked up once."""
    fn = _FN.get(name)
    if fn is None:
        fn = getattr(ctypes.CDLL(pj._pjsua2.__file__), name)
        fn.restype = ctypes.c_uint
        _FN[name] = fn
    return fn


def probe_capacity(pj: Any) -> int:
    """The call limit the linked pjsua was built with (it clamps uaConfig.maxCalls silently)."""
    return int(_pjsua_fn(pj, "pjsua_call_get_max_count")())


def _call_count(pj: Any) -> int:
    return int(_pjsua_fn(pj, "pjsua_call_get_count")())


RECORDING_CLOSE_S = 3.0  # how long a hangup waits for pjmedia to close its recording (normally one clock tick)


def wav_closed(path: str) -> bool:
    """Whether pjmedia has finished the WAV at PATH: its RIFF size is written when the recorder's port is freed
    (0 until then; the header itself may not be on disk yet). A file that cannot be opened, or is not a RIFF
    file, has nothing to wait for (the digit check then says what is wrong with it)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return True
    if len(head) < 8:
        return False
    return head[:4] != b"RIFF" or int.from_bytes(head[4:8], "little") > 0


def _mute_dtmf(path: str | None) -> str:
    """(issue 29) Silence in-band DTMF (card numbers) in the finished recording before anyone is told of it;
    what was done, for the hangup's detail (a failure is said loudly: the file may hold digits)."""
    if not path:
        return ""
    from dialer.telephony.dtmfmute import mute_file

    try:
        done = mute_file(path)
    except Exception as exc:  # noqa: BLE001 - the call's end must still be reported
        return f"RECORDING NOT CHECKED FOR KEYED DIGITS: {exc}"
    return f"keyed digits silenced in the recording ({len(done.spans)}, {done.seconds:.1f} s)" if done.spans else ""


class Worker(CustomerLeg, AgentLeg):
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.conn = conn
        self.name = spec.name
        self.atts: dict[int, Att] = {}
        self.zombies: dict[int, Att] = {}  # already reported, leg still finishing its transaction
        self.todo: list[Any] = []
        self.stop = False
        self.last_slots: tuple[int, int] = (-1, -1)
        self.accounts: dict[str, Any] = {}
        self.trunk_specs: dict[str, TrunkSpec] = {}
        self.host = ""
        self.log_writer: Any = None
        self.local_acc: Any = None
        self.closing: dict[int, tuple[Att, list[str], dict[str, Any], float]] = {}  # hangups awaiting their WAV
        self.lingering: dict[int, Any] = {}  # customer legs whose BYE went unanswered (kept until DISCONNECTED)
        self.offered: list[str] = []
        self.commands: dict[type[Any], Callable[[Any], None]] = {
            Originate: self._originate, ConnectAgent: self._connect_agent, Hangup: self._hangup_cmd,
            Register: self._register, Stop: self._stop_cmd,
        }
        self.nailed = NailedLegs(self)
        self.commands.update({AgentLogin: self.nailed.login, AgentLogout: self.nailed.logout})
        self.commands[AgentTone] = self._agent_tone
        self.listen = Listeners(self)  # (issue 29) supervisors' phones on live calls
        self.commands[Listen] = self.listen.join
        self.actions: dict[str, Callable[[Att], None]] = {
            "bridge": self._bridge, "record": self._record, "release": self._release, "amd_tap": self._amd_tap,
            "early_tap": self._early_tap,
            "auth_failed": self._auth_failed,
            "agent_dropped": self._agent_dropped,
        }

    # ------------------------------------------------------------------ legs
    def new_leg(self, acc: Any, att: Att, role: str) -> Any:
        return _make_call(self.pj, self, acc, att, role)

    # ------------------------------------------------------------------ endpoint
    def start(self) -> None:
        import pjsua2 as pj

        self.pj = pj
        sp = self.spec
        ep = pj.Endpoint()
        self.ep = ep
        ep.libCreate()
        epc = pj.EpConfig()
        epc.uaConfig.threadCnt = 0
        epc.uaConfig.mainThreadOnly = True
        epc.uaConfig.maxCalls = sp.max_calls
        epc.uaConfig.userAgent = "tsunagu"
        epc.logConfig.level = sp.log_level
        epc.logConfig.consoleLevel = 0
        if sp.log_file:
            # our writer, not pjlib's file: numbers masked, credentials never written, file mode 0600
            self.log_writer = _make_log_writer(pj, sp.log_file)
            epc.logConfig.writer = self.log_writer
            epc.logConfig.consoleLevel = sp.log_level
        epc.medConfig.clockRate = sp.clock_rate
        epc.medConfig.sndClockRate = sp.clock_rate
        epc.medConfig.ecTailLen = 0
        epc.medConfig.noVad = True  # keep RTP flowing: silence suppression hides a broken bridge from peers
        ep.libInit(epc)
        self.capacity = probe_capacity(pj)
        rtp_range = max(sp.rtp_range, 2 * self.capacity + 16)
        tc = pj.TransportConfig()
        tc.port = sp.sip_port
        tc.boundAddress = sp.bind
        tc.publicAddress = sp.public
        self.udp_tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        if any(t.transport == "tcp" for t in sp.trunks):
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, tc)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.offered = [c for t in sp.trunks for c in t.codecs] or ["PCMU/8000", "PCMA/8000"]
        self._codecs(self.offered)

        def media_cfg(acfg: Any) -> None:
            acfg.mediaConfig.transportConfig.port = sp.rtp_port
            acfg.mediaConfig.transportConfig.portRange = rtp_range
            acfg.mediaConfig.transportConfig.boundAddress = sp.bind
            acfg.mediaConfig.transportConfig.publicAddress = sp.public
            acfg.mediaConfig.lockCodecEnabled = False

        host = f"{sp.public}:{sp.sip_port}"
        self.host = host
        acfg = pj.AccountConfig()
        al = sp.agent_leg
        acfg.idUri = f"sip:{al.username or 'dialer'}@{host}"
        media_cfg(acfg)
        if al.username:  # agents behind a PBX that challenges (407) the dialer's INVITEs
            acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", al.username, 0, al.password))
        if al.outbound_proxy:
            acfg.sipConfig.proxies.append(_loose(al.outbound_proxy))
        self.local_acc = _make_account(pj, self, "")
        self.local_acc.create(acfg, True)
        self.trunk_specs = {t.name: t for t in sp.trunks}
        for t in sp.trunks:
            acfg = pj.AccountConfig()
            acfg.idUri = trunk_from_uri(t, host)
            if t.transport == "tcp" and acfg.idUri.startswith("sip:") and "transport=" not in acfg.idUri:
                # (issue 24) pjsua picks the Via address from the account's URI: TCP names our TCP listener
                acfg.idUri += ";transport=tcp"
            media_cfg(acfg)
            if t.username:
                cred = pj.AuthCredInfo("digest", "*", t.auth_username or t.username, 0, t.password)
                acfg.sipConfig.authCreds.append(cred)
            if t.outbound_proxy:
                acfg.sipConfig.proxies.append(_loose(t.outbound_proxy))
            # session timers offered on every call: a carrier tears down what a dead process cannot
            acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
            acfg.callConfig.timerSessExpiresSec = max(90, t.session_expires_s)
            acfg.callConfig.timerMinSESec = 90
            # (issue 24) on TCP, Contact names our listener (the configured SIP port), not the connection's
            # ephemeral source port (pjsua's default)
            acfg.natConfig.contactUseSrcPort = False
            if t.registration:
                acfg.regConfig.registrarUri = t.registrar or t.proxy
                acfg.regConfig.registerOnAdd = t.register_here  # one binding per host, not one per worker
                acfg.regConfig.retryIntervalSec = int(sp.trunk_retry_s)
            else:
                acfg.regConfig.registerOnAdd = False
            acc = _make_account(pj, self, t.name)
            acc.create(acfg)
            self.accounts[t.name] = acc
        self.send(Ready(capacity=self.capacity, rtp_range=rtp_range, pid=os.getpid()))

    def _codecs(self, wanted: list[str]) -> None:
        """Only the trunks' codecs are offered, in their order (G.711 at 8 kHz by default)."""
        ep = self.ep
        for ci in ep.codecEnum2():
            cid = ci.codecId
            prio = 0
            for rank, w in enumerate(wanted):
                if cid.lower().startswith(w.lower()):
                    prio = max(prio, 250 - rank)
            try:
                ep.codecSetPriority(cid, prio)
            except self.pj.Error:
                pass

    # ------------------------------------------------------------------ commands
    def handle(self, msg: Command) -> None:
        self.commands[type(msg)](msg)


    def _hangup_cmd(self, msg: Hangup) -> None:
        cur = self.atts.get(msg.attempt_id)
        if cur is not None:
            self._end(cur, "dialer")

    def _register(self, msg: Register) -> None:
        acc = self.accounts.get(msg.trunk)
        if acc is not None:
            try:
                acc.setRegistration(True)
            except self.pj.Error as exc:
                self.send(RegState(trunk=msg.trunk, ok=False, code=int(exc.status),
                                   reason=mask_text(str(exc.reason)), expiration=0))

    def _stop_cmd(self, msg: Stop) -> None:
        self.stop = True


    # ------------------------------------------------------------------ callbacks (record facts only)
    def on_state(self, leg: Any, att: Att, role: str) -> None:
        if role == "nailed":
            return self.nailed.on_state(leg, att)  # type: ignore[arg-type]
        pj = self.pj
        try:
            ci = leg.getInfo()
        except pj.Error:
            return
        st = ci.state
        if st == pj.PJSIP_INV_STATE_DISCONNECTED and role in att.dialogs:
            att.dialogs.discard(role)
            self.send(DialogGone(attempt_id=att.attempt_id, leg=role))
        if role == "customer" and st == pj.PJSIP_INV_STATE_DISCONNECTED and att.attempt_id in self.lingering:
            self.lingering.pop(att.attempt_id, None)  # gotcha 1: its last reference goes here
            return
        if role == "customer":
            if st == pj.PJSIP_INV_STATE_CONNECTING and att.state is CallState.CALLING:
                self._check_answer_codec(leg, att)
            if st == pj.PJSIP_INV_STATE_EARLY and not att.ringing_sent:
                att.ringing_sent = att.provisional = att.rang = True
                att.ringing_at = time.monotonic()
                self.emit("ringing", att, sip_status=ci.lastStatusCode)
            elif st == pj.PJSIP_INV_STATE_CONFIRMED and att.state is CallState.CALLING:
                if self._media_ok(leg):
                    self._answer(att)
                else:  # (issue 13) a 200 whose SDP has no codec we accept is not an answer
                    att.await_media = True
            elif st == pj.PJSIP_INV_STATE_DISCONNECTED and att.state is CallState.ZOMBIE:
                att.cust = None
                self.zombies.pop(att.attempt_id, None)
            elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
                att.cust = None  # gotcha 1: no reference may outlive DISCONNECTED
                att.ended_status = ci.lastStatusCode
                if att.state is CallState.CALLING:
                    self._unanswered(att, ci.lastStatusCode, ci.lastReason)
                else:
                    if att.hangup_by is None:
                        att.hangup_by = "customer"
                    att.state = CallState.ENDING
                    self.todo.append(("release", att.attempt_id))
        else:
            if st == pj.PJSIP_INV_STATE_CONFIRMED:
                att.agent_confirmed = True
                if att.state is CallState.ANSWERED and att.cust is not None:
                    att.state = CallState.CONNECTED
                    att.connected_at, att.agent_rx = time.monotonic(), (-1, 0.0)
                    self.emit("agent_connected", att, agent_id=att.agent_id, leg="agent",
                              detail=f"{(time.monotonic() - att.answered_at) * 1000:.0f} ms after answer")
                    self.todo.append(("bridge", att.attempt_id))
                else:
                    att.agent_silent = True
                    self.todo.append(("release", att.attempt_id))
            elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
                att.agent = None
                if not att.agent_confirmed:
                    if not att.agent_silent:
                        self.emit("agent_failed", att, agent_id=att.agent_id, leg="agent",
                                  sip_status=ci.lastStatusCode, detail=f"agent leg: {ci.lastStatusCode} "
                                                                       f"{ci.lastReason}")
                    att.agent_id = None if att.state is CallState.ANSWERED else att.agent_id
                elif att.state is CallState.CONNECTED and att.cust is not None and self._rescuable(att):
                    self._hand_back(att, f"the agent hung up {time.monotonic() - att.connected_at:.1f} s after "
                                         f"answering ({ci.lastStatusCode} {ci.lastReason})")
                elif att.state is CallState.CONNECTED:
                    att.hangup_by = att.hangup_by or "agent"
                    att.state = CallState.ENDING
                self.todo.append(("release", att.attempt_id))


    def on_tsx(self, att: Att, role: str, method: str, code: int, msg: str) -> None:
        """A transaction of this leg changed state; `msg` is the SIP message that caused it (if received)."""
        if role == "nailed":
            return  # an agent's session leg (dialer.telephony.nailed): its state callbacks say enough
        if role == "customer" and 100 <= code < 200:
            att.provisional = True
            if code > 100:
                att.rang = True
        if role == "customer" and code in (401, 407) and method == "INVITE" and msg:
            att.challenges += 1
            if att.challenges >= 2 and att.state is CallState.CALLING:
                # challenged again after we answered (a fresh nonce each time): our credentials are refused
                self.todo.append(("auth_failed", att.attempt_id))
        if not msg or method != "INVITE":
            return
        m = rawsip.parse(msg)
        if role == "customer" and 100 <= code < 300:
            ids = pjinv.dialog_ids(msg)
            if ids is not None and (ids[2] or att.sip_ids is None):
                att.sip_ids = ids
        if role == "customer" and 100 <= code < 200 and not att.early_sent and att.state is CallState.CALLING:
            self._report_early(att, m)
        if code == 503 and role == "customer":
            att.retry_after_s = rawsip.retry_after_s(m)
        elif 300 <= code < 400 and role == "customer":
            att.redirect_to = mask_text(rawsip.uri_of(m.get("contact") or ""))
        elif 200 <= code < 300 and m.get("call-id"):
            # the confirmed dialog as the far end knows it: the supervisor can end it if this process dies
            tspec = self.trunk_specs.get(att.trunk)
            self.send(Dialog(attempt_id=att.attempt_id, leg=role, call_id=m.get("call-id") or "",
                             local_uri=m.get("from") or "", remote_uri=m.get("to") or "",
                             remote_target=rawsip.uri_of(m.get("contact") or ""),
                             route_set=tuple(reversed(m.all("record-route"))), cseq=rawsip.cseq_number(m.get("cseq")),
                             transport=(tspec.transport if tspec and role == "customer" else "udp"),
                             trunk=att.trunk if role == "customer" else None))
            att.dialogs.add(role)


    def on_refer(self, att: Any, role: str, target: str) -> None:
        """A REFER would make us call someone the campaign never chose (no attempt, no DNC or hours check)."""
        detail = f"REFER from the {role} leg refused (603); target {target}"
        if role == "nailed":  # an agent's session leg (dialer.telephony.nailed)
            self.emit("refer_refused", None, attempt_id=att.attempt_id, leg="agent", agent_id=att.agent_id,
                      sip_status=603, detail=detail)
            return
        self.emit("refer_refused", att, leg=role, agent_id=att.agent_id if role == "agent" else None,
                  sip_status=603, detail=detail)


    def on_media(self, leg: Any, att: Att, role: str) -> None:
        if role == "nailed":
            return self.nailed.on_media(leg, att)  # type: ignore[arg-type]
        if role == "customer" and att.await_media and att.state is CallState.CALLING and self._media_ok(leg):
            self._answer(att)  # media came up after the ACK
        if role == "customer" and att.record_path and att.recorder is None and att.state is not CallState.CALLING:
            self.todo.append(("record", att.attempt_id))  # media re-negotiated after answer
        if role == "customer" and att.amd is not None and att.amd.phase == "listening":
            self.todo.append(("amd_tap", att.attempt_id))
        if role == "customer" and att.state is CallState.CALLING and not att.await_media:
            self.todo.append(("early_tap", att.attempt_id))  # 183 with SDP: early media
        if role == "agent" or att.state is CallState.CONNECTED:
            att.bridged = False  # a re-INVITE may have given the leg a new conference port: bridge again
            self.todo.append(("bridge", att.attempt_id))

    def on_dtmf(self, att: Att, role: str, digit: str) -> None:
        if role == "nailed":
            return self.nailed.on_dtmf(att, digit)  # type: ignore[arg-type]
        self.emit("dtmf", att, digit=digit, leg=role, agent_id=att.agent_id if role == "agent" else None)

    def on_stream_destroyed(self, leg: Any, att: Att, role: str, idx: int) -> None:
        if role == "nailed":
            return self.nailed.on_stream_destroyed(leg, att)  # type: ignore[arg-type]
        try:
            s = leg.getStreamStat(idx)
            att.stats[role] = {"rx": int(s.rtcp.rxStat.pkt), "tx": int(s.rtcp.txStat.pkt),
                               "loss": int(s.rtcp.rxStat.loss),
                               "level_in": att.levels.get(f"{role}_in", 0),
                               "level_out": att.levels.get(f"{role}_out", 0)}
        except self.pj.Error:
            pass

    def _sample_levels(self, att: Att, now: float) -> None:
        """Max signal levels per leg: in = heard from the peer, out = sent to it. They show audio crossing
        the bridge (customer in -> agent out, agent in -> customer out) without any tone detector."""
        if now < att.next_sample:
            return
        att.next_sample = now + 0.05
        agent = self.nailed.call_of(att) if att.nailed else att.agent
        for role, leg in (("customer", att.cust), ("agent", agent)):
            if leg is None:
                continue
            a = self._aud(leg)
            if a is None:
                continue
            try:
                # pjmedia's names are the bridge port's view: its "tx" is what the port feeds INTO the bridge
                # (heard from the peer), its "rx" what it takes from the bridge (sent to the peer). A silent
                # agent proved it: getRxLevel() read 32 with 0 RTP packets received.
                lin, lout = int(a.getTxLevel()), int(a.getRxLevel())
            except self.pj.Error:
                continue
            att.levels[f"{role}_in"] = max(att.levels.get(f"{role}_in", 0), lin)
            att.levels[f"{role}_out"] = max(att.levels.get(f"{role}_out", 0), lout)

    # ------------------------------------------------------------------ deferred actions and timers

    def run_todo(self) -> None:
        todo, self.todo = self.todo, []
        for action, attempt_id in todo:
            att = self.atts.get(attempt_id)
            if att is not None:
                self.actions[action](att)

    def _record(self, att: Att) -> None:
        if att.recorder is not None or att.cust is None or not att.record_path:
            return
        a = self._aud(att.cust)
        if a is None:
            return
        try:
            Path(att.record_path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # (issue 29) a recording is the customer's conversation: 0600 from the first byte (created before
            # pjmedia opens it; its fopen "wb" keeps the mode), whatever the process umask
            os.close(os.open(att.record_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(att.record_path, 0o600)
            rec = self.pj.AudioMediaRecorder()
            rec.createRecorder(att.record_path)
            a.startTransmit(rec)
            att.recorder = rec
        except (self.pj.Error, OSError):
            att.record_path = None  # reported as recording_path=None on hangup


    def _release(self, att: Att) -> None:
        """One side is gone (or the agent answered too late): hang up the other, finish when both are gone."""
        if att.state is CallState.ENDING:
            if att.agent is not None:
                if not att.agent_confirmed:
                    att.agent_silent = True
                self._hangup_leg(att.agent)
            if att.cust is not None:
                self._hangup_leg(att.cust)
        elif att.agent is not None and att.agent_silent and att.agent_confirmed:
            self._hangup_leg(att.agent)  # agent answered after the abandon decision
        if att.cust is None and att.agent is None and att.state in (CallState.ENDING, CallState.ABANDONING):
            self._finish(att)

    def _finish(self, att: Att) -> None:
        self.atts.pop(att.attempt_id, None)
        if att.nailed:
            self.nailed.release(att)  # the agent's leg stays up
        att.player = att.notice_player = None
        amd = None
        note = ""
        outcome = None
        if att.early is not None:
            att.early.close()
            att.early = None
        if att.amd is not None:
            note = att.amd.note
            ann = att.amd.announcement
            if ann is not None and att.cause == AmdVerdict.ANNOUNCEMENT:
                # (issue 24) the network's recording, never a person: a dead (SIT) or unreachable number
                outcome = CallOutcome.INVALID if ann.kind is AnnounceKind.SIT else CallOutcome.UNREACHABLE
                amd = att.amd.summary()
            elif att.amd.result is None:  # hung up while we listened
                att.cause = att.cause or "hangup_during_amd"
                if att.amd.amd_wanted:
                    amd = {"verdict": AmdVerdict.HANGUP, "decided_after_s": round(time.monotonic() - att.answered_at, 3),
                           "reason": "hangup", "features": att.amd.detector.features("hangup"),
                           "frames": att.amd.frames}
                else:  # no AMD asked: the callee ended the call during the announcement check: a person's answer
                    self.emit("answered", att, sip_status=200)
            att.amd.close()
            att.amd = None
        rec_path = att.record_path if att.recorder is not None else None
        att.recorder = None  # closes the WAV: pjmedia writes its header when the conference lets the port go
        status = att.ended_status or None
        notes = [note, att.rtp_detail, att.notice_note]
        if att.cancel_sent:
            notes.append("the 200 OK crossed our ring-timeout CANCEL (answered)")
        if att.bye_status is not None:  # (issue 24) what the far end really answered to our BYE
            status = att.bye_status[0] or None
            notes.append(f"our BYE: {att.bye_status[0]} {att.bye_status[1]}" if att.bye_status[0] else
                         att.bye_status[1])
        fields = {"by": att.hangup_by or "dialer", "agent_id": att.agent_id, "recording_path": rec_path,
                  "stats": dict(att.stats) or None, "sip_status": status, "cause": att.cause, "amd": amd,
                  "outcome": outcome}
        if rec_path and not wav_closed(rec_path):
            # (issue 29) the conference frees the recorder's port on its own clock (later on a busy host): the
            # hangup, which hands the file over, waits until the file is whole and its digits are silenced
            self.closing[att.attempt_id] = (att, notes, fields, time.monotonic() + RECORDING_CLOSE_S)
            return
        self._hangup_event(att, notes, fields)

    def _hangup_event(self, att: Att, notes: list[str], fields: dict[str, Any]) -> None:
        """The attempt's last event, once its recording (if any) is closed and checked for keyed digits."""
        notes.insert(3, _mute_dtmf(fields["recording_path"]))
        self.emit("hangup", att, detail="; ".join(x for x in notes if x), **fields)

    def _closed_recordings(self, now: float, *, all_now: bool = False) -> None:
        """Hangups waiting for their recording to close: sent when the WAV is whole (or at the deadline, when
        the digit check then says loudly that the file could not be checked)."""
        for attempt_id, (att, notes, fields, deadline) in list(self.closing.items()):
            if all_now or now >= deadline or wav_closed(fields["recording_path"]):
                del self.closing[attempt_id]
                self._hangup_event(att, notes, fields)


    def timers(self) -> None:
        now = time.monotonic()
        for att in list(self.atts.values()):
            if att.bye_sent_at and att.cust is not None and now - att.bye_sent_at >= BYE_WAIT_S:
                # (issue 24) no final answer to our BYE: the call is over for us; the leg stays referenced until
                # pjsip gives the BYE up (its slot is reported as lingering meanwhile)
                self.lingering[att.attempt_id] = att.cust
                att.cust = None
                att.bye_status = (0, f"no answer to our BYE within {BYE_WAIT_S:g} s")
                self._release(att)
                continue
            if att.state is CallState.PLACING:
                self._place(att)
            elif att.state is CallState.CALLING:
                if now >= att.ring_deadline and not att.ring_timed_out and att.cust is not None:
                    att.ring_timed_out = True
                    if not att.provisional:
                        # a silent trunk: no CANCEL is possible before a provisional response, and pjsip
                        # would only give up at Timer B (32 s). Report now; keep the leg referenced until
                        # its DISCONNECTED (its slot stays busy, reported as lingering).
                        del self.atts[att.attempt_id]
                        att.state = CallState.ZOMBIE
                        self.zombies[att.attempt_id] = att
                        self.emit("failed", att, outcome="congestion",
                                  detail="no response from the trunk before the ring timeout")
                        self._hangup_leg(att.cust)
                    elif att.sip_ids is not None and pjinv.cancel(self.pj, att.sip_ids):
                        # (issue 24) CANCEL through the INVITE session: the far end's 487 is what we report,
                        # and a 200 that crosses the CANCEL is an answer (pjsua's own CANCEL would hang it up)
                        att.cancel_sent = True
                    else:
                        self._hangup_leg(att.cust)
            elif att.state is CallState.CONNECTED:
                self._sample_levels(att, now)
                self._check_rtp(att, now)
                self._check_agent_silent(att, now)
            elif att.state is CallState.ANSWERED:
                if att.amd is not None and self._amd_step(att, now):
                    continue
                if att.agent_pending is not None and att.agent is None:
                    self._place_agent(att)
                if now >= att.connect_deadline:
                    self._abandon(att, now)
                else:
                    self._check_rtp(att, now)
            elif att.state is CallState.ABANDONING:
                self._sample_levels(att, now)
                self._check_rtp(att, now)
                if now >= att.play_until and att.cust is not None and att.play_until >= 0:
                    att.play_until = -1.0
                    att.player = None
                    self._hangup_leg(att.cust)
                elif att.cust is None and att.agent is None:
                    self._finish(att)
        self._closed_recordings(now)
        self.nailed.timers(now)
        self.listen.timers(now)

    def _check_rtp(self, att: Att, now: float) -> None:
        """Dead-call detection: RTP counters of a confirmed leg that stop moving for rtp_timeout_s (either
        direction) hang the call up. A leg on hold (ours or theirs) is not expected to send: its clock restarts."""
        limit = self.spec.rtp_timeout_s
        if limit <= 0 or now < att.next_rtp_check:
            return
        att.next_rtp_check = now + 1.0
        pj = self.pj
        for role, leg in (("customer", att.cust), ("agent", att.agent if att.agent_confirmed else None)):
            if leg is None:
                continue
            try:
                ci = leg.getInfo()  # keep it referenced: its media vector dies with it (SWIG)
                held = any(m.type == pj.PJMEDIA_TYPE_AUDIO and (
                    m.status in (pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)
                    or m.dir != pj.PJMEDIA_DIR_ENCODING_DECODING) for m in ci.media)
                st = leg.getStreamStat(0)
                rx, tx = int(st.rtcp.rxStat.pkt), int(st.rtcp.txStat.pkt)
            except pj.Error:
                continue
            rx_n, tx_n, rx_at, tx_at = att.rtp_seen.get(role, (-1, -1, now, now))
            if held:
                rx_at = tx_at = now
            if rx != rx_n:
                rx_at = now
            if tx != tx_n:
                tx_at = now
            att.rtp_seen[role] = (rx, tx, rx_at, tx_at)
            if now - min(rx_at, tx_at) >= limit:
                att.cause = "rtp_timeout"
                if att.hangup_by is None:
                    att.hangup_by = "dialer"
                att.rtp_detail = f"no RTP {'from' if rx_at <= tx_at else 'to'} the {role} for {limit:g} s"
                self._end(att, "dialer")
                return

    def report_slots(self) -> None:
        used = _call_count(self.pj)
        live = sum((a.cust is not None) + (a.agent is not None) for a in self.atts.values()) + self.nailed.live()
        live += self.listen.live()
        if (used, live) != self.last_slots:
            self.last_slots = (used, live)
            self.send(Slots(used=used, live=live))

    # ------------------------------------------------------------------ main loop
    def loop(self) -> None:
        ep = self.ep
        while not self.stop:
            # short polls while calls are up (timers, connect latency), longer when idle (CPU)
            ep.libHandleEvents(10 if self.atts else 25)
            self.run_todo()
            try:
                while self.conn.poll():
                    self.handle(self.conn.recv())
            except (EOFError, OSError):
                self.stop = True  # the supervisor is gone
            self.timers()
            self.run_todo()
            self.report_slots()
        self.shutdown()

    def shutdown(self) -> None:
        self.nailed.hangup_all()
        self.listen.hangup_all()
        for att in list(self.atts.values()):
            if att.state is CallState.PLACING:
                del self.atts[att.attempt_id]
                self.emit("failed", att, outcome="cancelled", detail="telephony stopping")
            else:
                self._end(att, "dialer")
        end = time.monotonic() + 5.0
        while (self.atts or self.nailed.live() or self.closing) and time.monotonic() < end:
            self.ep.libHandleEvents(10)
            self.run_todo()
            self.timers()
        self._closed_recordings(time.monotonic(), all_now=True)
        for z in self.zombies.values():
            z.cust = None
        self.zombies.clear()
        self.lingering.clear()
        for att in list(self.atts.values()):  # legs that never finished their transaction
            for session in (att.early, att.amd):
                if session is not None:
                    session.close()  # its tap port freed safely (amdtap.drop_tap), not left to the collector
            att.cust = att.agent = att.player = att.recorder = att.amd = att.early = att.notice_player = None
            self.emit("failed" if att.state is CallState.CALLING else "hangup", att, outcome="interrupted",
                      by="dialer", detail="telephony stopped before the call ended")
        self.atts.clear()
        self.nailed.drop_all()
        self.listen.drop_all()
        self.todo.clear()
        self.accounts.clear()
        self.local_acc = None
        gc.collect()
        self.ep.libHandleEvents(10)
        self.ep.libDestroy()
        self.send(Stopped())


_AUTH_LINE = re.compile(r"(?im)^(\s*(?:proxy-)?authorization\s*:).*$")


def scrub_log(text: str) -> str:
    """What may reach a debug log: no credentials (Authorization values), no full phone numbers."""
    return mask_text(_AUTH_LINE.sub(r"\1 <redacted>", text))


def _make_log_writer(pj: Any, path: str) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)  # also when the file already existed with a wider mode

    class Writer(pj.LogWriter):  # type: ignore[misc]
        def write(self, entry: Any) -> None:
            try:
                os.write(fd, scrub_log(str(entry.msg)).encode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - never raise into SWIG
                pass

    return Writer()


def _make_account(pj: Any, worker: Worker, trunk: str) -> Any:
    class Acc(pj.Account):  # type: ignore[misc]
        def onRegState(self, prm: Any) -> None:
            if not trunk:
                return
            try:
                ok = 200 <= prm.code < 300
                worker.send(RegState(trunk=trunk, ok=ok, code=int(prm.code), reason=mask_text(prm.reason),
                                     expiration=int(prm.expiration)))
            except Exception:  # noqa: BLE001 - never raise into SWIG
                pass

        def onIncomingCall(self, prm: Any) -> None:
            c = pj.Call(self, prm.callId)
            op = pj.CallOpParam()
            op.statusCode = 603  # a dialer takes no inbound calls
            try:
                c.hangup(op)
            except pj.Error:
                pass

    return Acc()


_LEG: dict[int, Any] = {}


def _make_call(pj: Any, worker: Worker, acc: Any, att: Att, role: str) -> Any:
    cls = _LEG.get(id(worker))
    if cls is None:
        cls = _LEG[id(worker)] = _leg_class(pj, worker)
    return cls(acc, att, role)


def _leg_class(pj: Any, worker: Worker) -> Any:
    class Leg(pj.Call):  # type: ignore[misc]
        def __init__(self, acc: Any, att: Att, role: str) -> None:
            super().__init__(acc)
            self.att = att
            self.role = role

        def onCallState(self, prm: Any) -> None:
            try:
                e = prm.e
                if self.role != "nailed" and e.type == pj.PJSIP_EVENT_TSX_STATE and \
                        e.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG:
                    # the final response that ended an unanswered call (pjsip reports it before the tsx callback)
                    self.att.last_msg = str(e.body.tsxState.src.rdata.wholeMsg)
                if self.role == "customer" and e.type == pj.PJSIP_EVENT_TSX_STATE and self.att.bye_sent_at:
                    tsx = e.body.tsxState.tsx  # (issue 24) our BYE's final response arrives with DISCONNECTED
                    if str(tsx.method) == "BYE" and tsx.role == pj.PJSIP_ROLE_UAC and tsx.statusCode >= 200:
                        self.att.bye_status = (int(tsx.statusCode), str(tsx.statusText)) \
                            if e.body.tsxState.type == pj.PJSIP_EVENT_RX_MSG else \
                            (0, f"no answer to our BYE ({tsx.statusCode} {tsx.statusText})")
                worker.on_state(self, self.att, self.role)
            except Exception as exc:  # noqa: BLE001 - an exception into SWIG aborts the process
                worker.send(WorkerError(where="onCallState", error=repr(exc)))

        def onCallTsxState(self, prm: Any) -> None:
            try:
                e = prm.e
                if e.type != pj.PJSIP_EVENT_TSX_STATE:
                    return
                ts = e.body.tsxState
                tsx = ts.tsx
                msg = ""
                if ts.type == pj.PJSIP_EVENT_RX_MSG and tsx.role == pj.PJSIP_ROLE_UAC:
                    msg = str(ts.src.rdata.wholeMsg)
                worker.on_tsx(self.att, self.role, str(tsx.method), int(tsx.statusCode), msg)
            except Exception as exc:  # noqa: BLE001
                worker.send(WorkerError(where="onCallTsxState", error=repr(exc)))

        def onCallTransferRequest(self, prm: Any) -> None:
            prm.statusCode = 603  # refused with a final error: never call a Refer-To target
            try:
                worker.on_refer(self.att, self.role, mask_text(str(prm.dstUri)))
            except Exception:  # noqa: BLE001
                pass

        def onCallReplaceRequest(self, prm: Any) -> None:
            prm.statusCode = 603  # an INVITE/Replaces would hand our call to a party the campaign did not dial
            try:
                worker.on_refer(self.att, self.role, "INVITE with Replaces")
            except Exception:  # noqa: BLE001
                pass

        def onCallRedirected(self, prm: Any) -> int:
            try:
                self.att.redirect_to = mask_text(str(prm.targetUri))
            except Exception:  # noqa: BLE001
                pass
            return int(pj.PJSIP_REDIRECT_REJECT)  # a 3xx target was not checked against DNC or hours

        def onCallMediaState(self, prm: Any) -> None:
            try:
                worker.on_media(self, self.att, self.role)
            except Exception as exc:  # noqa: BLE001
                worker.send(WorkerError(where="onCallMediaState", error=repr(exc)))

        def onDtmfDigit(self, prm: Any) -> None:
            try:
                worker.on_dtmf(self.att, self.role, str(prm.digit))
            except Exception:  # noqa: BLE001
                pass

        def onStreamDestroyed(self, prm: Any) -> None:
            try:
                worker.on_stream_destroyed(self, self.att, self.role, int(prm.streamIdx))
            except Exception:  # noqa: BLE001
                pass

    return Leg


def main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point: `python -m dialer.telephony.worker FD` (FD: a socket to the supervisor)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us cleanly
    faulthandler.enable()  # a crash inside pjsip leaves the Python stack in the worker's stderr (debug log dir)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # pjlib prints its banner to stdout before logConfig applies; stdout is not ours
    w = Worker(spec, conn)
    signal.signal(signal.SIGTERM, lambda *_: setattr(w, "stop", True))
    try:
        w.start()
    except Exception as exc:  # noqa: BLE001 - report why instead of dying silently
        status = getattr(exc, "status", None)
        text = exc.info() if hasattr(exc, "info") else repr(exc)
        try:
            conn.send(Fatal(error=mask_text(str(text)), status=status))
        except OSError:
            pass
        return
    w.loop()


# what other modules and tests import from here (the split of issue 28 kept these names)
__all__ = ["AGENT_HEADERS", "BYE_WAIT_S", "PJ_ETOOMANY", "Att", "Worker", "agent_call_params", "main",
           "presented_identity", "probe_capacity", "scrub_log", "trunk_from_uri"]


if __name__ == "__main__":
    import sys

    _conn = Connection(int(sys.argv[1]))
    main(_conn.recv(), _conn)
