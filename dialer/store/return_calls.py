"""What the outbound pacer needs to know of return calls (issue 30), read from the store.

Why here: every SQL lives in dialer/store. The rule (how many return calls to expect, how many agents to keep for
them) is `pacing.inbound`; the runner (`dialer/runner/return_calls.py`) feeds it these facts:

- `unanswered_calls`: the campaign's outbound calls left unanswered since a time (the customer saw a missed call:
  no answer, busy, a machine, or an abandoned call), each with whether a return call has answered it since. Their
  ages are what `pacing.inbound` turns into expected return calls; all of them (returned or not) measure the rate.
- `desk_now`: the return callers queued at the desk now (answered, no agent yet, not ended, within the queue's
  maximum wait) and the agents the desk holds (reserved for or on a return call: their current attempt is inbound).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, or_, select

from dialer.domain.inbound import Direction
from dialer.domain.vocabulary import CallOutcome
from dialer.store.inbound import held_by_desks
from dialer.store.models import Attempt

# a missed call shows on the customer's phone: what may come back as a return call
UNANSWERED = (CallOutcome.NO_ANSWER.value, CallOutcome.BUSY.value, CallOutcome.MACHINE.value,
              CallOutcome.MACHINE_MESSAGE_LEFT.value, CallOutcome.CANCELLED.value)


@dataclass(frozen=True)
class Unanswered:
    dialed_at: datetime
    returned: bool  # a return call has answered it already


def unanswered_calls(engine: Engine, campaign_id: int, since: datetime) -> list[Unanswered]:
    """The campaign's outbound calls dialled since SINCE that the customer did not answer (or that were abandoned),
    oldest first, each with whether a return call has come for it."""
    inbound = aliased(Attempt)
    came_back = exists().where(col(inbound.answers_attempt_id) == col(Attempt.id),
                               col(inbound.direction) == Direction.INBOUND.value)
    with Session(engine) as s:
        rows = s.exec(select(Attempt.dialed_at, came_back).where(
            col(Attempt.campaign_id) == campaign_id, col(Attempt.direction) == Direction.OUTBOUND.value,
            col(Attempt.dialed_at) >= since,
            or_(col(Attempt.outcome).in_(UNANSWERED), col(Attempt.abandoned).is_(True)))
            .order_by(col(Attempt.dialed_at))).all()
    return [Unanswered(d, bool(r)) for d, r in rows]


@dataclass(frozen=True)
class DeskNow:
    queued: int  # return callers waiting for an agent
    on_return: frozenset[int]  # agent ids the desk holds (reserved for, or on, a return call)


def desk_now(engine: Engine, agent_ids: Collection[int], now: datetime, max_wait_s: float) -> DeskNow:
    """Callers queued at the inbound desk (answered within MAX_WAIT_S, no agent, not ended: after the maximum wait
    they are in the menu, no longer waiting for an agent), and which of AGENT_IDS the desk holds."""
    with Session(engine) as s:
        queued = int(s.exec(select(func.count()).select_from(Attempt).where(
            col(Attempt.direction) == Direction.INBOUND.value, col(Attempt.answered_at).is_not(None),
            col(Attempt.answered_at) >= now - timedelta(seconds=max_wait_s), col(Attempt.agent_id).is_(None),
            col(Attempt.ended_at).is_(None))).one())
    return DeskNow(queued, frozenset(a for a, _desk in held_by_desks(engine, agent_ids)))


__all__ = ["UNANSWERED", "DeskNow", "Unanswered", "desk_now", "unanswered_calls"]
