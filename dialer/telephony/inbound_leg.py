"""The inbound desk (issue 30): a customer calling back the number we presented reaches someone.

Why a separate process: the campaign workers refuse every incoming INVITE (603) and are driven by one runner's
loop; a return call belongs to no campaign until it is matched. The desk is one pjsua2 endpoint on its own SIP
port (`[inbound] sip_port`, where the trunk delivers the DIDs). For an INVITE to a DID it knows (a campaign's
`caller_id`, or `[inbound] dids`) it answers, matches the caller (dialer.store.inbound), chooses the agent
(dialer.domain.inbound: last agent when ready, else the campaign's, else anyone's) and places the agent leg the
way the workers do (`worker.agent_call_params`: auto-answer hints), bridging the two in its conference bridge.
Nobody ready: a Japanese queue message for at most `max_wait_s`, then the DTMF menu (RFC 2833, `onDtmfDigit`):
1 = callback (next free slot or the hour keyed), 2 = do not call again (DNC at once, confirmed by voice), else
goodbye. Any other INVITE still gets 603.

The agent it takes is moved in the store (ready -> reserved -> on_call -> ready, logged like the runner's moves,
`current_attempt_id` = the inbound attempt, so the agent's screen pop shows the customer, "return call" and why
we had called); a runner's router only takes agents it sees ready. Run: `python -m dialer.telephony.inbound_leg
[CONFIG]` (stops on SIGTERM/SIGINT, hanging up what is up).
"""

from __future__ import annotations

import gc
import logging
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.config import CampaignConfig, Config
from dialer.domain.calling_hours import CallingHours, contact_zones
from dialer.domain.inbound import (
    AgentChoice,
    InboundOutcome,
    Ivr,
    IvrAction,
    IvrEvent,
    IvrState,
    caller_e164,
    choose_agent,
    may_take_agent,
)
from dialer.domain.policy import CampaignPolicy
from dialer.domain.vocabulary import AgentState
from dialer.privacy import mask_phone
from dialer.sounds import wav_seconds
from dialer.store.agents import log_agent_state, move_agent
from dialer.store.db import get_engine
from dialer.store.entries import Hopper
from dialer.store.inbound import (
    DESK_BEAT_S,
    ReturnCallFacts,
    claim_ready_agent,
    dead_desks,
    desk_beat,
    disposed_attempts,
    end_inbound,
    link_screen_pop,
    live_desks,
    outbound_waiting,
    ready_agents,
    reap_desk,
    record_inbound,
    record_ivr_dnc,
    return_call_facts,
    still_wrapping,
)

log = logging.getLogger(__name__)

# what the caller hears (the business's own voice: Japanese whatever the UI language)
PROMPTS = {
    "queue": "お電話ありがとうございます。ただいま担当者が対応中です。このまま少々お待ちください。",
    "menu": "ただいま電話が大変込み合っております。折り返しのお電話をご希望の方は1を、"
            "今後お電話を差し上げないようにご希望の方は2を押してください。",
    "hour": "ご希望の時間を、24時間制の2桁で押してください。最短の時間でよろしければ、シャープを押してください。",
    "callback": "かしこまりました。担当者より折り返しお電話いたします。お電話ありがとうございました。",
    "dnc": "かしこまりました。今後、お電話を差し上げることはございません。お電話ありがとうございました。",
    "goodbye": "お電話ありがとうございました。失礼いたします。",
}
BUSINESS_PROMPT = "お電話ありがとうございます。こちらは{name}です。当社の商品のご案内のため、お電話を差し上げました。"
"""For a caller we cannot match to a customer (特定商取引法: the business's name and the purpose of our call)."""
REDIRECTED = "tsunagu-redirected"  # a URI parameter on the 302's Contact: the receiving desk never redirects again
POLL_AGENTS_S = 0.5  # how often a queued caller's desk looks for a ready agent in the store
DEFAULT_WRAP_S = 60.0  # wrap-up's limit for a caller matched to no campaign (the campaigns' own default)


