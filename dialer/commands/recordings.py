"""`dialer recordings search|purge`: find call recordings; enforce `[recordings] keep_days` now (issue 29)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dialer.commands._auth import add_user_arg, store_and_user
from dialer.commands._common import add_config_arg, config_from, group
from dialer.errors import UserError
from dialer.i18n import _
from dialer.store.db import get_engine, init_db, resolve_url


def _day(text: str, tz: str) -> datetime:
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        raise UserError(f"expected a date like 2026-12-07, got {text!r}") from None
    return (d if d.tzinfo else d.replace(tzinfo=ZoneInfo(tz))).astimezone(UTC)


def _search(args: argparse.Namespace) -> int:
    from dialer.service.recordings import find

    cfg, engine, who = store_and_user(args, create=True)
    tz = cfg.schedules.timezone
    since = _day(args.date, tz) if args.date else None
    rows = find(engine, who, customer=args.customer or "", agent=args.agent or "", since=since,
                until=since + timedelta(days=1) if since else None, outcome=args.outcome or "")
    for r in rows:
        print(f"{r.attempt_id}\t{r.dialed_at.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M}\t{r.campaign}\t"
              f"{r.customer_id} {r.customer_name}\t{r.agent_login}\t{r.outcome}\t{r.path}")
    print(_("{n} recording(s)").format(n=len(rows)), file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace) -> int:
    from dialer.service.recordings import purge

    cfg = config_from(args)
    keep = args.keep_days if args.keep_days is not None else cfg.recordings.keep_days
    if keep <= 0:
        print(_("[recordings] keep_days is 0: every recording is kept; nothing to do"), file=sys.stderr)
        return 0
    url = resolve_url(cfg.database.url)
    init_db(url)
    res = purge(get_engine(url), keep, datetime.now(UTC), dry_run=args.dry_run)
    verb = _("would delete") if args.dry_run else _("deleted")
    print(_("recordings older than {days} days: {verb} {n}, already gone {gone}, not deleted {bad}").format(
        days=keep, verb=verb, n=res.deleted, gone=res.missing, bad=len(res.failed)))
    for f in res.failed:
        print(f"  {f}", file=sys.stderr)
    return 1 if res.failed else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "recordings", "call recordings: search, and the retention policy ([recordings] keep_days)")
    s = g.add_parser("search", help="recordings by customer, agent, date and outcome (supervisors)")
    s.add_argument("--customer", metavar="ID_OR_NAME", help="customer id, or part of the name (漢字 or カナ)")
    s.add_argument("--agent", metavar="LOGIN")
    s.add_argument("--date", metavar="YYYY-MM-DD", help="the day the call was dialled (business time zone)")
    s.add_argument("--outcome", metavar="OUTCOME", help="the disposition (sale, refused ...) or the call's outcome")
    add_user_arg(s)
    add_config_arg(s)
    s.set_defaults(func=_search)
    p = g.add_parser("purge", help="delete recordings older than [recordings] keep_days and clear their paths")
    p.add_argument("--keep-days", type=int, metavar="N", help="override [recordings] keep_days for this run")
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    add_config_arg(p)
    p.set_defaults(func=_purge)
