"""Closing agent state stretches when a runner stops or finds that its predecessor crashed (issue 27).

An open stretch (`agent_state_log.ended_at` empty) says "still in this state". After a runner stops nobody
routes calls to the agents, so their time on the campaign ends there; after a crash it ended, as far as
anyone can know, at the dead runner's last heartbeat. The next runner opens their state again when it starts. Left open, a stretch was counted into the future by
one figure and cut at the last call by another (dialer.domain.agent_time counts them now).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.entry import aware
from dialer.domain.vocabulary import AgentState
from dialer.store.models import Agent, AgentStateLog, CampaignStatus


def last_heartbeat(engine: Engine, campaign_id: int) -> tuple[str, datetime | None]:
    """The runner that last held the campaign and its last heartbeat (read before a new runner claims it)."""
    with Session(engine) as s:
        st = s.get(CampaignStatus, campaign_id)
        if st is None:
            return "", None
        return st.runner, aware(st.heartbeat_at)


def close_at_stop(engine: Engine, campaign_id: int, logins: Iterable[str], at: datetime) -> list[str]:
    """A stopping runner ends the open stretch of the agents it worked with (LOGINS on this campaign or on none)
    at AT: nobody routes calls to them any more, so it is not logged-in time. Their state (ready, paused) is left
    as the agent set it; the next runner opens a stretch for it when it starts (`reopen_stretches`). Agents
    working another campaign are left alone. Returns the logins whose stretch was closed."""
    out = []
    with Session(engine) as s:
        agents = {a.id: a.login for a in s.exec(select(Agent).where(
            col(Agent.login).in_(list(logins)),
            col(Agent.campaign_id).is_(None) | (col(Agent.campaign_id) == campaign_id))).all() if a.id is not None}
        rows = s.exec(select(AgentStateLog).where(col(AgentStateLog.agent_id).in_(list(agents)),
                                                  col(AgentStateLog.ended_at).is_(None))).all()
        for row in rows:
            if row.state == AgentState.LOGGED_OUT or row.campaign_id not in (None, campaign_id):
                continue
            row.ended_at = max(at, aware(row.started_at))
            s.add(row)
            out.append(agents[row.agent_id])
        s.commit()
    return out


def close_after_crash(engine: Engine, campaign_id: int, logins: Iterable[str], beat: datetime, now: datetime) -> int:
    """Stretches a crashed runner left open (started before its last heartbeat BEAT) end at BEAT: what the agent
    did after that nobody knows, and the outage is not logged-in time. A stretch the console opened after BEAT
    is left as is. `reopen_stretches` then opens the agent's state again from NOW. Returns how many closed."""
    if beat >= now:
        return 0
    closed = 0
    with Session(engine) as s:
        ids = {i for i in s.exec(select(Agent.id).where(col(Agent.login).in_(list(logins)))).all() if i is not None}
        rows = s.exec(select(AgentStateLog).where(col(AgentStateLog.agent_id).in_(ids),
                                                  col(AgentStateLog.ended_at).is_(None))).all()
        for row in rows:
            if row.state == AgentState.LOGGED_OUT or aware(row.started_at) >= beat:
                continue
            if row.campaign_id not in (None, campaign_id):
                continue
            row.ended_at = beat
            s.add(row)
            closed += 1
        s.commit()
    return closed


def reopen_stretches(engine: Engine, campaign_id: int, logins: Iterable[str], now: datetime) -> int:
    """A starting runner opens a stretch at NOW for each of its agents who is logged in but has none open (closed
    at the last stop or crash), so this run's time is counted. Returns how many it opened."""
    opened = 0
    with Session(engine) as s:
        for a in s.exec(select(Agent).where(col(Agent.login).in_(list(logins)),
                                            col(Agent.state) != AgentState.LOGGED_OUT.value)).all():
            if a.id is None or a.campaign_id not in (None, campaign_id):
                continue
            if s.exec(select(AgentStateLog.id).where(AgentStateLog.agent_id == a.id,
                                                     col(AgentStateLog.ended_at).is_(None))).first() is not None:
                continue
            s.add(AgentStateLog(agent_id=a.id, state=a.state, campaign_id=campaign_id, started_at=now,
                                detail=a.pause_reason))
            opened += 1
        s.commit()
    return opened


__all__ = ["close_after_crash", "close_at_stop", "last_heartbeat", "reopen_stretches"]