@dataclass
class Wrap:
    """An agent in wrap-up after a return call: free again when their disposition is saved (any console: the
    browser, the terminal) or when the campaign's wrap-up limit runs out, as after an outbound call."""

    agent_id: int
    attempt_id: int
    campaign_id: int | None
    until: float  # monotonic


@dataclass
class DeskSpec:
    db_url: str
    sip_port: int
    rtp_port: int
    dids: dict[str, str]  # E.164 called number -> campaign name
    campaigns: dict[str, CampaignConfig]
    agents: dict[str, str]  # login -> SIP URI
    prompts: dict[str, str]  # prompt name -> WAV
    max_wait_s: float = 30.0
    menu_wait_s: float = 8.0
    bind: str = "127.0.0.1"
    address: str = ""  # host:port other desks redirect callers to ("" = bind:sip_port)


def desk_spec(cfg: Config, workdir: Path) -> DeskSpec:
    """The desk's view of the config: DIDs from each campaign's caller_id (else its trunk's) plus `[inbound] dids`,
    prompts from `[inbound] *_wav` or spoken by espeak-ng into WORKDIR."""
    ib = cfg.inbound
    trunks = {t.name: t for t in cfg.trunks}
    dids: dict[str, str] = {}
    for c in cfg.campaigns:
        t = trunks.get(c.trunk) if c.trunk else (cfg.trunks[0] if cfg.trunks else None)
        num = caller_e164(c.caller_id or (t.caller_id if t else ""))
        if num:
            dids.setdefault(num, c.name)
    for num, camp in ib.dids.items():
        e = caller_e164(num) or num
        dids[e] = camp
    texts = {**PROMPTS, "business": BUSINESS_PROMPT.format(name=cfg.business.name or "当社")}
    given = {"business": ib.business_wav, "queue": ib.queue_wav, "menu": ib.menu_wav, "hour": ib.hour_wav, "callback": ib.callback_wav,
             "dnc": ib.dnc_wav, "goodbye": ib.goodbye_wav}
    prompts = {k: v or speak(texts[k], workdir / f"inbound_{k}.wav") for k, v in given.items()}
    return DeskSpec(db_url=cfg.database.url, sip_port=ib.sip_port, rtp_port=ib.rtp_port, dids=dids,
                    campaigns={c.name: c for c in cfg.campaigns}, agents={a.login: a.sip_uri for a in cfg.agents},
                    prompts=prompts, max_wait_s=ib.max_wait_s, menu_wait_s=ib.menu_wait_s, bind=ib.bind,
                    address=ib.address)


def speak(text: str, out: Path) -> str:
    """TEXT spoken by espeak-ng (ja) into OUT, 8 kHz 16-bit mono (the bridge's rate: no resampling)."""
    if not out.exists():
        raw = out.with_suffix(".raw.wav")
        subprocess.run(["espeak-ng", "-v", "ja", "-s", "150", "-w", str(raw), text], check=True, timeout=60,
                       capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)], check=True, timeout=60,
                       capture_output=True)
        raw.unlink(missing_ok=True)
    return str(out)


def _user(uri_or_header: str) -> str:
    m = re.search(r"sips?:([^@;>]+)@", uri_or_header)
    return m.group(1) if m else ""


def _header(msg: str, *names: str) -> str:
    for name in names:
        m = re.search(rf"^{name}\s*:\s*(.+)$", msg, re.I | re.M)
        if m:
            return m.group(1).strip()
    return ""


@dataclass
class InCall:
    """One return call in progress. Plain data plus the two pjsua2 legs (dropped at DISCONNECTED)."""

    cust: Any
    caller: str
    did: str
    campaign: str
    facts: ReturnCallFacts
    attempt_id: int
    ivr: Ivr
    answered_at: datetime
    agent: Any = None
    agent_id: int | None = None
    agent_login: str = ""
    choice: AgentChoice = AgentChoice.NONE
    connected_at: datetime | None = None
    player: Any = None
    deadline: float = 0.0  # monotonic: queue max wait / menu silence / hang up after a confirmation
    hangup_at: float = 0.0
    queue_after: float = 0.0  # the business message ends: the queue message starts
    next_poll: float = 0.0
    media: bool = False
    ended: bool = False
    booked: bool = False
    we_hung_up: bool = False
    notes: list[str] = field(default_factory=list)


