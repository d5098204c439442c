"""Agent states and the moves between them: who may go where, and where wrap-up ends.

The console owns logged_out/ready/paused while the agent is idle; the runner owns
reserved/on_call/wrap_up/unavailable/unreachable (nailed-up agent legs: the agent's session leg is down or not
yet answered, see dialer.telephony.nailed; at-connect legs: the phone is not registered or does not answer
OPTIONS, back to ready when an OPTIONS check gets an answer). After wrap-up (or a reservation that never became a
call) the agent goes to what they asked for meanwhile (`pending_state`) or back to ready.

Standby: the pacer dials counting ready agents, so a pause takes the agent out of new dials at once, but an
answered call dialled before that pause, finding nobody ready, may still take them (dialer.agents.AgentBoard.standby;
bench/pacing/sim.py models the same rule). That is the only move out of `paused` the runner makes, and it sets
`pending_state` to paused, so the agent goes back to their pause (reason kept) when the call ends.
"""

from __future__ import annotations

from dialer.domain.vocabulary import BUSY_AGENT, AgentState

# the transitions the runner may make; anything else is a bug and is refused loudly
ALLOWED: dict[str, set[str]] = {
    AgentState.LOGGED_OUT: {AgentState.READY, AgentState.PAUSED},
    AgentState.READY: {AgentState.RESERVED, AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.UNAVAILABLE,
                       AgentState.UNREACHABLE, AgentState.REFUSING},
    AgentState.RESERVED: {AgentState.ON_CALL, AgentState.READY, AgentState.UNAVAILABLE, AgentState.UNREACHABLE,
                          AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.REFUSING},
    AgentState.ON_CALL: {AgentState.WRAP_UP},
    AgentState.WRAP_UP: {AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.UNREACHABLE},
    AgentState.PAUSED: {AgentState.READY, AgentState.LOGGED_OUT, AgentState.RESERVED},  # reserved: standby only
    AgentState.UNAVAILABLE: {AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.UNREACHABLE},
    AgentState.UNREACHABLE: {AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT},
    # (issue 25) a refusing phone comes back by the agent's own hand (console) or a call it took; never by OPTIONS
    AgentState.REFUSING: {AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT, AgentState.UNREACHABLE},
}
BUSY: frozenset[str] = frozenset(BUSY_AGENT)
IDLE: tuple[str, ...] = (AgentState.LOGGED_OUT, AgentState.READY, AgentState.PAUSED, AgentState.UNAVAILABLE,
                         AgentState.UNREACHABLE, AgentState.REFUSING)
PAUSE_REASONS = {"1": "break", "2": "lunch", "3": "meeting", "4": "training", "5": "admin", "6": "other"}


def next_state(current: str, requested: str, pending: str, *, force: bool = False) -> str:
    """The state actually entered when the runner asks for REQUESTED (pending_state may redirect wrap-up's end)."""
    if not force and requested not in ALLOWED.get(current, set()) and requested != current:
        raise ValueError(f"{current} -> {requested} is not a valid transition")
    if requested == AgentState.READY and current in (AgentState.WRAP_UP, AgentState.RESERVED) \
            and pending in (AgentState.PAUSED, AgentState.LOGGED_OUT):
        return pending
    return requested


def taken_by_another(current: str, current_attempt: int | None, attempt: int | None) -> bool:
    """Whether an agent in CURRENT (holding CURRENT_ATTEMPT) is already someone else's: reserved for, or on,
    another call. Two owners share the agents' rows (each campaign's runner and the inbound desk, issue 30); a
    runner acting on its last read of the board must not take over an agent the other has just claimed."""
    return (current in (AgentState.RESERVED, AgentState.ON_CALL) and current_attempt is not None
            and attempt is not None and current_attempt != attempt)


def pending_after(current: str, entered: str, pending: str) -> str:
    """pending_state once the agent moved from CURRENT to ENTERED: spent once idle; a paused agent taken off
    standby is due back in their pause."""
    if entered not in BUSY:
        return ""
    if current == AgentState.PAUSED and entered == AgentState.RESERVED:
        return AgentState.PAUSED.value
    return pending


__all__ = ["ALLOWED", "BUSY", "IDLE", "PAUSE_REASONS", "next_state", "pending_after", "taken_by_another"]
