"""SMS payment links in the store: the balances the list build found, and the durable SMS outbox.

One `sms_messages` row per (campaign, call-list entry), unique, written in the same transaction that closes the
entry: a message can be queued once only, and a queued one survives any crash. Its `idempotency_key` never
changes, so a send whose acknowledgement was lost (gateway timeout, kill -9 between the POST and the commit)
is retried with the same key and the gateway drops the repeat: nothing sent twice, nothing lost.

A gateway that ignores the key must not text anyone twice either (issue 26), so a message is *claimed* before
it is posted: one conditional UPDATE moves it from `pending` to `sending` (one winner across processes and
hosts, SQLite or PostgreSQL) and records a claim token with an expiry in `sms_claims`; only the holder of the
token may record the answer. A failure after the request may have left (timeout, connection cut, 5xx), or a
claim that expired because its sender died, makes the message `unknown`: it is never re-posted blindly, only
after the gateway's status API says it never got it, or an operator says so (`dialer sms resolve`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint, and_, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from dialer.domain.vocabulary import EntryStatus
from dialer.store.models import CallListEntry, Customer, utcnow

ET = CallListEntry.__table__  # type: ignore[attr-defined]
CT = Customer.__table__  # type: ignore[attr-defined]


class SmsStatus(StrEnum):
    """Where one message is. `sending` = claimed by one sender; `unknown` = the gateway may or may not have it."""

    PENDING = "pending"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    BLOCKED = "blocked"
    DEAD = "dead"


OUTSTANDING = (SmsStatus.PENDING, SmsStatus.SENDING, SmsStatus.UNKNOWN)


class UnpaidBalance(SQLModel, table=True):
    """A customer's small outstanding balance as of the last build that listed it (lists.unpaid)."""

    __tablename__ = "unpaid_balances"
    customer_id: str = Field(primary_key=True)
    order_ids: str = ""  # ;-separated
    amount: float = 0.0
    since: date | None = None
    build_date: date | None = None


class SmsMessage(SQLModel, table=True):
    """One payment-link SMS: pending -> sending -> sent -> delivered | failed (receipt); or unknown (an ambiguous
    failure, resolved to sent or back to pending), blocked, dead. Never deleted."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        UniqueConstraint("campaign", "entry_id", name="uq_sms_campaign_entry"),
        Index("ix_sms_status_next", "status", "next_try_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(index=True)
    entry_id: int
    customer_id: str = Field(index=True)
    phone_e164: str
    text: str
    amount: float = 0.0
    order_ids: str = ""
    idempotency_key: str = Field(unique=True)
    status: str = Field(default=SmsStatus.PENDING.value, index=True)  # SmsStatus
    tries: int = 0
    next_try_at: datetime = Field(default_factory=utcnow)
    last_error: str = ""
    provider_id: str = ""
    receipt_status: str = ""
    receipt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class SmsClaim(SQLModel, table=True):
    """Who is posting a message right now: the token only its sender knows, and when the claim lapses."""

    __tablename__ = "sms_claims"
    message_id: int = Field(primary_key=True)
    token: str
    owner: str = ""
    claimed_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(default_factory=utcnow)


UT = UnpaidBalance.__table__  # type: ignore[attr-defined]
MT = SmsMessage.__table__  # type: ignore[attr-defined]
KT = SmsClaim.__table__  # type: ignore[attr-defined]


def _aware(dt: datetime | None) -> datetime | None:
    return None if dt is None else (dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def record_unpaid(engine: Engine, rows: Sequence[tuple[str, str, float, date | None]], build_date: date) -> int:
    """Upsert the balances of tonight's listed unpaid entries (older rows stay for the audit)."""
    if not rows:
        return 0
    ins = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    values = [{"customer_id": c, "order_ids": o, "amount": a, "since": s, "build_date": build_date}
              for c, o, a, s in rows]
    stmt = ins(UT)
    stmt = stmt.on_conflict_do_update(index_elements=["customer_id"],
                                      set_={k: getattr(stmt.excluded, k) for k in ("order_ids", "amount", "since",
                                                                                  "build_date")})
    with engine.begin() as conn:
        conn.execute(stmt, values)
    return len(values)


@dataclass(frozen=True)
class Recipient:
    """What the template needs about one leased unpaid entry."""

    entry_id: int
    customer_id: str
    name: str
    phones: list[str]
    amount: float
    order_ids: str


