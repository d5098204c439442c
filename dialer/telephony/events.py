"""What workers report about calls, and how SIP final statuses become attempt outcomes.

Events are plain data (picklable, no pjsua2 objects) so they cross process boundaries and outlive the calls.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """What a `CallEvent` reports (a str, so `ev.kind == "answered"` keeps working)."""

    TRYING = "trying"
    RINGING = "ringing"
    ANSWERED = "answered"
    MACHINE = "machine"  # answered by a machine (AMD verdict); "answered" is not sent for it
    AGENT_CONNECTED = "agent_connected"
    AGENT_FAILED = "agent_failed"
    ABANDONED = "abandoned"
    FAILED = "failed"
    HANGUP = "hangup"
    DTMF = "dtmf"
    REFER_REFUSED = "refer_refused"
    AGENT_REACHABLE = "agent_reachable"  # an OPTIONS check got an answer (attempt_id None)
    AGENT_UNREACHABLE = "agent_unreachable"  # no answer, 404, 410, 480 or 604 (attempt_id None)
    WORKER_DOWN = "worker_down"
    TRUNK_DOWN = "trunk_down"
    TRUNK_UP = "trunk_up"
    AGENT_LEG_UP = "agent_leg_up"  # nailed mode: the agent's session leg is up (agent_id)
    AGENT_LEG_DOWN = "agent_leg_down"  # nailed mode: it is down (not answered, dropped, logged out)
    # (issue 25) the agent's leg died under a bridged customer (a BYE at once, or no RTP): the customer is up,
    # unbridged, with a fresh connect limit for another agent (agent_id = the lost agent, detail = why)
    AGENT_LOST = "agent_lost"
    # (issue 29) a supervisor's phone on a live call (dialer.telephony.listen): detail = mode and who; on _mode and
    # _left, stats = the max conference levels per leg over the stretch that ended ({"customer": {"in", "out"}, ...})
    SUPERVISOR_JOINED = "supervisor_joined"
    SUPERVISOR_MODE = "supervisor_mode"
    SUPERVISOR_LEFT = "supervisor_left"
    SUPERVISOR_FAILED = "supervisor_failed"  # not joined: the call is not in progress here, or the phone did not answer


class Outcome(StrEnum):
    """How an unanswered attempt ended (answered ones end with `hangup`)."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    INVALID = "invalid"
    REJECTED = "rejected"
    CONGESTION = "congestion"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REDIRECTED = "redirected"  # 3xx: never followed (the target was not checked against DNC or hours)
    TRUNK_ERROR = "trunk_error"  # the trunk's own fault (credentials refused): NOT an attempt on the contact
    # (issue 24) the network announced instead of the callee: in early media then no answer / 480 / a timeout,
    # or a 200 OK that played a recording ("fake answer"). Never a person, never an abandon.
    UNREACHABLE = "unreachable"
    ANONYMOUS_REJECTED = "anonymous_rejected"  # 433 (or 403 after an announcement): the callee refuses 非通知
    FAILED_CODEC = "failed_codec"  # 200 OK with a codec we did not offer: ACKed, then BYE


@dataclass
class CallEvent:
    kind: str  # an EventKind value
    attempt_id: int | None = None
    at: float = field(default_factory=time.time)
    sip_status: int | None = None
    outcome: str | None = None  # an Outcome value
    by: str | None = None
    agent_id: int | None = None
    digit: str | None = None
    leg: str | None = None
    worker: str = ""
    detail: str = ""
    recording_path: str | None = None
    trunk: str | None = None
    # per-leg media figures on "hangup" ({"customer": {"rx": n, "tx": n, "loss": n}, "agent": {...}})
    stats: dict[str, Any] | None = None

    # why the call ended when the dialer ended it for a reason of its own (e.g. "rtp_timeout")
    cause: str | None = None
    # answering-machine detection on "answered" / "machine" (and "hangup" if the callee hung up while it
    # listened): {"verdict", "decided_after_s", "reason", "features", "action", "frames"}
    amd: dict[str, Any] | None = None
    retry_after_s: float | None = None  # a 503's Retry-After (the supervisor rests the trunk that long)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BY_STATUS: dict[int, str] = {
    486: "busy", 600: "busy",
    408: "no_answer", 480: "no_answer", 487: "cancelled",
    404: "invalid", 484: "invalid", 604: "invalid", 410: "invalid", 414: "invalid", 416: "invalid",
    603: "rejected", 403: "rejected",
    433: "anonymous_rejected",
    503: "congestion", 500: "congestion", 502: "congestion", 504: "congestion",
}


def outcome_for_status(status: int | None, *, ring_timeout: bool = False, cancelled: bool = False) -> str:
    """Map the final SIP status of an unanswered call to an attempt outcome.

    Our own CANCEL comes back as 487: it is "no_answer" when the ring timer fired and "cancelled" when the
    campaign hung up first. No response at all (status 408 from the transaction timer, or a transport
    error reported as 0/5xx) is congestion: the carrier, not the callee, failed.
    """
    if ring_timeout:
        return "no_answer"
    if cancelled:
        return "cancelled"
    if status is None or status <= 0:
        return "congestion"
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 500 <= status < 600:
        return "congestion"
    if 600 <= status < 700:
        return "rejected"
    return "failed"
