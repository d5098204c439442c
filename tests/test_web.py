"""The browser face (issue 29) in real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
log-in, the agent console, the floor and the wallboard live over SSE, permissions, CSRF, the log-in limit.

`dialer web` runs as a real subprocess on loopback against a real SQLite store; rows the campaign runner would
write (an agent on a call) are written with the store's own functions."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.conftest import run_env

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None or shutil.which("chromium") is None,
                                reason="chromium-driver not installed (scripts/_setup installs it)")

CONFIG = """
[database]
url = "sqlite:///{db}"

[business]
name = "つなぐ通販"
phone = "0120-000-000"

[calendar]
closed_days = ["{closed} 棚卸"]

[[agents]]
login = "a01"
name = "佐藤 花子"
sip_uri = "sip:a01@127.0.0.1:5301"

[[agents]]
login = "a02"
name = "鈴木 一郎"
sip_uri = "sip:a02@127.0.0.1:5302"
"""
_BEATS: list[object] = []
PW = {"sv": "sv-password-22", "a01": "a01-password-3", "a02": "a02-password-4", "boss": "boss-password-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dialer(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], cwd=cwd, input=stdin, text=True,
                          capture_output=True, timeout=120, env=env or run_env())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("web")
    db = root / "tsunagu.db"
    cfg = root / "tsunagu.toml"
    closed = (datetime.now(ZoneInfo("Asia/Tokyo")).date() + timedelta(days=2)).isoformat()
    cfg.write_text(CONFIG.format(db=db, closed=closed), encoding="utf-8")
    (root / "talk_scripts").mkdir()
    (root / "talk_scripts" / "winback.md").write_text(
        "## 切り返し\n\n- 「高い」と言われたら **定期便の割引** をご案内\n\n<script>alert(1)</script>\n",
        encoding="utf-8")
    env = run_env()
    env["TSUNAGU_CONFIG"] = str(cfg)
    assert _dialer("db", "init", cwd=root, env=env).returncode == 0
    r = _dialer("user", "add", "boss", "--role", "admin", "--password-stdin", cwd=root, stdin=PW["boss"] + "\n",
                env=env)
    assert r.returncode == 0, r.stderr
    admin_env = {**env, "TSUNAGU_USER": "boss", "TSUNAGU_PASSWORD": PW["boss"]}
    for login, role in (("sv", "supervisor"), ("a01", "agent"), ("a02", "agent")):
        r = _dialer("user", "add", login, "--role", role, "--password-stdin", cwd=root, stdin=PW[login] + "\n",
                    env=admin_env)
        assert r.returncode == 0, r.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dialer", "web", "--port", str(port), "--push-s", "0.3",
                             "--insecure-loopback-cookies"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/login", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise AssertionError(f"dialer web exited: {proc.stdout.read() if proc.stdout else ''}")
    else:
        proc.kill()
        raise AssertionError("dialer web did not answer in 60 s")
    yield {"base": base, "root": root, "db": db, "cfg": cfg}
    for beat in _BEATS:
        beat.stop.set()  # type: ignore[attr-defined]
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,768", "--lang=ja"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)


@pytest.fixture()
def browser() -> Iterator[object]:
    b = _browser()
    b.set_page_load_timeout(30)
    yield b
    b.quit()


def _login(b, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    b.get(base + "/login")
    b.find_element(By.ID, "user").send_keys(user)
    b.find_element(By.ID, "password").send_keys(PW[user])
    b.find_element(By.ID, "submit").click()


def _wait(cond, timeout: float = 15.0, show=None) -> None:  # type: ignore[no-untyped-def]
    """Poll COND; on a timeout the message carries SHOW() (what the page says) so a failure explains itself."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except Exception as exc:  # an element replaced by a live update mid-read
            last = exc
        time.sleep(0.1)
    seen = ""
    if show is not None:
        try:
            seen = f"; seen: {show()}"
        except Exception as exc:  # the page itself is gone: say so rather than hide the timeout
            seen = f"; seen: unreadable ({exc})"
    raise AssertionError(f"condition not met in {timeout} s ({last}){seen}")


