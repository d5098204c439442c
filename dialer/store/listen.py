"""(issue 29) The calls a supervisor can join: connected (customer bridged to an agent), not ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from dialer.domain.vocabulary import AttemptState
from dialer.store.models import Agent, Attempt, Campaign, Customer


@dataclass(frozen=True)
class LiveCall:
    attempt_id: int
    campaign: str
    agent_login: str
    agent_name: str
    customer_id: str
    customer_name: str
    connected_at: datetime | None


def connected_calls(engine: Engine, limit: int = 200) -> list[LiveCall]:
    """Every call in progress with an agent on it, oldest first (the store's view: every node's calls)."""
    q = (select(col(Attempt.id), col(Campaign.name), col(Agent.login), col(Agent.name), col(Attempt.customer_id),
                col(Customer.name), col(Attempt.agent_connected_at))
         .join(Campaign, col(Campaign.id) == col(Attempt.campaign_id))
         .join(Agent, col(Agent.id) == col(Attempt.agent_id))
         .join(Customer, col(Customer.customer_id) == col(Attempt.customer_id), isouter=True)
         .where(col(Attempt.state) == AttemptState.CONNECTED.value, col(Attempt.ended_at).is_(None))
         .order_by(col(Attempt.agent_connected_at), col(Attempt.id)).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [LiveCall(int(r[0] or 0), r[1], r[2], r[3] or "", r[4], r[5] or "",
                     r[6].replace(tzinfo=UTC) if r[6] is not None and r[6].tzinfo is None else r[6]) for r in rows]


def connected_call(engine: Engine, attempt_id: int) -> LiveCall | None:
    """The call ATTEMPT_ID if it is in progress with an agent on it, else None."""
    return next((c for c in connected_calls(engine, limit=10_000) if c.attempt_id == attempt_id), None)
