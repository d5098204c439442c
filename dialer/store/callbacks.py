"""Callbacks as an agent's calendar reads them: the entries promised to one agent, in a time range.

A read model only: booking stays with the hopper (`entries.Hopper.set_callback`) and the disposition path, so
the rule about when a callback may be (calling hours, the centre's calendar) lives in `dialer.domain.callbacks`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.store.models import CallListEntry, Customer


def agent_callbacks(engine: Engine, login: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """LOGIN's callbacks due in [SINCE, UNTIL), earliest first (customer name, segment, status)."""
    with Session(engine) as s:
        rows = s.exec(select(CallListEntry, Customer.name)
                      .join(Customer, col(Customer.customer_id) == col(CallListEntry.customer_id), isouter=True)
                      .where(col(CallListEntry.callback_agent) == login,
                             col(CallListEntry.callback_at) >= since, col(CallListEntry.callback_at) < until)
                      .order_by(col(CallListEntry.callback_at))).all()
    out = []
    for e, name in rows:
        at = e.callback_at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        out.append({"entry_id": e.id, "at": at, "customer_id": e.customer_id, "name": name or e.customer_id,
                    "segment": e.segment, "status": e.status, "late": e.callback_late})
    return out
