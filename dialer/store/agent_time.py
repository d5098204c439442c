"""Closing agent state stretches when a runner stops or finds that its predecessor crashed (issue 27).

An open stretch (`agent_state_log.ended_at` empty) says "still in this state". After a runner stops nobody
routes calls to the agents, so their time on the campaign ends there; after a crash it ended, as far as
anyone can know, at the dead runner's last heartbeat. Left open, a stretch was counted into the future by
one figure and cut at the last call by another (dialer.domain.agent_time counts them now).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.entry import aware
from dialer.domain.vocabulary import AgentState
from dialer.store.agents import StateLogger, move_agent
from dialer.store.models import Agent, AgentStateLog, CampaignStatus


def last_heartbeat(engine: Engine, campaign_id: int) -> tuple[str, datetime | None]:
    """The runner that last held the campaign and its last heartbeat (read before a new runner claims it)."""
    with Session(engine) as s:
        st = s.get(CampaignStatus, campaign_id)
        if st is None:
            return "", None
        return st.runner, aware(st.heartbeat_at)


def log_out_campaign_agents(engine: Engine, campaign_id: int, logins: Iterable[str], at: datetime,
                            state_logger: StateLogger | None) -> list[str]:
    """A stopping runner logs out the agents it worked with (LOGINS on this campaign or on none), so their open
    stretch ends at AT. Agents working another campaign are left alone. Returns the logins logged out."""
    with Session(engine) as s:
        rows = s.exec(select(Agent.id, Agent.login).where(
            col(Agent.login).in_(list(logins)), col(Agent.state) != AgentState.LOGGED_OUT.value,
            col(Agent.campaign_id).is_(None) | (col(Agent.campaign_id) == campaign_id))).all()
    out = []
    for agent_id, login in rows:
        if agent_id is None:
            continue
        move_agent(engine, agent_id, AgentState.LOGGED_OUT, at, campaign_id=None, force=True, state_logger=state_logger)
        out.append(login)
    return out


def close_after_crash(engine: Engine, campaign_id: int, logins: Iterable[str], beat: datetime, now: datetime) -> int:
    """Stretches a crashed runner left open (started before its last heartbeat BEAT): closed at BEAT, the gap
    until NOW written as logged_out (nobody was routing calls), and the same state reopened at NOW so the
    recovering runner moves the agent on from there. A stretch the console opened after BEAT is left as is.
    Returns how many stretches were closed."""
    if beat >= now:
        return 0
    closed = 0
    with Session(engine) as s:
        ids = {i for i in s.exec(select(Agent.id).where(col(Agent.login).in_(list(logins)))).all() if i is not None}
        rows = s.exec(select(AgentStateLog).where(col(AgentStateLog.agent_id).in_(ids),
                                                  col(AgentStateLog.ended_at).is_(None))).all()
        for row in rows:
            started = aware(row.started_at)
            if row.state == AgentState.LOGGED_OUT or started >= beat:
                continue
            if row.campaign_id not in (None, campaign_id):
                continue
            row.ended_at = beat
            s.add(row)
            s.add(AgentStateLog(agent_id=row.agent_id, state=AgentState.LOGGED_OUT.value, campaign_id=row.campaign_id,
                                started_at=beat, ended_at=now, detail="runner down"))
            s.add(AgentStateLog(agent_id=row.agent_id, state=row.state, campaign_id=row.campaign_id, started_at=now,
                                detail=row.detail))
            closed += 1
        s.commit()
    return closed


__all__ = ["close_after_crash", "last_heartbeat", "log_out_campaign_agents"]
