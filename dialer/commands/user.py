"""`dialer user add|passwd|disable|enable|list|audit`: the people who may log in, and what they did.

Only an admin may manage users; on a store with no users yet the local admin creates the first one (which ends
single-seat mode). Passwords are read twice from the terminal, or once from stdin with `--password-stdin`
(scripts), never from the command line where `ps` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from dialer.commands._auth import add_user_arg, store_and_user
from dialer.commands._common import Subcommands, add_config_arg, group
from dialer.errors import UserError
from dialer.service import auth
from dialer.service.roles import Permission, Role
from dialer.store import users as users_store


def _new_password(args: argparse.Namespace, login: str) -> str:
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
        if not pw:
            raise UserError("no password on stdin")
        return pw
    if not sys.stdin.isatty():
        raise UserError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass(f"new password for {login}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def _add(args: argparse.Namespace) -> int:
    cfg, engine, actor = store_and_user(args, create=True)
    if args.role == Role.AGENT.value and args.agent and args.agent not in {a.login for a in cfg.agents}:
        raise UserError(f"no agent {args.agent!r} in {cfg.source} ([[agents]] logins: "
                        f"{', '.join(sorted(a.login for a in cfg.agents)) or 'none'})")
    row = auth.add_user(engine, actor, args.login, args.role, _new_password(args, args.login), args.agent)
    extra = f", agent console {row.agent_login}" if row.agent_login else ""
    print(f"user {row.login} added ({row.role}{extra})")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    _cfg, engine, actor = store_and_user(args)
    auth.change_password(engine, actor, args.login, _new_password(args, args.login))
    print(f"password of {args.login} changed")
    return 0


def _disable(args: argparse.Namespace, disabled: bool) -> int:
    _cfg, engine, actor = store_and_user(args)
    auth.set_disabled(engine, actor, args.login, disabled)
    print(f"user {args.login} {'disabled (sessions ended)' if disabled else 'enabled'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    _cfg, engine, actor = store_and_user(args)
    auth.require(engine, actor, Permission.USER_ADMIN)
    for u in users_store.list_users(engine):
        state = "disabled" if u.disabled else ("locked" if u.locked_until else "active")
        print(f"{u.login}\t{u.role}\t{u.agent_login or '-'}\t{state}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    _cfg, engine, actor = store_and_user(args)
    auth.require(engine, actor, Permission.USER_ADMIN)
    for a in users_store.audit_trail(engine, args.limit, args.actor):
        print(f"{a.at.isoformat(timespec='seconds')}\t{a.actor}\t{a.role or '-'}\t{a.action}\t{a.target or '-'}\t"
              f"{'ok' if a.allowed else 'REFUSED'}\t{a.detail}")
    return 0


def register(sub: Subcommands) -> None:
    g = group(sub, "user", "users, roles and the audit trail (agent, supervisor, admin)")
    p = g.add_parser("add", help="add a user (admin only; the first user is made by the local admin)")
    p.add_argument("login")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--agent", metavar="AGENT_LOGIN", help="the [[agents]] login of an agent user (default: LOGIN)")
    p.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    p.set_defaults(func=_add)
    p = g.add_parser("passwd", help="change a password (your own, or anyone's as admin)")
    p.add_argument("login")
    p.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    p.set_defaults(func=_passwd)
    p = g.add_parser("disable", help="disable a user and end their sessions (admin)")
    p.add_argument("login")
    p.set_defaults(func=lambda a: _disable(a, True))
    p = g.add_parser("enable", help="enable a disabled or locked user (admin)")
    p.add_argument("login")
    p.set_defaults(func=lambda a: _disable(a, False))
    p = g.add_parser("list", help="list users (admin)")
    p.set_defaults(func=_list)
    p = g.add_parser("audit", help="who did what (admin)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--actor", metavar="LOGIN")
    p.set_defaults(func=_audit)
    for name in ("add", "passwd", "disable", "enable", "list", "audit"):
        sp = g.choices[name]
        add_user_arg(sp)
        add_config_arg(sp)
