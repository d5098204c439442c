"""The nodes panel (issue 18): each node's lines, agents, health and last heartbeat, as plain text."""

from __future__ import annotations

from collections.abc import Sequence

from dialer.store.nodes import NodeRow

TTL_S = 5.0


def node_lines(rows: Sequence[NodeRow], ttl_s: float = TTL_S) -> list[str]:
    out = []
    for r in rows:
        live = sum(int(s.get("live", 0)) for s in r.stats.values() if isinstance(s, dict))
        dialled = sum(int(s.get("dialled", 0)) for s in r.stats.values() if isinstance(s, dict))
        coord = [c for c, s in r.stats.items() if isinstance(s, dict) and s.get("coordinator")]
        out.append(f"{r.node_id:<12} {r.health(ttl_s):<6} epoch {r.epoch:<3} lines {live}/{r.lines:<4} "
                   f"agents {r.agents:<3} dialled {dialled:<5} heartbeat {r.heartbeat_age_s:5.1f}s ago"
                   + (f"  coordinator: {', '.join(coord)}" if coord else ""))
    return out


def nodes_table(rows: Sequence[NodeRow], ttl_s: float = TTL_S) -> str:
    if not rows:
        return "no nodes (multi-node runs with `dialer node run` on PostgreSQL)"
    return "\n".join(["node         health epoch     lines       agents dialled   last heartbeat",
                      *node_lines(rows, ttl_s)])


__all__ = ["node_lines", "nodes_table"]
