"""`dialer config check`: validate a config file before a campaign trips over it."""

from __future__ import annotations

import argparse

from dialer.config import Config, ConfigError, load_config


def opening_problems(cfg: Config) -> tuple[list[str], list[str]]:
    """(errors, warnings) about what the legally required opening lines (特定商取引法 §16) need: the business
    name and complaints phone, and each agent's display name. Errors with a real trunk, warnings with sandbox
    trunks only (they reach no real person)."""
    problems = [f"{k} is not set (named in every call's opening, 特定商取引法 §16)" for k in cfg.business.missing()]
    problems += [f"agent {a.login!r} has no name (the opening introduces the agent by name)"
                 for a in cfg.agents if not a.name.strip()]
    real = [t.name for t in cfg.trunks if not t.sandbox]
    return (problems, []) if real else ([], problems)


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args.path)
    missing = [t.password_env for t in cfg.trunks if t.password_env and not t.password()]
    errors, _warnings = opening_problems(cfg)
    print(
        f"{cfg.source}: {'NOT OK' if errors else 'OK'} — {len(cfg.trunks)} trunk(s), {len(cfg.agents)} agent(s), "
        f"{len(cfg.campaigns)} campaign(s)"
    )
    for name in missing:
        print(f"  note: environment variable {name} (a trunk password) is not set")
    errors, warnings = opening_problems(cfg)
    for w in warnings:
        print(f"  warning: {w} (only sandbox trunks are configured)")
    if errors:
        real = ", ".join(t.name for t in cfg.trunks if not t.sandbox)
        raise ConfigError(f"{cfg.source}: with the real trunk(s) {real}: " + "; ".join(errors))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = sub.add_parser("config", help="configuration: validate a config file")
    g.set_defaults(_parser=g)
    gs = g.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    p = gs.add_parser("check", help="validate a config file and explain any problem")
    p.add_argument("path", nargs="?", help="config file (default: $TSUNAGU_CONFIG or config/tsunagu.toml)")
    p.set_defaults(func=_check)
