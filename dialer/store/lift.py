"""What a campaign's calls cost and produced, read for the lift report (dialer.lift): attempts, talk time,
agent time, and sales recorded by agents per customer; and the last lift computed, for the report and monitor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from dialer.store.holdout import group_counts
from dialer.store.models import AgentStateLog, Attempt, Campaign, Disposition
from dialer.store.sms import MT as SMS_T
from dialer.store.sms import SmsStatus

AT = Attempt.__table__  # type: ignore[attr-defined]
CT = Campaign.__table__  # type: ignore[attr-defined]
LT = AgentStateLog.__table__  # type: ignore[attr-defined]
DT = Disposition.__table__  # type: ignore[attr-defined]
WORKING = ("ready", "reserved", "on_call", "wrap_up")  # paid agent time (not paused, not logged out)


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=UTC))


@dataclass
class CallTotals:
    """Per segment: attempts, connected talk seconds, and the campaign's agent seconds."""

    attempts: dict[str, int] = field(default_factory=dict)
    connected: dict[str, int] = field(default_factory=dict)
    line_seconds: dict[str, float] = field(default_factory=dict)  # answered -> ended: what the carrier bills
    agent_talk_seconds: dict[str, float] = field(default_factory=dict)  # agent connected -> ended
    agent_seconds: float = 0.0  # logged working time of the campaign's agents (all segments)
    called_customers: dict[str, set[str]] = field(default_factory=dict)


def campaign_id(engine: Engine, name: str) -> int | None:
    with engine.connect() as conn:
        v = conn.execute(select(CT.c.id).where(CT.c.name == name)).scalar()
    return int(v) if v is not None else None


def call_totals(engine: Engine, campaign: str, now: datetime) -> CallTotals:
    t = CallTotals()
    cid = campaign_id(engine, campaign)
    if cid is None:
        return t
    with engine.connect() as conn:
        rows = conn.execute(select(AT.c.customer_id, AT.c.segment, AT.c.answered_at, AT.c.agent_connected_at,
                                   AT.c.ended_at).where(AT.c.campaign_id == cid)).all()
        for cust, seg, ans, conn_at, end in rows:
            t.attempts[seg] = t.attempts.get(seg, 0) + 1
            t.called_customers.setdefault(seg, set()).add(cust)
            a, c, e = _aware(ans), _aware(conn_at), _aware(end)
            if a is not None and e is not None:
                t.line_seconds[seg] = t.line_seconds.get(seg, 0.0) + max(0.0, (e - a).total_seconds())
            if c is not None and e is not None:
                t.connected[seg] = t.connected.get(seg, 0) + 1
                t.agent_talk_seconds[seg] = t.agent_talk_seconds.get(seg, 0.0) + max(0.0, (e - c).total_seconds())
        for st, en in conn.execute(select(LT.c.started_at, LT.c.ended_at).where(LT.c.campaign_id == cid,
                                                                               LT.c.state.in_(WORKING))).all():
            s0, s1 = _aware(st), _aware(en) or now
            if s0 is not None:
                t.agent_seconds += max(0.0, (s1 - s0).total_seconds())
    return t


def sms_contacted(engine: Engine, campaign: str) -> set[str]:
    """Customers this campaign texted, or may have (a send in doubt counts: the hold-out check must not miss one)."""
    maybe = (SmsStatus.SENDING, SmsStatus.UNKNOWN, SmsStatus.SENT, SmsStatus.DELIVERED, SmsStatus.FAILED)
    with engine.connect() as conn:
        return {str(c) for c in conn.execute(select(SMS_T.c.customer_id).distinct().where(
            SMS_T.c.campaign == campaign, SMS_T.c.status.in_(maybe))).scalars().all()}


def contacted_since(engine: Engine, since: dict[str, date]) -> dict[str, str]:
    """customer -> how they were contacted (by any campaign: a call attempt, or an SMS sent or in doubt) on or
    after their date in SINCE (their hold-out assignment): a control customer here broke the hold-out."""
    out: dict[str, str] = {}
    cids = sorted(since)
    maybe = (SmsStatus.SENDING, SmsStatus.UNKNOWN, SmsStatus.SENT, SmsStatus.DELIVERED, SmsStatus.FAILED)
    with engine.connect() as conn:
        for i in range(0, len(cids), 500):
            chunk = cids[i:i + 500]
            for cid, at in conn.execute(select(AT.c.customer_id, AT.c.dialed_at).where(AT.c.customer_id.in_(chunk))):
                a = _aware(at)
                if a is not None and a.date() >= since[cid]:
                    out.setdefault(cid, "call")
            for cid, at in conn.execute(select(SMS_T.c.customer_id, func.coalesce(SMS_T.c.sent_at, SMS_T.c.created_at))
                                        .where(SMS_T.c.customer_id.in_(chunk), SMS_T.c.status.in_(maybe))):
                a = _aware(at)
                if a is not None and a.date() >= since[cid]:
                    out.setdefault(cid, "SMS")
    return out


def recorded_sales(engine: Engine, campaign: str) -> dict[str, float]:
    """customer -> amount of sale/upsell/cross_sell dispositions agents recorded in this campaign."""
    cid = campaign_id(engine, campaign)
    out: dict[str, float] = {}
    if cid is None:
        return out
    with engine.connect() as conn:
        for cust, amount in conn.execute(select(DT.c.customer_id, DT.c.amount).where(
                DT.c.campaign_id == cid, DT.c.outcome.in_(("sale", "upsell", "cross_sell")))).all():
            out[cust] = out.get(cust, 0.0) + float(amount or 0.0)
    return out


class LiftResult(SQLModel, table=True):
    """The last lift computed for a campaign (dialer report lift), so the report and monitor can show it."""

    __tablename__ = "lift_results"
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(index=True)
    period: str = ""
    computed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


RT = LiftResult.__table__  # type: ignore[attr-defined]


def save_lift(engine: Engine, campaign: str, period: str, summary: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(RT.insert().values(campaign=campaign, period=period, computed_at=datetime.now(UTC),
                                        summary=summary))


def latest_lift(engine: Engine, campaign: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(RT.c.period, RT.c.computed_at, RT.c.summary).where(RT.c.campaign == campaign)
                           .order_by(RT.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    at = _aware(row[1])
    return {"period": row[0], "computed_at": at.isoformat() if at else "", **dict(row[2] or {})}


def holdout_status(engine: Engine, campaign: str, segments: list[str]) -> dict[str, Any] | None:
    """Control-group sizes of the latest period and the last lift computed, or None without a hold-out."""
    groups = group_counts(engine, segments)
    lift = latest_lift(engine, campaign)
    if not groups and lift is None:
        return None
    return {"groups": groups, "lift": lift}
