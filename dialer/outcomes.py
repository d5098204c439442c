"""Outcomes back to the CRM: a durable outbox, a CSV export, and a webhook push with retries.

Every disposition gets one outbox row (unique per disposition) in the same store, so an outcome recorded
while the CRM is down waits there instead of being lost. The push POSTs one outcome per request with an
`Idempotency-Key` header that never changes for that outcome: a delivery whose acknowledgement was lost is
retried with the same key and the CRM drops the repeat. Failures back off exponentially per row.

CSV / JSON fields (one row or object per outcome), documented in the README:
outcome_id, disposition_id, recorded_at, recorded_at_local, campaign, customer_id, attempt_id, agent,
segment, outcome, amount, sku, reason_code, reason, voc_text, callback_at, source, group (hold-out group:
treatment | control | "" when none was recorded; dialer.store.holdout).
"""

from __future__ import annotations

import csv
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from dialer.config import OutcomesConfig
from dialer.dtmf import REFUSAL_REASONS
from dialer.store.holdout import group_for
from dialer.store.models import Agent, Attempt, Campaign, Disposition, OutboxItem

FIELDS = ["outcome_id", "disposition_id", "recorded_at", "recorded_at_local", "campaign", "customer_id",
          "attempt_id", "agent", "segment", "outcome", "amount", "sku", "reason_code", "reason", "voc_text",
          "callback_at", "source", "group"]
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
        "reason": REFUSAL_REASONS.get(d.reason_code, "") if d.outcome == "refused" else "",
        "voc_text": d.voc_text, "callback_at": _iso(d.callback_at), "source": d.source,
        "group": group_for(session.connection(), d.customer_id, att.segment) if att else "",
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


def enqueue_missing(engine: Engine) -> int:
    """Queue every disposition not yet in the outbox (so delivery never depends on the runner calling us)."""
    added = 0
    with Session(engine) as s:
        queued = select(OutboxItem.disposition_id)
        rows = s.exec(select(Disposition).where(Disposition.id.not_in(queued))  # type: ignore[union-attr]
                      .order_by(Disposition.id)).all()
        for d in rows:
            if enqueue_outcome(s, d) is not None:
                added += 1
        try:
            s.commit()
        except IntegrityError:  # another process queued the same rows meanwhile: theirs stand
            s.rollback()
            return 0
    return added


def export_csv(engine: Engine, since: datetime, out: IO[str], tz: str = "Asia/Tokyo") -> int:
    """Write every disposition recorded at or after `since` as CSV; returns the row count."""
    w = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    n = 0
    with Session(engine) as s:
        rows = s.exec(select(Disposition).where(Disposition.created_at >= since).order_by(Disposition.id)).all()
        for d in rows:
            w.writerow(outcome_payload(s, d, tz))
            n += 1
    return n


@dataclass
class PushResult:
    queued: int = 0
    delivered: int = 0
    failed_tries: int = 0
    dead: int = 0
    pending: int = 0
    errors: list[str] = field(default_factory=list)


def _backoff(cfg: OutcomesConfig, tries: int) -> float:
    return float(min(cfg.retry_max_s, cfg.retry_base_s * (2 ** max(0, tries - 1))))


def push_once(engine: Engine, cfg: OutcomesConfig, client: httpx.Client, now: datetime | None = None,
              result: PushResult | None = None) -> PushResult:
    """One pass: POST each due outbox row (up to batch_size); mark delivered, or schedule the next try."""
    res = result or PushResult()
    now = now or datetime.now(UTC)
    headers = {"Content-Type": "application/json"}
    token = cfg.token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    with Session(engine) as s:
        due = s.exec(select(OutboxItem).where(OutboxItem.status == "pending", OutboxItem.next_try_at <= now)
                     .order_by(OutboxItem.id).limit(cfg.batch_size)).all()
        down = False
        for item in due:
            if down:  # the CRM is unreachable: do not hammer it with the rest of the batch
                break
            item.tries += 1
            error = ""
            permanent = False
            try:
                r = client.post(cfg.webhook_url, json=item.payload,
                                headers={**headers, "Idempotency-Key": item.idempotency_key})
                if 200 <= r.status_code < 300 or r.status_code == 409:  # 409: CRM already has this key
                    item.status, item.delivered_at, item.last_error = "delivered", datetime.now(UTC), ""
                    res.delivered += 1
                else:
                    error = f"HTTP {r.status_code}: {r.text[:200]}"
                    permanent = 400 <= r.status_code < 500 and r.status_code not in (408, 425, 429)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                down = True
            if error:
                res.failed_tries += 1
                item.last_error = error[:500]
                if permanent:
                    item.status = "dead"  # kept, never deleted: `dialer outcomes push --retry-dead` revives it
                    res.dead += 1
                else:
                    item.next_try_at = now + timedelta(seconds=_backoff(cfg, item.tries))
                if error not in res.errors:
                    res.errors.append(error)
            s.add(item)
            s.commit()  # one row at a time: a crash mid-batch never forgets a delivery already made
    return res


def pending_count(engine: Engine) -> int:
    with Session(engine) as s:
        return len(s.exec(select(OutboxItem.id).where(OutboxItem.status == "pending")).all())


def next_due(engine: Engine) -> datetime | None:
    with Session(engine) as s:
        row = s.exec(select(OutboxItem.next_try_at).where(OutboxItem.status == "pending")
                     .order_by(OutboxItem.next_try_at)).first()
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


def push(engine: Engine, cfg: OutcomesConfig, *, duration_s: float = 0.0,
         transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep,
         on_pass: Callable[[PushResult], None] | None = None) -> PushResult:
    """Queue what is missing, then drain the outbox; with duration_s > 0 keep retrying until it is empty
    or the time is up (bounded: never loops without sleeping until the next row is due)."""
    res = PushResult()
    res.queued = enqueue_missing(engine)
    deadline = time.monotonic() + max(0.0, duration_s)
    with httpx.Client(timeout=cfg.timeout_s, transport=transport) as client:
        while True:
            before = res.delivered + res.failed_tries
            push_once(engine, cfg, client, result=res)
            if on_pass is not None:
                on_pass(res)
            res.pending = pending_count(engine)
            if res.pending == 0:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            nd = next_due(engine)
            if res.delivered + res.failed_tries > before and nd is not None and nd <= datetime.now(UTC):
                continue  # more rows due now (batch limit reached): go straight on
            wait = (nd - datetime.now(UTC)).total_seconds() if nd else remaining
            sleep(min(max(0.02, wait), remaining))
            res.queued += enqueue_missing(engine)
    return res


def write_csv_file(engine: Engine, since: datetime, path: Path, tz: str = "Asia/Tokyo") -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        return export_csv(engine, since, fh, tz)
