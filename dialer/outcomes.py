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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx

from dialer.config import OutcomesConfig
from dialer.store import Engine
from dialer.store.outbox import (
    due_items,
    enqueue_missing,
    next_due,
    payloads_since,
    pending_count,
    revive_dead,
)
from lists.csvsafe import SafeDictWriter

FIELDS = ["outcome_id", "disposition_id", "recorded_at", "recorded_at_local", "campaign", "customer_id",
          "attempt_id", "agent", "segment", "outcome", "amount", "sku", "reason_code", "reason", "voc_text",
          "callback_at", "source", "group", "direction", "answers_attempt_id"]


def export_csv(engine: Engine, since: datetime, out: IO[str], tz: str = "Asia/Tokyo") -> int:
    """Write every disposition recorded at or after `since` as CSV; returns the row count."""
    w = SafeDictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    n = 0
    for row in payloads_since(engine, since, tz):
        w.writerow(row)
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
    with due_items(engine, now, cfg.batch_size) as (due, save):
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
            save(item)
    return res


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


__all__ = ["FIELDS", "PushResult", "enqueue_missing", "export_csv", "push", "push_once", "revive_dead",
           "write_csv_file"]
