"""Preview mode's store side: the reservation an agent's console reads, and the commands it writes.

The reservation is an ordinary hopper lease whose owner is `dialer.domain.preview.owner(campaign, login)`;
the console never touches the entry itself: dial and skip are control commands the campaign's runner
applies (re-checking dialability, writing the attempt row, releasing the lease).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain import preview
from dialer.domain.vocabulary import EntryStatus
from dialer.store.campaigns import request_command
from dialer.store.models import CallListEntry, CampaignEvent
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


def skips(engine: Engine, campaign_id: int) -> list[str]:
    """The recorded skip events of a campaign (oldest first): 'entry N skipped by LOGIN: REASON'."""
    with Session(engine) as s:
        return [e.message for e in s.exec(select(CampaignEvent).where(
            CampaignEvent.campaign_id == campaign_id, CampaignEvent.kind == "preview_skip")
            .order_by(col(CampaignEvent.id))).all()]


__all__ = ["request_dial", "request_skip", "reservation", "reserved_pop", "skips"]
