"""What workers report about calls, and how SIP final statuses become attempt outcomes.

Events are plain data (picklable, no pjsua2 objects) so they cross process boundaries and outlive the calls.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from dialer.domain.vocabulary import CallOutcome


class EventKind(StrEnum):
    """What a `CallEvent` reports (a StrEnum: it pickles and serialises as the same string as before)."""

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
    INCOMING = "incoming"  # an INVITE the dialer did not place (the switchboard keeps it unowned; inbound is later)


# (issue 28) one outcome enum: the attempt row's (dialer.domain.vocabulary.CallOutcome); this name stays for callers
Outcome = CallOutcome

__all__ = ["CallEvent", "CallOutcome", "EventKind", "Outcome", "outcome_for_status"]


@dataclass
class CallEvent:
    kind: EventKind
    attempt_id: int | None = None
    at: float = field(default_factory=time.time)
    sip_status: int | None = None
    outcome: CallOutcome | None = None
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

    def __post_init__(self) -> None:
        """A kind or outcome given as its string (a test, a dict read back) becomes the member; an unknown one is
        a programming error and fails here, where it was made, not in a consumer's comparison."""
        self.kind = EventKind(self.kind)
        if self.outcome is not None:
            self.outcome = CallOutcome(self.outcome)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BY_STATUS: dict[int, CallOutcome] = {
    486: CallOutcome.BUSY, 600: CallOutcome.BUSY,
    408: CallOutcome.NO_ANSWER, 480: CallOutcome.NO_ANSWER, 487: CallOutcome.CANCELLED,
    404: CallOutcome.INVALID, 484: CallOutcome.INVALID, 604: CallOutcome.INVALID, 410: CallOutcome.INVALID,
    414: CallOutcome.INVALID, 416: CallOutcome.INVALID,
    603: CallOutcome.REJECTED, 403: CallOutcome.REJECTED,
    433: CallOutcome.ANONYMOUS_REJECTED,
    503: CallOutcome.CONGESTION, 500: CallOutcome.CONGESTION, 502: CallOutcome.CONGESTION,
    504: CallOutcome.CONGESTION,
}


def outcome_for_status(status: int | None, *, ring_timeout: bool = False, cancelled: bool = False) -> CallOutcome:
    """Map the final SIP status of an unanswered call to an attempt outcome.

    Our own CANCEL comes back as 487: it is "no_answer" when the ring timer fired and "cancelled" when the
    campaign hung up first. No response at all (status 408 from the transaction timer, or a transport
    error reported as 0/5xx) is congestion: the carrier, not the callee, failed.
    """
    if ring_timeout:
        return CallOutcome.NO_ANSWER
    if cancelled:
        return CallOutcome.CANCELLED
    if status is None or status <= 0:
        return CallOutcome.CONGESTION
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 500 <= status < 600:
        return CallOutcome.CONGESTION
    if 600 <= status < 700:
        return CallOutcome.REJECTED
    return CallOutcome.FAILED
