"""`dialer report lift`: treatment vs hold-out control from a later CRM export (dialer.lift)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dialer.commands._common import add_config_arg, config_from
from dialer.errors import UserError
from dialer.store.opening import open_existing


def _lift(args: argparse.Namespace) -> int:
    # imported here: scipy and duckdb would slow every `dialer` command's start-up
    from dialer.lift import lift_report, lift_summary, render_lift
    from dialer.store.lift import save_lift
    from lists import ListsError, load_mapping

    cfg = config_from(args)
    engine, _where = open_existing(cfg.database.url)
    after = Path(args.after)
    if not after.is_dir():
        raise UserError(f"--after {after}: not a directory (the CRM export after the campaign)")
    try:
        mapping = load_mapping(args.mapping or cfg.schedules.list_mapping)
        rep = lift_report(engine, cfg, args.campaign, mapping, after, days=args.days, period=args.period)
    except ListsError as exc:
        raise UserError(str(exc)) from None
    if rep["segments"]:  # kept for `dialer report campaign` and the monitor
        save_lift(engine, args.campaign, rep["period"] or "", lift_summary(rep))
    if args.html and rep["segments"]:
        from dialer.views.lift_html import write_lift_html

        write_lift_html(args.html, rep, render_lift(rep))
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    else:
        print(render_lift(rep))
    return 0


def add_lift(g: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = g.add_parser("lift", help="did the calls cause extra revenue? treatment vs hold-out control per segment, "
                                  "from a CRM export taken after the campaign")
    p.add_argument("--campaign", required=True, metavar="NAME")
    p.add_argument("--after", required=True, metavar="DIR", help="the later CRM export")
    p.add_argument("--mapping", metavar="PATH", help="mapping file (default: [schedules] list_mapping, as nightly)")
    p.add_argument("--days", type=int, default=30, metavar="N",
                   help="count purchases within N days of each customer's assignment (default 30)")
    p.add_argument("--period", metavar="PERIOD", help="hold-out period or experiment name ([lists.holdout] "
                                                      "experiment; default: the latest recorded)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page with the chart")
    add_config_arg(p)
    p.set_defaults(func=_lift)
