"""`dialer db`: create or upgrade the store."""

from __future__ import annotations

import argparse

from dialer.commands._common import add_config_arg, config_from, group
from dialer.store.db import SCHEMA_VERSION, StoreError, init_db, readable_version, resolve_url


def _init(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    url = resolve_url(args.url or cfg.database.url)
    _, action = init_db(url)
    print(f"database {_safe(url)}: schema version {SCHEMA_VERSION}, {action}")
    return 0


def _check(args: argparse.Namespace) -> int:
    """(issue 25) Is the store usable: reachable, not damaged (SQLite `PRAGMA quick_check`), a known schema."""
    cfg = config_from(args)
    url = resolve_url(args.url or cfg.database.url)
    if url.startswith("sqlite") and "///" in url:
        path = url.split("///", 1)[1]
        from pathlib import Path

        if path != ":memory:" and not Path(path).exists():
            raise StoreError(f"database {path} does not exist: create it with `dialer db init`")
    version = readable_version(url, _safe(url))  # a damaged SQLite file: StoreError, one line with the fix
    if version is None:
        raise StoreError(f"database {_safe(url)} has no tsunagu schema: create it with `dialer db init`")
    check = "quick_check ok" if url.startswith("sqlite") else "reachable"
    print(f"database {_safe(url)}: {check}, schema version {version}"
          + ("" if version == SCHEMA_VERSION else f" (this release: {SCHEMA_VERSION}; run `dialer db init`)"))
    return 0 if version == SCHEMA_VERSION else 1


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
    c = g.add_parser("check", help="check the store: reachable, not damaged (SQLite quick_check), schema version")
    add_config_arg(c)
    c.add_argument("--url", help="database URL (default: $DIALER_DATABASE_URL, then the config, then sqlite)")
    c.set_defaults(func=_check)
