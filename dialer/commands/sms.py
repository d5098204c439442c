"""`dialer sms`: payment-link SMS for small unpaid amounts (dialer.sms), and the state of its outbox."""

from __future__ import annotations

import argparse
import sys

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.config import ConfigError
from dialer.errors import UserError
from dialer.sms import SmsError, run
from dialer.store import sms as store
from dialer.store.db import get_engine, init_db, resolve_url
from dialer.store.entries import Hopper


def _send(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    camp = cfg.campaign(args.campaign)
    if "unpaid" not in camp.segments:
        raise UserError(f"{cfg.source}: campaign {camp.name!r} has no `unpaid` segment (segments = [\"unpaid\"])")
    url = resolve_url(cfg.database.url)
    init_db(url)
    engine = get_engine(url)
    hopper = Hopper(engine, camp.model_copy(update={"segments": ["unpaid"]}),
                    respect_calling_hours=not cfg.sms.sandbox)
    try:
        res = run(cfg, camp, hopper, dry_run=args.dry_run, duration_s=args.for_ or 0.0)
    except SmsError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None
    if args.dry_run:
        for p in res.preview:
            print(f"{p['customer_id']}\t{p['phone']}\t¥{p['amount']}\t{p['text']}")
        print(f"dry run: {len(res.preview)} message(s) would be queued; nothing written", file=sys.stderr)
        return 0
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(res.skipped.items())) or "none"
    print(f"queued {res.queued} (skipped: {skipped}); sent {res.sent} ({res.duplicates} already at the gateway), "
          f"blocked {res.blocked}, postponed {res.postponed}, failed tries {res.failed_tries}, dead {res.dead}, "
          f"receipts {res.receipts}, still pending {res.pending}")
    for e in res.errors[:5]:
        print(f"  error: {e}", file=sys.stderr)
    return 0 if res.pending == 0 and res.dead == 0 else 1


def _status(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    init_db(url)
    c = store.counts(get_engine(url), args.campaign)
    print(", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "no messages")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = group(sub, "sms", "SMS payment links for small unpaid amounts (the `unpaid` segment)")
    p = g.add_parser("send", help="queue one payment-link SMS per due unpaid entry and send them through [sms] "
                                  "endpoint (same consent/DNC/refusal/hold-out/hours checks as calls)")
    p.add_argument("--campaign", required=True, metavar="NAME", help="a [[campaigns]] entry with segments = [\"unpaid\"]")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent (numbers masked); write nothing")
    p.add_argument("--for", dest="for_", metavar="DURATION", type=duration_arg,
                   help="keep retrying while the gateway is down for this long (e.g. 10m); default: one pass")
    add_config_arg(p)
    p.set_defaults(func=_send)
    s = g.add_parser("status", help="messages per state (pending, sent, delivered, failed, blocked, dead)")
    s.add_argument("--campaign", required=True, metavar="NAME")
    add_config_arg(s)
    s.set_defaults(func=_status)
