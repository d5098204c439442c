"""Return calls over SIP (issue 30): SIPp is the customer calling back the campaign's number, SIPp the agents'
softphones, the inbound desk (dialer.telephony.inbound_leg, a real pjsua2 process) in between.

- a return call reaches the agent who last spoke to the customer (the other ready agent is not rung), recorded as
  an inbound attempt linked to the outbound attempt it answers;
- nobody ready: queue message, the queue's max wait, the menu; 2 -> DNC at once and the customer is never leased
  for an outbound dial again;
- 1 then the hour keyed -> a callback booked inside the campaign's calling hours.
The customer keys a digit every 0.7 s until the desk hangs up (digits before the menu are ignored), so nothing
waits on a fixed sleep.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import CampaignConfig
from dialer.domain.calling_hours import contact_zones
from dialer.domain.inbound import Direction, InboundOutcome
from dialer.domain.policy import CampaignPolicy
from dialer.service import console
from dialer.service.auth import Principal
from dialer.service.roles import Role
from dialer.store.db import dispose_engines, init_db
from dialer.store.entries import Hopper
from dialer.store.models import Agent, Attempt, Block, CallListEntry, Customer, Disposition, OutboxItem
from dialer.telephony.inbound_leg import speak
from tests.conftest import REPO
from tests.sipp import PCAPS, Sipp, free_udp_port, pcap_with_payload_type

pytestmark = [pytest.mark.sip,
              pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sipp") is None,
                                 reason="needs espeak-ng and sipp")]

DID = "+81501234567"
CALLER = "+819087654321"
CAMPAIGN = "dormant-jp"
STRANGER = "+81355556666"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("prompts")
    short = {"business": "こちらはつなぐ化粧品です", "queue": "お待ちください", "menu": "1か2を押してください", "hour": "時間を押してください",
             "callback": "かしこまりました", "dnc": "承りました", "goodbye": "失礼します"}
    return {k: speak(v, d / f"{k}.wav") for k, v in short.items()}


def _seed(engine: Engine, agent_uris: dict[str, str], *, ready: bool) -> tuple[int, int]:
    now = datetime.now(UTC)
    with Session(engine) as s:
        s.add(Customer(customer_id="C100", name="山田 花子", phone="03-1234-5678", phone2="090-8765-4321"))
        for login, uri in agent_uris.items():
            s.add(Agent(login=login, name={"a01": "佐藤", "a02": "高橋"}[login], sip_uri=uri,
                        state="ready" if ready else "paused", ready_since=now - timedelta(minutes=10)))
        s.add(CallListEntry(customer_id="C100", segment="dormant", reason="休眠: 最終購入から200日",
                            phones=["+81312345678", CALLER], callable_from=now - timedelta(days=1),
                            callable_until=now + timedelta(days=30)))
        s.commit()
        e = s.exec(select(CallListEntry)).one()
        a01 = s.exec(select(Agent).where(Agent.login == "a01")).one()
        s.add(Attempt(campaign_id=1, entry_id=e.id, customer_id="C100", segment="dormant", phone_e164="+81312345678",
                      dialed_at=now - timedelta(days=2), agent_id=a01.id,
                      agent_connected_at=now - timedelta(days=2), outcome="answered", state="ended"))
        out = Attempt(campaign_id=1, entry_id=e.id, customer_id="C100", segment="dormant", phone_e164=CALLER,
                      dialed_at=now - timedelta(minutes=30), outcome="no_answer", state="ended")
        s.add(out)
        s.commit()
        assert out.id is not None and e.id is not None and a01.id is not None
        return out.id, e.id


@pytest.fixture()
def desk(tmp_path: Path, prompts: dict[str, str]) -> Iterator[tuple[Path, int, Engine]]:
    """(config path, desk port, engine): the config is written by the test (agents), the desk started by it."""
    url = f"sqlite:///{tmp_path / 'inbound.db'}"
    engine, _ = init_db(url)
    yield tmp_path, free_udp_port(), engine
    dispose_engines()


def _start_desk(tmp: Path, port: int, url: str, agents: dict[str, str], prompts: dict[str, str]) -> subprocess.Popen[bytes]:
    agent_toml = "".join(f'[[agents]]\nlogin = "{k}"\nname = "{k}"\nsip_uri = "{v}"\n' for k, v in agents.items())
    wavs = "".join(f'{k}_wav = "{v}"\n' for k, v in prompts.items())
    cfg = tmp / "inbound.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n\n[[trunks]]\nname = "loop"\nproxy = "sip:127.0.0.1:5999"\n'
                   f'sandbox = true\n\n{agent_toml}\n[[campaigns]]\nname = "{CAMPAIGN}"\ntrunk = "loop"\n'
                   f'caller_id = "{DID}"\nsegments = ["dormant"]\n\n[inbound]\nsip_port = {port}\n'
                   f'rtp_port = {free_udp_port(42000, 48000, step=64, span=64)}\nmax_wait_s = 1.0\n'
                   f'menu_wait_s = 4.0\n{wavs}', encoding="utf-8")
    return _start_desk_cfg(cfg, tmp / "desk.log")


def _start_desk_cfg(cfg: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`dialer inbound run --config CFG`, logging to LOG_PATH; returns once it says it is up (bounded)."""
    log = log_path.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dialer", "inbound", "run", "--config", str(cfg)], cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + 20
    while time.monotonic() < end:  # ready when it says so (bounded)
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace"))
        if b"inbound desk on" in log_path.read_bytes():
            return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the inbound desk did not start within 20 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _inbound(engine: Engine, timeout_s: float = 15.0) -> Attempt:
    """The inbound attempt once the desk has closed it (bounded wait on the store)."""
    end = time.monotonic() + timeout_s
    while True:
        with Session(engine) as s:
            row = s.exec(select(Attempt).where(Attempt.direction == Direction.INBOUND.value)).first()
        if row is not None and row.ended_at is not None:
            return row
        if time.monotonic() > end:
            raise AssertionError(f"no finished inbound attempt: {row}")
        time.sleep(0.1)


