"""`dialer report voc`: refusal and cancellation reasons by product, segment and week, themes, rising reasons."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dialer.commands._common import add_config_arg, config_from
from dialer.errors import UserError
from dialer.store.opening import open_existing

_NS = uuid.UUID("9d2f8b1c-0e4a-4b6f-8c3d-766f63766f63")


def _day(text: str | None, flag: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected a date like 2026-11-23") from None


def _voc(args: argparse.Namespace) -> int:
    # imported here: scipy (via dialer.lift) would slow every `dialer` command's start-up
    from dialer.store.voc import cancellations, enqueue_summary, refusals
    from dialer.voc import render, summary_payload, voc_report, write_csv

    cfg = config_from(args)
    engine, _where = open_existing(cfg.database.url)
    tz = ZoneInfo(cfg.schedules.timezone)
    d0, d1 = _day(args.from_, "--from"), _day(args.to, "--to")
    end = d1 + timedelta(days=1) if d1 else None  # --to is inclusive
    start_dt = datetime(d0.year, d0.month, d0.day, tzinfo=tz).astimezone(UTC) if d0 else None
    end_dt = datetime(end.year, end.month, end.day, tzinfo=tz).astimezone(UTC) if end else None
    voices = refusals(engine, args.campaign, start_dt, end_dt)
    if not args.campaign:  # cancellations come from the CRM, not from a campaign
        voices += cancellations(engine, d0, end)
    rep = voc_report(voices, cfg.schedules.timezone)
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            n = write_csv(rep, fh)
        print(f"wrote {n} row(s) to {path}", file=sys.stderr)
    if args.push:
        key = str(uuid.uuid5(_NS, f"voc|{args.campaign or ''}|{d0}|{d1}|{rep['total']}|{json.dumps(rep['by_reason'])}"))
        queued = enqueue_summary(engine, key, summary_payload(rep, key, args.campaign, str(d0 or ""), str(d1 or "")))
        print("VOC summary queued in the outbox (`dialer outcomes push` delivers it)" if queued
              else "this VOC summary is already in the outbox", file=sys.stderr)
    if args.json:
        print(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
    else:
        print(render(rep))
    return 0


def add_voc(g: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = g.add_parser("voc", help="why customers said no: refusal and cancellation reasons by product, segment and "
                                 "week; expectation-vs-reality themes; rising reasons")
    p.add_argument("--campaign", metavar="NAME", help="only this campaign's refusals (no CRM cancellations)")
    p.add_argument("--from", dest="from_", metavar="YYYY-MM-DD", help="first day (local)")
    p.add_argument("--to", metavar="YYYY-MM-DD", help="last day (local, inclusive)")
    p.add_argument("--csv", metavar="PATH", help="also write the breakdown, themes and rising reasons as CSV")
    p.add_argument("--push", action="store_true", help="queue the summary for the CRM webhook ([outcomes])")
    p.add_argument("--json", action="store_true", help="one JSON object")
    add_config_arg(p)
    p.set_defaults(func=_voc)
