"""A campaign runner as one node of several: the single-host loop (dialer.campaign) with its hooks filled in.

What changes on a node: leases are owned by `node:<id>:<epoch>` and taken only while the membership holds (in
the leasing transaction); the dial mark re-checks the lease and the fence; the INVITE leaves only while the
node's own clock says its membership is fresh; attempts carry the node and epoch; the pacer's abandon book is
fed with the other nodes' answers and abandons (dialer.node.budget); commands are applied by every node and
acknowledged per node (woken by NOTIFY); recovery at start settles only this node's former epochs, and
leaving settles only this node's leases (the campaign goes on on the others).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dialer.agents import BUSY
from dialer.campaign import HEARTBEAT_STALE_S, CampaignRunner, RunnerBusy, utc
from dialer.config import Config
from dialer.domain.vocabulary import AgentState
from dialer.journal import Journal, journal_path
from dialer.node.budget import CampaignFeed
from dialer.node.leader import Coordinator, settle
from dialer.node.membership import Membership
from dialer.node.signals import POLL_S, CommandSignals
from dialer.store import Engine
from dialer.store import campaigns as campaigns_store
from dialer.store import nodes as store
from dialer.store import outbox as outbox_store
from dialer.store.entries import Lease
from dialer.store.outbox import DispositionRecord

NODE_TICK_S = 0.5


@dataclass
class NodeContext:
    membership: Membership
    signals: CommandSignals | None = None


class NodeRunner(CampaignRunner):
    def __init__(self, cfg: Config, name: str, engine: Engine, node: NodeContext, **kw: Any) -> None:
        super().__init__(cfg, name, engine, **kw)
        self.node = node
        self.m = node.membership
        self.epoch = self.m.epoch
        self.runner_id = self.m.fence.owner
        self.guard.owner = f"node:{self.m.node_id}"
        self.guard.journal = Journal(journal_path(cfg.database.journal_dir, name, self.m.node_id))
        self.hopper.fence = self.m.fence
        store.claim_agents(engine, self.m.node_id, self.board.logins)
        self.board.logins = store.agents_on(engine, self.m.node_id)
        self.hopper.foreign_agents = frozenset(store.foreign_reserved_agents(engine, self.m.node_id))
        self.feed = CampaignFeed(engine, self.campaign_id, self.m.node_id)
        self.coordinator = Coordinator(engine, self.policy.name, self.campaign_id, self.m, self.hopper,
                                       self._event, self.board.state_logger)
        self.last_node_tick = 0.0
        self.last_command_poll = 0.0
        self.fenced_out = False  # the DB declared this epoch dead: the service rejoins and starts again

    # ------------------------------------------------------------------ hooks of the single-host loop
    def _attempt_fields(self) -> dict[str, Any]:
        return {"node_id": self.m.node_id, "node_epoch": self.epoch}

    def _dial_token(self, lease: Lease) -> str:
        return lease.lease_token

    def _may_dial(self) -> bool:
        return self.m.live() and self.m.epoch == self.epoch

    def _callback_agent(self, lease: Lease) -> int | None:
        if not lease.callback_agent:
            return None
        a = next((a for a in self.board.agents.values() if a.login == lease.callback_agent), None)
        return a.id if a is not None and a.state == AgentState.READY else None

    def claim(self) -> None:
        """No single-runner claim between nodes (membership and the fenced hopper replace it), but never beside a
        live single-host runner of the same campaign (`dialer campaign run`), whose recovery is campaign-wide."""
        st = campaigns_store.status_of(self.engine, self.campaign_id)
        if st is not None and st.runner and not st.runner.startswith("node:"):
            age = (_utcnow() - _aware(st.heartbeat_at)).total_seconds()
            if age < HEARTBEAT_STALE_S:
                raise RunnerBusy(f"campaign {self.policy.name!r} is run by the single-host runner {st.runner} "
                                 f"(heartbeat {age:.1f}s ago): stop it before running nodes")

    def recover(self) -> dict[str, int]:
        now = utc(self.clock())
        counts = settle(self.engine, self.hopper, self.campaign_id, now, only_node=self.m.node_id)
        self.last_disposition_id = outbox_store.last_disposition_id(self.engine)
        self.last_command_id = campaigns_store.last_applied_command_id(self.engine, self.policy.name)
        if self.board.state_logger is not None:  # issue 27: the last stop closed this node's agents' stretches
            from dialer.store.agent_time import reopen_stretches

            reopen_stretches(self.engine, self.campaign_id, self.board.logins, now)
        self.board.refresh()
        for a in self.board.agents.values():
            if a.state in BUSY or a.state in (AgentState.UNAVAILABLE, AgentState.UNREACHABLE):
                self.board.set_state(a.id, AgentState.READY, now, force=True)
            elif self.auto_login and a.state == AgentState.LOGGED_OUT:
                self.board.set_state(a.id, AgentState.READY, now)
        if any(counts.values()):
            self._event("recovered", f"node {self.m.node_id}: former epochs left {counts}; closed as interrupted")
        return counts

    def dial(self, now: float) -> None:
        if not self._may_dial():
            self.last_decision = None
            return
        super().dial(now)

    def tick(self) -> None:
        super().tick()
        now = self.clock()
        if self.m.lost or self.m.epoch != self.epoch:
            self.fenced_out = True
            self.state = "stopped"
            return
        if now - self.last_node_tick >= NODE_TICK_S and not self.guard.degraded:
            self.last_node_tick = now
            try:
                self.node_tick(now)
            except Exception as error:  # (issue 25) the database went away: keep the calls, journal, retry
                if not self.guard.absorb(error):
                    raise

    def node_tick(self, now: float) -> None:
        self.feed.poll(self.pacer)
        mine = store.agents_on(self.engine, self.m.node_id)
        leaving = {a.login for a in self.board.agents.values() if a.login not in mine and a.state in BUSY}
        self.board.logins = mine | leaving  # an agent moved to another node goes when idle
        self.hopper.foreign_agents = frozenset(store.foreign_reserved_agents(self.engine, self.m.node_id))
        self.coordinator.tick(utc(now))
        self.m.agents = len(self.board.agents)
        self.m.stats[self.policy.name] = {
            "live": len(self.live), "dialled": self.counts.get("dialled", 0),
            "answered": self.counts.get("answered", 0), "abandoned": self.counts.get("abandoned", 0),
            "state": self.state, "mode": self.mode, "coordinator": self.coordinator.holding,
            "agents": self.board.counts(), "lines_free": self.tel.free_lines(self.trunk.name),
            "dialling": self._may_dial()}

    def apply_commands(self) -> None:
        now = self.clock()
        notified = self.node.signals is not None and self.node.signals.take(self.policy.name)
        if not notified and now - self.last_command_poll < POLL_S:
            return
        self.last_command_poll = now
        for cmd in store.unacked_commands(self.engine, self.policy.name, self.m.node_id, self.last_command_id):
            result = self._apply_command(cmd.command, cmd.argument, _aware(cmd.created_at), _utcnow())
            store.ack_command(self.engine, int(cmd.id or 0), self.m.node_id, result,
                              {"state": self.state, "mode": self.mode, "abandon_target": self.pacer_target()})
            self._event("command", f"{cmd.command} {cmd.argument}: {result} (node {self.m.node_id})".strip())

    def _apply_disposition(self, row: DispositionRecord, now: float) -> None:
        """Each disposition is applied once, by the node holding the agent who gave it (or the call)."""
        if row.agent_id in self.board.agents or (row.attempt_id is not None and row.attempt_id in self.live):
            super()._apply_disposition(row, now)

    def publish(self, now: float) -> None:
        if self.coordinator.holding:  # the campaign's status row is the coordinator's to write
            super().publish(now)

    def _after_stop(self, now: float) -> None:
        """Leaving: give back this node's leases; the campaign goes on on the other nodes."""
        store.release_leases(self.engine, self.runner_id, utc(now))
        self.coordinator.resign()
        from dialer.store.agent_time import close_at_stop  # issue 27: this node's agents' time ends here

        close_at_stop(self.engine, self.campaign_id, self.board.logins, utc(now))
        if not store.other_live_nodes(self.engine, self.policy.name, self.m.node_id):
            campaigns_store.mark_stopped(self.engine, self.campaign_id)  # the last node out


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _aware(v: Any) -> Any:
    from datetime import UTC

    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


__all__ = ["NodeContext", "NodeRunner"]
