"""The agent seat's use cases: what an agent's console (terminal, browser or keypad) may read and do.

Every function takes the caller's `Principal` and the agent login it acts for, checks the permission table
(an agent only on their own login) and, where it names a call or an entry, that the call or entry is that
agent's: a screen pop, a disposition or a preview dial for someone else's customer is refused and audited even
when the caller guessed a valid id. That is the hole issue 28 found (`dialer agent a07` showed another agent's
live screen pop); closing it here closes it for every screen.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dialer.errors import UserError
from dialer.service.auth import Principal, record, require
from dialer.service.roles import Permission, PermissionDenied
from dialer.store import Engine
from dialer.store import agents as agents_store
from dialer.store import callbacks as callbacks_store
from dialer.store import preview as preview_store
from dialer.store import users as users_store
from dialer.store.attempts import attempt_belongs_to
from dialer.store.outbox import save_disposition
from dialer.store.screen_pop import screen_pop_rows


def _refuse(engine: Engine, who: Principal, perm: Permission, target: str, why: str) -> PermissionDenied:
    users_store.audit(engine, who.login, who.role.value, perm.value, target, allowed=False, detail=why)
    return PermissionDenied(f"user {who.login} may not {perm.value} {target}: {why}")


def _owns_call(engine: Engine, who: Principal, perm: Permission, agent_login: str | None, attempt_id: int) -> None:
    """AGENT_LOGIN's own call (agents only their own); without an agent login: the floor's right to any call."""
    if agent_login is None:
        require(engine, who, Permission.MONITOR_READ, target=f"attempt {attempt_id}")
        return
    require(engine, who, perm, agent_login=agent_login)
    if not attempt_belongs_to(engine, attempt_id, agent_login):
        raise _refuse(engine, who, perm, f"attempt {attempt_id}", f"that call is not agent {agent_login}'s")


def open_seat(engine: Engine, who: Principal, agent_login: str, configured: list[agents_store.AgentSource],
              source: str = "the config") -> None:
    """Make sure the agent's row exists (first start on a new store: the config names the agent)."""
    require(engine, who, Permission.AGENT_CONSOLE, agent_login=agent_login)
    if agents_store.agent_exists(engine, agent_login):
        return
    known = {a.login: a for a in configured}
    if agent_login not in known:
        have = ", ".join(sorted(known)) or "none"
        raise UserError(f"no agent {agent_login!r} in the store or in {source} (configured: {have})")
    agents_store.ensure_agent(engine, known[agent_login])


def snapshot(engine: Engine, who: Principal, agent_login: str, disposed_attempt: int | None
             ) -> tuple[dict[str, Any], bool]:
    """The agent's state for their console, and whether DISPOSED_ATTEMPT already has a disposition."""
    require(engine, who, Permission.AGENT_CONSOLE, agent_login=agent_login)
    return agents_store.console_snapshot(engine, agent_login, disposed_attempt)


def screen_pop(engine: Engine, who: Principal, agent_login: str | None, attempt_id: int) -> dict[str, Any] | None:
    """The customer of a call connected to this agent (never of another agent's call); with no agent login,
    any call for those who may read the floor."""
    _owns_call(engine, who, Permission.AGENT_CONSOLE, agent_login, attempt_id)
    return screen_pop_rows(engine, attempt_id)


def preview_card(engine: Engine, who: Principal, agent_login: str) -> dict[str, Any] | None:
    """The entry reserved for this agent in preview mode (only theirs: reservations are per agent)."""
    require(engine, who, Permission.PREVIEW, agent_login=agent_login)
    return preview_store.reserved_pop(engine, agent_login)


def _own_reservation(engine: Engine, who: Principal, agent_login: str, entry_id: int) -> str:
    require(engine, who, Permission.PREVIEW, agent_login=agent_login)
    found = preview_store.reservation(engine, agent_login)
    if found is None or found[1] != entry_id:
        raise _refuse(engine, who, Permission.PREVIEW, f"entry {entry_id}",
                      f"it is not the card reserved for agent {agent_login}")
    return found[0]


def preview_dial(engine: Engine, who: Principal, agent_login: str, entry_id: int) -> int:
    campaign = _own_reservation(engine, who, agent_login, entry_id)
    record(engine, who, Permission.PREVIEW, f"entry {entry_id}", "dial")
    return preview_store.request_dial(engine, campaign, agent_login, entry_id)


def preview_skip(engine: Engine, who: Principal, agent_login: str, entry_id: int, reason: str = "") -> int:
    campaign = _own_reservation(engine, who, agent_login, entry_id)
    record(engine, who, Permission.PREVIEW, f"entry {entry_id}", f"skip {reason}".strip())
    return preview_store.request_skip(engine, campaign, agent_login, entry_id, reason)


def set_idle_state(engine: Engine, who: Principal, agent_login: str, seen: str, new: str, now: datetime,
                   reason: str = "") -> str | None:
    """Log in / ready / pause / log out, guarded by the state the console saw (see store.agents.set_idle)."""
    require(engine, who, Permission.AGENT_STATE, agent_login=agent_login)
    return agents_store.set_idle(engine, agent_login, seen, new, now, reason)


def set_after_call(engine: Engine, who: Principal, agent_login: str, pending: str) -> None:
    require(engine, who, Permission.AGENT_STATE, agent_login=agent_login)
    agents_store.set_pending(engine, agent_login, pending)


def dispose(engine: Engine, who: Principal, agent_login: str | None, fields: dict[str, Any]) -> int:
    """Record a verdict on one of the agent's own calls (with its CRM outbox row, in one transaction).
    FIELDS are the disposition's columns (attempt_id, outcome, amount, ...); returns the new row's id."""
    attempt_id = fields.get("attempt_id")
    if attempt_id is None:
        raise _refuse(engine, who, Permission.DISPOSITION, "a disposition", "it names no call")
    _owns_call(engine, who, Permission.DISPOSITION, agent_login, int(attempt_id))
    saved = save_disposition(engine, dict(fields))
    record(engine, who, Permission.DISPOSITION, f"attempt {attempt_id}", str(fields.get("outcome", "")))
    return saved


def preview_result(engine: Engine, who: Principal, agent_login: str, since: datetime) -> str | None:
    """What the runner answered to this agent's last preview dial/skip (since SINCE), or None yet."""
    require(engine, who, Permission.PREVIEW, agent_login=agent_login)
    return preview_store.last_result(engine, agent_login, since)


def dialled_call(engine: Engine, who: Principal, agent_login: str, attempt_id: int) -> dict[str, Any] | None:
    """Where the call this agent dialled from a preview card is (state, SIP status, timings)."""
    require(engine, who, Permission.PREVIEW, agent_login=agent_login)
    return preview_store.attempt_result(engine, attempt_id)


def my_callbacks(engine: Engine, who: Principal, agent_login: str, since: datetime, until: datetime
                 ) -> list[dict[str, Any]]:
    """The callbacks promised to this agent in a range (their calendar; never another agent's)."""
    require(engine, who, Permission.CALLBACK, agent_login=agent_login)
    return callbacks_store.agent_callbacks(engine, agent_login, since, until)
