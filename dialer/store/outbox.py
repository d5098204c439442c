"""The outbox and the dispositions it carries: every verdict is saved with its outbox row in one transaction.

Every disposition gets one outbox row (unique per disposition), so an outcome recorded while the CRM is
down waits here instead of being lost. `idempotency_key` never changes for an outcome (dialer.outcomes
sends it with every try).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from dialer.domain.dtmf import REFUSAL_REASONS
from dialer.domain.vocabulary import Disposition as DispositionWord
from dialer.domain.vocabulary import NetworkDisposition
from dialer.store.holdout import group_for
from dialer.store.models import Agent, Attempt, Campaign, Disposition, OutboxItem, utcnow


@dataclass(frozen=True)
class DispositionRecord:
    """A verdict as plain data: what the runner builds, journals and reads back (the table class stays here).

    The fields are the dispositions table's, so a journal written with the table's `model_dump` replays as one.
    """

    outcome: str  # a dialer.domain.vocabulary.Disposition value
    attempt_id: int | None = None
    agent_id: int | None = None
    customer_id: str = ""
    campaign_id: int | None = None
    amount: float = 0.0
    sku: str = ""
    reason_code: str = ""
    voc_text: str = ""
    callback_at: datetime | None = None
    source: str = "console"
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def fields(self) -> dict[str, Any]:
        """Every field but the id (what the journal keeps while the store is away)."""
        out = asdict(self)
        del out["id"]
        return out


def _record(d: Disposition) -> DispositionRecord:
    return DispositionRecord(**d.model_dump())


_NS = uuid.UUID("6f1d3c2e-5b7a-4c1e-9a43-7473756e6167")  # tsunagu's namespace for outcome ids


def _iso(dt: datetime | None) -> str:
    if dt is None:
        return ""
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def outcome_id(d: Disposition) -> str:
    """Stable per disposition (same store, same row): the idempotency key the CRM deduplicates on."""
    return str(uuid.uuid5(_NS, f"{d.id}|{_iso(d.created_at)}|{d.customer_id}"))


def outcome_payload(session: Session, d: Disposition, tz: str = "Asia/Tokyo") -> dict[str, Any]:
    camp = session.get(Campaign, d.campaign_id) if d.campaign_id is not None else None
    agent = session.get(Agent, d.agent_id) if d.agent_id is not None else None
    att = session.get(Attempt, d.attempt_id) if d.attempt_id is not None else None
    created = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=UTC)
    return {
        "outcome_id": outcome_id(d), "disposition_id": d.id, "recorded_at": _iso(created),
        "recorded_at_local": created.astimezone(ZoneInfo(tz)).isoformat(),
        "campaign": camp.name if camp else "", "customer_id": d.customer_id, "attempt_id": d.attempt_id,
        "agent": agent.login if agent else "", "segment": att.segment if att else "", "outcome": d.outcome,
        "amount": d.amount, "sku": d.sku, "reason_code": d.reason_code,
        "reason": REFUSAL_REASONS.get(d.reason_code, "") if d.outcome == DispositionWord.REFUSED else
        d.reason_code if d.outcome == NetworkDisposition.BAD_NUMBER else "",  # (issue 24) invalid | unreachable
        "voc_text": d.voc_text, "callback_at": _iso(d.callback_at), "source": d.source,
        "group": group_for(session.connection(), d.customer_id, att.segment) if att else "",
        # (issue 30) a return call's outcome says so, and which of our calls it answered
        "direction": att.direction if att else "", "answers_attempt_id": att.answers_attempt_id if att else None,
    }


def enqueue_outcome(session: Session, disposition: Disposition) -> OutboxItem | None:
    """Put a recorded disposition in the outbox (no commit; call it in the transaction that saved it).

    Idempotent: returns None when the disposition is already queued. The disposition must have an id
    (flush first if it is new).
    """
    if disposition.id is None:
        session.add(disposition)
        session.flush()
    assert disposition.id is not None
    existing = session.exec(select(OutboxItem).where(OutboxItem.disposition_id == disposition.id)).first()
    if existing is not None:
        return None
    item = OutboxItem(disposition_id=disposition.id, idempotency_key=outcome_id(disposition),
                      payload=outcome_payload(session, disposition))
    session.add(item)
    return item


def record_disposition(engine: Engine, verdict: DispositionRecord | Disposition) -> DispositionRecord:
    """Save a verdict and its outbox row together; returns the saved verdict (with its id)."""
    d = Disposition(**verdict.fields()) if isinstance(verdict, DispositionRecord) else verdict
    with Session(engine, expire_on_commit=False) as s:
        s.add(d)
        s.flush()
        enqueue_outcome(s, d)  # the CRM hears about it through the durable outbox
        s.commit()
        s.refresh(d)
    return _record(d)


def save_disposition(engine: Engine, fields: dict[str, Any]) -> int:
    """`record_disposition` from plain data (the service layer never builds ORM rows); returns the new id."""
    d = record_disposition(engine, Disposition(**fields))
    assert d.id is not None
    return d.id


def dispositions_after(engine: Engine, last_id: int) -> list[DispositionRecord]:
    with Session(engine, expire_on_commit=False) as s:
        return [_record(d) for d in s.exec(select(Disposition).where(col(Disposition.id) > last_id)
                                           .order_by(col(Disposition.id))).all()]


def last_disposition_id(engine: Engine) -> int:
    with Session(engine) as s:
        last = s.exec(select(Disposition.id).order_by(col(Disposition.id).desc())).first()
        return int(last or 0)


def campaign_dispositions(engine: Engine, campaign_id: int | None) -> list[Disposition]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(Disposition).where(Disposition.campaign_id == campaign_id)).all())


def dispositions_of(engine: Engine, outcomes: tuple[str, ...]) -> list[Disposition]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(Disposition).where(col(Disposition.outcome).in_(outcomes))
                           .order_by(col(Disposition.id))).all())


def count_dispositions(engine: Engine, campaign_id: int | None, since: datetime, outcomes: tuple[str, ...]) -> int:
    with Session(engine) as s:
        return len(s.exec(select(Disposition.id).where(
            Disposition.campaign_id == campaign_id, col(Disposition.created_at) >= since,
            col(Disposition.outcome).in_(outcomes))).all())


def enqueue_missing(engine: Engine) -> int:
    """Queue every disposition not yet in the outbox (so delivery never depends on the runner calling us)."""
    added = 0
    with Session(engine) as s:
        queued = select(OutboxItem.disposition_id)
        rows = s.exec(select(Disposition).where(col(Disposition.id).not_in(queued))
                      .order_by(col(Disposition.id))).all()
        for d in rows:
            if enqueue_outcome(s, d) is not None:
                added += 1
        try:
            s.commit()
        except IntegrityError:  # another process queued the same rows meanwhile: theirs stand
            s.rollback()
            return 0
    return added


def payloads_since(engine: Engine, since: datetime, tz: str = "Asia/Tokyo") -> Iterator[dict[str, Any]]:
    """Every disposition recorded at or after SINCE, as the CRM sees it (the CSV export's rows)."""
    with Session(engine) as s:
        rows = s.exec(select(Disposition).where(col(Disposition.created_at) >= since)
                      .order_by(col(Disposition.id))).all()
        for d in rows:
            yield outcome_payload(s, d, tz)


@contextmanager
def due_items(engine: Engine, now: datetime, limit: int) -> Iterator[tuple[list[OutboxItem], Any]]:
    """Due pending rows, and a `save(item)` that commits one row at a time (a crash mid-batch never forgets
    a delivery already made)."""
    with Session(engine) as s:
        due = list(s.exec(select(OutboxItem).where(OutboxItem.status == "pending", col(OutboxItem.next_try_at) <= now)
                          .order_by(col(OutboxItem.id)).limit(limit)).all())

        def save(item: OutboxItem) -> None:
            s.add(item)
            s.commit()

        yield due, save


def pending_count(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(OutboxItem.id).where(OutboxItem.status == "pending")).all())


def next_due(engine: Engine) -> datetime | None:
    with Session(engine) as s:
        row = s.exec(select(OutboxItem.next_try_at).where(OutboxItem.status == "pending")
                     .order_by(col(OutboxItem.next_try_at))).first()
    if row is None:
        return None
    return row if row.tzinfo else row.replace(tzinfo=UTC)


def revive_dead(engine: Engine) -> int:
    with Session(engine) as s:
        rows = s.exec(select(OutboxItem).where(OutboxItem.status == "dead")).all()
        for r in rows:
            r.status, r.next_try_at = "pending", datetime.now(UTC)
            s.add(r)
        s.commit()
        return len(rows)


__all__ = [
    "DispositionRecord",
    "campaign_dispositions",
    "count_dispositions",
    "dispositions_after",
    "dispositions_of",
    "due_items",
    "enqueue_missing",
    "enqueue_outcome",
    "last_disposition_id",
    "next_due",
    "outcome_id",
    "outcome_payload",
    "payloads_since",
    "pending_count",
    "record_disposition",
    "revive_dead",
]
