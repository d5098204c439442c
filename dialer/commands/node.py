"""`dialer node ...`: run this host as one node of several on PostgreSQL, list nodes, move an agent."""

from __future__ import annotations

import argparse

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.errors import UserError
from dialer.store.db import init_db, resolve_url


def _run(args: argparse.Namespace) -> int:
    from dialer.node.service import run_node

    cfg = config_from(args)
    names = [n.strip() for n in args.campaigns.split(",") if n.strip()] if args.campaigns else None
    res = run_node(cfg, campaigns=names, node_id=args.node_id, duration_s=args.duration, auto_login=args.auto_login)
    print(f"node {res['node']} stopped (epoch {res['epoch']}, restarts {res['restarts']}): {res['campaigns']}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from dialer.store import nodes as store
    from dialer.store.opening import open_existing
    from dialer.views.nodes import nodes_table

    cfg = config_from(args)
    engine, _ = open_existing(cfg.database.url)
    print(nodes_table(store.list_nodes(engine)))
    return 0


def _move(args: argparse.Namespace) -> int:
    from dialer.node.service import require_postgres
    from dialer.store import nodes as store

    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    require_postgres(url)
    engine, _ = init_db(url)
    try:
        old = store.move_agent(engine, args.login, args.node)
    except (KeyError, LookupError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from None
    print(f"agent {args.login}: node {old or '(none)'} -> {args.node} (the old node lets go when the agent is idle)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "node", "multi-node (PostgreSQL): run this host as a node, list nodes, move agents")
    p = g.add_parser("run", help="run this host's node: its SIP workers and agents, for the configured campaigns")
    p.add_argument("--campaigns", metavar="A,B", help="campaigns to serve (default: every campaign in the config)")
    p.add_argument("--node-id", metavar="ID", help="this node's id (default: the host name)")
    p.add_argument("--for", dest="duration", metavar="DURATION", type=duration_arg, help="stop after this long")
    p.add_argument("--auto-login", action="store_true", help="log this node's agents in as ready (demo)")
    add_config_arg(p)
    p.set_defaults(func=_run)
    p = g.add_parser("list", help="every node: lines, agents, health, last heartbeat")
    add_config_arg(p)
    p.set_defaults(func=_list)
    p = g.add_parser("move-agent", help="assign an agent to another node (effective when the agent is idle)")
    p.add_argument("login", help="agent login")
    p.add_argument("--node", required=True, help="the node that will hold the agent's legs")
    add_config_arg(p)
    p.set_defaults(func=_move)
