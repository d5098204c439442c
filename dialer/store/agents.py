"""Agents and their state history: the rows, every transition written with its log line in one transaction.

History: one `agent_state_log` row per stretch in a state, so occupancy can be computed after the fact. Both
writers of agent state (the console and the campaign runner) go through `log_agent_state` inside the same
session that changes `agents.state`, BEFORE assigning the new state; the caller commits. That keeps the
history and the live row in one transaction, so a crash cannot leave them disagreeing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.agents import BUSY, next_state, pending_after, taken_by_another
from dialer.domain.vocabulary import AgentState
from dialer.store.models import Agent, AgentStateLog, Attempt, Campaign, Customer

StateLogger = Callable[[Session, Agent, str, datetime], None]


class AgentSource(Protocol):
    """An `[[agents]]` config entry."""

    @property
    def login(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def sip_uri(self) -> str: ...
    @property
    def segments(self) -> list[str]: ...


@dataclass
class AgentView:
    """An agent as the runner routes it (a copy of the row)."""

    id: int
    login: str
    sip_uri: str
    segments: list[str]
    state: str
    state_since: datetime
    ready_since: datetime | None
    attempt_id: int | None
    pending: str = ""  # the state asked for after this call (the console's "pause / log out after this call")


def log_agent_state(session: Session, agent: Agent, new_state: str, at: datetime, detail: str = "") -> None:
    """Close the agent's open stretch at `at` and open one in `new_state` (no commit; the caller commits).

    A repeated call with the state already open is a no-op, so callers need not check for changes.
    """
    if agent.id is None:
        session.add(agent)
        session.flush()
    assert agent.id is not None
    open_rows = session.exec(
        select(AgentStateLog).where(AgentStateLog.agent_id == agent.id, col(AgentStateLog.ended_at).is_(None))
    ).all()
    for row in open_rows:
        if row.state == new_state and len(open_rows) == 1:
            return
        row.ended_at = max(at, row.started_at)
        session.add(row)
    session.add(AgentStateLog(agent_id=agent.id, state=new_state, campaign_id=agent.campaign_id, started_at=at,
                              detail=detail))


def sync_agents(engine: Engine, agents: Iterable[AgentSource]) -> None:
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


def ensure_agent(engine: Engine, agent: AgentSource) -> None:
    """Create the agent row if the store does not know the login yet (state and history untouched)."""
    with Session(engine) as s:
        if s.exec(select(Agent).where(Agent.login == agent.login)).first() is None:
            s.add(Agent(login=agent.login, name=agent.name, sip_uri=agent.sip_uri, segments=list(agent.segments)))
            s.commit()


def agent_exists(engine: Engine, login: str) -> bool:
    with Session(engine) as s:
        return s.exec(select(Agent.id).where(Agent.login == login)).first() is not None


def read_agents(engine: Engine, logins: Iterable[str]) -> dict[int, AgentView]:
    with Session(engine, expire_on_commit=False) as s:
        rows = s.exec(select(Agent).where(col(Agent.login).in_(list(logins)))).all()
        return {r.id: AgentView(r.id, r.login, r.sip_uri, list(r.segments), r.state, r.state_since, r.ready_since,
                                r.current_attempt_id, r.pending_state)
                for r in rows if r.id is not None}


def _hold_as_read(s: Session, row: Agent) -> None:
    """Lock the agent's row for this transaction, provided it is still as read; ValueError if it changed.

    A runner and an inbound desk (another process, perhaps another node) may both take a ready agent; the desk's
    take is one conditional UPDATE (store.inbound.claim_ready_agent). Read-then-write here would let both win
    (each read `ready`), so the take starts with a no-op UPDATE guarded by what was read: on PostgreSQL it waits
    for a concurrent take and then finds the row changed; on SQLite it takes the write lock over the newest data.
    """
    seen = col(Agent.current_attempt_id)
    res = s.execute(update(Agent).where(col(Agent.id) == row.id, col(Agent.state) == row.state,
                                        seen.is_(None) if row.current_attempt_id is None
                                        else seen == row.current_attempt_id)
                    .values(state=row.state).execution_options(synchronize_session=False))
    if int(getattr(res, "rowcount", 0) or 0) != 1:
        s.rollback()
        raise ValueError(f"agent {row.login}: taken by another owner meanwhile")


def move_agent(engine: Engine, agent_id: int, new: str, at: datetime, *, campaign_id: int | None,
               attempt_id: int | None = None, force: bool = False, state_logger: StateLogger | None = None) -> str:
    """The runner moves an agent; returns the state actually entered (dialer.domain.agents.next_state)."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Agent, agent_id)
        if row is None:
            raise KeyError(agent_id)
        if new in BUSY and not force:
            if taken_by_another(row.state, row.current_attempt_id, attempt_id):
                raise ValueError(f"agent {row.login}: already {row.state} for attempt {row.current_attempt_id}")
            _hold_as_read(s, row)
        try:
            new = next_state(row.state, new, row.pending_state, force=force)
        except ValueError as exc:
            raise ValueError(f"agent {row.login}: {exc}") from None
        # spent once idle (applied, or overtaken by the console's own change); a standby take sets it to paused
        row.pending_state = pending_after(row.state, new, row.pending_state)
        if new not in BUSY and new != AgentState.PAUSED:
            row.pause_reason = ""  # kept through a standby call, so its end goes back to the same pause
        if state_logger is not None:  # the stretch is tagged with the campaign it is spent on (issue 27)
            row.campaign_id = campaign_id if new != AgentState.LOGGED_OUT else row.campaign_id
            state_logger(s, row, new, at)
        row.campaign_id = campaign_id if new != AgentState.LOGGED_OUT else None
        row.state = new
        row.state_since = at
        if new == AgentState.READY:
            row.ready_since = at
        row.current_attempt_id = attempt_id if new in BUSY else None
        s.add(row)
        s.commit()
    return new


