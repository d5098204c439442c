"""A return call while predictive dialling runs (issue 30): the real runner dials a SIPp carrier in predictive
mode with three simulated pjsua2 agents; the inbound desk (`dialer inbound run`, same config, same store) takes a
SIPp customer calling back the campaign's number once outbound calls are up.

Sixty calls went unanswered in the last minutes and the campaign expects half of them back within ten minutes, so
the pacer keeps one ready agent for return callers (pacing.inbound, fed by the runner); the desk takes an agent only
when more are ready than answered outbound calls wait (domain.inbound.may_take_agent). The caller reaches an
agent; while that agent is on the return call no outbound call is routed to them (the runner sees the desk's claim
in the store: its board re-reads the agents each tick and the store refuses to reserve an agent another owner
holds), and no outbound call answered meanwhile is abandoned."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.config import parse_config
from dialer.domain.inbound import Direction, InboundOutcome
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry, Campaign, Customer
from tests import test_inbound_sip as base
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_inbound_sip import _inbound, _start_desk_cfg, _stop

pytestmark = [pytest.mark.sip, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sipp") is None,
                                 reason="needs espeak-ng and sipp")]
prompts = base.prompts

DID = "+81501234567"
CALLER = "+819087654321"
N_AGENTS = 3


def _config(db: Path, carrier: int, agent_base: int, sip_base: int, desk: int, prompts: dict[str, str]) -> str:
    agents = "\n".join(f'[[agents]]\nlogin = "p{i}"\nsip_uri = "sip:p{i}@127.0.0.1:{agent_base + i}"\n'
                       for i in range(N_AGENTS))
    wavs = "".join(f'{k}_wav = "{v}"\n' for k, v in prompts.items())
    return f"""
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 43000
lines = 8
agent_legs = "on_connect"
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier}"
max_channels = 8
max_cps = 10
sandbox = true
{agents}
[[campaigns]]
name = "pd"
mode = "predictive"
trunk = "loop"
caller_id = "{DID}"
ring_timeout_s = 15
connect_limit_s = 2.0
max_lines_per_agent = 2.5
wrap_up_timeout_s = 2
prior_hit_rate = 0.5
prior_talk_s = 4
prior_wrap_s = 1
return_call_prior_rate = 0.5
return_call_mean_s = 600
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
[inbound]
sip_port = {desk}
rtp_port = {free_udp_port(45000, 46900, step=64, span=64)}
max_wait_s = 20.0
{wavs}"""


@pytest.fixture()
def world(tmp_path: Path, prompts: dict[str, str]) -> Iterator[tuple[Path, str, Sipp, int]]:
    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=N_AGENTS)
    sip_base = free_udp_port(6900, 6990, span=8)
    desk = free_udp_port()
    db = tmp_path / "pd.db"
    cfg_path = tmp_path / "pd.toml"
    cfg_path.write_text(_config(db, carrier_port, agent_base, sip_base, desk, prompts), encoding="utf-8")
    url = f"sqlite:///{db}"
    init_db(url)
    now = datetime.now(UTC)
    with Session(get_engine(url)) as s:
        for i in range(60):
            s.add(CallListEntry(customer_id=f"C{i:03d}", segment="dormant", phones=[f"+8190{20000000 + i:08d}"],
                                priority=float(1000 - i), reason="test", callable_from=now - timedelta(days=1),
                                callable_until=now + timedelta(days=3)))
        s.add(Customer(customer_id="RET", name="山田 花子", phone="090-8765-4321"))
        s.commit()
    carrier = Sipp(REPO / "config" / "sipp" / "demo-carrier.xml", port=carrier_port, workdir=tmp_path,
                   rtp_echo=True).start()
    agents = start_agents([AgentSpec(f"p{i}", "127.0.0.1", agent_base + i) for i in range(N_AGENTS)],
                          talk_mean=3.0, talk_cv=0.3, duration=120, stats_dir=str(tmp_path), rtp_base=47000)
    try:
        yield cfg_path, url, carrier, desk
    finally:
        stop_agents(agents)
        carrier.stop()
        dispose_engines()


def test_a_return_call_during_predictive_dialling_reaches_an_agent_the_runner_leaves_alone(
        world: tuple[Path, str, Sipp, int]) -> None:
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    cfg_path, url, carrier, desk_port = world
    cfg = parse_config(cfg_path.read_text(encoding="utf-8"), str(cfg_path))
    engine = get_engine(url)
    runner = CampaignRunner(cfg, "pd", engine, auto_login=True, state_logger=log_agent_state)
    with Session(engine) as s:  # the unanswered call she is returning, among 60 of the last minutes
        camp = s.exec(select(Campaign).where(Campaign.name == "pd")).one()
        now = datetime.now(UTC)
        for i in range(60):  # with the rate above the pacer keeps one ready agent for return callers
            s.add(Attempt(campaign_id=camp.id, customer_id=f"N{i:02d}", segment="dormant",
                          phone_e164=f"+8190300{i:05d}", dialed_at=now - timedelta(seconds=60 + 4 * i),
                          outcome="no_answer", state="ended"))
        s.add(Attempt(campaign_id=camp.id, customer_id="RET", segment="dormant", phone_e164=CALLER,
                      dialed_at=datetime.now(UTC) - timedelta(minutes=20), outcome="no_answer", state="ended"))
        s.commit()
    desk = _start_desk_cfg(cfg_path, cfg_path.parent / "desk.log")
    customer: dict[str, Sipp] = {}
    start = time.monotonic()

    def timeline() -> bool:
        # the customer calls back once an outbound call is answered (the centre is busy), or 8 s into dialling
        if "c" not in customer:
            with Session(engine) as s:
                up = s.exec(select(Attempt.id).where(Attempt.direction == Direction.OUTBOUND.value,
                                                     Attempt.answered_at.is_not(None))).first()  # type: ignore[union-attr]
            if up is not None or time.monotonic() - start > 8.0:
                customer["c"] = Sipp("customer_call", port=free_udp_port(), workdir=cfg_path.parent, max_calls=1,
                                     timeout_s=40, keys={"caller": "09087654321"},
                                     extra=("-s", DID, f"127.0.0.1:{desk_port}")).start()
        return False

    try:  # 14 s of dialling, then a drain cut short at 18 s (ringing calls would hold it for their 15 s)
        runner.run(14.0, should_stop=timeline, hard_stop=lambda: time.monotonic() - start > 18.0)
        assert "c" in customer
        att = _inbound(engine, timeout_s=20)
    finally:
        _stop(desk)
        if "c" in customer:
            customer["c"].stop()
    carrier.stop(grace_s=1.0)
    with Session(engine) as s:
        outbound = list(s.exec(select(Attempt).where(Attempt.direction == Direction.OUTBOUND.value,
                                                     Attempt.customer_id != "RET")).all())
    assert att.outcome == InboundOutcome.ANSWERED and att.agent_id is not None, att.detail
    assert att.answers_attempt_id is not None and att.customer_id == "RET"
    assert att.agent_connected_at is not None and att.ended_at is not None
    # while the agent talked to the return caller, no outbound call was connected to them
    for o in outbound:
        if o.agent_id == att.agent_id and o.agent_connected_at is not None:
            end = o.ended_at or datetime.now(UTC)
            assert end <= att.agent_connected_at or o.agent_connected_at >= att.ended_at, (o.id, o.agent_connected_at)
    # no outbound call answered while the desk held that agent was abandoned for want of one (the desk takes an
    # agent only when more are ready than answered outbound calls wait: domain.inbound.may_take_agent)
    assert len([o for o in outbound if o.dialed_at < att.answered_at]) >= 2  # predictive dialling was under way
    assert not [o.id for o in outbound if o.abandoned and o.answered_at is not None
                and att.answered_at - timedelta(seconds=1) <= o.answered_at <= att.ended_at]
