"""The console and the monitor driven in a real terminal (tmux send-keys / capture-pane), with the test
playing the runner's part in the store. Every wait is bounded."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from dialer.store.db import get_engine
from dialer.store.models import Agent, Attempt, Campaign, CampaignStatus, ControlCommand, Disposition, utcnow
from tests.conftest import REPO, run_env
from tests.test_reports import build_store, write_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


class Tmux:
    def __init__(self, sock: str) -> None:
        self.sock = sock

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=10,
                             env=run_env())
        return out.stdout

    def start(self, name: str, command: str, size: tuple[int, int] = (100, 30)) -> None:
        self.run("new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), command)

    def keys(self, name: str, *keys: str) -> None:
        for k in keys:
            self.run("send-keys", "-t", name, *(["-l", k] if len(k) == 1 else [k]))
            time.sleep(0.05)

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def wait_screen(self, name: str, text: str, timeout: float = 15.0) -> str:
        end = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < end:
            screen = self.screen(name)
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on {name}; last screen:\n{screen}")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


TEXT = {  # what each language shows for the same things (the catalogs' job; English is the message ids)
    "en": {"login": "l log in", "waiting": "waiting for a call", "pop": "screen pop", "sku": "product SKU",
           "save": "Enter = save", "saved": "disposition saved", "dial": "dial level", "legend": "q quit",
           "yes": "y = yes", "requested": "— requested", "applied": "applied: paused", "no_runner": "NO RUNNER",
           "quarters": "by 15 minutes", "eta": "list exhausted in", "calls": "calls", "opening": "opening"},
    "ja": {"login": "l ログイン", "waiting": "着信待ち", "pop": "顧客情報", "sku": "商品SKU", "save": "Enter = 保存",
           "saved": "結果を保存しました", "dial": "発信倍率", "legend": "q 終了", "yes": "y = はい",
           "requested": "送信済（未適用）", "applied": "適用済: paused", "no_runner": "ランナーなし",
           "quarters": "15分ごと", "eta": "リスト消化まで", "calls": "通話数", "opening": "冒頭トーク"},
}


def with_language(cfg: Path, lang: str) -> Path:
    cfg.write_text(cfg.read_text(encoding="utf-8") + f'\n[ui]\nlanguage = "{lang}"\n', encoding="utf-8")
    return cfg


@pytest.fixture()
def term(db_url: str, tmp_path: Path) -> Iterator[tuple[Tmux, str, Path]]:
    build_store(db_url)
    with Session(get_engine(db_url)) as s:
        a = s.exec(select(Agent).where(Agent.login == "a01")).one()
        a.state, a.current_attempt_id, a.pending_state = "logged_out", None, ""
        s.add(a)
        s.commit()
    t = Tmux(f"tsunagu-test-{os.getpid()}")
    yield t, db_url, write_config(tmp_path, db_url)
    t.run("kill-server")


def _cmd(*args: str) -> str:
    return f"cd {shlex.quote(str(REPO))} && TERM=xterm-256color {shlex.quote(sys.executable)} -m dialer " + " ".join(
        shlex.quote(a) for a in args)


def _agent(url: str) -> Agent:
    with Session(get_engine(url)) as s:
        return s.exec(select(Agent).where(Agent.login == "a01")).one()


@pytest.mark.parametrize(("lang", "size"), [("en", (80, 24)), ("ja", (80, 24)), ("en", (160, 50)),
                                            ("ja", (160, 50))])
def test_agent_console_in_a_terminal(term: tuple[Tmux, str, Path], lang: str, size: tuple[int, int]) -> None:
    t, url, cfg = term
    w = TEXT[lang]
    t.start("agent", _cmd("agent", "a01", "--config", str(with_language(cfg, lang))), size)
    t.wait_screen("agent", w["login"])
    t.keys("agent", "ｌ")  # an IME left in 全角 mode: ｌ is l
    wait_for(lambda: _agent(url).state == "ready", "agent ready")
    t.wait_screen("agent", w["waiting"])
    t.keys("agent", "p", "２")
    wait_for(lambda: (_agent(url).state, _agent(url).pause_reason) == ("paused", "lunch"), "paused for lunch")
    t.keys("agent", "r")
    wait_for(lambda: _agent(url).state == "ready", "ready again")
    # the runner connects a call: state on_call with the attempt; the screen pop must appear
    with Session(get_engine(url)) as s:
        att = s.exec(select(Attempt).where(Attempt.customer_id == "C7")).first()
        assert att is not None
        a = s.exec(select(Agent).where(Agent.login == "a01")).one()
        a.state, a.state_since, a.current_attempt_id = "on_call", utcnow(), att.id
        s.add(a)
        s.commit()
        attempt_id = att.id
    screen = t.wait_screen("agent", w["pop"])
    assert "顧客7" in screen and "…0007" in screen and w["opening"] in screen
    assert "つなぐ通販" in screen.replace("\n", "").replace("│", "").replace(" ", "")
    t.keys("agent", "1", *"￥５，９８０", "Enter")  # full-width yen, digits and comma from the IME
    t.wait_screen("agent", w["sku"])
    t.keys("agent", "Enter", "Enter")
    t.wait_screen("agent", w["save"])
    t.keys("agent", "Enter")
    d = wait_for(lambda: Session(get_engine(url)).exec(
        select(Disposition).where(Disposition.attempt_id == attempt_id, Disposition.source == "console",
                                  Disposition.amount == 5980)).first(), "disposition row")
    assert d.outcome == "sale" and d.sku == "SKU-B"
    t.wait_screen("agent", w["saved"])
    t.keys("agent", "q")
    wait_for(lambda: "agent" not in t.run("list-sessions"), "console exit")


@contextmanager
def runner_heartbeat(url: str) -> Iterator[None]:
    """Play the live runner's part: beat every half second so the monitor shows the campaign as live."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            with Session(get_engine(url)) as s:
                st = s.exec(select(CampaignStatus)).first()
                if st is not None:
                    st.heartbeat_at = utcnow()
                    s.add(st)
                    s.commit()
            stop.wait(0.5)

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join(timeout=5)


