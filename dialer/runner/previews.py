"""Preview mode: one entry reserved per ready agent, dialled or passed on by the agent's command."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from dialer.domain import preview
from dialer.domain.vocabulary import AgentState, CampaignState, Mode
from dialer.runner.state import PREVIEW_LEASE_S, PREVIEW_RENEW_S, utc
from dialer.store.entries import Lease

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class Previews:
    """Why: in preview the agent, not the pacer, decides each dial; reservations must be renewed, released on
    stop or mode change, and a dial re-checked like any other."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def reserve(self, now: float) -> None:
        """One reserved entry per ready agent (the console shows its pop); stale or orphaned ones go back."""
        at = utc(now)
        for agent_id, lease in list(self.r.reserved.items()):
            a = self.r.board.agents.get(agent_id)
            expiring = lease.lease_expires_at is not None and (lease.lease_expires_at - at).total_seconds() < PREVIEW_RENEW_S
            if a is None or a.state != AgentState.READY or expiring:
                self.release(agent_id, at)
        for a in self.r.board.agents.values():
            if a.state != AgentState.READY or a.id in self.r.reserved:
                continue
            got = self.r.hopper.lease(1, preview.owner(self.r.policy.name, a.login), at, lease_s=PREVIEW_LEASE_S,
                                      exclude=self.r.passed.get(a.id, set()))
            if got:
                self.r.reserved[a.id] = got[0]

    def release(self, agent_id: int, at: datetime) -> Lease | None:
        lease = self.r.reserved.pop(agent_id, None)
        if lease is not None:
            self.r.hopper.release(lease.entry_id, at)
        return lease

    def release_all(self, at: datetime) -> None:
        for agent_id in list(self.r.reserved):
            self.release(agent_id, at)

    def apply_orders(self, now: float) -> None:
        orders, self.r.preview_orders = self.r.preview_orders, []
        for command, arg in orders:
            login, result = self.order(command, arg, now)
            self.r._event(command, f"{login}: {result}")  # the console shows its agent's latest one

    def order(self, command: str, arg: str, now: float) -> tuple[str, str]:
        """(agent login, result): dial or pass on the entry reserved for an agent; a dial re-checks dialability
        like any call."""
        at = utc(now)
        try:
            entry_id, login, reason = preview.parse_argument(arg)
        except ValueError as exc:
            return "?", f"refused: {exc}"
        return login, self.apply(command, entry_id, login, reason, now, at)

    def apply(self, command: str, entry_id: int, login: str, reason: str, now: float,
                       at: datetime) -> str:
        agent = next((a for a in self.r.board.agents.values() if a.login == login), None)
        lease = self.r.reserved.get(agent.id) if agent is not None else None
        if agent is None or lease is None or lease.entry_id != entry_id:
            return f"refused: entry {entry_id} is not reserved for {login}"
        if command == preview.SKIP:
            self.release(agent.id, at)
            self.r.passed.setdefault(agent.id, set()).add(entry_id)
            return f"entry {entry_id} skipped: {reason or 'next'} (back to the hopper)"
        if self.r.state != CampaignState.RUNNING or self.r.mode != Mode.PREVIEW.value or agent.state != AgentState.READY:
            return f"refused: campaign {self.r.state}/{self.r.mode}, agent {agent.state}"
        self.r.reserved.pop(agent.id)
        why = self.r.place(lease, now, agent_id=agent.id)
        if why is not None:
            return f"refused: entry {entry_id} not dialled: {why}"
        attempt_id = max(a for a, c in self.r.live.items() if c.entry_id == entry_id)
        self.r.board.set_state(agent.id, AgentState.RESERVED, at, attempt_id=attempt_id)
        return f"entry {entry_id} dialled: attempt {attempt_id}"
