"""A return call on the browser console (issue 30), at the HTTP level over a real SQLite store.

The inbound desk's own store functions write what the desk writes when it bridges a caller to an agent (the
inbound attempt, the agent reserved then on the call, the screen-pop link); the real web app (Starlette, the
service layer, the Jinja templates) then shows the agent "return call" (折り返し) with why we had called (the
list's reason, when we called and what came of it), and the disposition keyed on the page goes through the same
service and outbox as an outbound one: the CRM's row names the campaign of the call they answered and says it was
an inbound call. A caller matched to no customer gets a pop that says so. The SIP path (the desk really bridging,
then ending the wrap-up on the disposition) is tests/test_inbound_sip.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient

from dialer.config import load_config
from dialer.domain.vocabulary import AgentState
from dialer.service import auth
from dialer.store.agents import log_agent_state, move_agent
from dialer.store.db import dispose_engines, init_db
from dialer.store.inbound import claim_ready_agent, link_screen_pop, record_inbound, return_call_facts
from dialer.store.models import Agent, Attempt, CallListEntry, Campaign, Customer, Disposition, OutboxItem
from dialer.web.app import create_app
from dialer.web.security import LOGIN_CSRF_COOKIE, SESSION_COOKIE, csrf_for
from tests.conftest import run_env

CALLER = "+819087654321"
STRANGER = "+81355556666"
PW = {"a01": "a01-password-3", "a02": "a02-password-4"}
CONFIG = """
[database]
url = "sqlite:///{db}"

[business]
name = "つなぐ化粧品"
phone = "0120-000-000"

