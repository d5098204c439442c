"""A real call on the browser console (issue 29): the agent logs in on the page and goes ready, the real runner
dials the SIPp carrier, the customer is bridged to the agent's SIPp softphone, the page shows the customer
while the call is up, and the disposition keyed on the page is the one the store keeps.

Real peers only: SIPp as carrier and as the agent's phone, `dialer campaign run` and `dialer web` as
subprocesses, SQLite, Debian's Chromium through chromium-driver."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from argon2 import PasswordHasher
from sqlmodel import Session, select

from dialer.service import auth
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry, Customer, Disposition
from tests.conftest import REPO, run_env
from tests.sipp import Sipp, free_udp_port
from tests.test_web import _browser, _free_port, _wait

pytestmark = [pytest.mark.sip, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromedriver") is None, reason="chromium-driver not installed")]

PW = "a01-password-3"


def _config(db: Path, carrier: int, agent: int, sip_base: int) -> str:
    return f"""
[database]
url = "sqlite:///{db}"
[business]
name = "つなぐ通販"
phone = "0120-000-000"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 43000
lines = 2
agent_legs = "on_connect"
drain_s = 30
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier}"
sandbox = true
[[agents]]
login = "a01"
name = "佐藤 花子"
sip_uri = "sip:a01@127.0.0.1:{agent}"
[[campaigns]]
name = "webcall"
mode = "progressive"
trunk = "loop"
calling_hours = ["08:00", "21:00"]
holidays = ""
ring_timeout_s = 15
connect_limit_s = 2.0
wrap_up_timeout_s = 120
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""


def test_a_call_from_the_carrier_on_the_browser_console(tmp_path: Path) -> None:
    carrier_port = free_udp_port(6000, 6499)
    agent_port = free_udp_port(6500, 6899)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "web.db"
    cfg = tmp_path / "web.toml"
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
    # users made in-process at argon2's smallest cost (the server verifies with the parameters in the hash)
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    orig = auth._hasher
    auth._hasher = cheap
    try:
        auth.add_user(engine, auth.local_admin(), "a01", "agent", PW)
        auth.add_user(engine, auth.local_admin(), "sv", "supervisor", PW)  # watches the wallboard
    finally:
        auth._hasher = orig
    dispose_engines()

    carrier = Sipp("carrier_callee_bye", port=carrier_port, workdir=tmp_path, duration_ms=12000, rtp_echo=True).start()
    phone = Sipp("agent_uas", port=agent_port, workdir=tmp_path, rtp_echo=True).start()
    env = {**run_env(), "TSUNAGU_CONFIG": str(cfg)}
    port = _free_port()
    web_log = tmp_path / "web.log"
    runner_log = tmp_path / "runner.log"
    with web_log.open("wb") as wl, runner_log.open("wb") as rl:
        web = subprocess.Popen([sys.executable, "-m", "dialer", "web", "--port", str(port), "--push-s", "0.3",
                                "--insecure-loopback-cookies"], cwd=tmp_path, env=env,
                               stdout=wl, stderr=subprocess.STDOUT)
        runner = subprocess.Popen([sys.executable, "-m", "dialer", "campaign", "run", "webcall", "--for", "90s",
                                   "--headless"], cwd=tmp_path, env=env, stdout=rl,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    b = board = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        b = _browser()
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        b.get(base + "/login")
        b.find_element(By.ID, "user").send_keys("a01")
        b.find_element(By.ID, "password").send_keys(PW)
        b.find_element(By.ID, "submit").click()
        _wait(lambda: b.current_url.endswith("/agent/a01"))
        # a supervisor's wallboard is open before the call (it must follow the call live, without a reload)
        board = _browser()
        board.get(base + "/login")
        board.find_element(By.ID, "user").send_keys("sv")
        board.find_element(By.ID, "password").send_keys(PW)
        board.find_element(By.ID, "submit").click()
        _wait(lambda: board.current_url.endswith("/floor"))
        board.get(base + "/wallboard")
        on_board = "span.agent[data-login='a01']"

        def board_state() -> str:
            found = board.find_elements(By.CSS_SELECTOR, on_board)
            return found[0].get_attribute("class") if found else ""

        def seen() -> str:  # what the agent's page, the server and the runner said (for a failure message)
            tails = " | ".join(f"{p.name}: {p.read_text(errors='replace')[-1500:]}" for p in (web_log, runner_log))
            return f"url={b.current_url} page={b.find_element(By.TAG_NAME, 'body').text[:600]!r} {tails}"

        b.find_element(By.ID, "ready").click()
        # the runner sees a ready agent, dials, the carrier answers, the agent's phone is bridged: the page
        # shows the customer without a reload
        _wait(lambda: "山田 太郎" in b.find_element(By.ID, "customer-name").text, timeout=45, show=seen)
        assert "つなぐ通販" in b.find_element(By.ID, "opening").text
        # the wallboard shows the agent on the carrier's call (pushed over SSE from the runner's own rows)
        _wait(lambda: "state-on_call" in board_state(), timeout=15, show=seen)
        assert "webcall" in board.find_element(By.ID, "live").text
        # the customer wants a call back tomorrow afternoon: booked on the page in the form agents type
        Select(b.find_element(By.ID, "outcome")).select_by_value("callback")
        b.find_element(By.ID, "amount").send_keys("１２,０００")  # full-width digits from an IME
        b.find_element(By.ID, "when").send_keys("明日 14:00")
        b.find_element(By.ID, "save").click()
        # (the save writes the disposition, its outbox row and the audit line; each write may wait out the
        # runner's lock for up to the store's 10 s busy timeout on a loaded host)
        _wait(lambda: "saved=1" in b.current_url, timeout=40, show=seen)
        # and follows the agent off the call once the disposition is in and the call is over
        _wait(lambda: board_state() != "" and "state-on_call" not in board_state(), timeout=30, show=seen)
        with Session(get_engine(url)) as s:
            ds = s.exec(select(Disposition)).all()
            att = s.exec(select(Attempt)).all()
        assert [(d.outcome, d.amount, d.source) for d in ds] == [("callback", 12000.0, "web")]
        assert len(att) == 1 and ds[0].attempt_id == att[0].id and att[0].agent_connected_at is not None
        tokyo = ZoneInfo("Asia/Tokyo")
        tomorrow = datetime.now(tokyo).date() + timedelta(days=1)
        assert ds[0].callback_at is not None
        assert ds[0].callback_at.astimezone(tokyo).replace(tzinfo=None) == datetime.combine(
            tomorrow, datetime.min.time()).replace(hour=14)
        # the runner applies it: the callback is the agent's, on their calendar, at 14:00 tomorrow
        b.get(base + "/agent/a01/callbacks")
        day = f"section.day[data-date='{tomorrow.isoformat()}']"

        def booked() -> bool:
            b.refresh()
            return "山田 太郎" in b.find_element(By.CSS_SELECTOR, day).text

        _wait(booked, timeout=30, show=seen)
        assert "14:00" in b.find_element(By.CSS_SELECTOR, day).text
    finally:
        for browser in (b, board):
            if browser is not None:
                browser.quit()
        runner.send_signal(signal.SIGTERM)  # drain: the customer's own BYE ends the call
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            runner.kill()
        web.terminate()
        web.wait(timeout=15)
        phone.stop()
        carrier.stop(grace_s=1.0)
        dispose_engines()
    assert carrier.received("INVITE") == 1
