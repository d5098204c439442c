"""Every closed set of words the dialer stores or exchanges, one `StrEnum` each.

They are `StrEnum`s so a member IS its stored string: rows written before the enums existed read back
equal, and JSON / SQL see plain text. Telephony's call states live with the worker (dialer.telephony).
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """How the campaign dials (pacing decides the numbers; see pacing/README.md)."""

    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    POWER = "power"
    PREDICTIVE = "predictive"


class CallOutcome(StrEnum):
    """How a dial ended, as SIP tells it (the attempt row's `outcome`)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    MACHINE = "machine"
    INVALID = "invalid"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    MACHINE_MESSAGE_LEFT = "machine_message_left"  # AMD heard a machine and the campaign left its message
    UNREACHABLE = "unreachable"  # (issue 24) the network announced (early media or a "fake answer")
    ANONYMOUS_REJECTED = "anonymous_rejected"  # 433: the callee refuses calls without caller ID (非通知拒否)
    FAILED_CODEC = "failed_codec"  # answered with a codec the dialer did not offer
    REDIRECTED = "redirected"  # 3xx: never followed (the target was not checked against DNC or hours)
    TRUNK_ERROR = "trunk_error"  # the trunk's own fault (credentials refused): NOT an attempt on the contact


# what the retry rules count an attempt as: a redirect counts as "failed", a trunk error is no attempt on the contact
NOT_RETRY_OUTCOMES = frozenset({CallOutcome.REDIRECTED, CallOutcome.TRUNK_ERROR})


MACHINE_OUTCOMES = frozenset({CallOutcome.MACHINE, CallOutcome.MACHINE_MESSAGE_LEFT})


class Disposition(StrEnum):
    """The agent's verdict on an answered call (console or DTMF)."""

    SALE = "sale"
    UPSELL = "upsell"
    CROSS_SELL = "cross_sell"
    CALLBACK = "callback"
    REFUSED = "refused"
    DNC = "dnc"
    WRONG_NUMBER = "wrong_number"
    MACHINE = "machine"
    NO_INTEREST = "no_interest"
    OTHER = "other"


class NetworkDisposition(StrEnum):
    """(issue 24) A disposition the runner records itself, never an agent's verdict (no key, not applied to the
    entry): the network said the number is dead or unreachable, and the CRM must hear of the bad number."""

    BAD_NUMBER = "bad_number"


SALES = frozenset({Disposition.SALE, Disposition.UPSELL, Disposition.CROSS_SELL})


class DispositionSource(StrEnum):
    CONSOLE = "console"
    DTMF = "dtmf"
    TIMEOUT = "timeout"
    NETWORK = "network"  # (issue 24) the runner's bad-number report: nothing to apply to the entry


class EntryStatus(StrEnum):
    """Where a call-list entry is in its life (see dialer.domain.entry)."""

    PENDING = "pending"
    LEASED = "leased"
    DIALING = "dialing"
    DONE = "done"
    EXHAUSTED = "exhausted"
    WITHDRAWN = "withdrawn"
    BLOCKED = "blocked"


FINAL_ENTRY = frozenset({EntryStatus.DONE, EntryStatus.EXHAUSTED, EntryStatus.BLOCKED, EntryStatus.WITHDRAWN})


class AttemptState(StrEnum):
    """Where a dial is (the attempt row's `state`)."""

    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    CONNECTED = "connected"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


LIVE_ATTEMPT = frozenset({AttemptState.DIALING, AttemptState.RINGING, AttemptState.ANSWERED,
                          AttemptState.CONNECTED})
IN_FLIGHT_ATTEMPT = frozenset({AttemptState.DIALING, AttemptState.RINGING})


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # chosen for an answered call, agent leg being placed
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"  # softphone did not answer
    UNREACHABLE = "unreachable"  # nailed-up agent legs: the agent's session leg is down or not yet answered
    # (issue 25) the phone answers OPTIONS but refused a real call (486/603/600: DND behind a PBX): out of routing
    # and out of the pacer's count until the agent acts on the console or a call to the phone succeeds
    REFUSING = "refusing"


BUSY_AGENT = frozenset({AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP})


class RunnerEvent(StrEnum):
    """(issue 25) `campaign_events.kind` of what the runner does about stops and agents' phones."""

    DRAINING = "draining"  # asked to stop: no new dials, calls end by themselves
    STOP_NOW = "stop_now"  # a hard stop: what is still up is hung up
    DRAIN_TIMEOUT = "drain_timeout"  # drain_s passed with calls still up
    CALLS_CUT = "calls_cut"  # calls the runner hung up when it left (hard stop or drain timeout)
    AGENT_REFUSING = "agent_refusing"  # an agent's phone refused a real call: out of routing
    AGENT_REROUTED = "agent_rerouted"  # an answered customer went to another agent inside the connect limit
    AGENT_LEG_LOST = "agent_leg_lost"  # an agent leg died under a customer (BYE at once, or silent)
    CALLER_ID_HIDDEN = "caller_id_hidden"  # (issue 24) a callee refused the call for want of caller ID (433)
    AGENT_BACK = "agent_back"  # a refusing agent's phone took a real call again (the probe): ready


class CampaignState(StrEnum):
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    # (issue 25) asked to stop: no new dials; calls ringing, talking and in wrap-up end by themselves, then the
    # runner exits (bounded by `[telephony] drain_s`; `stop_now` / a second SIGTERM hangs up what is left)
    DRAINING = "draining"


class BlockKind(StrEnum):
    DNC = "dnc"
    REFUSAL = "refusal"
    NO_CONSENT = "no_consent"
    ABANDON_LOCK = "abandon_lock"


class Command(StrEnum):
    """A manager's command to a running campaign (`control_commands.command`)."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # drain: no new dials, every call in progress ends by itself (issue 25)
    STOP_NOW = "stop_now"  # hard stop: hang up what is still up (conversations included) and exit
    MODE = "mode"
    TARGET = "target"
    LISTEN = "listen"  # (issue 29) argument "MODE ATTEMPT_ID SIP_URI": a supervisor joins a live call


class ListenMode(StrEnum):
    """(issue 29) How a supervisor joins a live call on their own phone."""

    LISTEN = "listen"  # hears customer and agent, speaks to nobody
    WHISPER = "whisper"  # hears both; only the agent hears them (coaching)
    BARGE = "barge"  # three-way: both hear them


class AbandonWindow(StrEnum):
    HOUR = "1h"
    DAY_24H = "24h"
    DAYS_30 = "30d"
    DAY = "day"  # the calendar day in the campaign's time zone
    CAMPAIGN = "campaign"


class Regime(StrEnum):
    US = "us"  # abandoned / answered by a person
    UK = "uk"  # answering-machine false positives counted as abandons too
    # (issue 31) named regimes, each with its own window, ceiling and hour cap (pacing/regimes.py)
    US_TSR = "us_tsr"  # 3 % per campaign per 30 days, 16 CFR 310.4(b)(4)
    UK_OFCOM = "uk_ofcom"  # 3 % per call centre per 24 h (Ofcom)
    STRICT_HOUR = "strict_hour"  # 3 % in every rolling hour
    JP_CX = "jp_cx"  # Japan: 1 % aim, 2 % per local day, no rolling hour over 4 %


__all__ = [
    "BUSY_AGENT",
    "FINAL_ENTRY",
    "IN_FLIGHT_ATTEMPT",
    "LIVE_ATTEMPT",
    "MACHINE_OUTCOMES",
    "SALES",
    "AbandonWindow",
    "AgentState",
    "AttemptState",
    "BlockKind",
    "CallOutcome",
    "CampaignState",
    "Command",
    "Disposition",
    "DispositionSource",
    "EntryStatus",
    "ListenMode",
    "Mode",
    "Regime",
    "RunnerEvent",
]
