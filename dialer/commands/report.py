"""`dialer report`: campaign figures and the compliance report, recounted from attempts and dispositions."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rich.console import Group
from rich.text import Text

from dialer.commands._common import add_config_arg, config_from, group
from dialer.commands._lift import add_lift
from dialer.commands._voc import add_voc
from dialer.config import Config
from dialer.errors import UserError
from dialer.i18n import nfkc
from dialer.reports import campaign_report, compliance_report
from dialer.store.opening import Engine, open_existing
from dialer.store.report_rows import period_rows
from dialer.views.render import console, wide_enough
from dialer.views.report_charts import (
    build_series,
    daily_rows,
    period_title,
    write_daily_csv,
    write_html,
    write_png,
)
from dialer.views.report_view import render_campaign_report, render_compliance, write_report_csv


def _engine(args: argparse.Namespace) -> tuple[Config, Engine, str]:
    """The config and the store it names; the store must exist (a report never creates one)."""
    cfg = config_from(args)
    engine, where = open_existing(cfg.database.url)
    return cfg, engine, where


def local_time_arg(text: str) -> str:
    """argparse check for --from/--to: YYYY-MM-DD or YYYY-MM-DD HH:MM (local time)."""
    try:
        datetime.fromisoformat(nfkc(text).strip().replace("/", "-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM' (local time)") from None
    return nfkc(text).strip().replace("/", "-")


def period(args: argparse.Namespace, tz: str) -> tuple[datetime | None, datetime | None]:
    """[from, to) in UTC: a bare --to date includes that whole day."""
    zone = ZoneInfo(tz)

    def at(text: str | None, end: bool) -> datetime | None:
        if not text:
            return None
        d = datetime.fromisoformat(text)
        d = d if d.tzinfo else d.replace(tzinfo=zone)
        if end and len(text) <= 10:
            d += timedelta(days=1)
        return d.astimezone(UTC)

    lo, hi = at(args.date_from, False), at(args.date_to, True)
    if lo and hi and hi <= lo:
        raise UserError(f"--to ({args.date_to}) must be after --from ({args.date_from})")
    return lo, hi


def _campaign(args: argparse.Namespace) -> int:
    cfg, engine, where = _engine(args)
    tz = cfg.schedules.timezone
    fp = cfg.reports.machine_false_positive_share
    try:
        rep = campaign_report(engine, args.name, machine_fp_share=fp, tz=tz, now_window=cfg.reports.now_window)
    except UserError as exc:
        raise UserError(f"{exc}; store: {where} (config: {cfg.source})") from None
    lo, hi = period(args, tz)
    rows = period_rows(engine, args.name, lo, hi)
    assert rows is not None  # campaign_report found it
    series = build_series(rows, tz, fp, lo, hi)
    if args.html:
        write_html(args.html, series, rep)
        print(f"wrote {args.html}", file=sys.stderr)
    if args.png:
        write_png(args.png, series, rep)
        print(f"wrote {args.png}", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    elif args.csv:
        write_daily_csv(daily_rows(rows, tz, fp), sys.stdout)
    elif args.csv_segments:
        write_report_csv(rep, sys.stdout)
    elif not (args.html or args.png) or sys.stdout.isatty():
        width = console().width if sys.stdout.isatty() else 0  # (issue 27) columns chosen to fit a terminal
        body = Group(Text(period_title(rep, series), style="bold"), render_campaign_report(rep, width))
        if sys.stdout.isatty():
            console().print(body)
        else:  # piped (cron, | less): as wide as the data, never truncated headers
            console(wide_enough(body)).print(body)
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "report", "reports: campaign figures and compliance")
    p = g.add_parser("campaign", help="attempts, abandon rates per window, occupancy, outcomes per segment, sales")
    p.add_argument("name", help="campaign name")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object (for scripts)")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per day × segment (plus ALL per day)")
    fmt.add_argument("--csv-segments", action="store_true", help="one CSV row per segment plus ALL (whole campaign)")
    p.add_argument("--from", dest="date_from", type=local_time_arg, metavar="DATE",
                   help="period start, local time (YYYY-MM-DD [HH:MM]); charts and CSV rows cover [from, to)")
    p.add_argument("--to", dest="date_to", type=local_time_arg, metavar="DATE",
                   help="period end, local time; a bare date includes that whole day")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts (no CDN)")
    p.add_argument("--png", metavar="FILE", help="write the same charts as one PNG sheet")
    add_config_arg(p)
    p.set_defaults(func=_campaign)
    c = g.add_parser("compliance", help="abandon rate per window and regime, calls outside hours, DNC honoured "
                                        "(exit 1 when anything is out of bounds)")
    c.add_argument("--json", action="store_true", help="one JSON object")
    c.add_argument("--campaign", metavar="NAME", help="only this campaign")
    add_config_arg(c)
    c.set_defaults(func=_compliance)
    add_lift(g)
    add_voc(g)
