"""Typed messages between the supervisor and its worker processes, and the worker's call states.

Why typed: the two sides live in different processes and are changed by different people; a dataclass per
message makes a renamed field a `mypy` error instead of a KeyError in a worker nobody watches. Messages are
pickled over a `multiprocessing.connection.Connection`, so they hold plain data only (no pjsua2 objects).
Each side dispatches by message type through a table (`type(msg) -> handler`), never a chain of ifs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from dialer.telephony.amdtap import AmdOrder
from dialer.telephony.events import CallEvent
from dialer.telephony.rawsip import Early


class CallState(StrEnum):
    """Where one attempt stands inside a worker (customer leg first, then the agent leg)."""

    PLACING = "placing"
    """Accepted by the worker; the INVITE has not left yet (a slot is still held by a finishing transaction,
    `PJ_ETOOMANY`): retried from the loop for up to 5 s, then reported `failed`."""
    CALLING = "calling"
    """INVITE sent to the trunk, no final response yet (trying / ringing / early media)."""
    ANSWERED = "answered"
    """The customer answered (200 OK, ACK sent); the connect limit runs while an agent leg is being placed."""
    CONNECTED = "connected"
    """An agent leg is CONFIRMED and bridged to the customer through the worker's conference bridge."""
    ABANDONING = "abandoning"
    """No agent within the connect limit: the information message plays to the customer, then we hang up."""
    ENDING = "ending"
    """One side hung up (or the dialer did): the other leg is being released; `hangup` is sent when both
    legs are gone."""
    ZOMBIE = "zombie"
    """Already reported to the supervisor as `failed` (a silent trunk: no response at all before the ring
    timeout, so no CANCEL is possible), but pjsip still holds the INVITE transaction until Timer B (32 s).
    The leg keeps its call slot (counted as lingering) and is dropped at its DISCONNECTED; no further events."""


# ---------------------------------------------------------------------------------------------- set-up
@dataclass(frozen=True)
class TrunkSpec:
    """What a worker needs to know about one trunk (secrets included: this never leaves the host)."""

    name: str
    proxy: str
    transport: str = "udp"
    username: str = ""
    auth_username: str = ""
    password: str = ""
    registration: bool = False
    register_here: bool = False  # only one worker per host registers each trunk
    registrar: str = ""
    caller_id: str = ""
    from_user: str = ""
    from_domain: str = ""
    outbound_proxy: str = ""
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")
    session_expires_s: int = 600
    identity_header: str = "pai"  # (issue 24) pai | ppi | none: the presented number in P-Asserted/Preferred-Identity
    display_name: str = ""  # shown with the number in From (and the identity header)


@dataclass(frozen=True)
class AgentLegSpec:
    """The account agent legs are placed from (a PBX may want credentials and an outbound proxy)."""

    username: str = ""
    password: str = ""
    outbound_proxy: str = ""


@dataclass(frozen=True)
class WorkerSpec:
    """Sent once, first thing on a fresh worker's socket."""

    name: str
    sip_port: int
    rtp_port: int
    rtp_range: int
    bind: str
    public: str
    clock_rate: int
    trunk_retry_s: float
    trunks: tuple[TrunkSpec, ...]
    agent_leg: AgentLegSpec = field(default_factory=AgentLegSpec)
    log_level: int = 0
    log_file: str = ""
    max_calls: int = 512
    rtp_timeout_s: float = 20.0


# ---------------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Originate:
    attempt_id: int
    uri: str
    trunk: str
    ring_timeout_s: float
    connect_limit_s: float
    info_wav: str | None = None
    record_path: str | None = None
    amd: AmdOrder | None = None  # answering-machine detection for this call (None = every answer is a person)
    from_user: str = ""  # per-campaign caller ID (the From user part at the trunk's from_domain); "" = trunk's
    display_name: str = ""  # per-campaign display name with the caller ID; "" = the trunk's
    notice_wav: str | None = None  # (issue 29) the spoken recording notice played when the agent is bridged


@dataclass(frozen=True)
class ConnectAgent:
    attempt_id: int
    agent_id: int
    uri: str
    # (issue 25) hand the customer back (another agent, a fresh connect limit) when the agent's leg dies under
    # them: a BYE within rescue_s of the bridge, or no RTP from the agent for silence_s while bridged (0 = off)
    rescue_s: float = 0.0
    silence_s: float = 0.0


@dataclass(frozen=True)
class Hangup:
    attempt_id: int


@dataclass(frozen=True)
class AgentTone:
    """(issue 25) Play DIGITS (RFC 2833 tones) to the agent of a call: e.g. a keyed callback time was moved."""

    attempt_id: int
    digits: str


@dataclass(frozen=True)
class Listen:
    """(issue 29) A supervisor joins a live call on their own phone (dialer.telephony.listen): `mode` is a
    ListenMode value (listen: hears both, speaks to nobody; whisper: only the agent hears them; barge: three-way).
    Sent again for a call already joined, it changes the mode on the same leg."""

    attempt_id: int
    uri: str
    mode: str
    by: str = ""  # the user's login, echoed in the worker's supervisor_* events


@dataclass(frozen=True)
class Register:
    trunk: str


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class AgentLogin:
    """Nailed-up agent legs (dialer.telephony.nailed): call the agent now and keep the call up."""

    agent_id: int
    uri: str


@dataclass(frozen=True)
class AgentLogout:
    agent_id: int


Command = Originate | ConnectAgent | Hangup | Register | Stop | AgentLogin | AgentLogout | AgentTone | Listen


# ---------------------------------------------------------------------------------------------- reports
@dataclass(frozen=True)
class Ready:
    capacity: int
    rtp_range: int
    pid: int


@dataclass(frozen=True)
class Fatal:
    """The worker could not start; `status` is pjlib's status code (e.g. address in use)."""

    error: str
    status: int | None = None


@dataclass(frozen=True)
class WorkerError:
    """An exception caught at a SWIG callback boundary (it would abort the process if it escaped)."""

    where: str
    error: str


@dataclass(frozen=True)
class Event:
    event: CallEvent


@dataclass(frozen=True)
class Slots:
    used: int  # pjsua's own count of busy call slots (includes finishing transactions)
    live: int  # legs the worker still holds


@dataclass(frozen=True)
class RegState:
    trunk: str
    ok: bool
    code: int
    reason: str
    expiration: int


@dataclass(frozen=True)
class Dialog:
    """A confirmed dialog, as the far end knows it: enough for the supervisor to send a BYE if the worker
    dies (RFC 3261 12.2.1.1: Request-URI = remote target, Route = route set, same Call-ID and tags)."""

    attempt_id: int
    leg: str  # customer | agent
    call_id: str
    local_uri: str  # our From, with our tag
    remote_uri: str  # their To, with their tag
    remote_target: str  # the Contact URI of the 200 OK
    route_set: tuple[str, ...]  # Record-Route of the 200 OK, reversed (UAC)
    cseq: int  # the INVITE's CSeq; a BYE uses a higher one
    transport: str
    trunk: str | None  # whose credentials answer a challenge (None for an agent leg: the agent account's)


@dataclass(frozen=True)
class DialogGone:
    attempt_id: int
    leg: str


@dataclass(frozen=True)
class Stopped:
    pass


@dataclass(frozen=True)
class EarlyDialog:
    """(issue 24) A customer INVITE that got a provisional answer: if the worker dies while it rings, the
    supervisor CANCELs it (and ends a 200 that crosses the CANCEL with ACK + BYE)."""

    early: Early


Report = Ready | Fatal | WorkerError | Event | Slots | RegState | Dialog | DialogGone | EarlyDialog | Stopped
