"""Agents as the runner sees them: a state machine persisted in the store, and the routing rule.

States: logged_out, ready, reserved (chosen for an answered call, leg being placed), on_call, wrap_up,
paused, unavailable (softphone did not answer), unreachable (nailed-up agent legs: the agent's session leg is
down or not yet answered, see dialer.telephony.nailed; at-connect legs: the phone is not registered or does not
answer OPTIONS, 404/480/no answer, back to ready when an OPTIONS check gets an answer). The console owns
logged_out/ready/paused while the agent
is idle; the runner owns reserved/on_call/wrap_up/unavailable. After wrap-up the agent goes to what they
asked for meanwhile (`pending_state`) or back to ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import AgentConfig
from dialer.store.models import Agent

# the transitions the runner may make; anything else is a bug and is refused loudly
ALLOWED: dict[str, set[str]] = {
    "logged_out": {"ready", "paused"},
    "ready": {"reserved", "paused", "logged_out", "unavailable", "unreachable"},
    "reserved": {"on_call", "ready", "unavailable", "unreachable", "paused", "logged_out"},
    "on_call": {"wrap_up"},
    "wrap_up": {"ready", "paused", "logged_out", "unreachable"},
    "paused": {"ready", "logged_out"},
    "unavailable": {"ready", "paused", "logged_out", "unreachable"},
    "unreachable": {"ready", "paused", "logged_out"},
}
BUSY = {"reserved", "on_call", "wrap_up"}

StateLogger = Callable[[Session, Agent, str, datetime], None]


@dataclass
class AgentView:
    id: int
    login: str
    sip_uri: str
    segments: list[str]
    state: str
    state_since: datetime
    ready_since: datetime | None
    attempt_id: int | None


def sync_agents(engine: Engine, agents: Iterable[AgentConfig]) -> None:
    """Make the store know every configured agent (URI and segments follow the config; state is kept)."""
    with Session(engine, expire_on_commit=False) as s:
        for a in agents:
            row = s.exec(select(Agent).where(Agent.login == a.login)).first()
            if row is None:
                row = Agent(login=a.login)
            row.name = a.name or row.name
            row.sip_uri = a.sip_uri
            row.segments = list(a.segments)
            s.add(row)
        s.commit()


class AgentBoard:
    """The runner's copy of agent states, re-read from the store each tick so console changes show up."""

    def __init__(self, engine: Engine, campaign_id: int, logins: Iterable[str],
                 state_logger: StateLogger | None = None) -> None:
        self.engine = engine
        self.campaign_id = campaign_id
        self.logins = set(logins)
        self.state_logger = state_logger
        self.agents: dict[int, AgentView] = {}

    def refresh(self) -> None:
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.exec(select(Agent).where(Agent.login.in_(self.logins))).all()  # type: ignore[attr-defined]
            self.agents = {
                r.id: AgentView(r.id, r.login, r.sip_uri, list(r.segments), r.state, r.state_since, r.ready_since,
                                r.current_attempt_id)
                for r in rows if r.id is not None
            }

    def set_state(self, agent_id: int, new: str, at: datetime, *, attempt_id: int | None = None,
                  force: bool = False) -> str:
        """Move an agent; returns the state actually entered (pending_state may redirect wrap-up's end)."""
        with Session(self.engine, expire_on_commit=False) as s:
            row = s.get(Agent, agent_id)
            if row is None:
                raise KeyError(agent_id)
            if not force and new not in ALLOWED.get(row.state, set()) and new != row.state:
                raise ValueError(f"agent {row.login}: {row.state} -> {new} is not a valid transition")
            if new == "ready" and row.state == "wrap_up" and row.pending_state in ("paused", "logged_out"):
                new = row.pending_state
            if new not in BUSY:
                row.pending_state = ""  # applied (or overtaken by the console's own change)
            row.campaign_id = self.campaign_id if new != "logged_out" else None
            if self.state_logger is not None:
                self.state_logger(s, row, new, at)
            row.state = new
            row.state_since = at
            if new == "ready":
                row.ready_since = at
            row.current_attempt_id = attempt_id if new in BUSY else None
            s.add(row)
            s.commit()
        view = self.agents.get(agent_id)
        if view is not None:
            view.state, view.state_since, view.attempt_id = new, at, (attempt_id if new in BUSY else None)
            if new == "ready":
                view.ready_since = at
        return new

    def choose(self, segment: str) -> AgentView | None:
        """Longest-idle ready agent; one whose segments include this call's segment first, if any has them."""
        ready = [a for a in self.agents.values() if a.state == "ready"]
        if not ready:
            return None
        matching = [a for a in ready if a.segments and segment in a.segments]
        generic = [a for a in ready if not a.segments]
        pool = matching or generic or ready
        return min(pool, key=lambda a: (a.ready_since or a.state_since, a.id))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.agents.values():
            out[a.state] = out.get(a.state, 0) + 1
        return out
