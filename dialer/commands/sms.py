"""`dialer sms`: payment-link SMS for small unpaid amounts (dialer.sms), and the state of its outbox."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.config import ConfigError
from dialer.errors import UserError
from dialer.i18n import _
from dialer.privacy import mask_phone, mask_text
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
    if res.claimed_elsewhere or res.unknown_new or res.resolved_sent or res.resolved_not_sent:
        print(_("claimed by another sender {n}; ambiguous failures {u} (not posted again); settled by the "
                "gateway's status API: sent {s}, never received {r}").format(
            n=res.claimed_elsewhere, u=res.unknown_new, s=res.resolved_sent, r=res.resolved_not_sent))
    for e in res.errors[:5]:
        print(f"  error: {mask_text(e)}", file=sys.stderr)
    if res.unknown:
        print(_("{n} message(s) in state unknown: the gateway may have sent them. Ask the gateway, then "
                "`dialer sms resolve --campaign {c} --sent ID ... | --not-sent ID ...`").format(
            n=res.unknown, c=camp.name), file=sys.stderr)
    return 0 if res.pending == 0 and res.dead == 0 and res.unknown == 0 else 1


def _resolve(args: argparse.Namespace) -> int:
    """The operator settles `unknown` messages after asking the gateway (its console, its support)."""
    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    init_db(url)
    engine = get_engine(url)
    sent, not_sent = list(args.sent or []), list(args.not_sent or [])
    both = set(sent) & set(not_sent)
    if both:
        raise UserError(_("message(s) {ids} given as both --sent and --not-sent").format(
            ids=", ".join(map(str, sorted(both)))))
    now = datetime.now(UTC)
    if sent or not_sent:
        known = {u.id for u in store.unknown_messages(engine, args.campaign, sent + not_sent)}
        missing = sorted(set(sent + not_sent) - known)
        if missing:
            raise UserError(_("campaign {c}: no message in state unknown with id {ids}").format(
                c=args.campaign, ids=", ".join(map(str, missing))))
        for mid in sent:
            store.resolve(engine, mid, True, now, _("an operator confirmed the gateway sent it"))
        for mid in not_sent:
            store.resolve(engine, mid, False, now, _("an operator confirmed the gateway never got it"))
        print(_("settled: sent {s}, never received {r} (those go with the next `dialer sms send`)").format(
            s=len(sent), r=len(not_sent)))
    left = store.unknown_messages(engine, args.campaign)
    for u in left:
        print(f"{u.id}\t{u.customer_id}\t{mask_phone(u.phone_e164)}\t{u.idempotency_key}\t{mask_text(u.last_error)}")
    print(_("{n} message(s) in state unknown").format(n=len(left)), file=sys.stderr)
    return 0


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
    r = g.add_parser("resolve", help=_("list messages whose send is in doubt (state unknown), and settle them "
                                       "once the gateway has been asked"))
    r.add_argument("--campaign", required=True, metavar="NAME")
    r.add_argument("--sent", nargs="+", type=int, metavar="ID", help=_("the gateway did send these: never again"))
    r.add_argument("--not-sent", nargs="+", type=int, metavar="ID",
                   help=_("the gateway never got these: they may be sent"))
    add_config_arg(r)
    r.set_defaults(func=_resolve)
    s = g.add_parser("status", help="messages per state (pending, sending, unknown, sent, delivered, failed, "
                                    "blocked, dead)")
    s.add_argument("--campaign", required=True, metavar="NAME")
    add_config_arg(s)
    s.set_defaults(func=_status)
