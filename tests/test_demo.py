"""The README's first command, run as written but shorter and in a scratch directory, then the README's next
commands (`dialer report campaign demo`, `dialer monitor`) exactly as written, from the same directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, create_engine, select

from dialer.store.models import Attempt, CallListEntry
from tests.conftest import run_env
from tests.sipp import free_udp_port

pytestmark = [pytest.mark.sip, pytest.mark.slow]


def test_demo_headless_runs_the_whole_chain(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    carrier = free_udp_port(7000, 7499)
    agents = free_udp_port(7500, 7899, span=9)
    sip = free_udp_port(7900, 7990, span=8)
    r = subprocess.run([sys.executable, "-m", "dialer.demo", "--headless", "--for", "20s", "--agents", "4",
                        "--customers", "200", "--work", str(work), "--carrier-port", str(carrier),
                        "--agent-port-base", str(agents), "--sip-port-base", str(sip)],
                       cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "campaign report" in r.stdout and "attempts" in r.stdout
    # no config here: the CLI's default store is ./tsunagu.db, and that is where the demo wrote its run
    assert "dialer report campaign demo" in r.stdout and str(tmp_path / "tsunagu.db") in r.stdout
    rep = subprocess.run([sys.executable, "-m", "dialer", "report", "campaign", "demo"], cwd=tmp_path, env=run_env(),
                         capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0 and "campaign demo" in rep.stdout and "Traceback" not in rep.stderr, rep.stderr
    mon = subprocess.run([sys.executable, "-m", "dialer", "monitor", "--once", "--width", "100"], cwd=tmp_path,
                         env=run_env(), capture_output=True, text=True, timeout=120)
    assert mon.returncode == 0 and "demo" in mon.stdout and "STOPPED" in mon.stdout, mon.stdout + mon.stderr
    eng = create_engine(f"sqlite:///{tmp_path / 'tsunagu.db'}")
    with Session(eng) as s:
        entries = s.exec(select(CallListEntry)).all()
        attempts = s.exec(select(Attempt)).all()
    assert {e.segment for e in entries} >= {"dormant", "upsell"}
    assert attempts and all(a.outcome for a in attempts)
    assert (work / "lists" / "call_list.csv").exists() and (work / "lists" / "summary.json").exists()
    summary = json.loads((work / "lists" / "summary.json").read_text())
    assert summary
    # the demo stopped everything it started: its ports are free again
    for port in (carrier, sip, agents + 1):
        free_udp_port(port, port)
