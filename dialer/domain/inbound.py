"""Return calls (折り返し): who is calling, which of our calls they answer, who takes them, and the menu when nobody can.

Why: in Japan people rarely pick up an unknown number; they look it up and call it back. Every unanswered
outbound call can come back as an inbound one, and a caller who reaches nobody (or a 603) is a customer lost and a
complaint. These are the pure rules (no I/O, no clock: `now` is always given); the store reads the facts and the
telephony plays the prompts.

- `caller_e164`: the caller's number as the lists write it (one normaliser, `lists.phones.parse_phone_cell`).
- `match_customer` / `last_outbound`: the customer with that number among ALL their numbers, and the most recent
  outbound attempt to them (or to that number) -- the attempt the inbound call answers and the screen pop's "why".
- `choose_agent`: the agent who last spoke to the customer when ready, else a ready agent of that campaign, else
  any ready agent (longest ready first). What the outbound pacer keeps agents for (the expected return calls, the
  priority setting) is pacing's rule: `pacing.inbound`.
- `Ivr`: the queue and DTMF menu as a state machine. 1 = a callback at the next free slot in calling hours, or
  the hour keyed (1, then 14#); 2 = do not call me again (DNC at once, confirmed by voice); anything else or
  silence = leave. The callback time goes through the one callback rule (`dialer.domain.callbacks`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from dialer.domain.callbacks import callback_slot, read_callback
from dialer.domain.calling_hours import CallingHours
from lists.phones import parse_phone_cell


class Direction(StrEnum):
    """Which way a call went (the attempt row's `direction`)."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class InboundOutcome(StrEnum):
    """How a return call ended (the inbound attempt row's `outcome`): a closed set apart from the outbound
    `CallOutcome`, so no retry rule or outbound figure can mistake one for a dial's result."""

    ANSWERED = "answered"  # an agent took it
    QUEUE_ABANDONED = "inbound_abandoned"  # hung up while queued: an inbound abandon, not the outbound one
    IVR_CALLBACK = "ivr_callback"  # booked a callback in the IVR
    IVR_DNC = "ivr_dnc"  # keyed "do not call me again"
    IVR_LEFT = "ivr_left"  # heard the menu and chose nothing, or hung up in it


class AgentChoice(StrEnum):
    """Why an agent was chosen for a return call (said on the screen pop and in the attempt's detail)."""

    LAST_AGENT = "last_agent"  # the agent who last spoke to the customer
    CAMPAIGN = "campaign"  # an agent of the campaign whose call they return
    ANY = "any"  # any ready agent
    NONE = "none"  # nobody ready: queue


@dataclass(frozen=True)
class CustomerFacts:
    customer_id: str
    name: str
    phones: tuple[str, ...]  # as stored (any notation): normalised here


@dataclass(frozen=True)
class OutboundFacts:
    """One earlier attempt (outbound) to a customer: what the return call answers."""

    attempt_id: int
    campaign_id: int | None
    customer_id: str
    phone_e164: str
    dialed_at: datetime
    agent_id: int | None = None
    reason: str = ""  # why we called (the list builder's reason)
    outcome: str = ""
    direction: Direction = Direction.OUTBOUND


@dataclass(frozen=True)
class AgentFacts:
    agent_id: int
    login: str
    campaign_id: int | None
    ready: bool
    ready_since: datetime | None = None


def caller_e164(raw: str, region: str = "JP") -> str:
    """The caller's number (SIP From/PAI user: `0312345678`, `+81312345678`, `81312345678`) in E.164, or ''."""
    text = raw.strip()
    if text.isdigit() and text.startswith("81") and len(text) in (11, 12):
        text = "+" + text  # international digits without the '+' (many trunks send this)
    for r in parse_phone_cell(text, region):
        if r.e164:
            return r.e164
    return ""


def normalised_phones(phones: Iterable[str], region: str = "JP") -> set[str]:
    out: set[str] = set()
    for p in phones:
        for r in parse_phone_cell(p, region) if p else ():
            if r.e164:
                out.add(r.e164)
    return out


def match_customer(caller: str, customers: Iterable[CustomerFacts], region: str = "JP") -> CustomerFacts | None:
    """The customer one of whose numbers is CALLER (E.164); several share it (a family line): the first given,
    which the store orders by their most recent attempt."""
    if not caller:
        return None
    for c in customers:
        if caller in normalised_phones(c.phones, region):
            return c
    return None


def last_outbound(attempts: Iterable[OutboundFacts], customer_id: str = "", phone_e164: str = "") -> OutboundFacts | None:
    """The most recent OUTBOUND attempt to the customer (any of their numbers), or to the number when the customer
    is unknown."""
    best: OutboundFacts | None = None
    for a in attempts:
        if a.direction != Direction.OUTBOUND:
            continue
        if not ((customer_id and a.customer_id == customer_id) or (phone_e164 and a.phone_e164 == phone_e164)):
            continue
        if best is None or (a.dialed_at, a.attempt_id) > (best.dialed_at, best.attempt_id):
            best = a
    return best


def choose_agent(agents: Iterable[AgentFacts], last_agent_id: int | None,
                 campaign_id: int | None) -> tuple[AgentFacts | None, AgentChoice]:
    """Last agent when ready, else the campaign's longest-ready agent, else anyone's longest-ready agent."""
    ready = [a for a in agents if a.ready]
    if not ready:
        return None, AgentChoice.NONE
    for a in ready:
        if last_agent_id is not None and a.agent_id == last_agent_id:
            return a, AgentChoice.LAST_AGENT

    same = [a for a in ready if campaign_id is not None and a.campaign_id == campaign_id]
    if same:
        return min(same, key=_ready_key), AgentChoice.CAMPAIGN
    return min(ready, key=_ready_key), AgentChoice.ANY


def may_take_agent(ready: int, outbound_waiting: int) -> bool:
    """Whether a return caller may take one of READY agents while OUTBOUND_WAITING answered outbound calls wait
    for an agent. Those calls were dialled counting on the ready agents: taking one makes an abandon the law
    counts (a customer who picked up to silence), while the return caller hears the queue message. So inbound
    first means the next agent nobody was dialled for; the pacer keeps such agents free for return callers
    (pacing.inbound), and an agent freeing up goes to the queued caller when no answered call waits."""
    return ready > outbound_waiting


def _ready_key(a: AgentFacts) -> tuple[float, int]:
    return (a.ready_since.timestamp() if a.ready_since else float("inf"), a.agent_id)


# ------------------------------------------------------------------------------------------------ the IVR
class IvrState(StrEnum):
    QUEUED = "queued"  # hearing the queue message, waiting for an agent (at most `max_wait`)
    MENU = "menu"  # 1 callback, 2 do not call, else leave
    HOUR = "hour"  # keying the hour for the callback (14#), or # / silence for the next free slot
    CONNECTED = "connected"  # an agent took the call
    CALLBACK_BOOKED = "callback_booked"
    DNC = "dnc"
    LEFT = "left"  # chose nothing, or hung up


class IvrEvent(StrEnum):
    AGENT_FREE = "agent_free"
    TIMEOUT = "timeout"  # the queue's max wait, or the menu's silence
    HANGUP = "hangup"


class IvrAction(StrEnum):
    PLAY_MENU = "play_menu"
    PLAY_HOUR_PROMPT = "play_hour_prompt"
    CONNECT = "connect"
    BOOK_CALLBACK = "book_callback"
    RECORD_DNC = "record_dnc"
    PLAY_CALLBACK_CONFIRM = "play_callback_confirm"
    PLAY_DNC_CONFIRM = "play_dnc_confirm"
    PLAY_GOODBYE = "play_goodbye"
    HANG_UP = "hang_up"


FINAL_IVR = frozenset({IvrState.CONNECTED, IvrState.CALLBACK_BOOKED, IvrState.DNC, IvrState.LEFT})
NEXT_SLOT_LEAD = timedelta(minutes=30)
"""A callback 'at the next free slot' is asked for this long after the call (then moved into calling hours)."""


@dataclass
class Ivr:
    """One queued return caller. Feed it `digit(d)` and `event(e)`; each returns the actions to carry out, in
    order. `callback_at` is set when the caller booked (already moved into calling hours by the one rule)."""

    hours: CallingHours
    zones: tuple[str, ...]
    tz: str = "Asia/Tokyo"
    state: IvrState = IvrState.QUEUED
    keyed: str = ""
    callback_at: datetime | None = None
    callback_moved: bool = False
    history: list[str] = field(default_factory=list)

    def event(self, ev: IvrEvent, now: datetime) -> list[IvrAction]:
        self.history.append(ev.value)
        if self.state in FINAL_IVR:
            return []
        if ev is IvrEvent.HANGUP:
            self.state = IvrState.LEFT
            return []
        if self.state is IvrState.QUEUED:
            if ev is IvrEvent.AGENT_FREE:
                self.state = IvrState.CONNECTED
                return [IvrAction.CONNECT]
            self.state = IvrState.MENU
            return [IvrAction.PLAY_MENU]
        if self.state is IvrState.HOUR and ev is IvrEvent.TIMEOUT:
            return self._book(None, now)
        if ev is IvrEvent.TIMEOUT:  # silence at the menu: leave politely
            self.state = IvrState.LEFT
            return [IvrAction.PLAY_GOODBYE, IvrAction.HANG_UP]
        return []  # an agent freed up after the menu started: the caller is already choosing

    def digit(self, d: str, now: datetime) -> list[IvrAction]:
        self.history.append(d)
        if self.state is IvrState.MENU:
            if d == "1":
                self.state = IvrState.HOUR
                return [IvrAction.PLAY_HOUR_PROMPT]
            if d == "2":
                self.state = IvrState.DNC
                return [IvrAction.RECORD_DNC, IvrAction.PLAY_DNC_CONFIRM, IvrAction.HANG_UP]
            self.state = IvrState.LEFT
            return [IvrAction.PLAY_GOODBYE, IvrAction.HANG_UP]
        if self.state is IvrState.HOUR:
            if d == "#":
                return self._book(int(self.keyed) if self.keyed else None, now)
            if d.isdigit():
                self.keyed += d
                if len(self.keyed) == 2:
                    return self._book(int(self.keyed), now)
            return []
        return []  # digits while queued or after the end are ignored

    def _book(self, hour: int | None, now: datetime) -> list[IvrAction]:
        wanted = now + NEXT_SLOT_LEAD
        if hour is not None and 0 <= hour <= 23:
            wanted = read_callback(f"{hour}時", now, self.tz)
        self.callback_at, self.callback_moved = callback_slot(wanted, self.hours, self.zones)
        self.state = IvrState.CALLBACK_BOOKED
        return [IvrAction.BOOK_CALLBACK, IvrAction.PLAY_CALLBACK_CONFIRM, IvrAction.HANG_UP]


__all__ = ["FINAL_IVR", "NEXT_SLOT_LEAD", "AgentChoice", "AgentFacts", "CustomerFacts", "Direction", "Ivr",
           "InboundOutcome", "IvrAction", "IvrEvent", "IvrState", "OutboundFacts", "caller_e164", "choose_agent",
           "last_outbound", "match_customer", "normalised_phones"]
