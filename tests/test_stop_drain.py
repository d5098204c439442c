"""Stopping never hangs up on a conversation (issue 25): a stop drains, a hard stop is explicit.

The real runner, a SIPp carrier whose customer talks 4 s and then hangs up by themselves, a SIPp agent softphone
(per-call legs), SQLite. The manager's `stop` arrives while the customer talks to the agent: no new dial leaves,
the conversation goes on until the customer's own BYE (the carrier never receives a BYE from the dialer), the
outcome and the agent's wrap-up are recorded, then the runner exits. `stop_now` (the monitor's `S`, `dialer
campaign stop --now`, a second SIGTERM) is the only way a conversation is hung up, and it says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from dialer.campaign import CampaignRunner
from dialer.config import parse_config
from dialer.store.agents import log_agent_state
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Agent, Attempt, CampaignEvent, ControlCommand
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_campaign_e2e import seed

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(90)]


def config_text(url: str, carrier_port: int, agent_uri: str, sip_base: int, drain_s: float = 60) -> str:
    return f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = {44600 + 40 * (sip_base % 20)}
rtp_ports_per_worker = 40
lines = 1
agent_legs = "on_connect"
agent_check_s = 0
drain_s = {drain_s}
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = 1
max_cps = 5
sandbox = true
[[agents]]
login = "d1"
sip_uri = "{agent_uri}"
[[campaigns]]
name = "drain"
mode = "progressive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
wrap_up_timeout_s = 2
prior_hit_rate = 0.5
prior_talk_s = 3
prior_wrap_s = 1
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""


FRAMES: dict[str, str] = {}


def _frame(engine: Any, cfg: Any) -> str:
    from rich.console import Console

    from dialer.views.monitor import Monitor

    m = Monitor(engine, cfg, campaign="drain", by="test")
    m.refresh()
    con = Console(record=True, width=120, color_system=None)
    con.print(m.render(120))
    return con.export_text()


def byes_received(sipp: Sipp) -> int:
    """BYE requests that reached SIPp, from its own message trace (the scenario has no step for one, so its
    counters would not show a BYE from the dialer)."""
    blocks = sipp.messages().split("message received")[1:]
    return sum(1 for b in blocks if b.lstrip().split("\n", 1)[-1].lstrip().startswith("BYE "))


def _run_and_stop(tmp_path: Path, command: str) -> tuple[CampaignRunner, Sipp, list[Attempt], list[CampaignEvent],
                                                           Agent]:
    """One campaign; COMMAND is given (as the monitor gives it) once the first customer talks to the agent."""
    url = f"sqlite:///{tmp_path / 'drain.db'}"
    init_db(url)
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=4000,
              rtp_echo=True, trace_msg=True) as carrier, \
            Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as phone:
        cfg = parse_config(config_text(url, carrier.port, phone.uri("d1"), free_udp_port(6900, 6990, span=8)),
                           str(tmp_path / "drain.toml"))
        seed(url, 5)
        engine = get_engine(url)
        runner = CampaignRunner(cfg, "drain", engine, auto_login=True, state_logger=log_agent_state)
        asked: list[int] = []

        def manager() -> bool:
            if not asked and any(c.connected is not None for c in runner.live.values()):
                with Session(engine) as s:
                    s.add(ControlCommand(campaign="drain", command=command, requested_by="test"))
                    s.commit()
                asked.append(1)
            if runner.state == "draining" and runner.live and "call(s) left" not in FRAMES.get(command, ""):
                FRAMES[command] = _frame(engine, cfg)  # what the manager sees while the call goes on
            return False

        try:
            runner.run(60.0, should_stop=manager)
            with Session(engine) as s:
                rows = list(s.exec(select(Attempt)).all())
                events = list(s.exec(select(CampaignEvent)).all())
                agent = s.exec(select(Agent).where(Agent.login == "d1")).one()
        finally:
            dispose_engines()
    assert asked, "no call reached the agent"
    return runner, carrier, rows, events, agent


def test_stop_during_a_conversation_lets_the_customer_finish(tmp_path: Path) -> None:
    runner, carrier, rows, events, agent = _run_and_stop(tmp_path, "stop")
    kinds = [e.kind for e in events]
    # nothing dialled after the stop: the one call that was talking is the only attempt
    assert len(rows) == 1 and runner.counts.get("dialled") == 1
    call = rows[0]
    # the customer hung up by themselves; the dialer sent them no BYE
    assert carrier.sent("BYE") == 1 and byes_received(carrier) == 0
    assert call.outcome == "answered" and call.hangup_by == "customer" and not call.abandoned
    assert call.agent_connected_at is not None and call.ended_at is not None
    assert call.ended_at >= call.agent_connected_at
    assert "draining" in kinds and "calls_cut" not in kinds and "stop_now" not in kinds
    assert runner.counts.get("cut_at_stop", 0) == 0 and runner.counts.get("abandoned", 0) == 0
    # the wrap-up ran its course before the runner left, and the campaign ends stopped
    assert "wrap_timeout" in kinds and agent.state in ("ready", "logged_out")
    cmd = next(e.message for e in events if e.kind == "command")
    assert cmd.startswith("stop") and "draining" in cmd
    # the monitor said so while the customer was still talking
    frame = FRAMES.get("stop", "")
    assert "DRAINING" in frame and "1 call(s) left (1 talking)" in frame, frame


def test_stop_now_hangs_up_and_says_so(tmp_path: Path) -> None:
    runner, carrier, rows, events, _agent = _run_and_stop(tmp_path, "stop_now")
    kinds = [e.kind for e in events]
    assert len(rows) == 1
    call = rows[0]
    # the hard stop is the dialer's hang-up, recorded as such, never silent
    assert byes_received(carrier) == 1 and call.hangup_by == "dialer"
    assert call.outcome == "answered" and call.state == "ended" and not call.abandoned
    assert "stop_now" in kinds and "calls_cut" in kinds and runner.counts.get("cut_at_stop") == 1


def test_sigterm_drains_the_cli_runner(tmp_path: Path) -> None:
    """`dialer campaign run` (what systemd or the scheduler starts) gets SIGTERM while a customer talks: it dials
    no more, lets the customer finish, records everything and exits 0."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import run_env

    url = f"sqlite:///{tmp_path / 'term.db'}"
    init_db(url)
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=3000,
              rtp_echo=True, trace_msg=True) as carrier, \
            Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as phone:
        cfgp = tmp_path / "term.toml"
        cfgp.write_text(config_text(url, carrier.port, phone.uri("d1"), free_udp_port(6900, 6990, span=8)),
                        encoding="utf-8")
        seed(url, 5)
        proc = subprocess.Popen([sys.executable, "-m", "dialer", "campaign", "run", "drain", "--for", "60s",
                                 "--headless", "--auto-login", "--config", str(cfgp)], cwd=REPO, env=run_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            engine = get_engine(url)
            end = time.monotonic() + 40
            talking = False
            while time.monotonic() < end and proc.poll() is None and not talking:
                time.sleep(0.2)
                with Session(engine) as s:
                    talking = any(a.agent_connected_at is not None and a.ended_at is None
                                  for a in s.exec(select(Attempt)).all())
            assert talking, "no conversation to stop"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with Session(engine) as s:
            rows = list(s.exec(select(Attempt)).all())
            events = list(s.exec(select(CampaignEvent)).all())
        dispose_engines()
    assert proc.returncode == 0, out[-2000:]
    assert len(rows) == 1 and rows[0].hangup_by == "customer" and rows[0].outcome == "answered"
    assert byes_received(carrier) == 0 and carrier.sent("BYE") == 1
    kinds = [e.kind for e in events]
    assert "draining" in kinds and "calls_cut" not in kinds and "SIGTERM" in out
