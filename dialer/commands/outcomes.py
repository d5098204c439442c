"""`dialer outcomes`: dispositions back to the CRM (CSV export, webhook push from the durable outbox)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.errors import UserError
from dialer.outcomes import export_csv, push, revive_dead, write_csv_file
from dialer.store.db import get_engine, init_db, resolve_url


def _since(text: str, tz: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"--since: expected an ISO date or time like 2026-11-23 or 2026-11-23T09:00, got {text!r}") \
            from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=ZoneInfo(tz))).astimezone(UTC)


def _export(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    init_db(url)
    since = _since(args.since, cfg.schedules.timezone)
    if args.out:
        n = write_csv_file(get_engine(url), since, Path(args.out), cfg.schedules.timezone)
        print(f"wrote {n} outcome(s) since {since.isoformat()} to {args.out}", file=sys.stderr)
    else:
        export_csv(get_engine(url), since, sys.stdout, cfg.schedules.timezone)
    return 0


def _push(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    if not cfg.outcomes.webhook_url:
        raise UserError(f"{cfg.source}: [outcomes] webhook_url is empty: set it, or use `dialer outcomes export`")
    duration = args.for_ or 0.0
    url = resolve_url(cfg.database.url)
    init_db(url)
    engine = get_engine(url)
    if args.retry_dead:
        print(f"revived {revive_dead(engine)} dead outcome(s)")
    res = push(engine, cfg.outcomes, duration_s=duration)
    print(f"queued {res.queued}, delivered {res.delivered}, failed tries {res.failed_tries}, "
          f"dead {res.dead}, still pending {res.pending}")
    for e in res.errors[:5]:
        print(f"  error: {e}", file=sys.stderr)
    return 0 if res.pending == 0 and res.dead == 0 else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "outcomes", "outcomes back to the CRM: CSV export and webhook push")
    e = g.add_parser("export", help="write dispositions since a time as CSV (format in README)")
    e.add_argument("--since", required=True, metavar="ISO", help="e.g. 2026-11-23 or 2026-11-23T09:00 (local time)")
    e.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    add_config_arg(e)
    e.set_defaults(func=_export)
    p = g.add_parser("push", help="queue new dispositions and POST the outbox to [outcomes] webhook_url")
    p.add_argument("--for", dest="for_", metavar="DURATION", type=duration_arg,
                   help="keep retrying failed deliveries for this long (e.g. 5m); default: one pass")
    p.add_argument("--retry-dead", action="store_true", help="retry outcomes the CRM rejected with a 4xx")
    add_config_arg(p)
    p.set_defaults(func=_push)
