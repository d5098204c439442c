"""(issue 29) Recordings: find them (customer, agent, date, outcome), and forget them after the retention.

A recording is the WAV an attempt's `recording_path` names (written by the worker that held the call). The
outcome searched is the agent's disposition when there is one, else the call's own outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from dialer.store.models import Agent, Attempt, Campaign, Customer, Disposition


@dataclass(frozen=True)
class RecordingRow:
    attempt_id: int
    path: str
    dialed_at: datetime
    campaign: str
    customer_id: str
    customer_name: str
    agent_login: str
    outcome: str  # the disposition's, else the call's


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def search(engine: Engine, *, customer: str = "", agent: str = "", since: datetime | None = None,
           until: datetime | None = None, outcome: str = "", limit: int = 200) -> list[RecordingRow]:
    """Newest first. `customer` matches the id or a part of the name (漢字 or カナ); `agent` is a login."""
    q = (select(col(Attempt.id), col(Attempt.recording_path), col(Attempt.dialed_at), col(Campaign.name),
                col(Attempt.customer_id), col(Customer.name), col(Agent.login), col(Attempt.outcome),
                col(Disposition.outcome))
         .join(Campaign, col(Campaign.id) == col(Attempt.campaign_id), isouter=True)
         .join(Agent, col(Agent.id) == col(Attempt.agent_id), isouter=True)
         .join(Customer, col(Customer.customer_id) == col(Attempt.customer_id), isouter=True)
         .join(Disposition, col(Disposition.attempt_id) == col(Attempt.id), isouter=True)
         .where(col(Attempt.recording_path) != ""))
    if customer:
        like = f"%{customer}%"
        q = q.where(or_(col(Attempt.customer_id) == customer, col(Customer.name).like(like),
                        col(Customer.name_kana).like(like)))
    if agent:
        q = q.where(col(Agent.login) == agent)
    if since is not None:
        q = q.where(col(Attempt.dialed_at) >= since)
    if until is not None:
        q = q.where(col(Attempt.dialed_at) < until)
    if outcome:
        q = q.where(or_(col(Disposition.outcome) == outcome,
                        (col(Disposition.outcome).is_(None)) & (col(Attempt.outcome) == outcome)))
    q = q.order_by(col(Attempt.dialed_at).desc(), col(Attempt.id).desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [RecordingRow(int(r[0] or 0), r[1], _utc(r[2]), r[3] or "", r[4], r[5] or "", r[6] or "", r[8] or r[7])
            for r in rows]


def recording_of(engine: Engine, attempt_id: int) -> RecordingRow | None:
    with engine.connect() as conn:
        r = conn.execute(select(col(Attempt.recording_path), col(Attempt.dialed_at), col(Attempt.customer_id),
                                col(Attempt.outcome)).where(col(Attempt.id) == attempt_id)).first()
    if r is None or not r[0]:
        return None
    return RecordingRow(attempt_id, r[0], _utc(r[1]), "", r[2], "", "", r[3])


def expired(engine: Engine, before: datetime, limit: int = 10_000) -> list[tuple[int, str]]:
    """Attempts dialled before BEFORE that still name a recording: (id, path), oldest first."""
    q = (select(col(Attempt.id), col(Attempt.recording_path))
         .where(col(Attempt.recording_path) != "", col(Attempt.dialed_at) < before)
         .order_by(col(Attempt.dialed_at)).limit(limit))
    with engine.connect() as conn:
        return [(int(r[0] or 0), r[1]) for r in conn.execute(q).all()]


def clear_paths(engine: Engine, attempt_ids: list[int]) -> int:
    """The files are gone: the attempts no longer name them (a search never offers a missing file)."""
    if not attempt_ids:
        return 0
    with engine.begin() as conn:
        res = conn.execute(update(Attempt).where(col(Attempt.id).in_(attempt_ids)).values(recording_path=""))
        return int(res.rowcount or 0)
