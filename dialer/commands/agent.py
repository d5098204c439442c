"""`dialer agent LOGIN`: the agent's console (state, screen pop, disposition form)."""

from __future__ import annotations

import argparse
import sys

from dialer.commands._auth import add_user_arg, terminal_principal
from dialer.commands._common import add_config_arg, config_from
from dialer.errors import UserError
from dialer.service.auth import require
from dialer.service.roles import Permission
from dialer.store.opening import open_existing
from dialer.views.agent_console import AgentConsole, run_live
from dialer.views.render import console


def _run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    engine, _where = open_existing(cfg.database.url)
    # an agent opens only their own console (issue 28): log in first, then the permission table decides
    who = terminal_principal(engine, args, default_user=args.login)
    require(engine, who, Permission.AGENT_CONSOLE, agent_login=args.login)
    view = AgentConsole(engine, cfg, args.login, who=who)
    if args.once:
        view.refresh()
        con = console(args.width)
        con.print(view.render(con.width))
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError("dialer agent needs a terminal (use --once to print one frame)")
    run_live(view)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="agent console: log in, ready/pause, screen pop, dispositions",
                       description="Keyboard-only agent console. Keys: l log in, r ready, p pause, o log out, "
                                   "d or 0-9 disposition, q quit (see README: Terminal views and reports).")
    p.add_argument("login", help="agent login as in [[agents]] (e.g. a01)")
    p.add_argument("--once", action="store_true", help="print one frame to stdout and exit")
    p.add_argument("--width", type=int, default=0, help="frame width for --once")
    add_user_arg(p)
    add_config_arg(p)
    p.set_defaults(func=_run)
