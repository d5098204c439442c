"""`dialer report`: campaign figures and the compliance report, recounted from attempts and dispositions."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from dialer.commands._common import add_config_arg, config_from, group
from dialer.reports import campaign_report, compliance_report
from dialer.store.db import get_engine, init_db, resolve_url
from dialer.views.report_view import render_campaign_report, render_compliance, write_report_csv


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    init_db(url)
    return cfg, get_engine(url)


def _campaign(args: argparse.Namespace) -> int:
    cfg, engine = _engine(args)
    rep = campaign_report(engine, args.name, machine_fp_share=cfg.reports.machine_false_positive_share,
                          tz=cfg.schedules.timezone, now_window=cfg.reports.now_window)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    elif args.csv:
        write_report_csv(rep, sys.stdout)
    else:
        Console().print(render_campaign_report(rep))
    return 0


def _compliance(args: argparse.Namespace) -> int:
    cfg, engine = _engine(args)
    rep = compliance_report(engine, cfg, campaign=args.campaign)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    else:
        Console().print(render_compliance(rep))
    bad = rep["calls_outside_hours"] or rep["dnc"]["violations"] or rep["refusals"]["violations"] or any(
        not c["within_limit"] for c in rep["campaigns"].values())
    return 1 if bad else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = group(sub, "report", "reports: campaign figures and compliance")
    p = g.add_parser("campaign", help="attempts, abandon rates per window, occupancy, outcomes per segment, sales")
    p.add_argument("name", help="campaign name")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per segment plus ALL")
    add_config_arg(p)
    p.set_defaults(func=_campaign)
    c = g.add_parser("compliance", help="abandon rate per window and regime, calls outside hours, DNC honoured "
                                        "(exit 1 when anything is out of bounds)")
    c.add_argument("--json", action="store_true", help="one JSON object")
    c.add_argument("--campaign", metavar="NAME", help="only this campaign")
    add_config_arg(c)
    c.set_defaults(func=_compliance)
