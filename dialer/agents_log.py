"""Agent state history: one row per stretch in a state, so occupancy can be computed after the fact.

Both writers of agent state (the console and the campaign runner) call `log_agent_state` inside the same
session that changes `agents.state`, BEFORE assigning the new state; the caller commits. That keeps the
history and the live row in one transaction, so a crash cannot leave them disagreeing.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from dialer.store.models import Agent, AgentStateLog


def log_agent_state(session: Session, agent: Agent, new_state: str, at: datetime, detail: str = "") -> None:
    """Close the agent's open stretch at `at` and open one in `new_state` (no commit; the caller commits).

    A repeated call with the state already open is a no-op, so callers need not check for changes.
    """
    if agent.id is None:
        session.add(agent)
        session.flush()
    assert agent.id is not None
    open_rows = session.exec(
        select(AgentStateLog).where(AgentStateLog.agent_id == agent.id, AgentStateLog.ended_at.is_(None))  # type: ignore[union-attr]
    ).all()
    for row in open_rows:
        if row.state == new_state and len(open_rows) == 1:
            return
        row.ended_at = max(at, row.started_at)
        session.add(row)
    session.add(AgentStateLog(agent_id=agent.id, state=new_state, campaign_id=agent.campaign_id, started_at=at,
                              detail=detail))
