"""Carrier announcements are never a person (issue 24), against SIPp carriers that play a Japanese network
announcement as RTP: after a 200 OK ("fake answer"), in early media with no final answer (183 loop), and in
early media before 433 (非通知拒否). Each test checks what the carrier saw (SIPp's counts and message log) and
what the dialer reported; `test_fake_answer_is_stored_unreachable` runs the real campaign runner and reads the
store."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlmodel import Session, select

from bench.amd.pcap import wav_to_pcap
from dialer.amd.wavfile import read_pcm, write_pcm
from dialer.config import Config, parse_config
from dialer.telephony import Telephony
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_telephony_calls import collect, finished, make_config, telephony  # noqa: F401

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

DEAD = "おかけになったでんわばんごうは、げんざいつかわれておりません。ばんごうをおたしかめになって、おかけなおしください"
ANON = "おそれいりますが、ばんごうのまえに、いちはちろくをつけて、おかけなおしください"


def _announcement(d: Path, name: str, text: str) -> Path:
    """A network announcement as the carrier plays it: espeak-ng ja, read slowly, twice, 8 kHz, as PCMA RTP."""
    raw, wav = d / f"{name}.raw.wav", d / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", "ja", "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", "8000", "-b", "16", "-c", "1", str(d / f"{name}.8k.wav")], check=True,
                   capture_output=True)
    x = read_pcm(d / f"{name}.8k.wav").astype(np.float64)
    z = np.zeros(int(0.8 * 8000))
    write_pcm(wav, np.concatenate([np.zeros(800), x, z, x, z, x, z]).astype(np.int16))
    return wav_to_pcap(wav, d / f"{name}.pcap")


@pytest.fixture(scope="module")
def pcaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("announce")
    return {"dead": _announcement(d, "dead", DEAD), "anon": _announcement(d, "anon", ANON)}


@pytest.mark.slow
def test_fake_answer_never_reaches_an_agent(tmp_path: Path, pcaps: dict[str, Path],
                                            telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp("carrier_fake_answer", port=free_udp_port(), workdir=tmp_path, trace_msg=True,
              keys={"announce_pcap": str(pcaps["dead"])}) as carrier:
        tel = telephony(make_config(carrier.port, lines=1))
        assert tel.originate(1, "+81312345678", "carrier", connect_limit_s=2.0)
        asked: list[str] = []
        # an agent would be connected the moment "answered" arrives: it must never arrive
        evs = collect(tel, finished(1), 30, on=lambda ev: asked.append(ev.kind) if ev.kind == "answered" else None)
    assert asked == []
    end = next(e for e in evs if e.kind in ("failed", "hangup"))
    assert (end.kind, end.outcome, end.cause, end.by) == ("hangup", "unreachable", "announcement", "dialer"), end
    assert end.amd is not None and end.amd["verdict"] == "announcement", end.amd
    assert "announcement" in end.detail
    assert not any(e.kind in ("abandoned", "agent_connected", "machine") for e in evs)
    # the carrier answered, played, and got our ACK then BYE
    assert carrier.sent(200) >= 1 and carrier.received("ACK") == 1 and carrier.received("BYE") == 1
    log = carrier.messages()
    assert log.index("ACK sip:") < log.index("BYE sip:")


@pytest.mark.slow
def test_183_announcement_loop_is_unreachable_not_no_answer(tmp_path: Path, pcaps: dict[str, Path],
                                                            telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp("carrier_183_loop", port=free_udp_port(), workdir=tmp_path, trace_msg=True,
              keys={"announce_pcap": str(pcaps["dead"])}) as carrier:
        tel = telephony(make_config(carrier.port, lines=1))
        assert tel.originate(1, "+81312345678", "carrier", ring_timeout_s=15)
        evs = collect(tel, finished(1), 40)
    end = next(e for e in evs if e.kind in ("failed", "hangup"))
    assert (end.kind, end.outcome) == ("failed", "unreachable"), end
    assert "early media" in end.detail and "ring timeout" in end.detail, end.detail
    assert carrier.sent(183) == 1 and carrier.received("CANCEL") == 1 and carrier.sent(487) == 1
    assert "CANCEL sip:" in carrier.messages()


def test_183_then_433_is_anonymous_rejected(tmp_path: Path, pcaps: dict[str, Path],
                                            telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp("carrier_183_433", port=free_udp_port(), workdir=tmp_path, trace_msg=True,
              keys={"announce_pcap": str(pcaps["anon"])}) as carrier:
        tel = telephony(make_config(carrier.port, lines=1, extra_tel="trunk_403_limit = 1"))
        assert tel.originate(1, "+81312345678", "carrier")
        evs = collect(tel, finished(1), 20)
        assert not tel.trunk_status("carrier")["down"]  # the callee's choice, not the trunk's fault
    end = next(e for e in evs if e.kind in ("failed", "hangup"))
    assert (end.kind, end.outcome, end.sip_status) == ("failed", "anonymous_rejected", 433), end
    assert carrier.sent(183) == 1 and carrier.sent(433) == 1 and carrier.received("ACK") == 1
    assert "433 Anonymity Disallowed" in carrier.messages()


@dataclass
class OneCall:
    """What the store holds after `run_one_call`."""

    attempts: list[Any]
    entry: Any
    dispositions: list[Any]
    outbox: list[Any]
    started: datetime


def run_one_call(tmp_path: Path, carrier: Sipp, *, timeout_s: float = 40.0, talk_mean: float = 2.0) -> OneCall:
    """The real campaign runner dials one contact (progressive, one line, one simulated agent ready) through
    `carrier` (already started; stopped here), until the attempt has ended; returns what the store recorded."""
    from dialer.agentsim import AgentSpec, start_agents, stop_agents
    from dialer.campaign import CampaignRunner
    from dialer.store.db import dispose_engines, get_engine, init_db
    from dialer.store.models import Attempt, CallListEntry, Disposition, OutboxItem

    agent_port = free_udp_port(6500, 6899)
    agents = start_agents([AgentSpec("a0", "127.0.0.1", agent_port)], talk_mean=talk_mean, talk_cv=0.2,
                          duration=60, stats_dir=str(tmp_path), rtp_base=47600)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "one.db"
    cfg = parse_config(f"""
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 44000
lines = 1
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier.port}"
caller_id = "0312345678"
max_channels = 1
sandbox = true
[[agents]]
login = "a0"
sip_uri = "sip:a0@127.0.0.1:{agent_port}"
[[campaigns]]
name = "one"
mode = "progressive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
""", str(tmp_path / "one.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    now = datetime.now(UTC)
    with Session(get_engine(url)) as s:
        s.add(CallListEntry(customer_id="C001", segment="dormant", sku="SKU-1", phones=["+819011112222"],
                            priority=1.0, reason="test", callable_from=now - timedelta(days=1),
                            callable_until=now + timedelta(days=3)))
        s.commit()
    try:
        runner = CampaignRunner(cfg, "one", get_engine(url), auto_login=True)
        t0 = time.monotonic()

        def done() -> bool:
            with Session(get_engine(url)) as s:
                rows = s.exec(select(Attempt)).all()
            return bool(rows) and all(r.state == "ended" for r in rows) or time.monotonic() - t0 > timeout_s

        runner.run(timeout_s + 5.0, should_stop=done)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    with Session(get_engine(url)) as s:
        out = OneCall(attempts=list(s.exec(select(Attempt)).all()), entry=s.exec(select(CallListEntry)).one(),
                      dispositions=list(s.exec(select(Disposition)).all()),
                      outbox=list(s.exec(select(OutboxItem)).all()), started=now)
    dispose_engines()
    return out


@pytest.mark.slow
def test_fake_answer_is_stored_unreachable(tmp_path: Path, pcaps: dict[str, Path]) -> None:
    """The real runner: the attempt row says unreachable (not answered, not abandoned), no agent was used, the
    entry is not due again within a day, and the CRM outbox holds a bad-number report."""
    carrier = Sipp("carrier_fake_answer", port=free_udp_port(6000, 6499), workdir=tmp_path, trace_msg=True,
                   keys={"announce_pcap": str(pcaps["dead"])}).start()
    res = run_one_call(tmp_path, carrier, timeout_s=40)
    rows, entry, now = res.attempts, res.entry, res.started
    assert len(rows) == 1, [(r.outcome, r.detail) for r in rows]
    r = rows[0]
    assert (r.outcome, r.abandoned, r.agent_id, r.amd_verdict) == ("unreachable", False, None, "announcement"), \
        (r.outcome, r.detail)
    assert entry.next_attempt_at is not None
    nxt = entry.next_attempt_at if entry.next_attempt_at.tzinfo else entry.next_attempt_at.replace(tzinfo=UTC)
    assert nxt - now > timedelta(hours=20)
    assert carrier.received("BYE") == 1 and carrier.invites() == 1
    # the CRM hears of the bad number through the outbox (not an agent's verdict: the entry is not finished by it)
    assert [(d.outcome, d.reason_code, d.source, d.agent_id, d.attempt_id) for d in res.dispositions] == \
        [("bad_number", "unreachable", "network", None, r.id)]
    assert [(o.payload["outcome"], o.payload["reason"], o.payload["customer_id"], o.payload["attempt_id"])
            for o in res.outbox] == [("bad_number", "unreachable", "C001", r.id)]
    assert entry.status != "done"
