"""The nodes panel (issue 18): each node's lines, agents, health and last heartbeat, for `dialer node list`
and the monitor."""

from __future__ import annotations

from collections.abc import Sequence

from dialer.i18n import N_, _
from dialer.service.monitor import NodeRow

TTL_S = 5.0  # dialer.node.membership.TTL_S
# a node's health: heartbeat fresh / late (over half the TTL) / stale (over the TTL, not yet declared) / dead /
# left cleanly
HEALTH = {"ok": N_("ok"), "late": N_("late"), "stale": N_("stale"), "dead": N_("dead"), "left": N_("left"),
          "unknown": N_("unknown")}


def health_label(h: str) -> str:
    return _(HEALTH.get(h, h))


def node_line(r: NodeRow, ttl_s: float = TTL_S) -> str:
    up = r.state == "up"
    live = sum(int(s.get("live", 0)) for s in r.stats.values() if isinstance(s, dict)) if up else 0
    dialled = sum(int(s.get("dialled", 0)) for s in r.stats.values() if isinstance(s, dict))
    coord = [c for c, s in r.stats.items() if isinstance(s, dict) and s.get("coordinator")] if up else []
    text = _("{node}  {health}  epoch {epoch}  lines {live}/{lines}  agents {agents}  dialled {dialled}  "
             "last heartbeat {age:.1f}s ago").format(node=r.node_id, health=health_label(r.health(ttl_s)),
                                                      epoch=r.epoch, live=live, lines=r.lines, agents=r.agents,
                                                      dialled=dialled, age=r.heartbeat_age_s)
    if coord:
        text += "  " + _("coordinates {campaigns}").format(campaigns=", ".join(coord))
    return text


def node_lines(rows: Sequence[NodeRow], ttl_s: float = TTL_S) -> list[str]:
    return [node_line(r, ttl_s) for r in rows]


def nodes_table(rows: Sequence[NodeRow], ttl_s: float = TTL_S) -> str:
    if not rows:
        return _("no nodes (multi-node runs with `dialer node run` on PostgreSQL)")
    return "\n".join([_("nodes"), *node_lines(rows, ttl_s)])


__all__ = ["HEALTH", "health_label", "node_line", "node_lines", "nodes_table"]