class Desk:
    def __init__(self, spec: DeskSpec) -> None:
        self.spec = spec
        self.engine = get_engine(spec.db_url)
        self.calls: list[InCall] = []
        self.wraps: dict[int, Wrap] = {}  # agent id -> their wrap-up after a return call
        self.next_wrap_check = 0.0
        self.next_beat = 0.0
        self.parked: list[Any] = []  # legs being redirected (302), kept until their DISCONNECTED
        self.desk_id = ""
        self.stop = False
        self.pj: Any = None

    # ------------------------------------------------------------------ pjsua2
    def start(self) -> None:
        import pjsua2 as pj

        self.pj = pj
        ep = pj.Endpoint()
        self.ep = ep
        ep.libCreate()
        epc = pj.EpConfig()
        epc.uaConfig.threadCnt = 0
        epc.uaConfig.mainThreadOnly = True
        epc.uaConfig.userAgent = "tsunagu-inbound"
        epc.logConfig.level = 0
        epc.logConfig.consoleLevel = 0
        epc.medConfig.clockRate = 8000
        epc.medConfig.sndClockRate = 8000
        epc.medConfig.ecTailLen = 0
        epc.medConfig.noVad = True
        ep.libInit(epc)
        tc = pj.TransportConfig()
        tc.port = self.spec.sip_port
        tc.boundAddress = self.spec.bind
        tc.publicAddress = self.spec.bind
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.host = f"{self.spec.bind}:{self.spec.sip_port}"
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:inbound@{self.host}"
        acfg.mediaConfig.transportConfig.port = self.spec.rtp_port
        acfg.mediaConfig.transportConfig.portRange = 64
        acfg.mediaConfig.transportConfig.boundAddress = self.spec.bind
        acfg.mediaConfig.transportConfig.publicAddress = self.spec.bind
        acfg.mediaConfig.lockCodecEnabled = False
        self.acc = _account(pj, self)
        self.acc.create(acfg, True)
        # several desks on one store (several nodes): this one's address and agents for the others' redirects; a
        # predecessor on the same address that died left its callers open: closed now, with the reason
        self.desk_id = self.spec.address or self.host  # unique per node: set [inbound] address when bind is 0.0.0.0
        closed = reap_desk(self.engine, self.desk_id, datetime.now(UTC), stale_s=None)
        if closed:
            log.warning("inbound: %d return call(s) left open by the previous desk on %s closed as cut",
                        len(closed), self.desk_id)
        self._beat()

    def _beat(self) -> None:
        """The desk's heartbeat in the store; a desk that stopped beating has its open callers recorded as cut."""
        now = datetime.now(UTC)
        self.next_beat = time.monotonic() + DESK_BEAT_S
        desk_beat(self.engine, self.desk_id, self.spec.address or self.host, list(self.spec.agents), now)
        for dead in dead_desks(self.engine, now):
            closed = reap_desk(self.engine, dead, now)
            log.warning("inbound: desk %s stopped beating: %d return call(s) it held recorded as cut", dead,
                        len(closed))

    def loop(self, until: float | None = None) -> None:
        while not self.stop and (until is None or time.monotonic() < until):
            self.ep.libHandleEvents(20)
            self.timers()

    def shutdown(self) -> None:
        for c in list(self.calls):
            self._hangup_all(c)
        end = time.monotonic() + 2
        while self.calls and time.monotonic() < end:
            self.ep.libHandleEvents(20)
        self.calls.clear()
        for w in list(self.wraps.values()):  # nobody would end these wrap-ups once the desk is gone
            self._end_wrap(w)
        if self.desk_id:  # no redirects to it any more; a call whose BYE did not complete is closed as cut
            reap_desk(self.engine, self.desk_id, datetime.now(UTC), stale_s=None)
        self.acc = None
        gc.collect()
        self.ep.libDestroy()

    # ------------------------------------------------------------------ an INVITE arrives
    def incoming(self, acc: Any, call_id: int, msg: str) -> None:
        pj = self.pj
        did = caller_e164(_user(_header(msg, "To", "t"))) or _user(_header(msg, "To", "t"))
        campaign = self.spec.dids.get(did)
        leg = _leg(pj, self)(acc, call_id)
        if campaign is None:  # a stranger's INVITE, or a number that is no campaign's: refused as before
            op = pj.CallOpParam()
            op.statusCode = 603
            try:
                leg.hangup(op)
            except pj.Error:
                pass
            return
        caller = caller_e164(_user(_header(msg, "P-Asserted-Identity")) or _user(_header(msg, "From", "f")))
        now = datetime.now(UTC)
        facts = return_call_facts(self.engine, caller)
        target = None if REDIRECTED in msg.split("\n", 1)[0] else self._elsewhere(facts)
        if target is not None:  # only another desk's agent is free: the trunk re-sends the INVITE there
            op = pj.CallOpParam()
            op.statusCode = 302
            op.reason = "Moved Temporarily"
            h = pj.SipHeader()
            h.hName, h.hValue = "Contact", f"<sip:{did}@{target};{REDIRECTED}>"
            op.txOption.headers.append(h)
            try:  # answer(302), not hangup: pjsua keeps an answer's headers until the call's media is set up
                leg.answer(op)
                self.parked.append(leg)  # until DISCONNECTED: a Call dropped earlier would hang up with 603
            except pj.Error:
                pass
            log.info("inbound: return call from %s redirected to the desk on %s (a free agent there)",
                     mask_phone(caller), target)
            return
        cc = self.spec.campaigns.get(campaign)
        hours = CampaignPolicy.of(cc).hours if cc else CallingHours.legal()
        zones = contact_zones(caller) or ("Asia/Tokyo",)
        why = facts.answers.reason if facts.answers else ""
        detail = (f"return call to {campaign}" + (f" (answers attempt {facts.answers.attempt_id}: {why})"
                                                 if facts.answers else " (no earlier call found)"))
        att = record_inbound(self.engine, caller=caller, facts=facts, at=now, detail=detail, desk_id=self.desk_id)
        call = InCall(cust=leg, caller=caller, did=did, campaign=campaign, facts=facts, attempt_id=att,
                      ivr=Ivr(hours, zones), answered_at=now)
        leg.call = call
        self.calls.append(call)
        log.info("inbound: return call from %s to %s (attempt %s)", mask_phone(caller), campaign, att)
        op = pj.CallOpParam()
        op.statusCode = 200
        leg.answer(op)
        call.deadline = time.monotonic() + self.spec.max_wait_s + (
            wav_seconds(self.spec.prompts["business"]) if facts.customer is None else 0.0)
        self._offer(call)

    def _offer(self, call: InCall) -> bool:
        """Give the call to the chosen ready agent; False when nobody is ready."""
        logins = list(self.spec.agents)
        agents = ready_agents(self.engine, logins)
        agent, choice = choose_agent(agents, call.facts.last_agent_id, self._campaign_id(call))
        if agent is None:
            return False
        now = datetime.now(UTC)
        if not may_take_agent(sum(a.ready for a in agents), outbound_waiting(self.engine, now)):
            return False  # an answered outbound call was dialled for that agent: theirs; the caller stays queued
        if not claim_ready_agent(self.engine, agent.agent_id, call.attempt_id):
            return False  # taken meanwhile by a runner: try again at the next poll
        move_agent(self.engine, agent.agent_id, AgentState.RESERVED.value, now, campaign_id=agent.campaign_id,
                   attempt_id=call.attempt_id, state_logger=log_agent_state)
        call.agent_id, call.agent_login, call.choice = agent.agent_id, agent.login, choice
        link_screen_pop(self.engine, call.attempt_id, call.facts, agent.agent_id, choice.value)
        pj = self.pj
        leg = _leg(pj, self)(self.acc, -1)
        leg.call = call
        leg.is_agent = True
        call.agent = leg
        from dialer.telephony.worker import agent_call_params

        try:
            leg.makeCall(self.spec.agents[agent.login], agent_call_params(pj, self.host))
        except pj.Error as exc:  # no slot, bad URI: the agent goes back, the caller stays queued
            call.notes.append(f"agent leg to {agent.login} not placed ({exc.status})")
            leg.call, call.agent = None, None
            self._agent_back(call)
            return False
        return True

    def _elsewhere(self, facts: ReturnCallFacts) -> str | None:
        """The address of another live desk holding the agent the caller should get, when none of this desk's
        agents is ready (the same choice as `_offer`, over every live desk's agents); None: answer here."""
        campaign_id = facts.answers.campaign_id if facts.answers else None
        if choose_agent(ready_agents(self.engine, list(self.spec.agents)), facts.last_agent_id, campaign_id)[0]:
            return None
        others = {login: addr for desk, (addr, logins) in live_desks(self.engine, datetime.now(UTC)).items()
                  if desk != self.desk_id for login in logins if login not in self.spec.agents}
        if not others:
            return None
        agent, _choice = choose_agent(ready_agents(self.engine, list(others)), facts.last_agent_id, campaign_id)
        return others[agent.login] if agent is not None else None

    def _campaign_id(self, call: InCall) -> int | None:
        return call.facts.answers.campaign_id if call.facts.answers else None

    # ------------------------------------------------------------------ leg events
    def on_state(self, leg: Any) -> None:
        pj = self.pj
        call: InCall | None = getattr(leg, "call", None)
        if call is None:
            if leg in self.parked and leg.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                self.parked.remove(leg)
            return
        ci = leg.getInfo()
        agent_leg = getattr(leg, "is_agent", False)
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and agent_leg:
            now = datetime.now(UTC)
            call.connected_at = now
            call.ivr.event(IvrEvent.AGENT_FREE, now)
            assert call.agent_id is not None
            move_agent(self.engine, call.agent_id, AgentState.ON_CALL.value, now, campaign_id=self._agent_camp(call),
                       attempt_id=call.attempt_id, state_logger=log_agent_state)
            self._bridge(call)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if agent_leg:
                call.agent = None
                if call.connected_at is None and not call.ended:  # the agent's phone did not answer: queue again
                    call.notes.append(f"agent {call.agent_login}'s phone did not answer")
                    self._agent_back(call, unanswered=True)
                    call.next_poll = time.monotonic() + POLL_AGENTS_S
                    self._play(call, "queue", loop=True)
                elif not call.ended:
                    call.notes.append("the agent hung up")
                    self._hangup_cust(call)
            else:
                call.cust = None
                self._finish(call)
            leg.call = None  # gotcha 1: no reference to a dead Call outlives its DISCONNECTED

    def _agent_camp(self, call: InCall) -> int | None:
        return self._campaign_id(call)

    def on_media(self, leg: Any) -> None:
        call: InCall | None = getattr(leg, "call", None)
        if call is None or getattr(leg, "is_agent", False):
            if call is not None and call.connected_at is not None:
                self._bridge(call)
            return
        if not call.media:
            call.media = True
            if call.agent is None and call.ivr.state is IvrState.QUEUED:
                if call.facts.customer is None:  # a caller we cannot place: who we are and why we call, first
                    self._play(call, "business")
                    call.queue_after = time.monotonic() + wav_seconds(self.spec.prompts["business"])
                    call.notes.append("business message played (unknown caller)")
                else:
                    self._play(call, "queue", loop=True)
            elif call.connected_at is not None:
                self._bridge(call)

    def on_dtmf(self, leg: Any, digit: str) -> None:
        call: InCall | None = getattr(leg, "call", None)
        if call is None or getattr(leg, "is_agent", False):
            return
        self._act(call, call.ivr.digit(digit, datetime.now(UTC)))

    # ------------------------------------------------------------------ the IVR's actions
    def _act(self, call: InCall, actions: list[IvrAction]) -> None:
        now = datetime.now(UTC)
        for a in actions:
            if a is IvrAction.PLAY_MENU:
                self._play(call, "menu")
                call.deadline = time.monotonic() + wav_seconds(self.spec.prompts["menu"]) + self.spec.menu_wait_s
            elif a is IvrAction.PLAY_HOUR_PROMPT:
                self._play(call, "hour")
                call.deadline = time.monotonic() + wav_seconds(self.spec.prompts["hour"]) + self.spec.menu_wait_s
            elif a is IvrAction.RECORD_DNC:
                cid = call.facts.customer.customer_id if call.facts.customer else ""
                if not cid and not call.caller:  # a withheld number matched to nobody: nothing to block
                    call.notes.append("do-not-call keyed by a withheld number: nothing to block")
                    continue
                record_ivr_dnc(self.engine, attempt_id=call.attempt_id, customer_id=cid, phone_e164=call.caller,
                               at=now, campaign_id=self._campaign_id(call))
                call.notes.append("do-not-call keyed")
            elif a is IvrAction.BOOK_CALLBACK:
                self._book(call)
            elif a in (IvrAction.PLAY_CALLBACK_CONFIRM, IvrAction.PLAY_DNC_CONFIRM, IvrAction.PLAY_GOODBYE):
                name = {IvrAction.PLAY_CALLBACK_CONFIRM: "callback" if call.booked else "goodbye",
                        IvrAction.PLAY_DNC_CONFIRM: "dnc"}.get(a, "goodbye")  # never promise a call not booked
                self._play(call, name)
                call.hangup_at = time.monotonic() + wav_seconds(self.spec.prompts[name]) + 0.2
            elif a is IvrAction.HANG_UP:
                call.deadline = 0.0
                call.hangup_at = call.hangup_at or time.monotonic()

    def _book(self, call: InCall) -> None:
        at = call.ivr.callback_at
        cust = call.facts.customer
        cc = self.spec.campaigns.get(call.campaign)
        if at is None or cust is None or cc is None:
            call.notes.append("callback asked by an unknown caller: not booked")
            return
        segment = (call.facts.answers and self._segment(call)) or (cc.segments[0] if cc.segments else "callback")
        try:
            Hopper(self.engine, cc).set_callback(cust.customer_id, segment, at, "")
            call.booked = True
            call.notes.append(f"callback booked for {at.isoformat()}" + (" (moved into calling hours)"
                                                                         if call.ivr.callback_moved else ""))
        except ValueError as exc:
            call.notes.append(f"callback not booked: {exc}")

    def _segment(self, call: InCall) -> str:
        from dialer.store.inbound import attempt_segment

        return attempt_segment(self.engine, call.facts.answers.attempt_id) if call.facts.answers else ""

    def _play(self, call: InCall, name: str, loop: bool = False) -> None:
        pj = self.pj
        self._stop_player(call)
        if call.cust is None or not call.media:
            return
        p = pj.AudioMediaPlayer()
        p.createPlayer(self.spec.prompts[name], 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        p.startTransmit(call.cust.getAudioMedia(-1))
        call.player = p

    def _stop_player(self, call: InCall) -> None:
        if call.player is not None and call.cust is not None:
            try:
                call.player.stopTransmit(call.cust.getAudioMedia(-1))
            except self.pj.Error:
                pass
        call.player = None

    def _bridge(self, call: InCall) -> None:
        if call.cust is None or call.agent is None or not call.media:
            return
        try:
            a, c = call.agent.getAudioMedia(-1), call.cust.getAudioMedia(-1)
        except self.pj.Error:
            return  # the other leg's media is not up yet: its own media callback bridges
        self._stop_player(call)
        c.startTransmit(a)
        a.startTransmit(c)

    # ------------------------------------------------------------------ time
    def timers(self) -> None:
        now_m = time.monotonic()
        if now_m >= self.next_beat:
            self._beat()
        if self.wraps and now_m >= self.next_wrap_check:
            self.next_wrap_check = now_m + POLL_AGENTS_S
            done = disposed_attempts(self.engine, [w.attempt_id for w in self.wraps.values()])
            for w in list(self.wraps.values()):
                if w.attempt_id in done or now_m >= w.until:
                    self._end_wrap(w)
        for call in list(self.calls):
            if call.ended:
                continue
            if call.hangup_at and now_m >= call.hangup_at:
                call.hangup_at = 0.0
                self._hangup_cust(call)
                continue
            if call.queue_after and now_m >= call.queue_after:
                call.queue_after = 0.0
                if call.ivr.state is IvrState.QUEUED and call.agent is None:
                    self._play(call, "queue", loop=True)
            if call.ivr.state is IvrState.QUEUED and call.agent is None and now_m >= call.next_poll:
                call.next_poll = now_m + POLL_AGENTS_S
                if self._offer(call):
                    continue
            if call.deadline and now_m >= call.deadline and call.agent is None and \
                    call.ivr.state in (IvrState.QUEUED, IvrState.MENU, IvrState.HOUR):
                call.deadline = 0.0
                self._act(call, call.ivr.event(IvrEvent.TIMEOUT, datetime.now(UTC)))

    # ------------------------------------------------------------------ endings
    def _hangup_cust(self, call: InCall) -> None:
        call.we_hung_up = True
        if call.cust is not None:
            op = self.pj.CallOpParam()
            try:
                call.cust.hangup(op)
            except self.pj.Error:
                pass

    def _hangup_all(self, call: InCall) -> None:
        self._hangup_cust(call)
        if call.agent is not None:
            try:
                call.agent.hangup(self.pj.CallOpParam())
            except self.pj.Error:
                pass

    def _agent_back(self, call: InCall, *, unanswered: bool = False) -> None:
        """The agent's part is over: after a conversation through wrap-up to ready (a pause asked for meanwhile
        wins, as after an outbound call); a phone that did not answer is unavailable, as the runner marks it, so
        the queue does not ring it again every half second."""
        if call.agent_id is None:
            return
        now = datetime.now(UTC)
        if call.connected_at is not None:  # wrap-up on this call (the pop stays up for the disposition)
            try:
                move_agent(self.engine, call.agent_id, AgentState.WRAP_UP.value, now, campaign_id=self._agent_camp(call),
                           attempt_id=call.attempt_id, state_logger=log_agent_state)
            except (KeyError, ValueError):
                return  # moved meanwhile by its console (logged out, paused): theirs to keep
            cc = self.spec.campaigns.get(call.campaign)
            limit = CampaignPolicy.of(cc).wrap_up_timeout_s if cc else DEFAULT_WRAP_S
            self.wraps[call.agent_id] = Wrap(call.agent_id, call.attempt_id, self._agent_camp(call),
                                             time.monotonic() + limit)
            return
        try:
            move_agent(self.engine, call.agent_id, (AgentState.UNAVAILABLE if unanswered else AgentState.READY).value,
                       now, campaign_id=self._agent_camp(call), state_logger=log_agent_state)
        except (KeyError, ValueError):
            pass  # moved meanwhile by its console (logged out, paused): theirs to keep
        call.agent_id, call.agent_login = None, ""

    def _end_wrap(self, w: Wrap) -> None:
        """Wrap-up over: ready, or what the agent asked for meanwhile (a pause, a log-out: `next_state`)."""
        self.wraps.pop(w.agent_id, None)
        if not still_wrapping(self.engine, w.agent_id, w.attempt_id):
            return  # moved meanwhile (a console's log-out, a runner's restart): theirs to keep
        try:
            move_agent(self.engine, w.agent_id, AgentState.READY.value, datetime.now(UTC), campaign_id=w.campaign_id,
                       state_logger=log_agent_state)
        except (KeyError, ValueError):
            pass  # moved meanwhile (logged out from another console): theirs to keep

    def _finish(self, call: InCall) -> None:
        if call.ended:
            return
        call.ended = True
        self._stop_player(call)
        now = datetime.now(UTC)
        st = call.ivr.state
        if call.connected_at is not None:
            outcome = InboundOutcome.ANSWERED
        elif st is IvrState.DNC:
            outcome = InboundOutcome.IVR_DNC
        elif st is IvrState.CALLBACK_BOOKED and call.booked:
            outcome = InboundOutcome.IVR_CALLBACK
        elif st is IvrState.QUEUED:
            outcome = InboundOutcome.QUEUE_ABANDONED
        else:
            outcome = InboundOutcome.IVR_LEFT
        if call.agent is not None:
            try:
                call.agent.hangup(self.pj.CallOpParam())
            except self.pj.Error:
                pass
        agent_id = call.agent_id
        self._agent_back(call)
        end_inbound(self.engine, call.attempt_id, outcome, now, agent_id=agent_id, connected_at=call.connected_at,
                    hangup_by="dialer" if call.we_hung_up else "customer",
                    detail="; ".join([f"agent {call.agent_login} ({call.choice.value})" if call.connected_at else "",
                                      *call.notes]).strip("; "))
        self.calls.remove(call)


def _account(pj: Any, desk: Desk) -> Any:
    class Acc(pj.Account):  # type: ignore[misc]
        def onIncomingCall(self, prm: Any) -> None:
            try:
                desk.incoming(self, int(prm.callId), str(prm.rdata.wholeMsg))
            except Exception:  # noqa: BLE001 - an exception into SWIG aborts the process
                log.exception("inbound: incoming call failed")

    return Acc()


_LEGS: dict[int, Any] = {}


def _leg(pj: Any, desk: Desk) -> Any:
    cls = _LEGS.get(id(desk))
    if cls is not None:
        return cls

    class Leg(pj.Call):  # type: ignore[misc]
        def __init__(self, acc: Any, call_id: int) -> None:
            super().__init__(acc, call_id)
            self.call: InCall | None = None
            self.is_agent = False

        def onCallState(self, prm: Any) -> None:
            try:
                desk.on_state(self)
            except Exception:  # noqa: BLE001
                log.exception("inbound: call state")

        def onCallMediaState(self, prm: Any) -> None:
            try:
                desk.on_media(self)
            except Exception:  # noqa: BLE001
                log.exception("inbound: media state")

        def onDtmfDigit(self, prm: Any) -> None:
            try:
                desk.on_dtmf(self, str(prm.digit))
            except Exception:  # noqa: BLE001
                log.exception("inbound: dtmf")

    _LEGS[id(desk)] = Leg
    return Leg


def main(argv: list[str] | None = None) -> int:
    import sys

    from dialer.config import load_config

    args = sys.argv[1:] if argv is None else argv
    return serve(load_config(args[0] if args else None))


def serve(cfg: Config) -> int:
    """Run the desk until SIGTERM/SIGINT (`dialer inbound run`): hangs up its calls and exits 0. Its log lines
    (numbers masked) go to stderr: the operator sees the desk start and each caller routed."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    work = Path(tempfile.mkdtemp(prefix="tsunagu-inbound-"))
    desk = Desk(desk_spec(cfg, work))
    signal.signal(signal.SIGTERM, lambda *_: setattr(desk, "stop", True))
    signal.signal(signal.SIGINT, lambda *_: setattr(desk, "stop", True))
    desk.start()
    log.info("inbound desk on %s for %d number(s)", desk.host, len(desk.spec.dids))
    try:
        desk.loop()
    finally:
        desk.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