def _agent(engine: Engine, login: str) -> Agent:
    with Session(engine) as s:
        return s.exec(select(Agent).where(Agent.login == login)).one()


def _wait_agent(engine: Engine, login: str, state: str, timeout_s: float = 10.0) -> Agent:
    """LOGIN's row once in STATE (bounded wait on the store)."""
    end = time.monotonic() + timeout_s
    while True:
        row = _agent(engine, login)
        if row.state == state:
            return row
        if time.monotonic() > end:
            raise AssertionError(f"agent {login} not {state}: {row.state}")
        time.sleep(0.1)


def _digits(tmp: Path, digit: str) -> dict[str, str]:
    """Twenty RFC 2833 presses of DIGIT (one every 0.7 s until the desk hangs up), each its own RTP event (own
    timestamps and sequence numbers)."""
    return {f"d{i}": str(pcap_with_payload_type(PCAPS / f"dtmf_2833_{digit}.pcap", tmp / f"d{digit}_{i}.pcap", 101,
                                                ts_offset=i * 16000, seq_offset=i * 200)) for i in range(20)}


def test_a_return_call_reaches_the_agent_who_last_spoke_to_the_customer(
        desk: tuple[Path, int, Engine], prompts: dict[str, str]) -> None:
    tmp, port, engine = desk
    a01, a02 = free_udp_port(), free_udp_port()
    agents = {"a01": f"sip:a01@127.0.0.1:{a01}", "a02": f"sip:a02@127.0.0.1:{a02}"}
    out_id, _ = _seed(engine, agents, ready=True)
    with Session(engine) as s:  # a02 has been ready longer: without the last-agent rule it would get the call
        ag2 = s.exec(select(Agent).where(Agent.login == "a02")).one()
        ag2.ready_since = datetime.now(UTC) - timedelta(hours=1)
        s.add(ag2)
        s.commit()
    proc = _start_desk(tmp, port, str(engine.url), agents, prompts)
    try:
        with Sipp("agent_bye", port=a01, workdir=tmp, duration_ms=800, rtp_echo=True) as ag1, \
                Sipp("agent_uas", port=a02, workdir=tmp, rtp_echo=True) as ag2p:
            stranger = Sipp("customer_call", port=free_udp_port(), workdir=tmp / "stranger", max_calls=1,
                            timeout_s=10, keys={"caller": "09087654321"},
                            extra=("-s", "0399999999", f"127.0.0.1:{port}")).start()  # no campaign's number
            stranger.wait(15)
            cust = Sipp("customer_call", port=free_udp_port(), workdir=tmp, max_calls=1, timeout_s=20,
                        keys={"caller": "09087654321"}, extra=("-s", "0501234567", f"127.0.0.1:{port}")).start()
            cust.wait(25)
            att = _inbound(engine)
            wrapping = _agent(engine, "a01")
            # the agent's verdict through the service layer, as the browser console saves it: the desk sees it
            # and frees the agent for the campaigns
            assert att.id is not None
            disp = console.dispose(engine, Principal("a01", Role.AGENT, agent_login="a01"), "a01", {
                "attempt_id": att.id, "agent_id": wrapping.id, "customer_id": "C100", "campaign_id": 1,
                "outcome": "callback", "callback_at": datetime.now(UTC) + timedelta(days=1), "source": "web",
                "created_at": datetime.now(UTC)})
            freed = _wait_agent(engine, "a01", "ready")
    finally:
        _stop(proc)
    # wrap-up on the return call (the pop stays up for the disposition) until the agent's verdict is saved
    assert (wrapping.state, wrapping.current_attempt_id) == ("wrap_up", att.id)
    assert freed.current_attempt_id is None and disp > 0
    assert stranger.stat("FailedCall(C)") == 1 and stranger.stat("SuccessfulCall(C)") == 0  # refused 603
    assert cust.stat("SuccessfulCall(C)") == 1
    with Session(engine) as s:
        assert len(s.exec(select(Attempt).where(Attempt.direction == Direction.INBOUND.value)).all()) == 1
    assert ag1.invites() == 1 and ag2p.invites() == 0
    with Session(engine) as s:
        a01_row = wrapping
        item = s.exec(select(OutboxItem)).one()
    assert (item.payload["direction"], item.payload["answers_attempt_id"], item.payload["outcome"]) == (
        "inbound", out_id, "callback")  # the CRM hears of it like an outbound outcome
    assert att.outcome == InboundOutcome.ANSWERED and att.agent_id == a01_row.id and att.campaign_id is None
    assert att.answers_attempt_id == out_id and att.customer_id == "C100" and att.agent_connected_at is not None
    assert "last_agent" in att.detail and "休眠: 最終購入から200日" in att.detail


