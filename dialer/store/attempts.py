"""Attempts: one row per dial, written before the INVITE leaves so a crash can never lose or repeat it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.vocabulary import LIVE_ATTEMPT, AttemptState
from dialer.store.models import Attempt


def create_attempt(engine: Engine, **fields: Any) -> int:
    with Session(engine, expire_on_commit=False) as s:
        att = Attempt(**fields)
        s.add(att)
        s.commit()
        s.refresh(att)
        assert att.id is not None
        return att.id


def update_attempt(engine: Engine, attempt_id: int, **fields: Any) -> None:
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Attempt, attempt_id)
        if row is None:
            return
        for k, v in fields.items():
            setattr(row, k, v)
        s.add(row)
        s.commit()


def delete_attempt(engine: Engine, attempt_id: int) -> None:
    """Only for a dial whose INVITE never left (no free slot): it is not an attempt."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Attempt, attempt_id)
        if row is not None:
            s.delete(row)
            s.commit()


def interrupt_live(engine: Engine, campaign_id: int, at: datetime, why: str = "runner stopped mid-call") -> int:
    """Close what a previous runner left in flight as interrupted; returns how many."""
    n = 0
    with Session(engine, expire_on_commit=False) as s:
        rows = s.exec(select(Attempt).where(Attempt.campaign_id == campaign_id,
                                            col(Attempt.state).in_(list(LIVE_ATTEMPT)))).all()
        for a in rows:
            a.state = AttemptState.INTERRUPTED.value
            a.outcome = a.outcome or "interrupted"
            a.ended_at = a.ended_at or at
            a.detail = (a.detail + " " + why).strip()
            s.add(a)
            n += 1
        s.commit()
    return n


def entry_of(engine: Engine, attempt_id: int | None) -> int | None:
    if attempt_id is None:
        return None
    with Session(engine) as s:
        att = s.get(Attempt, attempt_id)
        return att.entry_id if att else None


def campaign_attempts(engine: Engine, campaign_id: int | None, since: datetime | None = None) -> list[Attempt]:
    with Session(engine, expire_on_commit=False) as s:
        q = select(Attempt).where(Attempt.campaign_id == campaign_id)
        if since is not None:
            q = q.where(col(Attempt.dialed_at) >= since)
        return list(s.exec(q.order_by(col(Attempt.id))).all())


def all_attempts(engine: Engine) -> list[Attempt]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(Attempt).order_by(col(Attempt.dialed_at))).all())


def attempts_in_dial_order_at(url: str) -> list[Attempt]:
    """Every attempt of the store at `url` by id (the row is written before the INVITE leaves), read with a
    private engine that is disposed afterwards: for tools that read another run's store (demo --compare)."""
    from sqlalchemy import create_engine

    eng = create_engine(url)
    try:
        with Session(eng, expire_on_commit=False) as s:
            return list(s.exec(select(Attempt).order_by(col(Attempt.id))).all())
    finally:
        eng.dispose()


__all__ = ["all_attempts", "attempts_in_dial_order_at", "campaign_attempts", "create_attempt", "delete_attempt", "entry_of", "interrupt_live",
           "update_attempt"]


def attempt_agent_login(engine: Engine, attempt_id: int) -> str | None:
    """The login of the agent an attempt was connected (or offered) to, or None: whose call it is."""
    from dialer.store.models import Agent

    with Session(engine) as s:
        row = s.exec(select(Agent.login).join(Attempt, col(Attempt.agent_id) == col(Agent.id))
                     .where(col(Attempt.id) == attempt_id)).first()
    return row


def attempt_belongs_to(engine: Engine, attempt_id: int, login: str) -> bool:
    """Is ATTEMPT_ID this agent's call: connected to them, or the call the runner is handing them right now
    (their current attempt, before the attempt row names its agent)?"""
    from dialer.store.models import Agent

    with Session(engine) as s:
        agent = s.exec(select(Agent).where(col(Agent.login) == login)).first()
        if agent is None:
            return False
        if agent.current_attempt_id == attempt_id:
            return True
        att = s.get(Attempt, attempt_id)
        return att is not None and att.agent_id is not None and att.agent_id == agent.id
