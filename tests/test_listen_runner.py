"""A supervisor's join reaches the call through the real runner (issue 29): `dialer call whisper` writes the
campaign's `listen` command, `dialer campaign run` applies it, and its worker calls the supervisor's phone.

Real peers: SIPp carrier (talks), SIPp agent phone, SIPp supervisor phone, the runner and the CLI as
subprocesses, SQLite. The routes and levels per mode are tests/test_listen_sip.py's; this one checks the path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session, select

from dialer.service import auth, console
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry, ControlCommand, Customer
from dialer.store.users import audit_trail
from tests.conftest import run_env
from tests.sipp import Sipp, free_udp_port
from tests.test_web_sip import _config

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(150)]

PW = "sv01-password-9"


def test_dialer_call_whisper_reaches_the_worker_through_the_runner(tmp_path: Path) -> None:
    carrier_port = free_udp_port(6000, 6499)
    agent_port = free_udp_port(6500, 6899)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "l.db"
    cfg = tmp_path / "l.toml"
    cfg.write_text(_config(db, carrier_port, agent_port, sip_base), encoding="utf-8")
    url = f"sqlite:///{db}"
    engine, _ = init_db(url)
    now = datetime.now(UTC)
    with Session(engine) as s:
        s.add(Customer(customer_id="C1", name="山田 太郎", name_kana="ヤマダ タロウ", phone="+81312345678"))
        s.add(CallListEntry(customer_id="C1", segment="dormant", sku="SKU-1", phones=["+81312345678"],
                            priority=100.0, reason="休眠 180日", callable_from=now - timedelta(days=1),
                            callable_until=now + timedelta(days=3)))
        s.commit()
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    orig = auth._hasher
    auth._hasher = cheap
    try:
        auth.add_user(engine, auth.local_admin(), "sv01", "supervisor", PW)
    finally:
        auth._hasher = orig
    dispose_engines()
    # the customer hangs up by themselves after 15 s (a drained runner never cuts a conversation)
    carrier = Sipp("carrier_callee_bye", port=carrier_port, workdir=tmp_path, duration_ms=15000,
                   rtp_echo=True).start()
    phone = Sipp("agent_uas", port=agent_port, workdir=tmp_path, rtp_echo=True).start()
    boss = Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True).start()
    env = {**run_env(), "TSUNAGU_CONFIG": str(cfg)}
    runner = subprocess.Popen([sys.executable, "-m", "dialer", "campaign", "run", "webcall", "--for", "90s",
                               "--headless"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        e = get_engine(url)

        def connected() -> int | None:
            with Session(e) as s:
                a = s.exec(select(Attempt).where(Attempt.state == "connected")).first()
                return a.id if a is not None else None

        # the agent goes ready (as the web page's button does; a supervisor may set any agent's state)
        sv = auth.login(e, "sv01", PW)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                agent, _ = console.snapshot(e, sv, "a01", None)
                if agent.get("state") == "ready":
                    break
                console.set_idle_state(e, sv, "a01", agent["state"], "ready", datetime.now(UTC))
            except Exception:  # noqa: BLE001 - the runner has not written the agent's row yet
                pass
            time.sleep(0.3)
        attempt = None
        deadline = time.monotonic() + 60
        while attempt is None and time.monotonic() < deadline and runner.poll() is None:
            attempt = connected()
            time.sleep(0.2)
        assert attempt is not None, "no call was bridged"
        r = subprocess.run([sys.executable, "-m", "dialer", "call", "whisper", str(attempt), "--phone",
                            boss.uri("sv01"), "--user", "sv01"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, env={**env, "TSUNAGU_PASSWORD": PW})
        assert r.returncode == 0, r.stderr

        def result() -> str:
            with Session(e) as s:
                c = s.exec(select(ControlCommand).where(ControlCommand.command == "listen")).first()
                return c.result if c is not None and c.applied_at is not None else ""

        deadline = time.monotonic() + 20
        while not result() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert result() == f"whisper: call {attempt} by sv01"
        joins = [a for a in audit_trail(e, actor="sv01") if a.action == "recording.play"]
        assert joins and joins[0].allowed and joins[0].target == f"webcall:call {attempt}"
    finally:
        runner.send_signal(signal.SIGTERM)  # drain: the customer's own BYE ends the call
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
        boss.stop()
        phone.stop()
        carrier.stop(grace_s=1.0)
        dispose_engines()
    # the worker that held the call called the supervisor's phone once, and hung it up with the call
    assert boss.invites() == 1 and boss.received("BYE") == 1
