"""Log-in for terminal commands: who is at this terminal, checked against the store's users.

A store without users is a single-seat install: the command runs as the local admin and says so on stderr.
Otherwise the user is `--user`, else `$TSUNAGU_USER`, else the default the command offers (an agent console
logs in as its own agent login); the password comes from `$TSUNAGU_PASSWORD` (scripts; visible to the same
Unix user only) or is asked for on the terminal, never on the command line.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from dialer.config import Config
from dialer.errors import UserError
from dialer.service.auth import LOCAL_ADMIN_WARNING, Principal, has_users, local_admin, login
from dialer.store import Engine


def add_user_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", metavar="LOGIN",
                   help="log in as this user (default: $TSUNAGU_USER); the password is asked for, or taken "
                        "from $TSUNAGU_PASSWORD")


def terminal_principal(engine: Engine, args: argparse.Namespace, *, default_user: str | None = None,
                       quiet_local: bool = False) -> Principal:
    if not has_users(engine):
        if not quiet_local:
            print(f"dialer: warning: {LOCAL_ADMIN_WARNING}", file=sys.stderr)
        return local_admin()
    user = getattr(args, "user", None) or os.environ.get("TSUNAGU_USER") or default_user
    if not user:
        raise UserError("this store has users: log in with --user LOGIN (or set $TSUNAGU_USER)")
    password = os.environ.get("TSUNAGU_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise UserError(f"password for {user} needed: run on a terminal, or set $TSUNAGU_PASSWORD")
        password = getpass.getpass(f"password for {user}: ")
    return login(engine, user, password, origin="terminal")


def store_and_user(args: argparse.Namespace, *, create: bool = False) -> tuple[Config, Engine, Principal]:
    """The config, the store (created or upgraded when CREATE, else it must exist) and the logged-in user: the
    start of every command that acts as someone."""
    from dialer.commands._common import config_from
    from dialer.store.db import init_db
    from dialer.store.opening import open_existing

    cfg = config_from(args)
    engine = init_db(cfg.database.url)[0] if create else open_existing(cfg.database.url)[0]
    return cfg, engine, terminal_principal(engine, args)
