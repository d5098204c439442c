"""`dialer call listen|whisper|barge ATTEMPT_ID --phone SIP_URI`: a supervisor joins a live call (issue 29).

The join is queued as the campaign's `listen` command (its runner's worker calls the phone); the same use case,
permission check and audit as the browser floor's buttons (dialer.service.listen).
"""

from __future__ import annotations

import argparse

from dialer.commands._auth import add_user_arg, store_and_user
from dialer.commands._common import add_config_arg, group
from dialer.domain.vocabulary import ListenMode
from dialer.i18n import _


def _join(args: argparse.Namespace) -> int:
    from dialer.service.listen import join_call

    _cfg, engine, who = store_and_user(args, create=True)
    row = join_call(engine, who, args.attempt_id, args.mode, args.phone, origin="terminal")
    print(_("queued: {mode} on call {attempt} to {phone} (command {row}); the phone rings when the runner applies "
            "it").format(mode=args.mode, attempt=args.attempt_id, phone=args.phone, row=row))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "call", "a supervisor joins a live call on their own phone (listen, whisper, barge)")
    helps = {ListenMode.LISTEN: "hear the customer and the agent; nobody hears you",
             ListenMode.WHISPER: "hear both; only the agent hears you",
             ListenMode.BARGE: "three-way: both hear you"}
    for mode, text in helps.items():
        p = g.add_parser(mode.value, help=text)
        p.add_argument("attempt_id", type=int, metavar="ATTEMPT_ID", help="the call (as on the floor)")
        p.add_argument("--phone", required=True, metavar="SIP_URI", help="your phone, e.g. sip:sv01@192.0.2.10")
        add_user_arg(p)
        add_config_arg(p)
        p.set_defaults(func=_join, mode=mode.value)
