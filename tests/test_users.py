"""Users, roles and sessions (issue 28): every seat sees only what it may, from the terminal as from any screen.

In-process CLI calls (`dialer.cli.main`) against a real SQLite store in a temporary directory; passwords come in
through stdin (`--password-stdin`) and `$TSUNAGU_PASSWORD`, as a script would give them.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from dialer.cli import main
from dialer.service import auth
from dialer.service.roles import GRANTS, OWN_DATA, Permission, PermissionDenied, Role
from dialer.store import users as users_store
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import utcnow

CONFIG = """
[database]
url = "sqlite:///var/tsunagu.db"

[[agents]]
login = "a01"
name = "佐藤 花子"
sip_uri = "sip:a01@127.0.0.1:5301"

[[agents]]
login = "a02"
name = "鈴木 一郎"
sip_uri = "sip:a02@127.0.0.1:5302"
"""

PW = {"boss": "boss-password-1", "sv": "sv-password-22", "a01": "a01-password-3", "a02": "a02-password-4"}


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its smallest cost: the same algorithm and code path, without 0.2 s per hash on a busy host."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def cli(monkeypatch: pytest.MonkeyPatch, *argv: str, user: str | None = None, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    if user is None:
        monkeypatch.delenv("TSUNAGU_USER", raising=False)
        monkeypatch.delenv("TSUNAGU_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("TSUNAGU_USER", user)
        monkeypatch.setenv("TSUNAGU_PASSWORD", PW.get(user, "wrong-password-0"))
    return main(list(argv))


@pytest.fixture()
def floor(configured: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A store with an admin, a supervisor and two agents, created the way a centre would."""
    in_tmp = configured
    assert main(["db", "init"]) == 0
    # the first user is made by the local admin (no users yet)
    assert cli(monkeypatch, "user", "add", "boss", "--role", "admin", "--password-stdin", stdin=PW["boss"] + "\n") == 0
    for login, role in (("sv", "supervisor"), ("a01", "agent"), ("a02", "agent")):
        assert cli(monkeypatch, "user", "add", login, "--role", role, "--password-stdin", user="boss",
                   stdin=PW[login] + "\n") == 0
    yield in_tmp
    dispose_engines()


