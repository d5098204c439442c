"""Log-in, sessions and permission checks: who is asking, and may they.

- Passwords are hashed with argon2id (argon2-cffi, the OWASP-recommended choice; its defaults are RFC 9106's
  low-memory profile) and re-hashed on log-in when the parameters have been raised since.
- Five wrong passwords in a row lock the user for 15 minutes (counted in the store, so every host and every
  screen shares the count); the error never says whether the user or the password was wrong.
- A session is a random token; only its SHA-256 is stored. It ends on log-out, after `idle` without use, after
  `absolute` whatever the use, and at once when the user is disabled.
- A store with no users at all is a single-seat install: the caller runs as the local admin, and every screen
  that allows it says so (`LOCAL_ADMIN_WARNING`). The first `dialer user add` ends that mode.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dialer.errors import UserError
from dialer.service.roles import GRANTS, OWN_DATA, Permission, PermissionDenied, Role, parse_role
from dialer.store import Engine
from dialer.store import users as store

MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
IDLE = timedelta(hours=1)
ABSOLUTE = timedelta(hours=12)
MIN_PASSWORD = 10
TOUCH_EVERY = timedelta(minutes=1)

LOCAL_ADMIN = "local-admin"
LOCAL_ADMIN_WARNING = ("no users in this store: running as the local admin (single-seat setup). "
                       "Anyone who can run this command has every right; add users with `dialer user add`.")

_hasher = PasswordHasher()


class LoginFailed(UserError):
    """Wrong user or password, a disabled user, or a locked one: one message that tells an attacker nothing."""


class SessionInvalid(UserError):
    """The session ended (expired, logged out, user disabled): log in again."""


@dataclass(frozen=True)
class Principal:
    """Who is asking. `agent_login` ties an agent user to one `[[agents]]` console."""

    login: str
    role: Role
    agent_login: str | None = None
    user_id: int | None = None
    token: str | None = None  # the session token (terminal or web), None for the local admin
    local: bool = False

    def may(self, perm: Permission, *, agent_login: str | None = None) -> bool:
        """The one permission rule: the role's grants, and an agent only on their own agent login."""
        if perm not in GRANTS[self.role]:
            return False
        if self.role is Role.AGENT and perm in OWN_DATA and agent_login is not None:
            return self.agent_login == agent_login
        return True


def local_admin() -> Principal:
    return Principal(LOCAL_ADMIN, Role.ADMIN, local=True)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def has_users(engine: Engine) -> bool:
    return store.count_users(engine) > 0


def add_user(engine: Engine, actor: Principal, login: str, role: str, password: str,
             agent_login: str | None = None) -> store.UserRow:
    """Create a user. Only an admin may (the local admin too, which is how the first user is made)."""
    require(engine, actor, Permission.USER_ADMIN, target=login)
    r = parse_role(role)
    login = login.strip()
    if not login or any(c.isspace() for c in login):
        raise UserError(f"bad user login {login!r}: no spaces, not empty")
    if store.get_user(engine, login) is not None:
        raise UserError(f"user {login!r} exists already (change the password with `dialer user passwd`)")
    if r is Role.AGENT and not agent_login:
        agent_login = login
    row = store.add_user(engine, login, r.value, hash_password(password), agent_login if r is Role.AGENT else None)
    store.audit(engine, actor.login, actor.role.value, "user.add", login, detail=f"role={r.value}")
    return row


def change_password(engine: Engine, actor: Principal, login: str, password: str) -> None:
    """An admin for anyone; every user for themself."""
    if actor.login != login:
        require(engine, actor, Permission.USER_ADMIN, target=login)
    if not store.set_password(engine, login, hash_password(password)):
        raise UserError(f"no user {login!r}")
    store.audit(engine, actor.login, actor.role.value, "user.passwd", login)


