"""Preview mode's store side: the reservation an agent's console reads, and the commands it writes.

The reservation is an ordinary hopper lease whose owner is `dialer.domain.preview.owner(campaign, login)`;
the console never touches the entry itself: dial and skip are control commands the campaign's runner
applies (re-checking dialability, writing the attempt row, releasing the lease).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain import preview
from dialer.domain.vocabulary import EntryStatus
from dialer.store.campaigns import request_command
from dialer.store.models import Attempt, CallListEntry, CampaignEvent
from dialer.store.screen_pop import entry_pop_rows


def reservation(engine: Engine, login: str) -> tuple[str, int] | None:
    """(campaign, entry id) reserved for LOGIN now, or None."""
    with Session(engine) as s:
        rows = s.exec(select(CallListEntry.id, CallListEntry.lease_owner).where(
            CallListEntry.status == EntryStatus.LEASED.value,
            col(CallListEntry.lease_owner).startswith(preview.OWNER_PREFIX))).all()
    for eid, owner in rows:
        who = preview.parse_owner(owner or "")
        if who is not None and who[1] == login and eid is not None:
            return who[0], int(eid)
    return None


def reserved_pop(engine: Engine, login: str) -> dict[str, Any] | None:
    """The screen pop of the entry reserved for LOGIN (plain data), or None when nothing is reserved."""
    found = reservation(engine, login)
    if found is None:
        return None
    return entry_pop_rows(engine, found[1], found[0])


def request_dial(engine: Engine, campaign: str, login: str, entry_id: int) -> int:
    """Ask the campaign's runner to dial ENTRY for LOGIN (it re-checks everything first)."""
    return request_command(engine, campaign, preview.DIAL, preview.command_argument(entry_id, login), login)


def request_skip(engine: Engine, campaign: str, login: str, entry_id: int, reason: str = "") -> int:
    """Ask the runner to give ENTRY back to the hopper; REASON ("" for plain next) is recorded."""
    return request_command(engine, campaign, preview.SKIP, preview.command_argument(entry_id, login, reason),
                           login)


def release_all(engine: Engine, campaign: str, at: datetime) -> int:
    """Give back every entry reserved for an agent of CAMPAIGN (a runner starting after a crash: its
    reservations died with it, and the campaign has one runner at a time). Returns how many."""
    prefix = preview.owner(campaign, "")
    with Session(engine) as s:
        rows = list(s.exec(select(CallListEntry).where(CallListEntry.status == EntryStatus.LEASED.value,
                                                       col(CallListEntry.lease_owner).startswith(prefix))).all())
        for e in rows:
            e.status, e.lease_owner, e.lease_token, e.lease_expires_at, e.updated_at = (
                EntryStatus.PENDING.value, "", "", None, at)
            s.add(e)
        s.commit()
    return len(rows)


def last_result(engine: Engine, login: str, since: datetime) -> str | None:
    """What the runner did with LOGIN's latest dial/skip command given at or after SINCE (the text after
    'LOGIN: ' in its event), or None while it has not applied one."""
    head = f"{login}: "
    with Session(engine) as s:
        rows = s.exec(select(CampaignEvent).where(col(CampaignEvent.kind).in_((preview.DIAL, preview.SKIP)),
                                                  col(CampaignEvent.message).startswith(head),
                                                  CampaignEvent.at >= since)
                      .order_by(col(CampaignEvent.id).desc()).limit(1)).all()
    return rows[0].message[len(head):] if rows else None


def attempt_result(engine: Engine, attempt_id: int) -> dict[str, Any] | None:
    """Where a previewed dial is: what the console shows on the dialled customer's card until it ends (issue 27)."""
    with Session(engine) as s:
        a = s.get(Attempt, attempt_id)
        if a is None:
            return None
        return {"state": a.state, "outcome": a.outcome, "sip_status": a.sip_status, "dialed_at": a.dialed_at,
                "ringing_at": a.ringing_at, "answered_at": a.answered_at, "agent_connected_at": a.agent_connected_at,
                "ended_at": a.ended_at, "abandoned": a.abandoned}


__all__ = ["attempt_result", "release_all", "request_dial", "request_skip", "reservation", "reserved_pop", "last_result"]