# ------------------------------------------------------------------------------ the console's side of the row
def console_snapshot(engine: Engine, login: str, disposed_attempt: int | None) -> tuple[dict[str, Any], bool]:
    """The agent as the console shows it, and whether DISPOSED_ATTEMPT already has a disposition."""
    from dialer.store.models import Disposition

    with Session(engine) as s:
        a = s.exec(select(Agent).where(Agent.login == login)).one()
        agent: dict[str, Any] = {"id": a.id, "login": a.login, "name": a.name, "state": a.state,
                                 "since": a.state_since, "pause_reason": a.pause_reason, "pending": a.pending_state,
                                 "attempt_id": a.current_attempt_id, "campaign_id": a.campaign_id}
        camp = s.get(Campaign, a.campaign_id) if a.campaign_id is not None else None
        agent["campaign"] = camp.name if camp else ""
        disposed = False
        if disposed_attempt is not None:
            disposed = s.exec(select(Disposition.id).where(Disposition.attempt_id == disposed_attempt)).first() \
                is not None
    return agent, disposed


def console_signatures(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """Per agent login, the row's columns an agent's console shows and the preview entry reserved for the agent:
    the browser re-renders a live console only when its tuple changes (one read for the whole floor)."""
    from dialer.domain import preview
    from dialer.domain.vocabulary import EntryStatus
    from dialer.store.models import CallListEntry

    with Session(engine) as s:
        rows = [(a.login, a.state, a.state_since, a.pending_state, a.pause_reason, a.current_attempt_id,
                 a.campaign_id, a.name) for a in s.exec(select(Agent)).all()]
        leases = s.exec(select(CallListEntry.id, CallListEntry.lease_owner).where(
            CallListEntry.status == EntryStatus.LEASED.value,
            col(CallListEntry.lease_owner).startswith(preview.OWNER_PREFIX))).all()
    reserved: dict[str, int | None] = {}
    for eid, owner in leases:
        who = preview.parse_owner(owner or "")
        if who is not None:
            reserved[who[1]] = eid
    return {r[0]: (*r[1:], reserved.get(r[0])) for r in rows}


def set_idle(engine: Engine, login: str, seen: str, new: str, now: datetime, reason: str = "") -> str | None:
    """Idle transition guarded by the state the console saw: None if done; else the state the agent is in
    now ("" when it changed during the update): the runner got there first."""
    values: dict[str, Any] = {"state": new, "state_since": now, "pause_reason": reason if new == AgentState.PAUSED else "",
                              "pending_state": ""}
    if new == AgentState.READY:
        values["ready_since"] = now
    if new == AgentState.LOGGED_OUT:
        values["campaign_id"] = None
        values["current_attempt_id"] = None
    with Session(engine) as s:
        row = s.exec(select(Agent).where(Agent.login == login)).one()
        if row.state != seen:
            return row.state
        if new != row.state:
            log_agent_state(s, row, new, now, detail=reason)
        elif reason:  # a pause the runner applied after a call: the console knows why
            open_row = s.exec(select(AgentStateLog).where(AgentStateLog.agent_id == row.id,
                                                          col(AgentStateLog.ended_at).is_(None))).first()
            if open_row is not None and not open_row.detail:
                open_row.detail = reason
                s.add(open_row)
        result = s.execute(update(Agent).where(col(Agent.id) == row.id, col(Agent.state) == seen).values(**values))
        if getattr(result, "rowcount", 1) != 1:
            s.rollback()
            return ""
        s.commit()
    return None


def set_pending(engine: Engine, login: str, pending: str) -> None:
    """What the agent wants after the call in progress (applied by the runner after wrap-up)."""
    with Session(engine) as s:
        s.execute(update(Agent).where(col(Agent.login) == login, col(Agent.state).in_(list(BUSY)))
                  .values(pending_state=pending))
        s.commit()


def agents_on_campaign(engine: Engine, campaign_id: int | None) -> list[dict[str, Any]]:
    """Logged-in agents working CAMPAIGN_ID (or none), with the customer of the call they hold (monitor)."""
    out = []
    with Session(engine) as s:
        for a in s.exec(select(Agent).order_by(col(Agent.login))).all():
            if a.state == AgentState.LOGGED_OUT or (a.campaign_id not in (None, campaign_id)):
                continue
            who = ""
            if a.current_attempt_id is not None:
                att = s.get(Attempt, a.current_attempt_id)
                if att is not None:
                    cust = s.get(Customer, att.customer_id)
                    who = (cust.name if cust and cust.name else att.customer_id) + (
                        f" [{att.segment}]" if att.segment else "")
            out.append({"login": a.login, "name": a.name, "state": a.state, "since": a.state_since,
                        "customer": who, "pause_reason": a.pause_reason, "pending": a.pending_state})
    return out


def logins_by_id(engine: Engine) -> dict[int, str]:
    with Session(engine) as s:
        return {a.id: a.login for a in s.exec(select(Agent)).all() if a.id is not None}


__all__ = [
    "AgentSource",
    "AgentView",
    "StateLogger",
    "agent_exists",
    "agents_on_campaign",
    "console_signatures",
    "console_snapshot",
    "ensure_agent",
    "log_agent_state",
    "logins_by_id",
    "move_agent",
    "read_agents",
    "set_idle",
    "set_pending",
    "sync_agents",
]