@pytest.fixture()
def configured(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (in_tmp / "tsunagu.toml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("TSUNAGU_CONFIG", str(in_tmp / "tsunagu.toml"))
    return in_tmp


def _engine(root: Path):  # type: ignore[no-untyped-def]
    return get_engine(f"sqlite:///{root / 'var' / 'tsunagu.db'}")


def test_no_users_means_local_admin_with_a_warning(configured: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init"]) == 0
    assert cli(monkeypatch, "agent", "a01", "--once", "--width", "100") == 0
    err = capsys.readouterr().err
    assert "local admin" in err and "dialer user add" in err
    dispose_engines()


def test_an_agent_sees_only_their_own_console(floor: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(monkeypatch, "agent", "a01", "--once", "--width", "100", user="a01") == 0
    capsys.readouterr()
    assert cli(monkeypatch, "agent", "a02", "--once", "--width", "100", user="a01") == 2
    out = capsys.readouterr()
    assert "may not" in out.err and "a02" in out.err and "Traceback" not in out.err
    # the refusal is on the audit trail with who asked
    trail = users_store.audit_trail(_engine(floor), actor="a01")
    assert any(not a.allowed and a.action == Permission.AGENT_CONSOLE.value and a.target == "a02" for a in trail)
    # a supervisor may open any agent's console (coaching), an agent may not open the floor
    assert cli(monkeypatch, "agent", "a02", "--once", "--width", "100", user="sv") == 0
    assert cli(monkeypatch, "monitor", "--once", "--width", "100", user="a01") == 2
    assert cli(monkeypatch, "monitor", "--once", "--width", "100", user="sv") == 0


def test_a_supervisor_cannot_manage_users(floor: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(monkeypatch, "user", "add", "x1", "--role", "admin", "--password-stdin", user="sv",
               stdin="x1-password-99\n") == 2
    assert cli(monkeypatch, "user", "disable", "a01", user="sv") == 2
    assert cli(monkeypatch, "user", "list", user="sv") == 2
    assert users_store.get_user(_engine(floor), "x1") is None
    capsys.readouterr()
    assert cli(monkeypatch, "user", "list", user="boss") == 0
    listed = capsys.readouterr().out
    assert "a01\tagent\ta01\tactive" in listed and "sv\tsupervisor" in listed


def test_wrong_password_and_unknown_user_say_the_same(floor: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TSUNAGU_PASSWORD", "not-the-password")
    assert main(["monitor", "--once", "--user", "sv"]) == 2
    first = capsys.readouterr().err
    assert main(["monitor", "--once", "--user", "nobody"]) == 2
    second = capsys.readouterr().err
    assert first == second and "log-in refused" in first


def test_lock_out_after_repeated_failures(floor: Path) -> None:
    engine = _engine(floor)
    now = utcnow()
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(auth.LoginFailed):
            auth.login(engine, "a01", "guess-guess-guess", now=now)
    # locked: even the right password is refused until the lock ends
    with pytest.raises(auth.LoginFailed):
        auth.login(engine, "a01", PW["a01"], now=now + timedelta(minutes=1))
    who = auth.login(engine, "a01", PW["a01"], now=now + auth.LOCK_FOR + timedelta(seconds=1))
    assert who.role is Role.AGENT and who.agent_login == "a01"
    # a success resets the count: one more failure does not lock
    with pytest.raises(auth.LoginFailed):
        auth.login(engine, "a01", "guess-guess-guess")
    assert auth.login(engine, "a01", PW["a01"]).login == "a01"


def test_sessions_expire_and_end_when_the_user_is_disabled(floor: Path) -> None:
    engine = _engine(floor)
    t0 = utcnow()
    who = auth.login(engine, "sv", PW["sv"], now=t0)
    assert who.token is not None
    assert auth.authenticate(engine, who.token, now=t0 + timedelta(minutes=30)).login == "sv"
    with pytest.raises(auth.SessionInvalid):  # idle too long
        auth.authenticate(engine, who.token, now=t0 + timedelta(minutes=30) + auth.IDLE + timedelta(seconds=1))
    again = auth.login(engine, "sv", PW["sv"])
    assert again.token is not None
    with pytest.raises(auth.SessionInvalid):  # absolute limit, however busy
        auth.authenticate(engine, again.token, now=utcnow() + auth.ABSOLUTE + timedelta(seconds=1), touch=False)
    boss = auth.login(engine, "boss", PW["boss"])
    auth.set_disabled(engine, boss, "sv", True)
    with pytest.raises(auth.SessionInvalid):
        auth.authenticate(engine, again.token)
    with pytest.raises(auth.LoginFailed):
        auth.login(engine, "sv", PW["sv"])
    # a revoked session can no longer pass a permission check either
    with pytest.raises(auth.SessionInvalid):
        auth.require(engine, again, Permission.MONITOR_READ)
    auth.logout(engine, boss)
    assert boss.token is not None
    with pytest.raises(auth.SessionInvalid):
        auth.authenticate(engine, boss.token)


def test_passwords_are_argon2_hashes_never_text(floor: Path) -> None:
    raw = sqlite3.connect(floor / "var" / "tsunagu.db")
    try:
        hashes = [h for (h,) in raw.execute("SELECT password_hash FROM users")]
        tokens = [t for (t,) in raw.execute("SELECT token_sha256 FROM user_sessions")]
    finally:
        raw.close()
    assert len(hashes) == 4 and all(h.startswith("$argon2id$") for h in hashes)
    dump = "\n".join(hashes + tokens)
    assert not any(pw in dump for pw in PW.values())
    with pytest.raises(Exception, match="too short"):
        auth.hash_password("short")


@pytest.mark.parametrize("role", list(Role))
def test_permission_table_is_what_the_roles_promise(role: Role) -> None:
    who = auth.Principal("u", role, agent_login="a01" if role is Role.AGENT else None)
    for perm in Permission:
        allowed = who.may(perm)
        assert allowed == (perm in GRANTS[role])
    # own data: an agent only on their own agent login; supervisors and admins on anyone's
    for perm in OWN_DATA:
        assert who.may(perm, agent_login="a01")
        assert who.may(perm, agent_login="a02") == (role is not Role.AGENT)
    assert who.may(Permission.USER_ADMIN) == (role is Role.ADMIN)
    assert who.may(Permission.CAMPAIGN_COMMAND) == (role is not Role.AGENT)


def test_require_refuses_and_audits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    engine, _ = init_db(url)
    agent = auth.Principal("a09", Role.AGENT, agent_login="a09")
    with pytest.raises(PermissionDenied):
        auth.require(engine, agent, Permission.DISPOSITION, agent_login="a10")
    auth.require(engine, agent, Permission.DISPOSITION, agent_login="a09")
    trail = users_store.audit_trail(engine)
    assert [(a.actor, a.allowed, a.target) for a in trail] == [("a09", False, "a10")]
    dispose_engines()
