"""`dialer`: one entry point; each command group lives in its own module under `dialer/commands/`.

A module there defines `register(subparsers)` and sets `func` on its parsers; it is picked up by name, so
adding a command group never touches this file. Known failures print one clear message instead of a
traceback, with an exit code a script can act on:

    0 ok · 1 a check found a problem (e.g. compliance) · 2 usage error · 3 config or store error

A closed pipe (`dialer report ... | head`) and a missing stdin (`echo | dialer monitor`) end quietly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

import dialer.commands
from dialer import __version__
from dialer.config import ConfigError, UnknownNameError
from dialer.errors import UserError
from dialer.privacy import private_umask
from dialer.store.db import StoreError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def _quiet_stdout() -> None:
    """After a reader closed the pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


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
    # every file the dialer and its workers create (store, caches, exports, recordings, journals) is private,
    # whatever umask the shell or the service manager gave us (issue 28)
    # (restored on return only for callers that run commands in-process, such as tests)
    previous = private_umask()
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `dialer --help | head`
        _quiet_stdout()
        return EXIT_OK
    finally:
        os.umask(previous)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without its subcommand: show that group's help rather than a traceback
        target = getattr(args, "_parser", parser)
        target.print_help()
        return EXIT_USAGE
    try:
        rc = func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except EOFError:
        print("dialer: input closed (this command reads keys from a terminal)", file=sys.stderr)
        return EXIT_USAGE
    except (UserError, UnknownNameError) as exc:
        print(f"dialer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, StoreError) as exc:
        print(f"dialer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("dialer: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
