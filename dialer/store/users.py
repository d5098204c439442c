"""Users, their sessions and the audit trail: every SQL the service layer's log-in and permission checks need.

Why in the store and not in a config file: a centre of twenty seats adds and disables people during the day,
from several hosts, and a lock-out after repeated failures must hold across every process that takes a
password. Passwords are never stored, only their argon2 hash (made in `dialer.service.auth`); session tokens
are stored as a SHA-256 of the token, so a copy of the database does not hand out live sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Index, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from dialer.store.models import utcnow


class User(SQLModel, table=True):
    """A person who may log in: an agent (optionally tied to one `[[agents]]` login), a supervisor or an admin."""

    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(index=True, unique=True)
    role: str  # dialer.service.roles.Role
    agent_login: str | None = None  # the agent console this user is (agents only)
    password_hash: str
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)
    password_changed_at: datetime = Field(default_factory=utcnow)


class UserSession(SQLModel, table=True):
    """A logged-in seat. Idle and absolute expiry are both checked on use; a log-out revokes at once."""

    __tablename__ = "user_sessions"
    token_sha256: str = Field(primary_key=True)
    user_id: int = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked: bool = False
    origin: str = ""  # "terminal", "web", ...


class AuditEntry(SQLModel, table=True):
    """Who did what, when: every command and every administrative change, allowed or refused."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str  # user login, or "local-admin"
    role: str
    action: str  # dialer.service.roles.Permission value or an auth event
    target: str = ""
    allowed: bool = True
    detail: str = ""


@dataclass(frozen=True)
class UserRow:
    """A user as the service layer sees it (no ORM object leaves the store)."""

    id: int
    login: str
    role: str
    agent_login: str | None
    password_hash: str
    disabled: bool
    failed_logins: int
    locked_until: datetime | None


def _row(u: User) -> UserRow:
    assert u.id is not None
    return UserRow(u.id, u.login, u.role, u.agent_login, u.password_hash, u.disabled, u.failed_logins,
                   u.locked_until)


def count_users(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(User)).one())


def get_user(engine: Engine, login: str) -> UserRow | None:
    with Session(engine) as s:
        u = s.exec(select(User).where(col(User.login) == login)).first()
        return _row(u) if u is not None else None


def get_user_by_id(engine: Engine, user_id: int) -> UserRow | None:
    with Session(engine) as s:
        u = s.get(User, user_id)
        return _row(u) if u is not None else None


def list_users(engine: Engine) -> list[UserRow]:
    with Session(engine) as s:
        return [_row(u) for u in s.exec(select(User).order_by(col(User.login))).all()]


def add_user(engine: Engine, login: str, role: str, password_hash: str, agent_login: str | None) -> UserRow:
    with Session(engine, expire_on_commit=False) as s:
        u = User(login=login, role=role, password_hash=password_hash, agent_login=agent_login)
        s.add(u)
        s.commit()
        return _row(u)


def set_password(engine: Engine, login: str, password_hash: str) -> bool:
    with Session(engine) as s:
        res = s.execute(update(User).where(col(User.login) == login).values(
            password_hash=password_hash, password_changed_at=utcnow(), failed_logins=0, locked_until=None))
        s.commit()
        return bool(getattr(res, "rowcount", 0))


def set_disabled(engine: Engine, login: str, disabled: bool) -> bool:
    """Disabling also revokes every open session of the user: a person who left cannot stay logged in."""
    with Session(engine) as s:
        u = s.exec(select(User).where(col(User.login) == login)).first()
        if u is None:
            return False
        u.disabled = disabled
        if disabled:
            s.execute(update(UserSession).where(col(UserSession.user_id) == u.id)
                   .values(revoked=True))
        else:
            u.failed_logins = 0
            u.locked_until = None
        s.add(u)
        s.commit()
        return True


def record_failure(engine: Engine, user_id: int, now: datetime, max_failures: int, lock_for: timedelta) -> int:
    """Count a failed password in one UPDATE (two hosts guessing at once both count); lock at the limit."""
    with Session(engine) as s:
        s.execute(update(User).where(col(User.id) == user_id)
               .values(failed_logins=col(User.failed_logins) + 1))
        u = s.get(User, user_id)
        assert u is not None
        if u.failed_logins >= max_failures:
            u.locked_until = now + lock_for
            s.add(u)
        s.commit()
        return u.failed_logins


def record_success(engine: Engine, user_id: int) -> None:
    with Session(engine) as s:
        s.execute(update(User).where(col(User.id) == user_id)
               .values(failed_logins=0, locked_until=None))
        s.commit()


def open_session(engine: Engine, token_sha256: str, user_id: int, now: datetime, expires_at: datetime,
                 origin: str) -> None:
    with Session(engine) as s:
        s.add(UserSession(token_sha256=token_sha256, user_id=user_id, created_at=now, last_seen=now,
                          expires_at=expires_at, origin=origin))
        s.commit()


@dataclass(frozen=True)
class SessionRow:
    user_id: int
    created_at: datetime
    last_seen: datetime
    expires_at: datetime
    revoked: bool


def get_session(engine: Engine, token_sha256: str) -> SessionRow | None:
    with Session(engine) as s:
        r = s.get(UserSession, token_sha256)
        if r is None:
            return None
        return SessionRow(r.user_id, r.created_at, r.last_seen, r.expires_at, r.revoked)


def touch_session(engine: Engine, token_sha256: str, now: datetime) -> None:
    with Session(engine) as s:
        s.execute(update(UserSession).where(col(UserSession.token_sha256) == token_sha256)
               .values(last_seen=now))
        s.commit()


def revoke_session(engine: Engine, token_sha256: str) -> None:
    with Session(engine) as s:
        s.execute(update(UserSession).where(col(UserSession.token_sha256) == token_sha256)
               .values(revoked=True))
        s.commit()


def audit(engine: Engine, actor: str, role: str, action: str, target: str = "", *, allowed: bool = True,
          detail: str = "") -> None:
    with Session(engine) as s:
        s.add(AuditEntry(actor=actor, role=role, action=action, target=target, allowed=allowed, detail=detail))
        s.commit()


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    allowed: bool
    detail: str


def audit_trail(engine: Engine, limit: int = 200, actor: str | None = None) -> list[AuditRow]:
    with Session(engine) as s:
        q = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(limit)
        if actor is not None:
            q = q.where(col(AuditEntry.actor) == actor)
        return [AuditRow(a.at, a.actor, a.role, a.action, a.target, a.allowed, a.detail)
                for a in s.exec(q).all()]
