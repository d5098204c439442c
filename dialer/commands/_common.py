"""Helpers shared by command modules."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from dialer.config import Config, load_config, parse_duration
from dialer.i18n import set_language


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="config file (default: $TSUNAGU_CONFIG or config/tsunagu.toml)")


def config_from(args: argparse.Namespace) -> Config:
    """The config, with the UI language it asks for (`[ui] language`, else the locale) switched on."""
    cfg = load_config(getattr(args, "config", None))
    set_language(cfg.ui.language or None)
    return cfg


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def group(sub: Subcommands, name: str, help: str) -> Subcommands:
    """A command group whose bare invocation prints its own help."""
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(_parser=p)
    out: Subcommands = p.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    return out


def duration_arg(text: str) -> float:
    """argparse `type=` for `--for DURATION`: 90s, 30m, 4h, 1d, or plain seconds; a clear usage error otherwise."""
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seconds_arg(text: str) -> float:
    """argparse `type=` for a plain, non-negative number of seconds (ring times, holds): a usage error naming
    what was given otherwise, never a traceback."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if v < 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not negative: {text!r}")
    return v
