"""`dialer hopper preview`: what a campaign would dial at an instant, in order, and why each entry is there."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from dialer.commands._common import add_config_arg, config_from, group
from dialer.errors import UserError
from dialer.store.db import get_engine, init_db, resolve_url


def parse_at(text: str | None) -> datetime:
    """An ISO datetime; naive means the schedule's zone is NOT assumed: it must carry an offset or Z."""
    if not text:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--at: {text!r} is not an ISO datetime (e.g. 2026-11-24T11:00+09:00)") from None
    if at.tzinfo is None:
        raise UserError(f"--at: {text!r} has no UTC offset; write e.g. {text}+09:00 or {text}Z")
    return at


def _preview(args: argparse.Namespace) -> int:
    from dialer.privacy import mask_phone
    from dialer.store.entries import Hopper

    cfg = config_from(args)
    cc = cfg.campaign(args.campaign)
    at = parse_at(args.at)
    if args.limit < 1:
        raise UserError("--limit must be at least 1")
    url = resolve_url(cfg.database.url)
    init_db(url)
    hopper = Hopper(get_engine(url), cc)
    items = hopper.preview(at, limit=args.limit)
    if args.json:
        print(json.dumps({"at": at.isoformat(), "campaign": cc.name,
                          "entries": [{"customer_id": i.customer_id, "segment": i.segment,
                                       "phone_e164": i.phone_e164, "reason": i.reason,
                                       "due_because": i.due_because, "entry_id": i.entry_id,
                                       "priority": i.priority, "score": round(i.score, 6)} for i in items]},
                         ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"hopper {cc.name} at {at.isoformat()} ({len(items)} dialable)")
    for col in ("#", "customer", "segment", "phone", "priority", "score", "due because", "reason"):
        table.add_column(col)
    for n, i in enumerate(items, 1):
        table.add_row(str(n), i.customer_id, i.segment, mask_phone(i.phone_e164), f"{i.priority:g}",
                      f"{i.score:.3g}", i.due_because, i.reason)
    Console(width=max(Console().width, 160)).print(table)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "hopper", "the hopper: which entries a campaign may dial now, in order")
    p = g.add_parser("preview", help="list the entries that would be dialable at an instant, in order, with why")
    p.add_argument("--campaign", required=True, metavar="NAME", help="campaign name from the config")
    p.add_argument("--at", metavar="ISO_DATETIME", help="the instant (with offset, e.g. 2026-11-24T11:00+09:00); "
                                                         "default now")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N entries (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output (numbers in full)")
    add_config_arg(p)
    p.set_defaults(func=_preview)
