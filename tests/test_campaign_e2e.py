"""The live campaign end to end on loopback: SIPp carrier, pjsua2 simulated agents, SQLite, the real runner.

Counts are checked against the far end's own statistics (SIPp's INVITE count), every attempt must have an
outcome, blocked numbers must never reach the carrier, each contact is dialled at most once in a short run
(retry delays are minutes), DTMF dispositions arrive, a mode change while running is applied, and a
`kill -9` of the runner followed by a restart loses nothing and dials nobody twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.agentsim import AgentSpec, read_stats, start_agents, stop_agents
from dialer.config import parse_config
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import (
    Attempt,
    Block,
    CallListEntry,
    CampaignEvent,
    CampaignStatus,
    ControlCommand,
    Disposition,
)
from tests.conftest import REPO, run_env
from tests.sipp import Sipp, free_udp_port

pytestmark = [pytest.mark.sip, pytest.mark.slow]

N_AGENTS = 4
BLOCKED = 12


def config_text(db: Path, carrier_port: int, agent_base: int, sip_base: int, rtp_base: int) -> str:
    agents = "\n".join(
        f'[[agents]]\nlogin = "e{i}"\nsip_uri = "sip:e{i}@127.0.0.1:{agent_base + i}"\n' for i in range(N_AGENTS))
    return f"""
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = {rtp_base}
lines = 10
# the simulated agents are per-call softphones (they hang up after each call): agent legs at connect time
agent_legs = "on_connect"
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = 10
max_cps = 20
sandbox = true
{agents}
[[campaigns]]
name = "e2e"
mode = "predictive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
max_lines_per_agent = 2.5
wrap_up_timeout_s = 5
prior_hit_rate = 0.5
prior_talk_s = 8
prior_wrap_s = 1
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""


def seed(url: str, n: int) -> tuple[set[str], set[int]]:
    """n callable entries (distinct numbers) plus BLOCKED entries whose numbers are blocked in every way."""
    now = datetime.now(UTC)
    blocked: set[str] = set()
    ids: set[int] = set()
    with Session(get_engine(url)) as s:
        for i in range(n + BLOCKED):
            phone = f"+8190{10000000 + i:08d}"
            seg = ("dormant", "pre_churn", "upsell", "cross_sell")[i % 4]
            e = CallListEntry(customer_id=f"C{i:04d}", segment=seg, sku="SKU-1", phones=[phone],
                              priority=float(1000 - i), reason="test", callable_from=now - timedelta(days=1),
                              callable_until=now + timedelta(days=3))
            s.add(e)
            if i >= n:
                blocked.add(phone)
                kind = ("dnc", "refusal", "no_consent", "abandon_lock")[i % 4]
                s.add(Block(phone_e164=phone, kind=kind, product_scope="SKU-1" if kind == "refusal" else "",
                            until=now + timedelta(hours=72) if kind == "abandon_lock" else None, source="test"))
        s.commit()
        ids = {e.id for e in s.exec(select(CallListEntry)).all() if e.id is not None}
    return blocked, ids


@pytest.fixture()
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=N_AGENTS)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "e2e.db"
    text = config_text(db, carrier_port, agent_base, sip_base, 41000)
    cfg_path = tmp_path / "e2e.toml"
    cfg_path.write_text(text, encoding="utf-8")
    cfg = parse_config(text, str(cfg_path))
    url = f"sqlite:///{db}"
    init_db(url)
    carrier = Sipp(REPO / "config" / "sipp" / "demo-carrier.xml", port=carrier_port, workdir=tmp_path,
                   rtp_echo=True).start()
    specs = [AgentSpec(f"e{i}", "127.0.0.1", agent_base + i) for i in range(N_AGENTS)]
    agents = start_agents(specs, talk_mean=4.0, talk_cv=0.3, duration=240, stats_dir=str(tmp_path),
                          rtp_base=47000)
    try:
        yield cfg, cfg_path, url, carrier, tmp_path, agents
    finally:
        stop_agents(agents)
        carrier.stop()
        dispose_engines()


def attempts(url: str) -> list[Attempt]:
    with Session(get_engine(url)) as s:
        return list(s.exec(select(Attempt)).all())