class _Heartbeat:
    """Beats for a campaign as its runner does (every second), so the floor shows it live."""

    def __init__(self, db: Path, campaign_id: int) -> None:
        self.db, self.campaign_id = db, campaign_id
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        from dialer.store.campaigns import claim
        from dialer.store.db import get_engine

        engine = get_engine(f"sqlite:///{self.db}")
        while not self.stop.is_set():
            claim(engine, self.campaign_id, "test-runner", "predictive", "winback", stale_s=10.0,
                  alive=lambda _r: False)
            self.stop.wait(1.0)


def _put_agent_on_a_call(db: Path, login: str) -> int:
    """What the runner writes when a customer is bridged to LOGIN: an attempt connected to them."""
    from sqlmodel import Session, select

    from dialer.store.attempts import create_attempt
    from dialer.store.db import get_engine
    from dialer.store.models import Agent, Campaign, Customer

    engine = get_engine(f"sqlite:///{db}")
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "winback")).first()
        if camp is None:
            camp = Campaign(name="winback", mode="predictive")
            s.add(camp)
            s.add(Customer(customer_id="C9", name="山田 太郎", name_kana="ヤマダ タロウ", phone="+81312345678",
                           ltv=48000.0))
            s.commit()
            s.refresh(camp)
        agent = s.exec(select(Agent).where(Agent.login == login)).one()
        camp_id, agent_id = camp.id, agent.id
    assert camp_id is not None
    beat = _Heartbeat(db, camp_id)
    beat.thread.start()
    _BEATS.append(beat)
    now = datetime.now(UTC)
    attempt = create_attempt(engine, campaign_id=camp_id, customer_id="C9", phone="+81312345678",
                             agent_id=agent_id, state="connected", dialed_at=now, agent_connected_at=now)
    with Session(engine) as s:
        agent = s.exec(select(Agent).where(Agent.login == login)).one()
        agent.state, agent.state_since, agent.current_attempt_id, agent.campaign_id = "on_call", now, attempt, camp_id
        s.add(agent)
        s.commit()
    return attempt


