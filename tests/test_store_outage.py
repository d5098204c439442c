"""Issue 25: the store failing under a live campaign costs no call and no outcome.

SQLite on a real full filesystem (a small tmpfs mounted for the test, filled with a file mid-call): the runner
keeps the calls that are up, dials nothing while the disk is full, journals what it cannot write, says so in one
line, and replays the journal exactly once when space is back. Real SIPp carrier, pjsua2 agents, real runner.

A starved runner (its loop held up 1.5 s per turn for a while, as a host with no CPU to spare would): it dials
nothing from the turn its lag passes `[telephony] max_tick_lag_s` until it has been on time for a few seconds,
says so once each way, and shows the lag in its status row.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.config import parse_config
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.journal import JournalApplied
from dialer.store.models import Attempt, CallListEntry, CampaignEvent
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_campaign_e2e import N_AGENTS, config_text, seed

pytestmark = [pytest.mark.sip, pytest.mark.slow]


@pytest.fixture()
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        dispose_engines()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> int:
    """Write PATH until the filesystem is full; returns the bytes written.

    Unbuffered on purpose: a buffered file keeps the tail of a short write in its buffer and raises ENOSPC
    again when it is closed (CI saw that once, attributed to the `with` line)."""
    n = 0
    block = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n += os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return n
    finally:
        os.close(fd)


def test_sqlite_on_a_full_disk_keeps_the_calls_and_loses_no_outcome(small_fs: Path, tmp_path: Path) -> None:
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=N_AGENTS)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = small_fs / "store.db"
    journal_dir = tmp_path / "journal"  # on another filesystem than the full one
    text = config_text(db, carrier_port, agent_base, sip_base, 41200).replace(
        "[database]\n", f'[database]\njournal_dir = "{journal_dir}"\n', 1)
    cfg = parse_config(text, str(tmp_path / "full.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    seed(url, 150)
    carrier = Sipp(REPO / "config" / "sipp" / "demo-carrier.xml", port=carrier_port, workdir=tmp_path,
                   rtp_echo=True).start()
    specs = [AgentSpec(f"e{i}", "127.0.0.1", agent_base + i) for i in range(N_AGENTS)]
    agents = start_agents(specs, talk_mean=6.0, talk_cv=0.3, duration=240, stats_dir=str(tmp_path), rtp_base=47200)
    lines: list[str] = []
    filler = small_fs / "filler"
    seen: dict[str, float | datetime | list[int]] = {}
    try:
        runner = CampaignRunner(cfg, "e2e", get_engine(url), auto_login=True, state_logger=log_agent_state,
                                on_event=lines.append)
        start = time.monotonic()

        def timeline() -> bool:
            now = time.monotonic()
            talking = [c.attempt_id for c in runner.live.values() if c.connected is not None]
            if "filled" not in seen and now - start > 8 and len(talking) >= 1:
                fill(filler)
                seen["filled"] = now
                seen["talking"] = talking
            if runner.guard.degraded and "down_at" not in seen:
                seen["down_at"] = datetime.now(UTC)
            if "filled" in seen and "freed" not in seen and now - float(seen["filled"]) > 10:  # type: ignore[arg-type]
                filler.unlink()
                seen["freed"] = now
            if "freed" in seen and not runner.guard.degraded and "up_at" not in seen and "down_at" in seen:
                seen["up_at"] = datetime.now(UTC)
            return "up_at" in seen and now - start > 34 or now - start > 60

        runner.run(None, should_stop=timeline)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    assert "down_at" in seen, f"the store never failed (filled: {'filled' in seen}); lines: {lines[-5:]}"
    assert "up_at" in seen, f"the store never came back; lines: {lines[-5:]}"
    # said in one line each way, no traceback (the runner returned normally)
    assert any(s.startswith("store_full: ") for s in lines), lines
    assert any(s.startswith("store_back: ") for s in lines), lines
    assert runner.guard.journalled > 0 and runner.guard.replayed >= runner.guard.journalled - runner.guard.unjournalled
    assert not (journal_dir / "e2e-").exists()
    with Session(get_engine(url)) as s:
        rows = list(s.exec(select(Attempt)).all())
        keys = s.exec(select(JournalApplied).where(JournalApplied.result != "")).all()
        left = s.exec(select(CallListEntry).where(CallListEntry.status.in_(("leased", "dialing")))).all()  # type: ignore[attr-defined]
    assert not keys, [(k.op, k.result) for k in keys]  # every journalled write applied
    assert not left
    down_at, up_at = seen["down_at"], seen["up_at"]
    assert isinstance(down_at, datetime) and isinstance(up_at, datetime)
    # nothing was dialled while the disk was full
    assert not [a.id for a in rows if down_at < a.dialed_at.replace(tzinfo=UTC) < up_at]
    # every attempt closed with an outcome; none cut by the runner (interrupted), the carrier saw them all
    assert all(a.outcome and a.state == "ended" for a in rows), [(a.id, a.state, a.outcome) for a in rows
                                                                 if a.state != "ended" or not a.outcome]
    assert carrier.received("INVITE") == len(rows)
    assert max(Counter(a.entry_id for a in rows).values()) == 1
    # the conversations that were up when the disk filled went on and ended by themselves, recorded after replay
    by_id = {a.id: a for a in rows}
    talking = seen["talking"]
    assert isinstance(talking, list) and talking
    for attempt_id in talking:
        a = by_id[attempt_id]
        assert a.outcome == "answered" and a.agent_connected_at is not None and a.ended_at is not None
        assert a.hangup_by != "dialer", (a.id, a.hangup_by, a.detail)
    assert os.path.exists(journal_dir)


def test_a_starved_runner_dials_nothing_while_it_is_late(tmp_path: Path) -> None:
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=N_AGENTS)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "store.db"
    cfg = parse_config(config_text(db, carrier_port, agent_base, sip_base, 41400), str(tmp_path / "lag.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    seed(url, 150)
    carrier = Sipp(REPO / "config" / "sipp" / "demo-carrier.xml", port=carrier_port, workdir=tmp_path,
                   rtp_echo=True).start()
    specs = [AgentSpec(f"e{i}", "127.0.0.1", agent_base + i) for i in range(N_AGENTS)]
    agents = start_agents(specs, talk_mean=4.0, talk_cv=0.3, duration=240, stats_dir=str(tmp_path), rtp_base=47400)
    lines: list[str] = []
    marks: dict[str, datetime] = {}
    try:
        runner = CampaignRunner(cfg, "e2e", get_engine(url), auto_login=True, state_logger=log_agent_state,
                                on_event=lines.append)
        refresh = runner.board.refresh
        starve = {"on": False, "turns": 0}

        def starved_refresh() -> None:  # the host gives the runner no CPU: each turn 1.5 s late
            if starve["on"]:
                starve["turns"] += 1
                time.sleep(1.5)
            refresh()

        runner.board.refresh = starved_refresh  # type: ignore[method-assign]
        start = time.monotonic()
        lagged: list[dict[str, object]] = []

        dials = {"prev": 0, "late_turns": 0, "dialled_late": 0}

        def timeline() -> bool:  # called between turns: lag.lagging is what the last turn's dial() saw
            now = time.monotonic()
            dialled = runner.counts.get("dialled", 0)
            if runner.lag.lagging:
                dials["late_turns"] += 1
                dials["dialled_late"] += dialled - dials["prev"]
            dials["prev"] = dialled
            if runner.lag.lagging and "late" not in marks:
                marks["late"] = datetime.now(UTC)
                lagged.append(runner.lag.status())
            if not starve["on"] and "starved" not in marks and now - start > 10 \
                    and runner.counts.get("dialled", 0) >= 3:
                starve["on"] = True
                marks["starved"] = datetime.now(UTC)
            if starve["on"] and starve["turns"] >= 5:
                starve["on"] = False
                marks["fed"] = datetime.now(UTC)
            if "fed" in marks and not runner.lag.lagging and "on_time" not in marks:
                marks["on_time"] = datetime.now(UTC)
                marks["dialled_before"] = runner.counts.get("dialled", 0)  # type: ignore[assignment]
            return ("on_time" in marks and runner.counts.get("dialled", 0) > int(marks["dialled_before"])  # type: ignore[call-overload]
                    and now - start > 25) or now - start > 60

        runner.run(None, should_stop=timeline)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    assert {"starved", "late", "fed", "on_time"} <= set(marks), (marks, lines[-8:])
    assert lagged and float(lagged[0]["worst_s"]) > 1.0  # type: ignore[arg-type]
    assert any(s.startswith("tick_lag: runner loop ") for s in lines), lines
    assert any(s.startswith("tick_lag_cleared: ") for s in lines), lines
    with Session(get_engine(url)) as s:
        rows = list(s.exec(select(Attempt)).all())
        said = {e.kind: e.at.replace(tzinfo=UTC) for e in s.exec(select(CampaignEvent)).all()
                if e.kind in ("tick_lag", "tick_lag_cleared")}
    # the runner's own record of when it stopped and resumed dialling (written before that turn's dials)
    late, on_time = said["tick_lag"], said["tick_lag_cleared"]
    assert marks["starved"] < late < on_time
    # no turn that knew it was late dialled, and the late stretch lasted past the starving (the 3 s hold)
    assert dials["late_turns"] >= 5 and dials["dialled_late"] == 0, dials
    assert not [a.id for a in rows if late < a.dialed_at.replace(tzinfo=UTC) < on_time - timedelta(seconds=2)]
    assert [a for a in rows if a.dialed_at.replace(tzinfo=UTC) > on_time], "never dialled again"
    assert carrier.received("INVITE") == len(rows)
    assert runner.lag.max_s > 1.0