def test_campaign_end_to_end(world) -> None:  # type: ignore[no-untyped-def]
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    cfg, _, url, carrier, tmp, agent_procs = world
    blocked, _ = seed(url, 150)
    engine = get_engine(url)
    runner = CampaignRunner(cfg, "e2e", engine, auto_login=True, state_logger=log_agent_state)
    start = time.monotonic()
    switched = {"done": False}

    def timeline() -> bool:
        if not switched["done"] and time.monotonic() - start > 25:
            with Session(engine) as s:
                s.add(ControlCommand(campaign="e2e", command="mode", argument="progressive", requested_by="test"))
                s.commit()
            switched["done"] = True
        return False

    runner.run(40.0, should_stop=timeline)
    carrier.stop(grace_s=1.0)
    rows = attempts(url)
    assert len(rows) >= 10, "the campaign dialled almost nothing"
    # 1. every INVITE the carrier saw is an attempt in the store, and vice versa
    assert carrier.received("INVITE") == len(rows)
    # 2. every attempt has an outcome and is closed
    assert all(a.outcome for a in rows), [(a.id, a.state) for a in rows if not a.outcome]
    assert all(a.state in ("ended", "interrupted") for a in rows)
    # 3. no blocked number was ever dialled
    assert not {a.phone_e164 for a in rows} & blocked
    # 4. nobody dialled twice in a run shorter than any retry delay
    per_entry = Counter(a.entry_id for a in rows)
    assert max(per_entry.values()) == 1
    # 5. outcomes: the carrier's answers are the store's answers
    answered = [a for a in rows if a.outcome == "answered"]
    assert carrier.sent(200) >= len(answered) > 0
    busy = sum(1 for a in rows if a.outcome == "busy")
    assert busy == carrier.sent(486)
    assert sum(1 for a in rows if a.outcome == "congestion") == carrier.sent(503)
    # 6. abandon rate within the legal limit (target 2%, limit 3%)
    abandoned = sum(1 for a in rows if a.abandoned)
    assert abandoned <= max(1, int(0.03 * len(answered))), (abandoned, len(answered))
    connected = [a for a in rows if a.agent_connected_at is not None]
    assert connected and all(a.agent_id is not None for a in connected)
    # 7. DTMF dispositions from the simulated agents reached the store
    stop_agents(agent_procs)  # they write what they keyed on exit
    sent = sum(len(v["dtmf_sent"]) for v in read_stats(str(tmp)).values())
    with Session(engine) as s:
        dtmf = s.exec(select(Disposition).where(Disposition.source == "dtmf")).all()
        assert sent > 0 and len(dtmf) >= sent - N_AGENTS  # only calls cut by the stop may miss theirs
        # a do-not-call keyed on the softphone blocks that number at once
        phone_of = {a.id: a.phone_e164 for a in rows}
        dnc_blocks = {b.phone_e164 for b in s.exec(select(Block).where(Block.kind == "dnc")).all()}
        for d in dtmf:
            if d.outcome == "dnc":
                assert phone_of[d.attempt_id] in dnc_blocks
        # 8. the mode change made while running was applied and is what the status shows
        cmd = s.exec(select(ControlCommand)).one()
        assert cmd.applied_at is not None and cmd.result == "mode progressive"
        kinds = {e.kind for e in s.exec(select(CampaignEvent)).all()}
        assert "command" in kinds
        # 9. nothing left leased or dialling
        left = s.exec(select(CallListEntry).where(CallListEntry.status.in_(("leased", "dialing")))).all()  # type: ignore[attr-defined]
        assert not left


def test_kill_9_then_restart_loses_nothing(world) -> None:  # type: ignore[no-untyped-def]
    cfg, cfg_path, url, carrier, tmp, _ = world
    seed(url, 150)
    cmd = [sys.executable, "-m", "dialer", "campaign", "run", "e2e", "--for", "60s", "--headless",
           "--auto-login", "--config", str(cfg_path)]
    env = run_env()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        end = time.monotonic() + 40
        in_flight = 0
        while time.monotonic() < end:
            time.sleep(0.5)
            rows = attempts(url)
            in_flight = sum(1 for a in rows if a.state in ("dialing", "ringing", "answered", "connected"))
            if len([a for a in rows if a.outcome]) >= 5 and in_flight >= 2:
                break
        assert in_flight >= 2, "never saw calls in flight to interrupt"
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the runner only: its SIP workers must notice and go away
        proc.wait(timeout=10)
    before = {a.id: a for a in attempts(url)}
    # restart at once: the heartbeat is still fresh, but the runner's process is gone, so it takes over
    r = subprocess.run(cmd[:6] + ["--for", "15s", "--headless", "--auto-login", "--config", str(cfg_path)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    carrier.stop(grace_s=1.0)
    after = attempts(url)
    # nothing lost: every attempt from before the crash is still there, now closed
    ids_after = {a.id for a in after}
    assert set(before) <= ids_after
    interrupted = [a for a in after if a.id in before and before[a.id].state not in ("ended", "interrupted")]
    assert interrupted and all(a.state == "interrupted" and a.outcome for a in interrupted)
    assert all(a.outcome for a in after)
    # nobody dialled twice, and the carrier saw exactly the attempts we recorded
    assert max(Counter(a.entry_id for a in after).values()) == 1
    assert carrier.received("INVITE") == len(after)
    with Session(get_engine(url)) as s:
        left = s.exec(select(CallListEntry).where(CallListEntry.status.in_(("leased", "dialing")))).all()  # type: ignore[attr-defined]
        assert not left
        st = s.get(CampaignStatus, 1)
        assert st is not None and st.runner == ""
