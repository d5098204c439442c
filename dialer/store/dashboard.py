"""Read models for the monitor's dashboard (and the one write it makes: a manager's command).

Only what the campaign report does not already count: the hopper's level, recent attempts and agent state
stretches for the 15-minute panels, and the runner's liveness when a command is given.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.control import runner_live
from dialer.domain.vocabulary import EntryStatus
from dialer.store.models import (
    AgentStateLog,
    Attempt,
    CallListEntry,
    Campaign,
    CampaignStatus,
    ControlCommand,
)


def hopper_level(engine: Engine, segments: list[str], now: datetime) -> dict[str, int]:
    """Entries held by the runner (leased/dialling), due now, and waiting for a later retry time."""
    out = {"held": 0, "due": 0, "later": 0}
    with Session(engine) as s:
        q = select(CallListEntry.status, CallListEntry.next_attempt_at, func.count()).where(
            col(CallListEntry.status).in_(("pending", "leased", "dialing")))
        if segments:
            q = q.where(col(CallListEntry.segment).in_(segments))
        for status, nxt, n in s.exec(q.group_by(col(CallListEntry.status), col(CallListEntry.next_attempt_at))).all():
            if status in (EntryStatus.LEASED, EntryStatus.DIALING):
                out["held"] += n
            elif nxt is None or (nxt if nxt.tzinfo else nxt.replace(tzinfo=now.tzinfo)) <= now:
                out["due"] += n
            else:
                out["later"] += n
    return out


def attempts_since(engine: Engine, campaign_id: int, since: datetime) -> list[Attempt]:
    with Session(engine) as s:
        return list(s.exec(select(Attempt).where(Attempt.campaign_id == campaign_id,
                                                 Attempt.dialed_at >= since)).all())


def state_stretches(engine: Engine, since: datetime) -> list[AgentStateLog]:
    """Agent state stretches that overlap [since, now): occupancy by 15 minutes is counted from these."""
    with Session(engine) as s:
        return list(s.exec(select(AgentStateLog).where(or_(col(AgentStateLog.ended_at).is_(None),
                                                           col(AgentStateLog.ended_at) >= since))).all())


def live_runner(engine: Engine, name: str, now: datetime) -> tuple[bool, datetime | None]:
    """Whether a runner holds campaign NAME right now, and its last heartbeat."""
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
        if camp is None or camp.id is None:
            return False, None
        st = s.get(CampaignStatus, camp.id)
        if st is None:
            return False, None
        return runner_live(st.runner, st.heartbeat_at, camp.state, now), st.heartbeat_at


def add_command(engine: Engine, campaign: str, command: str, argument: str, by: str) -> int:
    with Session(engine) as s:
        row = ControlCommand(campaign=campaign, command=command, argument=argument, requested_by=by)
        s.add(row)
        s.commit()
        s.refresh(row)
        assert row.id is not None
        return row.id