def recipients(engine: Engine, entry_ids: Sequence[int]) -> list[Recipient]:
    """Entries joined with their balance and customer name; entries without a recorded balance are left out."""
    if not entry_ids:
        return []
    q = (select(ET.c.id, ET.c.customer_id, ET.c.phones, UT.c.amount, UT.c.order_ids, CT.c.name)
         .join(UT, UT.c.customer_id == ET.c.customer_id).outerjoin(CT, CT.c.customer_id == ET.c.customer_id)
         .where(ET.c.id.in_(list(entry_ids))).order_by(ET.c.id))
    with engine.connect() as conn:
        return [Recipient(int(r[0]), r[1], r[5] or "", list(r[2] or []), float(r[3]), r[4] or "")
                for r in conn.execute(q).all()]


def queue_message(engine: Engine, campaign: str, r: Recipient, phone: str, text: str, key: str,
                  lease_token: str, now: datetime) -> bool:
    """Queue one message and close its entry in one transaction; False if it was queued before or the lease was lost."""
    ins = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    with engine.begin() as conn:
        closed = conn.execute(update(ET).where(ET.c.id == r.entry_id, ET.c.lease_token == lease_token,
                                               ET.c.status == EntryStatus.LEASED)
                              .values(status="done", status_reason="sms queued", last_outcome="sms_queued",
                                      lease_owner="", lease_expires_at=None, updated_at=now))
        if closed.rowcount != 1:
            return False
        res = conn.execute(ins(MT).values(
            campaign=campaign, entry_id=r.entry_id, customer_id=r.customer_id, phone_e164=phone, text=text,
            amount=r.amount, order_ids=r.order_ids, idempotency_key=key, status=SmsStatus.PENDING.value, tries=0,
            next_try_at=now, last_error="", provider_id="", receipt_status="", created_at=now,
        ).on_conflict_do_nothing().returning(MT.c.id))
        return res.first() is not None  # (rowcount is -1 for this statement on PostgreSQL)


def park_entry(engine: Engine, entry_id: int, lease_token: str, status: str, why: str, now: datetime) -> None:
    """A leased entry that will not get a message (no mobile number, no balance): closed with the reason."""
    with engine.begin() as conn:
        conn.execute(update(ET).where(ET.c.id == entry_id, ET.c.lease_token == lease_token)
                     .values(status=status, status_reason=why, lease_owner="", lease_expires_at=None, updated_at=now))


@dataclass(frozen=True)
class Due:
    id: int
    entry_id: int
    customer_id: str
    phone_e164: str
    text: str
    idempotency_key: str
    tries: int


def due_messages(engine: Engine, campaign: str, now: datetime, limit: int) -> list[Due]:
    """Candidates only: a message is the caller's once `claim` says so."""
    with engine.connect() as conn:
        rows = conn.execute(select(MT.c.id, MT.c.entry_id, MT.c.customer_id, MT.c.phone_e164, MT.c.text,
                                   MT.c.idempotency_key, MT.c.tries)
                            .where(MT.c.campaign == campaign, MT.c.status == SmsStatus.PENDING,
                                   MT.c.next_try_at <= now)
                            .order_by(MT.c.id).limit(limit)).all()
    return [Due(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], int(r[6])) for r in rows]


def claim(engine: Engine, message_id: int, owner: str, now: datetime, expires_at: datetime) -> str | None:
    """Make this sender the only one that may post the message: the token, or None if another sender has it.

    One conditional UPDATE (`pending` and due -> `sending`) decides: SQLite serialises writers, PostgreSQL
    re-checks the WHERE after waiting for the row lock, so exactly one of any number of senders wins.
    """
    token = uuid.uuid4().hex
    ins = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    with engine.begin() as conn:
        won = conn.execute(update(MT).where(MT.c.id == message_id, MT.c.status == SmsStatus.PENDING,
                                            MT.c.next_try_at <= now)
                           .values(status=SmsStatus.SENDING.value, tries=MT.c.tries + 1))
        if won.rowcount != 1:
            return None
        stmt = ins(KT).values(message_id=message_id, token=token, owner=owner, claimed_at=now, expires_at=expires_at)
        conn.execute(stmt.on_conflict_do_update(index_elements=["message_id"], set_={
            "token": token, "owner": owner, "claimed_at": now, "expires_at": expires_at}))
    return token


