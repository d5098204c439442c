"""`dialer trunk check`: test calls through a configured trunk, counted by outcome and SIP status."""

from __future__ import annotations

import argparse
import json

from dialer.commands._common import add_config_arg, config_from, group, seconds_arg
from dialer.errors import UserError
from dialer.privacy import mask_text


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _check(args: argparse.Namespace) -> int:
    from dialer.telephony import TelephonyError
    from dialer.telephony.check import KEYS, run_check

    cfg = config_from(args)
    try:
        r = run_check(cfg, args.trunk, args.to, calls=args.calls, concurrency=args.concurrency, hold_s=args.hold)
    except TelephonyError as exc:
        raise UserError(f"cannot start telephony: {exc}") from None
    if args.json:
        print(json.dumps(r))
    else:
        print(f"trunk {args.trunk}: {r['calls']} call(s) to {mask_text(args.to)}")
        for k in KEYS:
            print(f"  {k:<11} {r[k]}")
        codes = ", ".join(f"{c}: {n}" for c, n in r["sip_status_counts"].items()) or "none"
        print(f"  SIP status  {codes}")
        if r["setup_ms_p50"] is not None:
            print(f"  setup ms    p50 {r['setup_ms_p50']}  p95 {r['setup_ms_p95']}")
        for why in r["trunk_down"]:
            print(f"  TRUNK DOWN  {why}")
        if r.get("not_finished"):
            print(f"  {r['not_finished']} call(s) did not finish in time")
    return 0 if r["trunk_ok"] and not r.get("not_finished") else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "trunk", "SIP trunks: test calls")
    p = g.add_parser("check", help="place test calls through a trunk and count the outcomes",
                     description="Place N test calls through the trunk, at most C at a time, hang up answered "
                                 "calls after S seconds, and print what happened (counts by outcome and SIP "
                                 "status, setup time = originate to answer).")
    add_config_arg(p)
    p.add_argument("--trunk", required=True, metavar="NAME", help="trunk name from [[trunks]]")
    p.add_argument("--to", required=True, metavar="NUMBER_OR_URI", help="number (formatted per trunk) or SIP URI")
    p.add_argument("--calls", type=_positive, default=1, metavar="N", help="calls to place (default 1)")
    p.add_argument("--concurrency", type=_positive, default=1, metavar="C", help="at most C at a time (default 1)")
    p.add_argument("--hold", type=seconds_arg, default=2.0, metavar="S",
                   help="hang up answered calls after S seconds (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_check)
