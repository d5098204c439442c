"""`dialer`: one entry point; each command group lives in its own module under `dialer/commands/`.

A module there defines `register(subparsers)` and sets `func` on its parsers; it is picked up by name, so
adding a command group never touches this file. Known failures (bad config, unusable database, bad input)
print one clear message and exit 2 instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import dialer.commands
from dialer import __version__
from dialer.config import ConfigError
from dialer.errors import UserError
from dialer.store.db import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialer",
        description="tsunagu: outbound predictive dialer for LTV campaigns (pacing, lists, SIP dialing).",
    )
    parser.add_argument("--version", action="version", version=f"tsunagu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(dialer.commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dialer.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without its subcommand: show that group's help rather than a traceback
        target = getattr(args, "_parser", parser)
        target.print_help()
        return 2
    try:
        rc = func(args)
    except (ConfigError, StoreError, UserError) as exc:
        print(f"dialer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dialer: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
