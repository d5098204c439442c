"""`dialer monitor`: the campaign manager's live view (reads the store; works from any host that reaches it)."""

from __future__ import annotations

import argparse
import sys

from dialer.commands._auth import add_user_arg, terminal_principal
from dialer.commands._common import add_config_arg, config_from
from dialer.errors import UserError
from dialer.service.auth import require
from dialer.service.roles import Permission
from dialer.store.opening import open_existing
from dialer.views.monitor import Monitor, run_live
from dialer.views.render import console


def _run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    engine, where = open_existing(cfg.database.url)
    # the floor is for supervisors and admins (issue 28); commands sent from here carry the user's login
    who = terminal_principal(engine, args)
    require(engine, who, Permission.MONITOR_READ)
    mon = Monitor(engine, cfg, campaign=args.campaign, store=where)
    mon.who = who
    if not who.local:
        mon.by = f"monitor:{who.login}"
    mon.refresh()
    if args.campaign and not mon.names:
        raise UserError(f"no campaign named {args.campaign!r} in the store {where} "
                        "(the runner records it on its first start: `dialer campaign run`)")
    if args.once:
        con = console(args.width)
        con.print(mon.render(con.width, height=args.height or None))
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError("dialer monitor needs a terminal for its keys (use --once to print one frame)")
    run_live(mon)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("monitor", help="live campaign view: pacing, abandon rate, agents, lists; pause/resume/stop",
                       description="Full-screen live view of running campaigns. Keys: p pause, r resume, s stop, "
                                   "m mode, t abandon target, tab next campaign, ↑/↓ scroll agents, q quit.")
    p.add_argument("--campaign", metavar="NAME", help="show only this campaign")
    p.add_argument("--once", action="store_true", help="print one frame to stdout and exit (scripts, tests)")
    p.add_argument("--width", type=int, default=0, help="frame width for --once (default: the terminal's)")
    p.add_argument("--height", type=int, default=0, help="frame height for --once (default: unbounded)")
    add_user_arg(p)
    add_config_arg(p)
    p.set_defaults(func=_run)
