"""Rows behind the campaign report's time series (by hour, by day × segment) for a period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.store.models import AgentStateLog, Attempt, Campaign, CampaignStatus, Disposition


@dataclass
class PeriodRows:
    campaign: Campaign
    attempts: list[Attempt]
    dispositions: list[Disposition]
    stretches: list[AgentStateLog]
    status: CampaignStatus | None = None  # the runner's heartbeat: up to when an open agent stretch counts


def period_rows(engine: Engine, name: str, lo: datetime | None, hi: datetime | None) -> PeriodRows | None:
    """Attempts dialled in [lo, hi), their campaign's dispositions and agent state stretches overlapping it."""
    with Session(engine, expire_on_commit=False) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
        if camp is None:
            return None
        q = select(Attempt).where(Attempt.campaign_id == camp.id)
        if lo is not None:
            q = q.where(Attempt.dialed_at >= lo)
        if hi is not None:
            q = q.where(Attempt.dialed_at < hi)
        attempts = list(s.exec(q.order_by(Attempt.id)).all())  # type: ignore[arg-type]
        dq = select(Disposition).where(Disposition.campaign_id == camp.id)
        disps = list(s.exec(dq).all())
        sq = select(AgentStateLog).where(or_(col(AgentStateLog.campaign_id) == camp.id,
                                             col(AgentStateLog.campaign_id).is_(None)))
        if lo is not None:
            sq = sq.where(or_(col(AgentStateLog.ended_at).is_(None), col(AgentStateLog.ended_at) >= lo))
        if hi is not None:
            sq = sq.where(AgentStateLog.started_at < hi)
        stretches = list(s.exec(sq).all())
        status = s.get(CampaignStatus, camp.id)
        s.expunge_all()
    return PeriodRows(camp, attempts, disps, stretches, status)