def _many_agents(url: str, n: int) -> None:
    with Session(get_engine(url)) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "demo")).one()
        for i in range(n):
            s.add(Agent(login=f"z{i:02d}", name=f"担当{i:02d}", state="ready", campaign_id=camp.id))
        s.commit()


@pytest.mark.parametrize(("lang", "size"), [("en", (80, 24)), ("ja", (80, 24)), ("en", (160, 50)),
                                            ("ja", (160, 50))])
def test_monitor_pause_in_a_terminal(term: tuple[Tmux, str, Path], lang: str, size: tuple[int, int]) -> None:
    t, url, cfg = term
    w = TEXT[lang]
    _many_agents(url, 40)
    with runner_heartbeat(url):
        t.start("mon", _cmd("monitor", "--campaign", "demo", "--config", str(with_language(cfg, lang))), size)
        screen = t.wait_screen("mon", w["dial"])
        lines = screen.rstrip("\n").splitlines()
        assert len(lines) <= size[1] and w["legend"] in lines[-1], screen  # the legend stays on screen
        assert re.search(r"1–\d+/42", screen), screen
        if size == (160, 50):
            assert w["quarters"] in screen and w["eta"] in screen and w["calls"] in screen
        first = re.search(r"1–(\d+)/42", screen)
        assert first is not None
        page = int(first.group(1))
        t.keys("mon", "PgDn")
        first_after = min(page, 42 - page)  # the last page is full, not a stub
        t.wait_screen("mon", f"{first_after + 1}–{first_after + page}/42")
        t.keys("mon", "p")
        t.wait_screen("mon", w["yes"])
        t.keys("mon", "y")
        cmd = wait_for(lambda: Session(get_engine(url)).exec(select(ControlCommand)).first(), "control command")
        assert (cmd.campaign, cmd.command) == ("demo", "pause") and cmd.requested_by.startswith("monitor:")
        t.wait_screen("mon", w["requested"])
        with Session(get_engine(url)) as s:  # the runner applies it
            row = s.get(ControlCommand, cmd.id)
            assert row is not None
            row.applied_at, row.result = utcnow(), "paused: no new dials"
            s.add(row)
            s.commit()
        t.wait_screen("mon", w["applied"])
    # the runner goes away: within the heartbeat allowance the monitor stops showing lines
    t.wait_screen("mon", w["no_runner"], timeout=20)
    t.keys("mon", "q")
    wait_for(lambda: "mon" not in t.run("list-sessions"), "monitor exit")


PREVIEW_TEXT = {"en": ("preview — next call, not dialled yet", "c dial", "skip reason", "bad data"),
                "ja": ("プレビュー — 次の架電先（未発信）", "c 発信", "スキップ理由", "データ不備")}


@pytest.mark.parametrize(("lang", "size"), [("en", (80, 24)), ("ja", (80, 24)), ("ja", (160, 50))])
def test_preview_pop_and_keys_in_a_terminal(term: tuple[Tmux, str, Path], lang: str, size: tuple[int, int]) -> None:
    """Preview mode: the reserved entry's pop, the keys legend on screen, and a skip with a reason sent as a
    command for the runner (the test plays the runner's part: the reservation is a lease in the store)."""
    from dialer.domain import preview
    from dialer.store.models import CallListEntry

    t, url, cfg = term
    title, dial, skip, bad = PREVIEW_TEXT[lang]
    with Session(get_engine(url)) as s:
        e = s.exec(select(CallListEntry).where(CallListEntry.customer_id == "C7")).first()
        assert e is not None
        e.status, e.lease_owner = "leased", preview.owner("demo", "a01")
        e.lease_expires_at = utcnow() + timedelta(hours=1)
        s.add(e)
        s.commit()
        eid = e.id
    t.start("agent", _cmd("agent", "a01", "--config", str(with_language(cfg, lang))), size)
    t.wait_screen("agent", TEXT[lang]["login"])
    t.keys("agent", "l")
    screen = t.wait_screen("agent", title)
    assert "顧客7" in screen and "…0007" in screen and dial in screen and TEXT[lang]["legend"] in screen
    t.keys("agent", "s")
    screen = t.wait_screen("agent", skip)
    assert bad in screen
    t.keys("agent", "２")  # full-width 2 from an IME: bad data
    cmd = wait_for(lambda: Session(get_engine(url)).exec(
        select(ControlCommand).where(ControlCommand.command == "preview_skip")).first(), "skip command")
    assert (cmd.campaign, cmd.argument, cmd.requested_by) == ("demo", f"{eid} a01 bad_data", "a01")
    t.keys("agent", "q")
    wait_for(lambda: "agent" not in t.run("list-sessions"), "console exit")