def test_a_return_call_goes_to_another_agent_when_the_last_one_is_busy(
        desk: tuple[Path, int, Engine], prompts: dict[str, str]) -> None:
    """The agent who last spoke to the customer is on another call: the caller does not wait for them, a ready
    agent takes the call, and the busy agent's phone never rings."""
    tmp, port, engine = desk
    a01, a02 = free_udp_port(), free_udp_port()
    agents = {"a01": f"sip:a01@127.0.0.1:{a01}", "a02": f"sip:a02@127.0.0.1:{a02}"}
    _seed(engine, agents, ready=True)
    with Session(engine) as s:  # a01 spoke to the customer last, and is on a call now
        ag1 = s.exec(select(Agent).where(Agent.login == "a01")).one()
        ag1.state = "on_call"
        s.add(ag1)
        s.commit()
    proc = _start_desk(tmp, port, str(engine.url), agents, prompts)
    try:
        with Sipp("agent_uas", port=a01, workdir=tmp / "a01", rtp_echo=True) as phone1, \
                Sipp("agent_bye", port=a02, workdir=tmp / "a02", duration_ms=800, rtp_echo=True) as phone2:
            cust = Sipp("customer_call", port=free_udp_port(), workdir=tmp, max_calls=1, timeout_s=20,
                        keys={"caller": "09087654321"}, extra=("-s", "0501234567", f"127.0.0.1:{port}")).start()
            cust.wait(25)
            att = _inbound(engine)
    finally:
        _stop(proc)
    assert cust.stat("SuccessfulCall(C)") == 1
    a02_row = _agent(engine, "a02")
    assert att.outcome == InboundOutcome.ANSWERED and att.agent_id == a02_row.id, (att.outcome, att.detail)
    assert att.customer_id == "C100" and att.agent_connected_at is not None
    assert "last_agent" not in att.detail, att.detail
    assert phone1.invites() == 0 and phone2.invites() == 1
    assert _agent(engine, "a01").state == "on_call"  # the busy agent was left alone