def set_disabled(engine: Engine, actor: Principal, login: str, disabled: bool) -> None:
    require(engine, actor, Permission.USER_ADMIN, target=login)
    if not store.set_disabled(engine, login, disabled):
        raise UserError(f"no user {login!r}")
    store.audit(engine, actor.login, actor.role.value, "user.disable" if disabled else "user.enable", login)


def login(engine: Engine, login_name: str, password: str, *, origin: str = "terminal",
          now: datetime | None = None) -> Principal:
    """Check a password and open a session. Every failure raises the same `LoginFailed` and is audited."""
    now = now or datetime.now(UTC)
    user = store.get_user(engine, login_name)
    refused = LoginFailed("log-in refused: wrong user or password, or the user is locked or disabled")
    if user is None:
        _hasher.hash(password or "x")  # same cost whether the user exists or not
        store.audit(engine, login_name, "", "auth.login", origin, allowed=False, detail="unknown user")
        raise refused
    if user.disabled or (user.locked_until is not None and user.locked_until > now):
        store.audit(engine, login_name, user.role, "auth.login", origin, allowed=False,
                    detail="disabled" if user.disabled else "locked")
        raise refused
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        n = store.record_failure(engine, user.id, now, MAX_FAILURES, LOCK_FOR)
        store.audit(engine, login_name, user.role, "auth.login", origin, allowed=False,
                    detail=f"bad password ({n} in a row)" + (", locked" if n >= MAX_FAILURES else ""))
        raise refused from None
    if _hasher.check_needs_rehash(user.password_hash):
        store.set_password(engine, login_name, _hasher.hash(password))
    store.record_success(engine, user.id)
    token = secrets.token_urlsafe(32)
    store.open_session(engine, _sha(token), user.id, now, now + ABSOLUTE, origin)
    store.audit(engine, login_name, user.role, "auth.login", origin)
    return Principal(user.login, Role(user.role), user.agent_login, user.id, token)


def authenticate(engine: Engine, token: str, *, now: datetime | None = None, touch: bool = True) -> Principal:
    """The principal of a live session token, or `SessionInvalid`."""
    now = now or datetime.now(UTC)
    row = store.get_session(engine, _sha(token))
    if row is None or row.revoked or row.expires_at <= now or now - row.last_seen > IDLE:
        raise SessionInvalid("session ended (expired, logged out or the user was disabled): log in again")
    user = store.get_user_by_id(engine, row.user_id)
    if user is None or user.disabled:
        raise SessionInvalid("session ended: the user was disabled")
    if touch and now - row.last_seen > TOUCH_EVERY:
        # a live page re-checks its session on every push: record the use once a minute, not on every read
        # (fifty open pages would otherwise write to the store several times a second)
        store.touch_session(engine, _sha(token), now)
    return Principal(user.login, Role(user.role), user.agent_login, user.id, token)


def logout(engine: Engine, principal: Principal) -> None:
    if principal.token is not None:
        store.revoke_session(engine, _sha(principal.token))
        store.audit(engine, principal.login, principal.role.value, "auth.logout", "")


def require(engine: Engine, principal: Principal, perm: Permission, *, agent_login: str | None = None,
            target: str = "", audit_allowed: bool = False) -> None:
    """Refuse (and audit the refusal) unless the principal may; a live session is re-checked first."""
    if principal.token is not None:
        principal = authenticate(engine, principal.token)
    if not principal.may(perm, agent_login=agent_login):
        store.audit(engine, principal.login, principal.role.value, perm.value, target or (agent_login or ""),
                    allowed=False)
        whose = f" for agent {agent_login}" if agent_login else ""
        raise PermissionDenied(f"user {principal.login} ({principal.role.value}) may not {perm.value}{whose}")
    if audit_allowed:
        store.audit(engine, principal.login, principal.role.value, perm.value, target or (agent_login or ""))


def record(engine: Engine, principal: Principal, perm: Permission, target: str, detail: str = "") -> None:
    """Write an allowed action to the audit trail (commands, dispositions, joins)."""
    store.audit(engine, principal.login, principal.role.value, perm.value, target, detail=detail)