def settle(engine: Engine, message_id: int, token: str, **values: object) -> bool:
    """Record what became of a claimed send; only the claim's holder can (a late answer after the claim lapsed
    into `unknown` still counts). False when the token is no longer the message's claim."""
    with engine.begin() as conn:
        r = conn.execute(update(MT).where(
            MT.c.id == message_id, MT.c.status.in_((SmsStatus.SENDING, SmsStatus.UNKNOWN)),
            exists().where(and_(KT.c.message_id == message_id, KT.c.token == token))).values(**values))
    return bool(r.rowcount == 1)


def expire_claims(engine: Engine, campaign: str, now: datetime) -> int:
    """Claims whose sender vanished (killed, host lost) while posting: the gateway may have the message."""
    with engine.begin() as conn:
        r = conn.execute(update(MT).where(
            MT.c.campaign == campaign, MT.c.status == SmsStatus.SENDING,
            exists().where(and_(KT.c.message_id == MT.c.id, KT.c.expires_at < now)))
            .values(status=SmsStatus.UNKNOWN.value,
                    last_error="the sender stopped while posting it (claim expired): the gateway may have it"))
    return int(r.rowcount or 0)


@dataclass(frozen=True)
class Unknown:
    id: int
    customer_id: str
    phone_e164: str
    idempotency_key: str
    tries: int
    last_error: str


def unknown_messages(engine: Engine, campaign: str, ids: Sequence[int] | None = None) -> list[Unknown]:
    cond = [MT.c.campaign == campaign, MT.c.status == SmsStatus.UNKNOWN]
    if ids is not None:
        cond.append(MT.c.id.in_(list(ids)))
    with engine.connect() as conn:
        rows = conn.execute(select(MT.c.id, MT.c.customer_id, MT.c.phone_e164, MT.c.idempotency_key, MT.c.tries,
                                   MT.c.last_error).where(*cond).order_by(MT.c.id)).all()
    return [Unknown(int(r[0]), r[1], r[2], r[3], int(r[4]), r[5] or "") for r in rows]


def resolve(engine: Engine, message_id: int, sent: bool, now: datetime, why: str, provider_id: str = "") -> bool:
    """An `unknown` message settled by the gateway's status API or an operator: it was sent (never post it
    again), or it never arrived (pending: it may go). False when it was not `unknown` any more."""
    values: dict[str, object] = (
        {"status": SmsStatus.SENT.value, "sent_at": now, "last_error": why[:500], "provider_id": provider_id}
        if sent else {"status": SmsStatus.PENDING.value, "next_try_at": now, "last_error": why[:500]})
    with engine.begin() as conn:
        r = conn.execute(update(MT).where(MT.c.id == message_id, MT.c.status == SmsStatus.UNKNOWN).values(**values))
        if r.rowcount == 1 and not sent:
            conn.execute(KT.delete().where(KT.c.message_id == message_id))  # a late answer can no longer settle it
    return bool(r.rowcount == 1)


def mark(engine: Engine, message_id: int, **values: object) -> None:
    """Write one message's new state (committed at once: a crash never forgets a send already made)."""
    with engine.begin() as conn:
        conn.execute(update(MT).where(MT.c.id == message_id).values(**values))


def awaiting_receipt(engine: Engine, campaign: str, limit: int = 500) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(MT.c.id, MT.c.provider_id).where(
            MT.c.campaign == campaign, MT.c.status == SmsStatus.SENT, MT.c.provider_id != "").order_by(MT.c.id)
            .limit(limit)).all()
    return [(int(r[0]), str(r[1])) for r in rows]


def next_due(engine: Engine, campaign: str) -> datetime | None:
    with engine.connect() as conn:
        v = conn.execute(select(func.min(MT.c.next_try_at)).where(MT.c.campaign == campaign,
                                                                   MT.c.status == SmsStatus.PENDING)).scalar()
    return _aware(v)


def next_claim_expiry(engine: Engine, campaign: str) -> datetime | None:
    """When the earliest claim of a message still `sending` lapses (a dead sender's message becomes unknown)."""
    with engine.connect() as conn:
        v = conn.execute(select(func.min(KT.c.expires_at)).join(MT, MT.c.id == KT.c.message_id).where(
            MT.c.campaign == campaign, MT.c.status == SmsStatus.SENDING)).scalar()
    return _aware(v)


def counts(engine: Engine, campaign: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(
            select(MT.c.status, func.count()).where(MT.c.campaign == campaign).group_by(MT.c.status)).all()}


def messages(engine: Engine, campaign: str) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(MT).where(MT.c.campaign == campaign)
                                                       .order_by(MT.c.id)).all()]
