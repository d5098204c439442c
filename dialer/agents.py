"""Agents as the runner sees them: a cached board re-read from the store each tick, and the routing rule.

The states and the moves between them are `dialer.domain.agents`; the rows are `dialer.store.agents`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from dialer.domain.agents import BUSY
from dialer.domain.vocabulary import AgentState
from dialer.store import Engine
from dialer.store.agents import AgentView, StateLogger, move_agent, read_agents, sync_agents

if TYPE_CHECKING:
    from dialer.journal import StoreGuard


class AgentBoard:
    """The runner's copy of agent states, re-read from the store each tick so console changes show up."""

    def __init__(self, engine: Engine, campaign_id: int, logins: Iterable[str],
                 state_logger: StateLogger | None = None) -> None:
        self.engine = engine
        self.campaign_id = campaign_id
        self.logins = set(logins)
        self.state_logger = state_logger
        self.agents: dict[int, AgentView] = {}
        self.guard: StoreGuard | None = None  # (issue 25) while the store is away, moves are journalled

    def refresh(self) -> None:
        self.agents = read_agents(self.engine, self.logins)

    def set_state(self, agent_id: int, new: str, at: datetime, *, attempt_id: int | None = None,
                  force: bool = False) -> str:
        """Move an agent; returns the state actually entered (pending_state may redirect wrap-up's end)."""
        def move() -> str:
            return move_agent(self.engine, agent_id, new, at, campaign_id=self.campaign_id, attempt_id=attempt_id,
                              force=force, state_logger=self.state_logger)

        if self.guard is None:
            new = move()
        else:
            from dialer.journal import JournalOp

            new = self.guard.write(JournalOp.AGENT_STATE, {"agent_id": agent_id, "state": str(new), "at": at,
                                                           "attempt_id": attempt_id}, move, new)
        view = self.agents.get(agent_id)
        if view is not None:
            view.state, view.state_since, view.attempt_id = new, at, (attempt_id if new in BUSY else None)
            if new == AgentState.READY:
                view.ready_since = at
        return new

    def choose(self, segment: str) -> AgentView | None:
        """Longest-idle ready agent; one whose segments include this call's segment first, if any has them."""
        ready = [a for a in self.agents.values() if a.state == AgentState.READY]
        if not ready:
            return None
        matching = [a for a in ready if a.segments and segment in a.segments]
        generic = [a for a in ready if not a.segments]
        pool = matching or generic or ready
        return min(pool, key=lambda a: (a.ready_since or a.state_since, a.id))

    def standby(self, dialed_at: datetime, now: datetime, window_s: float,
                exclude: Collection[int] = ()) -> AgentView | None:
        """An agent who paused after this call was dialled (the pacer counted them), at most WINDOW_S ago;
        the earliest pause first (they have waited longest). Segments are not matched: it is this or an abandon."""
        pool = [a for a in self.agents.values()
                if a.state == AgentState.PAUSED and a.id not in exclude and a.state_since > dialed_at
                and (now - a.state_since).total_seconds() <= window_s]
        return min(pool, key=lambda a: (a.state_since, a.id)) if pool else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.agents.values():
            out[a.state] = out.get(a.state, 0) + 1
        return out


__all__ = ["BUSY", "AgentBoard", "AgentView", "sync_agents"]
