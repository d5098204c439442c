"""AMD on live calls: a SIPp carrier plays a recorded machine greeting (Japanese carrier announcement and a
beep) to some numbers and a short human reply (「もしもし」) to the others, as G.711 RTP from pcaps made from
WAVs; the real campaign runner with AMD on must end each call as what was played, store the verdict and
features, give machines no agent, and (leave_message) play the message after the beep."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, select

from bench.amd.pcap import wav_to_pcap
from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.amd.wavfile import read_pcm, write_pcm
from dialer.config import parse_config
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port

pytestmark = [pytest.mark.sip, pytest.mark.slow]

N_AGENTS = 2


def _say(text: str, voice: str, out: Path) -> np.ndarray:
    raw = out.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "190", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-b", "16", "-c", "1", str(out)], check=True, capture_output=True)
    return read_pcm(out).astype(np.float64)


def make_audio(d: Path) -> tuple[Path, Path, Path]:
    z = lambda s: np.zeros(int(s * 8000))  # noqa: E731
    human = _say("もしもし", "ja", d / "h.wav")
    write_pcm(d / "human.wav", np.concatenate([z(0.3), human, z(6.0)]).astype(np.int16))
    greet = _say("おかけになったでんわは、ただいまでることができません。はっしんおんのあとに、メッセージをおはなしください",
                 "ja", d / "m.wav")
    t = np.arange(int(0.5 * 8000)) / 8000
    beep = 0.3 * 32767 * np.sin(2 * np.pi * 1000 * t)
    write_pcm(d / "machine.wav", np.concatenate([z(0.2), greet, z(0.4), beep, z(8.0)]).astype(np.int16))
    msg = _say("またおでんわします", "ja", d / "message.wav")
    write_pcm(d / "message.wav", msg.astype(np.int16))
    return wav_to_pcap(d / "human.wav", d / "human.pcap"), wav_to_pcap(d / "machine.wav", d / "machine.pcap"), \
        d / "message.wav"


def config_text(db: Path, carrier_port: int, agent_base: int, sip_base: int, action: str, message: Path) -> str:
    agents = "\n".join(
        f'[[agents]]\nlogin = "a{i}"\nsip_uri = "sip:a{i}@127.0.0.1:{agent_base + i}"\n' for i in range(N_AGENTS))
    return f"""
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 43000
lines = 4
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = 4
max_cps = 10
sandbox = true
{agents}
[[campaigns]]
name = "amd"
mode = "progressive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
max_lines_per_agent = 2
wrap_up_timeout_s = 2
prior_hit_rate = 0.5
prior_talk_s = 3
prior_wrap_s = 1
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
amd = "detect"
amd_machine_action = "{action}"
amd_message = "{message}"
"""


def seed(url: str, machines: int, humans: int) -> dict[str, str]:
    now = datetime.now(UTC)
    truth: dict[str, str] = {}
    with Session(get_engine(url)) as s:
        for i in range(machines + humans):
            kind = "machine" if i % 2 == 0 and i // 2 < machines or i >= 2 * humans else "human"
            phone = f"+8190{20000000 + 10 * i + (9 if kind == 'machine' else 1):08d}"
            truth[phone] = kind
            s.add(CallListEntry(customer_id=f"C{i:03d}", segment="dormant", sku="SKU-1", phones=[phone],
                                priority=float(100 - i), reason="test", callable_from=now - timedelta(days=1),
                                callable_until=now + timedelta(days=3)))
        s.commit()
    return truth


@pytest.mark.parametrize("action", ["hangup", "leave_message"])
def test_campaign_outcomes_match_what_the_carrier_played(tmp_path: Path, action: str) -> None:
    from dialer.campaign import CampaignRunner

    human_pcap, machine_pcap, message = make_audio(tmp_path)
    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=N_AGENTS)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "amd.db"
    text = config_text(db, carrier_port, agent_base, sip_base, action, message)
    cfg = parse_config(text, str(tmp_path / "amd.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    truth = seed(url, machines=3, humans=3)
    carrier = Sipp(REPO / "config" / "sipp" / "carrier_amd.xml", port=carrier_port, workdir=tmp_path,
                   keys={"human_pcap": str(human_pcap), "machine_pcap": str(machine_pcap)}).start()
    agents = start_agents([AgentSpec(f"a{i}", "127.0.0.1", agent_base + i) for i in range(N_AGENTS)],
                          talk_mean=2.0, talk_cv=0.2, duration=120, stats_dir=str(tmp_path), rtp_base=47400)
    try:
        runner = CampaignRunner(cfg, "amd", get_engine(url), auto_login=True)
        t0 = time.monotonic()

        def done() -> bool:
            with Session(get_engine(url)) as s:
                rows = s.exec(select(Attempt)).all()
            return len(rows) == len(truth) and all(r.state == "ended" for r in rows) \
                or time.monotonic() - t0 > 80

        runner.run(90.0, should_stop=done)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    with Session(get_engine(url)) as s:
        rows = list(s.exec(select(Attempt)).all())
    from dialer.reports import campaign_report

    rep = campaign_report(get_engine(url), "amd")
    dispose_engines()
    n_machine = sum(1 for v in truth.values() if v == "machine")
    assert len(rows) == len(truth), [(r.phone_e164, r.state, r.outcome) for r in rows]
    machine_outcome = "machine" if action == "hangup" else "machine_message_left"
    for r in rows:
        want = truth[r.phone_e164]
        feats = json.loads(r.amd_features or "{}")
        ctx = (r.phone_e164[-1], r.outcome, r.amd_verdict, r.amd_decided_s, feats, r.detail)
        if want == "machine":
            assert r.amd_verdict == "machine" and r.outcome == machine_outcome and r.machine, ctx
            assert r.agent_id is None and r.agent_connected_at is None, ctx  # a machine never takes an agent
            assert r.amd_decided_s is not None and r.amd_decided_s <= 4.0, ctx
            assert feats["words"] >= 1 and feats["greeting_s"] > 0, ctx
        else:
            assert r.amd_verdict in ("human", "unsure") and r.outcome == "answered" and not r.machine, ctx
            assert r.amd_decided_s is not None and r.amd_decided_s < 2.5, ctx
    # the report counts what the rows say (checked after the rows, so a misjudged call shows its features)
    assert rep["machine"] == n_machine and rep["answered"] == len(truth) - n_machine
    assert rep["machine_rate"] == pytest.approx(n_machine / len(truth))
    assert rep["amd"]["verdicts"]["machine"] == n_machine
    assert rep["hit_rate"] == pytest.approx((len(truth) - n_machine) / len(truth))  # people only
    if action == "leave_message":
        # the message starts after the beep: the machine calls last past the greeting + beep + message
        for r in rows:
            if truth[r.phone_e164] == "machine":
                assert r.answered_at is not None and r.ended_at is not None
                assert (r.ended_at - r.answered_at).total_seconds() > 6.0, r.detail
                assert "message after the greeting's beep" in r.detail and "1000 Hz" in r.detail, r.detail
    assert carrier.received("INVITE") == len(truth)