def test_agent_console_live_on_the_floor_and_a_disposition(site: dict[str, object], browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = str(site["base"])
    b = browser
    _login(b, base, "a01")
    _wait(lambda: b.current_url.endswith("/agent/a01"))  # type: ignore[attr-defined]
    b.find_element(By.ID, "ready").click()  # type: ignore[attr-defined]
    _wait(lambda: b.find_element(By.ID, "state-label").text in ("待機", "ready"))  # type: ignore[attr-defined]

    sv = _browser()
    try:
        _login(sv, base, "sv")
        _wait(lambda: sv.current_url.endswith("/floor"))
        # a change made elsewhere reaches the open floor page without a reload (SSE)
        _put_agent_on_a_call(Path(str(site["db"])), "a01")
        t0 = time.monotonic()
        _wait(lambda: "winback" in sv.find_element(By.ID, "live").text)
        row = lambda: sv.find_element(By.CSS_SELECTOR, "tr[data-login='a01'] td.agent-state").text  # noqa: E731
        _wait(lambda: row() in ("通話中", "on call"))
        assert time.monotonic() - t0 < 10
        # the agent's page shows the customer, the 特商法 opening and the form without a reload
        _wait(lambda: "山田 太郎" in b.find_element(By.ID, "customer-name").text)  # type: ignore[attr-defined]
        assert "つなぐ通販" in b.find_element(By.ID, "opening").text  # type: ignore[attr-defined]
        # the manager's Markdown talk script beside the pop, rendered, with its raw HTML shown as text
        script = b.find_element(By.ID, "talk-script")  # type: ignore[attr-defined]
        assert script.find_element(By.TAG_NAME, "h2").text == "切り返し"
        assert script.find_element(By.TAG_NAME, "strong").text == "定期便の割引"
        assert script.find_elements(By.TAG_NAME, "script") == [] and "<script>" in script.text
        Select(b.find_element(By.ID, "outcome")).select_by_value("refused")  # type: ignore[attr-defined]
        Select(b.find_element(By.ID, "reason")).select_by_value("1")  # type: ignore[attr-defined]
        b.find_element(By.ID, "voc").send_keys("価格が高い")  # type: ignore[attr-defined]
        b.find_element(By.ID, "save").click()  # type: ignore[attr-defined]
        _wait(lambda: "saved=1" in b.current_url)  # type: ignore[attr-defined]
        from sqlmodel import Session, select

        from dialer.store.db import get_engine
        from dialer.store.models import Disposition

        with Session(get_engine(f"sqlite:///{site['db']}")) as s:
            ds = s.exec(select(Disposition)).all()
        assert [(d.outcome, d.reason_code, d.voc_text, d.source) for d in ds][-1] == ("refused", "1", "価格が高い", "web")
        # the wallboard shows the same figures as the floor
        sv.get(base + "/wallboard")
        _wait(lambda: "winback" in sv.find_element(By.ID, "live").text)
    finally:
        sv.quit()


def test_an_agent_is_refused_another_agents_console_and_the_floor(site: dict[str, object], browser: object) -> None:
    from selenium.webdriver.common.by import By

    base = str(site["base"])
    b = browser
    _login(b, base, "a02")
    _wait(lambda: b.current_url.endswith("/agent/a02"))  # type: ignore[attr-defined]
    for path in ("/agent/a01", "/floor", "/wallboard"):
        b.get(base + path)  # type: ignore[attr-defined]
        assert "a02" in b.find_element(By.ID, "error").text  # type: ignore[attr-defined]
        assert "山田" not in b.page_source  # type: ignore[attr-defined]
    # the live stream is refused too, not only the page
    cookies = {c["name"]: c["value"] for c in b.get_cookies()}  # type: ignore[attr-defined]
    r = httpx.get(base + "/events/agent?login=a01", cookies=cookies, timeout=5)
    assert r.status_code == 403
    # a rendering shared between viewers is never handed to one who may not see it: warm the floor's as a
    # supervisor, then ask for it as the agent at once
    with httpx.Client(base_url=base, timeout=10) as sv:
        sv.get("/login")
        token = sv.cookies.get("tsunagu_login_csrf")
        assert sv.post("/login", data={"user": "sv", "password": PW["sv"], "csrf": token},
                       headers={"origin": base}).status_code == 303
        assert sv.get("/floor").status_code == 200
        r = httpx.get(base + "/events/floor", cookies=cookies, timeout=5)
    assert r.status_code == 403


def test_the_agents_callback_calendar_shows_their_callbacks_and_the_closed_days(site: dict[str, object],
                                                                               browser: object) -> None:
    from selenium.webdriver.common.by import By
    from sqlmodel import Session

    from dialer.store.db import get_engine
    from dialer.store.models import CallListEntry, Customer

    tokyo = ZoneInfo("Asia/Tokyo")
    tomorrow = datetime.now(tokyo).date() + timedelta(days=1)
    at = datetime.combine(tomorrow, datetime.min.time(), tokyo).replace(hour=14, minute=30)
    engine = get_engine(f"sqlite:///{site['db']}")
    with Session(engine) as s:  # what the hopper writes when a01 books a callback (and one for a02)
        for cid, name, who in (("C21", "高橋 美咲", "a01"), ("C22", "田中 健", "a02")):
            s.add(Customer(customer_id=cid, name=name, phone="+81312345600"))
            s.add(CallListEntry(customer_id=cid, segment="callback", reason="callback", phones=["+81312345600"],
                                callback_at=at.astimezone(UTC), callback_agent=who, status="pending"))
        s.commit()
    base = str(site["base"])
    b = browser
    _login(b, base, "a01")
    _wait(lambda: b.current_url.endswith("/agent/a01"))  # type: ignore[attr-defined]
    b.find_element(By.ID, "to-callbacks").click()  # type: ignore[attr-defined]
    day = lambda d: b.find_element(By.CSS_SELECTOR, f"section.day[data-date='{d.isoformat()}']")  # noqa: E731
    _wait(lambda: "高橋 美咲" in day(tomorrow).text)
    assert "14:30" in day(tomorrow).text
    assert "田中" not in b.find_element(By.ID, "calendar").text  # type: ignore[attr-defined]
    closed = day(tomorrow + timedelta(days=1))
    assert "closed" in (closed.get_attribute("class") or "") and "棚卸" in closed.text
    # another agent's calendar is refused
    b.get(base + "/agent/a02/callbacks")  # type: ignore[attr-defined]
    assert "may not" in b.find_element(By.ID, "error").text  # type: ignore[attr-defined]


def test_forms_need_the_csrf_token_and_the_same_origin(site: dict[str, object]) -> None:
    base = str(site["base"])
    with httpx.Client(base_url=base, timeout=10) as c:
        page = c.get("/login")
        token = c.cookies.get("tsunagu_login_csrf")
        assert token and page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["x-frame-options"] == "DENY"
        # no token, or another site's origin: refused before the password is even looked at
        r = c.post("/login", data={"user": "a01", "password": PW["a01"]}, headers={"origin": base})
        assert r.status_code == 403
        r = c.post("/login", data={"user": "a01", "password": PW["a01"], "csrf": token},
                   headers={"origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/login", data={"user": "a01", "password": PW["a01"], "csrf": token}, headers={"origin": base})
        assert r.status_code == 303
        cookie = r.cookies.get("tsunagu_session") or c.cookies.get("tsunagu_session")
        assert cookie
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        # a logged-in state change without the form's token is refused
        r = c.post("/agent/a01/state", data={"action": "pause"}, headers={"origin": base})
        assert r.status_code == 403


def _client_as(base: str, user: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=10)
    c.get("/login")
    token = c.cookies.get("tsunagu_login_csrf")
    assert c.post("/login", data={"user": user, "password": PW[user], "csrf": token},
                  headers={"origin": base}).status_code == 303
    return c


def test_a_supervisor_joins_a_call_in_progress_and_an_agent_may_not(site: dict[str, object], browser: object) -> None:
    """(issue 29) The floor lists calls in progress with listen / whisper / barge; a press queues the runner's
    `listen` command with the supervisor's phone and login, and the join is in the audit trail. An agent's
    post is refused (and audited as refused); nothing is queued for them."""
    from selenium.webdriver.common.by import By
    from sqlmodel import Session, select

    from dialer.store.db import get_engine
    from dialer.store.models import ControlCommand
    from dialer.store.users import audit_trail

    base, db = str(site["base"]), site["db"]
    with closing(_client_as(base, "a02")) as c:
        c.get("/agent/a02")  # the agent's console exists once they have opened it
    attempt = _put_agent_on_a_call(db, "a02")  # type: ignore[arg-type]
    b = browser
    _login(b, base, "sv")
    b.get(base + "/floor")  # type: ignore[attr-defined]
    row = f'#calls tr[data-attempt="{attempt}"]'
    _wait(lambda: "山田 太郎" in b.find_element(By.CSS_SELECTOR, row).text)  # type: ignore[attr-defined]
    b.find_element(By.CSS_SELECTOR, row + " .listen-phone").send_keys("sip:sv01@127.0.0.1:5999")  # type: ignore
    b.find_element(By.CSS_SELECTOR, row + " .listen-whisper").click()  # type: ignore[attr-defined]
    engine = get_engine(f"sqlite:///{db}")

    def queued() -> list[tuple[str, str, str]]:
        with Session(engine) as s:
            return [(c.command, c.argument, c.requested_by) for c in s.exec(
                select(ControlCommand).where(ControlCommand.command == "listen")).all()]

    _wait(lambda: queued() != [])
    assert queued() == [("listen", f"whisper {attempt} sip:sv01@127.0.0.1:5999 sv", "web:sv")]
    joins = [a for a in audit_trail(engine, actor="sv") if a.action == "recording.play"]
    assert joins and joins[0].allowed and joins[0].target == f"winback:call {attempt}"
    assert "whisper" in joins[0].detail
    # an agent: refused, audited, nothing queued
    with httpx.Client(base_url=base, timeout=10) as c:
        c.get("/login")
        token = c.cookies.get("tsunagu_login_csrf")
        assert c.post("/login", data={"user": "a01", "password": PW["a01"], "csrf": token},
                      headers={"origin": base}).status_code == 303
        page = c.get("/agent/a01")
        m = re.search(r'data-csrf="([^"]+)"', page.text)
        assert m, "no csrf token on the agent page"
        r = c.post("/floor/listen", data={"csrf": m.group(1), "campaign": "winback", "attempt": str(attempt),
                                          "mode": "listen", "phone": "sip:a01@127.0.0.1:5998"},
                   headers={"origin": base})
    assert r.status_code == 403
    assert len(queued()) == 1
    refused = [a for a in audit_trail(engine, actor="a01") if a.action == "recording.play"]
    assert refused and not refused[0].allowed


def test_recordings_are_found_and_played_by_supervisors_only(site: dict[str, object], browser: object) -> None:
    """(issue 29) /recordings searches by customer (kana too), agent, date and outcome; the file is served as
    audio/wav after the permission check (and audited); an agent is refused both; a path outside
    [telephony] recordings_dir is never served."""
    import wave

    from selenium.webdriver.common.by import By
    from sqlmodel import Session

    from dialer.store.db import get_engine
    from dialer.store.models import Attempt
    from dialer.store.users import audit_trail

    base, db, root = str(site["base"]), site["db"], site["root"]
    with closing(_client_as(base, "a02")) as c:
        c.get("/agent/a02")  # the agent's console exists once they have opened it
    attempt = _put_agent_on_a_call(db, "a02")  # type: ignore[arg-type]
    wav = root / "var" / "recordings" / "winback" / f"{attempt}.wav"  # type: ignore[operator]
    wav.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 8000)
    outside = root / f"elsewhere-{attempt}.wav"  # type: ignore[operator]
    outside.write_bytes(wav.read_bytes())
    engine = get_engine(f"sqlite:///{db}")
    with Session(engine) as s:
        att = s.get(Attempt, attempt)
        assert att is not None
        att.recording_path, att.outcome = str(wav), "answered"
        stray = Attempt(campaign_id=att.campaign_id, customer_id="C9", recording_path=str(outside), outcome="answered")
        s.add(att)
        s.add(stray)
        s.commit()
        stray_id = stray.id
    with closing(_client_as(base, "sv")) as sv:
        page = sv.get("/recordings", params={"customer": "ヤマダ", "agent": "a02"})
        assert page.status_code == 200 and f'data-attempt="{attempt}"' in page.text
        assert f'data-attempt="{attempt}"' not in sv.get("/recordings", params={"agent": "a01"}).text
        assert f'data-attempt="{attempt}"' not in sv.get("/recordings", params={"outcome": "sale"}).text
        assert f'data-attempt="{attempt}"' not in sv.get("/recordings", params={"date": "2001-01-01"}).text
        r = sv.get(f"/recordings/{attempt}.wav")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content == wav.read_bytes()
        assert sv.get(f"/recordings/{stray_id}.wav").status_code == 404
    plays = [a for a in audit_trail(engine, actor="sv") if a.action == "recording.play" and a.detail == "playback"]
    assert plays and plays[0].target == f"call {attempt}"
    with closing(_client_as(base, "a01")) as ag:
        assert ag.get("/recordings").status_code == 403
        assert ag.get(f"/recordings/{attempt}.wav").status_code == 403
    # the page's player really plays it in Chromium (duration read from the served WAV)
    b = browser
    _login(b, base, "sv")
    _wait(lambda: b.current_url.endswith("/floor"))  # type: ignore[attr-defined]
    b.get(base + "/recordings?customer=C9")  # type: ignore[attr-defined]
    audio = b.find_element(By.CSS_SELECTOR, f'tr[data-attempt="{attempt}"] audio')  # type: ignore[attr-defined]
    b.execute_script("arguments[0].preload = 'auto'; arguments[0].load();", audio)  # type: ignore[attr-defined]
    _wait(lambda: (b.execute_script("return arguments[0].duration;", audio) or 0) > 0.9)  # type: ignore


@pytest.mark.skipif(not os.environ.get("TSUNAGU_WEB_SHOTS"), reason="screenshots on demand (TSUNAGU_WEB_SHOTS=dir)")
def test_screenshots(site: dict[str, object], browser: object) -> None:
    out = Path(os.environ["TSUNAGU_WEB_SHOTS"])
    out.mkdir(parents=True, exist_ok=True)
    base = str(site["base"])
    b = browser
    for lang in ("ja", "en"):
        b.get(base + f"/lang/{lang}")  # type: ignore[attr-defined]
        b.get(base + "/login")  # type: ignore[attr-defined]
        b.save_screenshot(str(out / f"login-{lang}.png"))  # type: ignore[attr-defined]
        _login(b, base, "sv")
        time.sleep(1)
        b.save_screenshot(str(out / f"floor-{lang}.png"))  # type: ignore[attr-defined]
        b.get(base + "/wallboard")  # type: ignore[attr-defined]
        time.sleep(1)
        b.save_screenshot(str(out / f"wallboard-{lang}.png"))  # type: ignore[attr-defined]
        b.get(base + "/recordings")  # type: ignore[attr-defined]
        b.save_screenshot(str(out / f"recordings-{lang}.png"))  # type: ignore[attr-defined]
        b.get(base + "/agent/a01")  # type: ignore[attr-defined]
        time.sleep(1)
        b.save_screenshot(str(out / f"agent-{lang}.png"))  # type: ignore[attr-defined]
        b.delete_all_cookies()  # type: ignore[attr-defined]


def test_a_live_page_ends_when_its_session_does(site: dict[str, object]) -> None:
    """Live pages share one rendering per view (dialer/web/push.py), but each stream re-checks its own session:
    when the session is revoked (log-out elsewhere, a disabled user) the stream says so and stops updating."""
    from dialer.service import auth
    from dialer.service.roles import Role
    from dialer.store.db import get_engine

    base = str(site["base"])
    with httpx.Client(base_url=base, timeout=20) as c:
        c.get("/login")
        token = c.cookies.get("tsunagu_login_csrf")
        assert c.post("/login", data={"user": "a02", "password": PW["a02"], "csrf": token},
                      headers={"origin": base}).status_code == 303
        session = c.cookies.get("tsunagu_session")
        assert session
        with c.stream("GET", "/events/agent?login=a02") as r:
            assert r.status_code == 200
            events = (ln for ln in r.iter_lines() if ln.startswith("event:"))
            assert next(events) == "event: update"
            auth.logout(get_engine(f"sqlite:///{site['db']}"),
                        auth.Principal("a02", Role.AGENT, agent_login="a02", token=session))
            # the next line of the stream (within the 2 s re-check; the client's read timeout bounds the wait)
            # is the end, not another update
            assert next(events) == "event: ended"


def test_log_in_attempts_are_rate_limited(site: dict[str, object]) -> None:
    base = str(site["base"])
    codes = []
    with httpx.Client(base_url=base, timeout=20) as c:
        c.get("/login")
        token = c.cookies.get("tsunagu_login_csrf")
        for _ in range(12):
            r = c.post("/login", data={"user": "nobody", "password": "x" * 12, "csrf": token},
                       headers={"origin": base})
            codes.append(r.status_code)
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
