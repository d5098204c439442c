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


def test_agent_console_in_a_terminal(term: tuple[Tmux, str, Path]) -> None:
    t, url, cfg = term
    t.start("agent", _cmd("agent", "a01", "--config", str(cfg)))
    t.wait_screen("agent", "l log in")
    t.keys("agent", "l")
    wait_for(lambda: _agent(url).state == "ready", "agent ready")
    t.wait_screen("agent", "waiting for a call")
    t.keys("agent", "p", "2")
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
    screen = t.wait_screen("agent", "screen pop")
    assert "顧客7" in screen and "つなぐ通販" in screen and "…0007" in screen
    t.keys("agent", "1", *"5980", "Enter")
    t.wait_screen("agent", "product SKU")
    t.keys("agent", "Enter", "Enter")
    t.wait_screen("agent", "Enter = save")
    t.keys("agent", "Enter")
    d = wait_for(lambda: Session(get_engine(url)).exec(
        select(Disposition).where(Disposition.attempt_id == attempt_id, Disposition.source == "console",
                                  Disposition.amount == 5980)).first(), "disposition row")
    assert d.outcome == "sale" and d.sku == "SKU-B"
    t.wait_screen("agent", "disposition saved")
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


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_monitor_pause_in_a_terminal(term: tuple[Tmux, str, Path], size: tuple[int, int]) -> None:
    t, url, cfg = term
    _many_agents(url, 40)
    with runner_heartbeat(url):
        t.start("mon", _cmd("monitor", "--campaign", "demo", "--config", str(cfg)), size)
        screen = t.wait_screen("mon", "dial level")
        lines = screen.rstrip("\n").splitlines()
        assert len(lines) <= size[1] and "q quit" in lines[-1], screen  # the legend stays on screen
        assert re.search(r"1–\d+/42", screen), screen
        if size == (160, 50):
            assert "by 15 minutes" in screen and "list exhausted in" in screen and "calls" in screen
        first = re.search(r"1–(\d+)/42", screen)
        assert first is not None
        page = int(first.group(1))
        t.keys("mon", "PgDn")
        first_after = min(page, 42 - page)  # the last page is full, not a stub
        t.wait_screen("mon", f"{first_after + 1}–{first_after + page}/42")
        t.keys("mon", "p")
        t.wait_screen("mon", "y = yes")
        t.keys("mon", "y")
        cmd = wait_for(lambda: Session(get_engine(url)).exec(select(ControlCommand)).first(), "control command")
        assert (cmd.campaign, cmd.command) == ("demo", "pause") and cmd.requested_by.startswith("monitor:")
        t.wait_screen("mon", "— requested")
        with Session(get_engine(url)) as s:  # the runner applies it
            row = s.get(ControlCommand, cmd.id)
            assert row is not None
            row.applied_at, row.result = utcnow(), "paused: no new dials"
            s.add(row)
            s.commit()
        t.wait_screen("mon", "applied: paused: no new dials")
    # the runner goes away: within the heartbeat allowance the monitor stops showing lines
    t.wait_screen("mon", "NO RUNNER", timeout=20)
    t.keys("mon", "q")
    wait_for(lambda: "mon" not in t.run("list-sessions"), "monitor exit")
