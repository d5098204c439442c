"""`dialer report`: campaign figures and the compliance report, recounted from attempts and dispositions."""

from __future__ import annotations

import argparse
import json
import sys

from dialer.commands._common import add_config_arg, config_from, group
from dialer.commands._lift import add_lift
from dialer.config import Config
from dialer.errors import UserError
from dialer.reports import campaign_report, compliance_report
from dialer.store.opening import Engine, open_existing
from dialer.views.render import console
from dialer.views.report_view import render_campaign_report, render_compliance, write_report_csv


def _engine(args: argparse.Namespace) -> tuple[Config, Engine, str]:
    """The config and the store it names; the store must exist (a report never creates one)."""
    cfg = config_from(args)
    engine, where = open_existing(cfg.database.url)
    return cfg, engine, where


def _campaign(args: argparse.Namespace) -> int:
    cfg, engine, where = _engine(args)
    try:
        rep = campaign_report(engine, args.name, machine_fp_share=cfg.reports.machine_false_positive_share,
                              tz=cfg.schedules.timezone, now_window=cfg.reports.now_window)
    except UserError as exc:
        raise UserError(f"{exc}; store: {where} (config: {cfg.source})") from None
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    elif args.csv:
        write_report_csv(rep, sys.stdout)
    else:
        console().print(render_campaign_report(rep))
    return 0


def _compliance(args: argparse.Namespace) -> int:
    cfg, engine, where = _engine(args)
    try:
        rep = compliance_report(engine, cfg, campaign=args.campaign)
    except UserError as exc:
        raise UserError(f"{exc}; store: {where} (config: {cfg.source})") from None
    if not rep["campaigns"]:
        # nothing was checked: that is not a pass (a cron job pointed at the wrong store must not go green)
        print(f"dialer: nothing to check: no campaigns in the store {where} (config: {cfg.source})",
              file=sys.stderr)
        return 1
    if cfg.source == "<defaults>":
        print("dialer: note: no config file found (./config/tsunagu.toml or $TSUNAGU_CONFIG); calling hours and "
              "sandbox trunks are the built-in defaults", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    else:
        console().print(render_compliance(rep))
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
    add_lift(g)
