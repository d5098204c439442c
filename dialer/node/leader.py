"""The coordinator role of a campaign: one node at a time settles what dead nodes left behind.

The role is a lease row (`node_roles`, expiry on the DB clock, renewed every tick by its holder while its own
membership is live) rather than an advisory lock: an advisory lock is released only when the server notices the
holder's connection is gone, which a network split can delay by minutes. The holder does housekeeping only:
declare nodes dead (heartbeat older than the TTL), close their in-flight attempts as `interrupted`, settle their
entries with the single-host crash-recovery rule (counted, retry delay, never redialled at once), return their
leases, show their agents disconnected, and publish the campaign's status row. Every one of these steps is a
conditional update, so two holders at once (a stale one after a split) would do no harm; the role only
avoids doing the work N times. Dialling is never the coordinator's: each node dials for its own agents under
its own fenced membership (dialer/node/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dialer.domain.vocabulary import AgentState
from dialer.node.membership import Membership
from dialer.store import Engine
from dialer.store import agents as agents_store
from dialer.store import nodes as store
from dialer.store.agents import StateLogger
from dialer.store.entries import Hopper


def settle(engine: Engine, hopper: Hopper, campaign_id: int, at: datetime, *,
           only_node: str | None = None) -> dict[str, int]:
    """Close what epochs that are no longer up left in CAMPAIGN_ID (ONLY_NODE: that node's former epochs)."""
    r = store.reap(engine, campaign_id, hopper.segments, at, only_node=only_node)
    for entry_id, outcome, abandoned in r.entries:
        hopper.record_result(entry_id, outcome, at, abandoned=abandoned)
    return {"attempts_interrupted": len(r.attempts), "entries_settled": len(r.entries),
            "leases_released": r.leases_released}


class Coordinator:
    def __init__(self, engine: Engine, campaign: str, campaign_id: int, membership: Membership,
                 hopper: Hopper, event: Callable[[str, str, str], None],
                 state_logger: StateLogger | None = None) -> None:
        self.engine = engine
        self.role = f"coordinator:{campaign}"
        self.campaign_id = campaign_id
        self.m = membership
        self.hopper = hopper
        self.event = event
        self.state_logger = state_logger
        self.fence: int | None = None
        self.reaped = {"attempts_interrupted": 0, "entries_settled": 0, "leases_released": 0, "agents": 0}

    @property
    def holding(self) -> bool:
        return self.fence is not None

    def tick(self, at: datetime) -> None:
        if not self.m.live():
            self.fence = None
            return
        fence = store.acquire_role(self.engine, self.role, self.m.node_id, self.m.epoch, self.m.ttl_s)
        if fence is not None and fence != self.fence:
            self.event("coordinator", f"node {self.m.node_id} (epoch {self.m.epoch}) coordinates {self.role} "
                                      f"(fence {fence})", "info")
        self.fence = fence
        if fence is None:
            return
        steady = self.m.steady_s() >= self.m.ttl_s  # (issue 25) not right after the database came back
        for node in (store.mark_dead(self.engine, self.m.ttl_s) if steady else []):
            self.event("node_dead", f"node {node}: no heartbeat for {self.m.ttl_s:.0f}s: declared dead", "warning")
        counts = settle(self.engine, self.hopper, self.campaign_id, at)
        for agent_id, node in store.dead_nodes_agents(self.engine):
            agents_store.move_agent(self.engine, agent_id, AgentState.UNREACHABLE.value, at, campaign_id=None,
                                    force=True, state_logger=self.state_logger)
            counts["agents"] = counts.get("agents", 0) + 1
            _ = node
        if any(counts.values()):
            for k, v in counts.items():
                self.reaped[k] = self.reaped.get(k, 0) + v
            self.event("reaped", f"settled what dead nodes left: {counts}", "warning")

    def resign(self) -> None:
        if self.fence is not None:
            store.release_role(self.engine, self.role, self.m.node_id, self.m.epoch)
            self.fence = None


__all__ = ["Coordinator", "settle"]