[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:5999"
sandbox = true

[[agents]]
login = "a01"
name = "佐藤 花子"
sip_uri = "sip:a01@127.0.0.1:5301"

[[agents]]
login = "a02"
name = "高橋 一郎"
sip_uri = "sip:a02@127.0.0.1:5302"

[[campaigns]]
name = "dormant-jp"
trunk = "loop"
caller_id = "+81501234567"
segments = ["dormant"]
"""


@pytest.fixture()
def world(tmp_path: Path) -> Iterator[tuple[TestClient, Engine, int, int]]:
    """(client, engine, campaign id, the outbound attempt the return call answers)."""
    db = tmp_path / "inbound_web.db"
    (tmp_path / "tsunagu.toml").write_text(CONFIG.format(db=db), encoding="utf-8")
    cfg = load_config(str(tmp_path / "tsunagu.toml"))
    engine, _ = init_db(f"sqlite:///{db}")
    now = datetime.now(UTC)
    admin = auth.local_admin()
    for login in ("a01", "a02"):
        auth.add_user(engine, admin, login, "agent", PW[login], agent_login=login)
    with Session(engine) as s:
        camp = Campaign(name="dormant-jp", mode="predictive")
        s.add(camp)
        s.add(Customer(customer_id="C100", name="山田 花子", phone="03-1234-5678", phone2="090-8765-4321"))
        for login, name in (("a01", "佐藤 花子"), ("a02", "高橋 一郎")):
            s.add(Agent(login=login, name=name, sip_uri=f"sip:{login}@127.0.0.1:5301", state="ready",
                        ready_since=now - timedelta(minutes=5)))
        s.add(CallListEntry(customer_id="C100", segment="dormant", reason="休眠: 最終購入から200日",
                            phones=["+81312345678", CALLER], callable_from=now - timedelta(days=1),
                            callable_until=now + timedelta(days=30)))
        s.commit()
        entry = s.exec(select(CallListEntry)).one()
        assert camp.id is not None
        out = Attempt(campaign_id=camp.id, entry_id=entry.id, customer_id="C100", segment="dormant",
                      phone_e164=CALLER, dialed_at=now - timedelta(minutes=30), outcome="no_answer", state="ended")
        s.add(out)
        s.commit()
        assert out.id is not None
        camp_id, out_id = camp.id, out.id
    client = TestClient(create_app(cfg, engine, secure_cookies=False), base_url="http://127.0.0.1")
    yield client, engine, camp_id, out_id
    client.close()
    dispose_engines()


def _bridge(engine: Engine, login: str, caller: str) -> int:
    """What the desk writes when it bridges CALLER to LOGIN (dialer.telephony.inbound_leg: incoming, _offer,
    on_state), with the desk's own store functions."""
    now = datetime.now(UTC)
    facts = return_call_facts(engine, caller)
    att = record_inbound(engine, caller=caller, facts=facts, at=now, detail="return call")
    with Session(engine) as s:
        agent = s.exec(select(Agent).where(Agent.login == login)).one()
        assert agent.id is not None
        agent_id = agent.id
    camp = facts.answers.campaign_id if facts.answers else None
    assert claim_ready_agent(engine, agent_id, att)
    move_agent(engine, agent_id, AgentState.RESERVED.value, now, campaign_id=camp, attempt_id=att,
               state_logger=log_agent_state)
    link_screen_pop(engine, att, facts, agent_id, "last_agent")
    move_agent(engine, agent_id, AgentState.ON_CALL.value, now, campaign_id=camp, attempt_id=att,
               state_logger=log_agent_state)
    return att


def _log_in(client: TestClient, login: str) -> str:
    client.cookies.set("lang", "ja")
    r = client.get("/login")
    assert r.status_code == 200
    csrf = client.cookies.get(LOGIN_CSRF_COOKIE)
    r = client.post("/login", data={"user": login, "password": PW[login], "csrf": csrf},
                    headers={"origin": "http://127.0.0.1"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    token = client.cookies.get(SESSION_COOKIE)
    assert token
    return str(token)


def test_the_agent_sees_a_return_call_and_why_we_had_called_and_disposes_it_like_an_outbound_call(
        world: tuple[TestClient, Engine, int, int]) -> None:
    client, engine, camp_id, out_id = world
    att = _bridge(engine, "a01", CALLER)
    token = _log_in(client, "a01")
    page = client.get("/agent/a01").text
    assert "折り返し" in page and "山田 花子" in page
    assert "休眠: 最終購入から200日" in page  # the list's reason for the call they answer
    why = page.split('id="return-call-why"', 1)[1].split("</span>", 1)[0]
    assert "dormant-jp" in why and "不応答" in why  # our call's campaign and its outcome (no answer)
    assert "つなぐ化粧品" in page  # the 特商法 opening of the answered campaign's business

    r = client.post("/agent/a01/disposition", headers={"origin": "http://127.0.0.1"}, follow_redirects=False,
                    data={"csrf": csrf_for(token), "attempt_id": str(att), "outcome": "sale", "amount": "5,980",
                          "voc": "折り返しで定期便を再開"})
    assert r.status_code == 303 and "saved=1" in r.headers["location"], r.text
    with Session(engine) as s:
        d = s.exec(select(Disposition)).one()
        item = s.exec(select(OutboxItem).where(OutboxItem.disposition_id == d.id)).one()
    assert (d.attempt_id, d.customer_id, d.campaign_id, d.outcome, d.amount, d.source) == (
        att, "C100", camp_id, "sale", 5980.0, "web")
    p = item.payload
    assert (p["campaign"], p["customer_id"], p["direction"], p["answers_attempt_id"], p["agent"], p["segment"]) == (
        "dormant-jp", "C100", "inbound", out_id, "a01", "dormant")


def test_an_unknown_callers_pop_says_so_and_another_agent_may_not_dispose_it(
        world: tuple[TestClient, Engine, int, int]) -> None:
    client, engine, _camp_id, _out_id = world
    att = _bridge(engine, "a02", STRANGER)
    token = _log_in(client, "a02")
    page = client.get("/agent/a02").text
    why = page.split('id="return-call-why"', 1)[1].split("</span>", 1)[0]
    assert "折り返し" in page and "顧客" in why and "6666" in why and "山田" not in page
    client.close()
    other = TestClient(client.app, base_url="http://127.0.0.1")
    tok1 = _log_in(other, "a01")
    r = other.post("/agent/a02/disposition", headers={"origin": "http://127.0.0.1"}, follow_redirects=False,
                   data={"csrf": csrf_for(tok1), "attempt_id": str(att), "outcome": "other"})
    assert r.status_code == 403  # not their console, not their call
    with Session(engine) as s:
        assert s.exec(select(Disposition)).all() == []
    mine = TestClient(client.app, base_url="http://127.0.0.1")
    mine.cookies.set(SESSION_COOKIE, token)
    r = mine.post("/agent/a02/disposition", headers={"origin": "http://127.0.0.1"}, follow_redirects=False,
                  data={"csrf": csrf_for(token), "attempt_id": str(att), "outcome": "wrong_number"})
    assert r.status_code == 303, r.text
    with Session(engine) as s:
        d = s.exec(select(Disposition)).one()
        item = s.exec(select(OutboxItem).where(OutboxItem.disposition_id == d.id)).one()
    assert (d.attempt_id, d.customer_id, d.campaign_id, d.outcome) == (att, "", None, "wrong_number")
    assert item.payload["direction"] == "inbound" and item.payload["answers_attempt_id"] is None


def test_a_save_the_store_cannot_take_says_so_and_saves_nothing_then_goes_through(
        world: tuple[TestClient, Engine, int, int], tmp_path: Path) -> None:
    """Another process holds the store's write lock past the wait (a stuck writer, a backup): the agent's save
    gets a page that says the store did not answer and nothing was saved (503), not a crash; nothing half-written
    is left; once the lock is gone the same form goes through."""
    import sqlite3

    from sqlalchemy import event

    client, engine, _camp_id, _out_id = world
    att = _bridge(engine, "a01", CALLER)
    token = _log_in(client, "a01")
    # the store's own wait is 10 s; this test's connections wait 0.3 s (the same lock, the same error, sooner)
    event.listen(engine, "connect", lambda conn, _rec: conn.execute("PRAGMA busy_timeout=300"))
    engine.dispose()
    form = {"csrf": csrf_for(token), "attempt_id": str(att), "outcome": "no_interest", "voc": "今は不要とのこと"}
    other = sqlite3.connect(str(tmp_path / "inbound_web.db"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a writer that does not let go
        r = client.post("/agent/a01/disposition", headers={"origin": "http://127.0.0.1"}, follow_redirects=False,
                        data=form)
        assert r.status_code == 503, r.text
        assert "ストアが応答しません" in r.text and "何も保存されていません" in r.text
        assert "Traceback" not in r.text
        other.execute("ROLLBACK")
    finally:
        other.close()
    with Session(engine) as s:
        assert s.exec(select(Disposition)).all() == [] and s.exec(select(OutboxItem)).all() == []
    r = client.post("/agent/a01/disposition", headers={"origin": "http://127.0.0.1"}, follow_redirects=False,
                    data=form)
    assert r.status_code == 303 and "saved=1" in r.headers["location"], r.text
    with Session(engine) as s:
        d = s.exec(select(Disposition)).one()
        assert (d.attempt_id, d.outcome, d.voc_text) == (att, "no_interest", "今は不要とのこと")
        assert len(s.exec(select(OutboxItem)).all()) == 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromedriver") is None or shutil.which("chromium") is None,
                    reason="chromium-driver not installed (scripts/_setup installs it)")
def test_the_pop_appears_live_in_chromium_and_the_disposition_is_saved(
        world: tuple[TestClient, Engine, int, int], tmp_path: Path) -> None:
    """The same over `dialer web` in headless Chromium: the agent's open page shows the return call without a
    reload (SSE) as soon as the desk bridges the caller, and the form saves the verdict."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from tests.test_web import _browser, _free_port, _login, _wait

    _client, engine, camp_id, _out_id = world
    env = run_env()
    env["TSUNAGU_CONFIG"] = str(tmp_path / "tsunagu.toml")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dialer", "web", "--port", str(port), "--push-s", "0.3",
                             "--insecure-loopback-cookies"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    b = None
    try:
        _wait(lambda: httpx.get(base + "/login", timeout=2).status_code == 200, timeout=60)
        b = _browser()
        b.set_page_load_timeout(30)
        _login(b, base, "a01")
        _wait(lambda: b.current_url.endswith("/agent/a01"))
        b.get(base + "/lang/ja")  # the console in Japanese (the language cookie), back on the agent's page
        _wait(lambda: b.current_url.endswith("/agent/a01"))
        _wait(lambda: b.find_element(By.ID, "waiting") is not None)
        att = _bridge(engine, "a01", CALLER)  # the desk bridges the caller: the open page updates by itself
        _wait(lambda: b.find_element(By.ID, "return-call-tag").text == "折り返し")
        why = b.find_element(By.ID, "return-call-why").text
        assert "dormant-jp" in why and "不応答" in why
        assert "山田 花子" in b.find_element(By.ID, "customer-name").text
        Select(b.find_element(By.ID, "outcome")).select_by_value("sale")
        b.find_element(By.ID, "amount").send_keys("3980")
        b.find_element(By.ID, "save").click()
        _wait(lambda: "saved=1" in b.current_url)
    finally:
        if b is not None:
            b.quit()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    with Session(engine) as s:
        d = s.exec(select(Disposition)).one()
        item = s.exec(select(OutboxItem).where(OutboxItem.disposition_id == d.id)).one()
    assert (d.attempt_id, d.campaign_id, d.outcome, d.amount, d.source) == (att, camp_id, "sale", 3980.0, "web")
    assert item.payload["direction"] == "inbound"
