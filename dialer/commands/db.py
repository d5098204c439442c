"""`dialer db`: create or upgrade the store."""

from __future__ import annotations

import argparse

from dialer.commands._common import add_config_arg, config_from, group
from dialer.store.db import SCHEMA_VERSION, init_db, resolve_url


def _init(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    url = resolve_url(args.url or cfg.database.url)
    _, action = init_db(url)
    print(f"database {_safe(url)}: schema version {SCHEMA_VERSION}, {action}")
    return 0


def _safe(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "db", "database: create or upgrade the schema")
    p = g.add_parser("init", help="create the schema, or upgrade an existing database (idempotent)")
    add_config_arg(p)
    p.add_argument("--url", help="database URL (default: $DIALER_DATABASE_URL, then the config, then sqlite)")
    p.set_defaults(func=_init)