@pytest.mark.parametrize(("digit", "caller"), [("2", CALLER), ("1", CALLER), ("2", STRANGER)])
def test_nobody_free_queue_then_menu_dnc_or_callback(desk: tuple[Path, int, Engine], prompts: dict[str, str],
                                                    digit: str, caller: str) -> None:
    """2 -> DNC at once, the customer is never leased again; 1, 1, 1 -> a callback at 11時 (moved into the
    campaign's hours when it cannot call then); a caller we cannot match hears the business's name first and
    their 2 blocks their number only."""
    tmp, port, engine = desk
    agents = {"a01": f"sip:a01@127.0.0.1:{free_udp_port()}"}
    _, entry_id = _seed(engine, agents, ready=False)  # every agent paused: the caller queues
    cc = CampaignConfig(name=CAMPAIGN, segments=["dormant"])
    before = datetime.now(UTC)
    proc = _start_desk(tmp, port, str(engine.url), agents, prompts)
    try:
        cust = Sipp("customer_keys", port=free_udp_port(), workdir=tmp, max_calls=1, timeout_s=40,
                    keys={"caller": caller, **_digits(tmp, digit)},
                    extra=("-s", DID, f"127.0.0.1:{port}")).start()
        cust.wait(45)
        att = _inbound(engine)
    finally:
        _stop(proc)
    assert cust.stat("SuccessfulCall(C)") == 1  # the desk hung up after its confirmation
    assert att.answered_at is not None and att.ended_at is not None
    assert (att.ended_at - att.answered_at).total_seconds() >= 1.0  # the queue's max wait came first
    with Session(engine) as s:
        blocks = list(s.exec(select(Block)).all())
        entry = s.get(CallListEntry, entry_id)
        disps = list(s.exec(select(Disposition)).all())
    assert entry is not None
    if caller == STRANGER:
        assert att.outcome == InboundOutcome.IVR_DNC and att.customer_id == "" and att.answers_attempt_id is None
        assert "business message played" in att.detail
        assert [(b.kind, b.customer_id, b.phone_e164) for b in blocks] == [("dnc", None, STRANGER)]
        hopper = Hopper(engine, cc, respect_calling_hours=False)
        assert [lz.entry_id for lz in hopper.lease(5, "probe", datetime.now(UTC))] == [entry_id]  # she is not
    elif digit == "2":
        assert att.outcome == InboundOutcome.IVR_DNC
        assert [(b.kind, b.customer_id, b.phone_e164, b.source) for b in blocks] == [
            ("dnc", "C100", CALLER, "ivr")]
        assert [(d.outcome, d.source, d.attempt_id) for d in disps] == [("dnc", "dtmf", att.id)]
        hopper = Hopper(engine, cc, respect_calling_hours=False)
        assert hopper.lease(5, "probe", datetime.now(UTC)) == []  # no further outbound dial
        assert hopper.check_dialable(entry_id, CALLER, datetime.now(UTC)) is not None
    else:
        assert att.outcome == InboundOutcome.IVR_CALLBACK and blocks == []
        assert entry.callback_at is not None
        at = entry.callback_at.replace(tzinfo=UTC) if entry.callback_at.tzinfo is None else entry.callback_at
        hours = CampaignPolicy.of(cc).hours
        assert at > before and hours.is_open(at, contact_zones(CALLER))
        local = at.astimezone(ZoneInfo("Asia/Tokyo"))
        assert local.hour == 11 or "moved" in att.detail  # the hour keyed, or the next slot when 11時 is closed
