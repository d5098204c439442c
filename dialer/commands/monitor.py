"""`dialer monitor`: the campaign manager's live view (reads the store; works from any host that reaches it)."""

from __future__ import annotations

import argparse

from rich.console import Console

from dialer.commands._common import add_config_arg, config_from
from dialer.errors import UserError
from dialer.store.db import get_engine, init_db, resolve_url
from dialer.views.monitor import Monitor, run_live


def _run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    init_db(url)
    mon = Monitor(get_engine(url), cfg, campaign=args.campaign)
    mon.refresh()
    if args.campaign and not mon.names:
        raise UserError(f"no campaign named {args.campaign!r} in the store (start it once with `dialer campaign run`)")
    if args.once:
        console = Console(width=args.width) if args.width else Console()
        console.print(mon.render(console.width))
        return 0
    run_live(mon)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("monitor", help="live campaign view: pacing, abandon rate, agents, lists; pause/resume/stop",
                       description="Full-screen live view of running campaigns. Keys: p pause, r resume, s stop, "
                                   "m mode, t abandon target, tab next campaign, q quit.")
    p.add_argument("--campaign", metavar="NAME", help="show only this campaign")
    p.add_argument("--once", action="store_true", help="print one frame to stdout and exit (scripts, tests)")
    p.add_argument("--width", type=int, default=0, help="frame width for --once (default: the terminal's)")
    add_config_arg(p)
    p.set_defaults(func=_run)
