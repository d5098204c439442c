"""What customers said no to, read for the VOC report (dialer.voc): refusals recorded by agents and
subscription cancellations from the CRM mirror; and the VOC summary's way back to the CRM (the outbox)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from dialer.store.models import Attempt, CallListEntry, Campaign, Disposition, OutboxItem, Subscription

DT = Disposition.__table__  # type: ignore[attr-defined]
AT = Attempt.__table__  # type: ignore[attr-defined]
ET = CallListEntry.__table__  # type: ignore[attr-defined]
CT = Campaign.__table__  # type: ignore[attr-defined]
ST = Subscription.__table__  # type: ignore[attr-defined]
OT = OutboxItem.__table__  # type: ignore[attr-defined]
REFUSALS = ("refused", "no_interest")


@dataclass(frozen=True)
class Voice:
    """One "no": a refusal on a call or a cancelled subscription."""

    kind: str  # refusal | cancellation
    at: datetime | date
    campaign: str
    segment: str
    product: str
    reason_code: str
    text: str
    customer_id: str


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def refusals(engine: Engine, campaign: str | None, start: datetime | None, end: datetime | None) -> list[Voice]:
    cond = [DT.c.outcome.in_(REFUSALS)]
    if campaign:
        cond.append(CT.c.name == campaign)
    if start is not None:
        cond.append(DT.c.created_at >= start)
    if end is not None:
        cond.append(DT.c.created_at < end)
    q = (select(DT.c.created_at, CT.c.name, AT.c.segment, DT.c.sku, ET.c.sku, DT.c.outcome, DT.c.reason_code,
                DT.c.voc_text, DT.c.customer_id)
         .select_from(DT.outerjoin(AT, AT.c.id == DT.c.attempt_id).outerjoin(ET, ET.c.id == AT.c.entry_id)
                      .outerjoin(CT, CT.c.id == DT.c.campaign_id))
         .where(and_(*cond)).order_by(DT.c.id))
    out = []
    with engine.connect() as conn:
        for at, camp, seg, dsku, esku, outcome, code, text, cust in conn.execute(q).all():
            out.append(Voice("refusal", _aware(at), camp or "", seg or "", dsku or esku or "",
                             code or ("no_interest" if outcome == "no_interest" else ""), text or "", cust))
    return out


def cancellations(engine: Engine, start: date | None, end: date | None) -> list[Voice]:
    cond = [ST.c.status == "cancelled", ST.c.cancelled_at.is_not(None)]
    if start is not None:
        cond.append(ST.c.cancelled_at >= start)
    if end is not None:
        cond.append(ST.c.cancelled_at < end)
    with engine.connect() as conn:
        rows = conn.execute(select(ST.c.cancelled_at, ST.c.sku, ST.c.cancel_reason, ST.c.customer_id)
                            .where(and_(*cond)).order_by(ST.c.subscription_id)).all()
    return [Voice("cancellation", r[0], "", "subscription", r[1] or "", "", r[2] or "", r[3]) for r in rows]


def enqueue_summary(engine: Engine, key: str, payload: dict[str, Any]) -> bool:
    """Queue a VOC summary for the CRM webhook in the existing outbox (False if this summary was queued before).

    The outbox is keyed by disposition; a summary is not one, so it takes a negative `disposition_id` derived
    from its key (real dispositions are positive): delivery, retries and idempotency are the outbox's own.
    """
    pseudo = -(zlib.crc32(key.encode()) & 0x7FFFFFFF) - 1  # fits a 32-bit INTEGER column (PostgreSQL)
    try:
        with engine.begin() as conn:
            if conn.execute(select(OT.c.id).where(OT.c.idempotency_key == key)).first() is not None:
                return False
            conn.execute(OT.insert().values(disposition_id=pseudo, idempotency_key=key, payload=payload,
                                            status="pending", tries=0, next_try_at=datetime.now(UTC),
                                            last_error="", created_at=datetime.now(UTC)))
    except IntegrityError:
        return False
    return True
