"""`dialer config check`: validate a config file before a campaign trips over it."""

from __future__ import annotations

import argparse

from dialer.config import load_config


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args.path)
    missing = [t.password_env for t in cfg.trunks if t.password_env and not t.password()]
    print(
        f"{cfg.source}: OK — {len(cfg.trunks)} trunk(s), {len(cfg.agents)} agent(s), "
        f"{len(cfg.campaigns)} campaign(s)"
    )
    for name in missing:
        print(f"  note: environment variable {name} (a trunk password) is not set")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = sub.add_parser("config", help="configuration: validate a config file")
    g.set_defaults(_parser=g)
    gs = g.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    p = gs.add_parser("check", help="validate a config file and explain any problem")
    p.add_argument("path", nargs="?", help="config file (default: $TSUNAGU_CONFIG or config/tsunagu.toml)")
    p.set_defaults(func=_check)
