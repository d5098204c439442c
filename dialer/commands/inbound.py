"""`dialer inbound run`: the desk that answers customers calling back a presented number (README: Return calls)."""

from __future__ import annotations

import argparse

from dialer.commands._common import Subcommands, add_config_arg, config_from, group
from dialer.errors import UserError


def _run(args: argparse.Namespace) -> int:
    from dialer.telephony.inbound_leg import serve

    cfg = config_from(args)
    names = {c.name for c in cfg.campaigns}
    unknown = sorted({camp for camp in cfg.inbound.dids.values() if camp not in names})
    if unknown:
        # a number mapped to no campaign would answer callers with nobody's pop: refuse before answering anyone
        raise UserError(f"{cfg.source}: [inbound] dids name no configured campaign: {', '.join(unknown)} "
                        f"(campaigns: {', '.join(sorted(names)) or 'none'})")
    if not cfg.inbound.dids and not any(c.caller_id for c in cfg.campaigns) and not any(
            t.caller_id for t in cfg.trunks):
        raise UserError(f"{cfg.source}: no number to answer: set a campaign's caller_id, a trunk's caller_id or "
                        "[inbound] dids")
    return serve(cfg)


def register(sub: Subcommands) -> None:
    g = group(sub, "inbound", "return calls: answer customers calling back the numbers campaigns present")
    p = g.add_parser("run", help="run the inbound desk until Ctrl-C / SIGTERM (one per host)",
                     description="Answers INVITEs to the campaigns' presented numbers (caller_id) and [inbound] "
                                 "dids, routes each caller to the agent who last spoke to them or another ready "
                                 "agent, queues with a message, then offers the keypad menu (1 callback, 2 do not "
                                 "call). Other numbers get 603.")
    add_config_arg(p)
    p.set_defaults(func=_run)
