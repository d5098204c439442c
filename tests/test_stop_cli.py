"""Stopping without SIP (issue 25): the signals' first/second meaning, `dialer campaign stop [--now]`, and how the
runner answers stop / stop_now / pause / resume while it drains. The SIP side is tests/test_stop_drain.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.commands.campaign import _StopSignals
from dialer.config import parse_config
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Campaign, CampaignEvent, CampaignStatus, ControlCommand
from tests.conftest import run_env


def _config(tmp_path: Path) -> Path:
    p = tmp_path / "stop.toml"
    p.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'stop.db'}"
[telephony]
drain_s = 90
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:5999"
sandbox = true
[[agents]]
login = "s1"
name = "佐藤 花子"
sip_uri = "sip:s1@127.0.0.1:5998"
[[campaigns]]
name = "teishi"
mode = "progressive"
trunk = "loop"
""", encoding="utf-8")
    return p


def _dialer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], cwd=cwd, env=run_env(), capture_output=True,
                          text=True, timeout=120)


def test_first_signal_drains_second_hangs_up() -> None:
    s = _StopSignals()
    before = signal.getsignal(signal.SIGTERM)
    s.install()
    try:
        assert not s.first and not s.second
        os.kill(os.getpid(), signal.SIGTERM)
        assert s.first and not s.second
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C counts the same
        assert s.second
    finally:
        s.restore()
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.slow  # four CLI subprocesses
def test_campaign_stop_reaches_only_a_live_runner(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert _dialer("db", "init", "--config", str(cfg), cwd=tmp_path).returncode == 0
    r = _dialer("campaign", "stop", "teishi", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 1 and "no live runner" in r.stdout, r.stdout + r.stderr
    engine = get_engine(f"sqlite:///{tmp_path / 'stop.db'}")
    try:
        with Session(engine) as s:
            camp = Campaign(name="teishi", state="running")
            s.add(camp)
            s.commit()
            s.refresh(camp)
            s.add(CampaignStatus(campaign_id=int(camp.id or 0), runner="elsewhere:1", heartbeat_at=datetime.now(UTC)))
            s.commit()
        r = _dialer("campaign", "stop", "teishi", "--now", "--config", str(cfg), cwd=tmp_path)
        assert r.returncode == 0 and "stop_now" in r.stdout, r.stdout + r.stderr
        r = _dialer("campaign", "stop", "teishi", "--config", str(cfg), cwd=tmp_path)
        assert r.returncode == 0 and "--now" in r.stdout
        with Session(engine) as s:
            cmds = [(c.command, c.requested_by) for c in s.exec(select(ControlCommand)).all()]
        assert cmds == [("stop_now", "cli"), ("stop", "cli")]
    finally:
        dispose_engines()


def test_runner_drains_on_stop_and_refuses_pause_resume_meanwhile(tmp_path: Path) -> None:
    """Without telephony started: the commands' answers and the state the monitor reads."""
    from dialer.campaign import CampaignRunner

    cfgp = _config(tmp_path)
    cfg = parse_config(cfgp.read_text(encoding="utf-8"), str(cfgp))
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    init_db(url)
    engine = get_engine(url)
    try:
        runner = CampaignRunner(cfg, "teishi", engine)
        assert runner.commands.command("stop", "").startswith("draining: 0 call(s)")
        assert runner.state == "draining" and runner.stopping.drained()  # nothing live: it can leave at once
        assert runner.commands.command("pause", "").startswith("refused")
        assert runner.commands.command("resume", "").startswith("refused") and runner.state == "draining"
        assert runner.commands.command("stop", "").startswith("already draining")
        assert runner.stopping.status()["hard_stop_in_s"] <= 90
        assert runner.commands.command("stop_now", "").startswith("stopping now") and runner.state == "stopped"
        with Session(engine) as s:
            kinds = [e.kind for e in s.exec(select(CampaignEvent)).all()]
        assert kinds.count("draining") == 1 and "stop_now" in kinds
    finally:
        dispose_engines()
