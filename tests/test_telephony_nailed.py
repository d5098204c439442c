"""Nailed-up agent legs (dialer.telephony.nailed) with real SIP: SIPp carrier, SIPp and pjsua2 agents.

Each agent is called once at log-in; answered customers are bridged into that leg without any SIP towards
the agent. Small enough (agents + lines <= 4) to run on the PyPI wheel too; scripts/test reruns them on the
site build, where one worker holds every leg.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.config import Config, parse_config
from dialer.telephony import CallEvent, Telephony, TelephonyError
from dialer.telephony.nailed import choose_agent_legs, nailed_capacity_error
from tests.sipp import PCAPS, Sipp, free_udp_port, pcap_with_payload_type

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]
Events = list[CallEvent]


def make_config(carrier_port: int, agents: dict[str, str], *, lines: int = 2, mode: str = "nailed",
                extra_tel: str = "") -> Config:
    sip = free_udp_port(5100, 5899, span=8)
    rtp = 20000 + 1000 * (sip % 9)
    blocks = "".join(f'[[agents]]\nlogin = "{login}"\nsip_uri = "{uri}"\n' for login, uri in agents.items())
    return parse_config(f"""
[telephony]
sip_port_base = {sip}
rtp_port_base = {rtp}
rtp_ports_per_worker = 40
lines = {lines}
agent_legs = "{mode}"
{extra_tel}
[[trunks]]
name = "carrier"
proxy = "sip:127.0.0.1:{carrier_port}"
max_cps = 50
{blocks}""", "test")


@pytest.fixture
def telephony() -> Iterator[Callable[[Config], Telephony]]:
    made: list[Telephony] = []

    def start(cfg: Config) -> Telephony:
        tel = Telephony(cfg)
        made.append(tel)
        tel.start()
        return tel

    yield start
    for tel in made:
        tel.stop()
        assert {w.name: w.exitcode() for w in tel.workers.values()} == {w: 0 for w in tel.workers}
        assert tel.errors == []


def collect(tel: Telephony, until: Callable[[Events], bool], timeout: float,
            on: Callable[[CallEvent], None] | None = None) -> Events:
    out: Events = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until(out):
        for ev in tel.events(0.05):
            out.append(ev)
            if on is not None:
                on(ev)
    return out


def count(kind: str, n: int, agent_id: int | None = None) -> Callable[[Events], bool]:
    return lambda evs: sum(e.kind == kind and (agent_id is None or e.agent_id == agent_id) for e in evs) >= n


def bridge_on_answer(tel: Telephony, attempt_id: int, agent_id: int) -> Callable[[CallEvent], None]:
    def on(ev: CallEvent) -> None:
        if ev.kind == "answered" and ev.attempt_id == attempt_id:
            tel.connect_agent(attempt_id, agent_id, "sip:unused@127.0.0.1")  # nailed: the session's URI counts
    return on


def customers(tel: Telephony, ids: list[int], agent_id: int, hold_s: float) -> Events:
    """One customer after another, each bridged to the agent as soon as it answers, hung up after hold_s."""
    evs: Events = []
    for a in ids:
        assert tel.originate(a, "+81312345678", "carrier", connect_limit_s=2.0)
        got = collect(tel, lambda es, a=a: any(e.kind == "agent_connected" and e.attempt_id == a for e in es)  # type: ignore[misc]
                      or any(e.kind in ("failed", "abandoned") and e.attempt_id == a for e in es), 10,
                      on=bridge_on_answer(tel, a, agent_id))
        time.sleep(hold_s)
        tel.hangup(a)
        got += collect(tel, lambda es, a=a: any(e.kind == "hangup" and e.attempt_id == a for e in es), 10)  # type: ignore[misc]
        evs += got
    return evs


def test_auto_mode_and_capacity_rule() -> None:
    assert choose_agent_legs("auto", 512, 100, 250) == "nailed"
    assert choose_agent_legs("auto", 4, 8, 16) == "on_connect"
    assert choose_agent_legs("auto", 4, 1, 3) == "nailed"  # 1 agent leg + 3 lines fit one wheel worker
    assert choose_agent_legs("auto", 512, 0, 16) == "on_connect"  # no agents configured: nothing to nail
    assert choose_agent_legs("on_connect", 512, 1, 1) == "on_connect"
    assert nailed_capacity_error(512, 262, 250) is None
    msg = nailed_capacity_error(4, 8, 16)
    assert msg is not None and "24 calls" in msg and "holds 4" in msg and "scripts/build-pjsua2" in msg


def test_agent_called_once_customers_bridged_at_once(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    audio = str(PCAPS / "g711a.pcap")
    dtmf = {"dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_4.pcap", tmp_path / "d4.pcap", 120)),
            "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_2.pcap", tmp_path / "d2.pcap", 120,
                                                     ts_offset=80000, seq_offset=500))}
    with Sipp("carrier_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": audio, **dtmf}) as carrier, \
            Sipp("agent_uas", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as agent:
        tel = telephony(make_config(carrier.port, {"a1": agent.uri("a1")}))
        assert tel.agent_legs == "nailed" and len(tel.workers) == 1
        assert tel.capacity == min(2, tel.worker_capacity - 1)
        a1 = 1
        tel.agent_login(a1, agent.uri("a1"))
        up = collect(tel, count("agent_leg_up", 1), 10)
        assert [e.agent_id for e in up if e.kind == "agent_leg_up"] == [a1] and tel.agent_leg_up(a1)
        evs = customers(tel, [11, 12, 13], a1, hold_s=2.5)
        tel.agent_logout(a1)
        down = collect(tel, count("agent_leg_down", 1), 10)
    connected = [e for e in evs if e.kind == "agent_connected"]
    assert [e.attempt_id for e in connected] == [11, 12, 13]
    answered = {e.attempt_id: e.at for e in evs if e.kind == "answered"}
    # bridged without any SIP towards the agent: the answer -> bridge time is the supervisor round trip
    assert all(e.at - answered[e.attempt_id] < 0.5 for e in connected)  # type: ignore[index]
    assert agent.invites() == 1 and agent.received("BYE") == 1  # one call for the whole session
    assert carrier.invites() == 3 and carrier.received("BYE") == 3
    hangups = [e for e in evs if e.kind == "hangup"]
    assert [e.by for e in hangups] == ["dialer"] * 3
    for e in hangups:
        st = e.stats or {}
        c, a = st["customer"], st["agent"]
        assert c["rx"] > 20 and a["rx"] > 20 and a["tx"] > 20  # RTP both ways on the agent's stretch
        # the customer's speech reaches the agent, whose (echoed) audio comes back to the customer
        assert c["level_in"] > 0 and a["level_out"] > 0 and a["level_in"] > 0 and c["level_out"] > 0
    assert [e.detail for e in down if e.kind == "agent_leg_down"] == ["logged out"]
    assert not tel.agent_leg_up(a1)


def test_dropped_leg_ends_the_call_goes_down_and_is_dialled_again(
        tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as carrier, \
            Sipp("agent_bye", port=free_udp_port(), workdir=tmp_path, duration_ms=2500, rtp_echo=True) as agent:
        tel = telephony(make_config(carrier.port, {"a1": agent.uri("a1")}))
        tel.agent_login(1, agent.uri("a1"))
        collect(tel, count("agent_leg_up", 1), 10)
        assert tel.originate(21, "+81312345678", "carrier", connect_limit_s=2.0)
        evs = collect(tel, count("agent_connected", 1), 10, on=bridge_on_answer(tel, 21, 1))
        # the agent hangs up their phone mid-call: the customer is released, the agent is down ...
        evs += collect(tel, lambda es: count("agent_leg_down", 1)(es) and count("hangup", 1)(es), 10)
        assert not tel.agent_leg_up(1)
        # ... and is called again (back-off 1 s), without the campaign asking
        evs += collect(tel, count("agent_leg_up", 1), 15)
        assert tel.agent_leg_up(1)
    hang = next(e for e in evs if e.kind == "hangup" and e.attempt_id == 21)
    assert hang.by == "agent"
    down = next(e for e in evs if e.kind == "agent_leg_down")
    assert down.agent_id == 1 and "dropped" in down.detail and "calling again" in down.detail
    assert agent.invites() >= 2 and agent.sent("BYE") >= 1
    assert carrier.received("BYE") == 1


def test_connect_while_leg_down_is_agent_failed(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as carrier, \
            Sipp("agent_reject", port=free_udp_port(), workdir=tmp_path) as agent:
        tel = telephony(make_config(carrier.port, {"a1": agent.uri("a1")}))
        tel.agent_login(1, agent.uri("a1"))
        down = collect(tel, count("agent_leg_down", 1), 10)
        assert "not answered" in down[-1].detail and down[-1].sip_status == 486
        assert tel.originate(31, "+81312345678", "carrier", connect_limit_s=1.0)
        evs = collect(tel, lambda es: any(e.kind == "hangup" for e in es), 15, on=bridge_on_answer(tel, 31, 1))
        # the refused leg is dialled again by itself (back-off 1 s, then 2 s)
        evs += collect(tel, count("agent_leg_down", 1), 10)
    kinds = [e.kind for e in evs if e.attempt_id == 31]
    assert "agent_failed" in kinds and "abandoned" in kinds and "agent_connected" not in kinds
    assert "not up" in next(e.detail for e in evs if e.kind == "agent_failed")
    assert agent.invites() >= 2


def test_pjsua2_agents_without_auto_answer_headers(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    ports = [free_udp_port(5900, 5999), free_udp_port(5900, 5999)]
    while ports[1] == ports[0]:
        ports[1] = free_udp_port(5900, 5999)
    specs = [AgentSpec(f"p{i}", "127.0.0.1", p) for i, p in enumerate(ports, 1)]
    procs = start_agents(specs, talk_mean=600, talk_cv=0.01, duration=60, rtp_base=free_udp_port(
        26000, 27800, step=200, span=1))
    try:
        with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as carrier:
            uris = {s.login: f"sip:{s.login}@127.0.0.1:{s.port}" for s in specs}
            tel = telephony(make_config(carrier.port, uris, lines=2))
            assert tel.agent_legs == "nailed"
            for i, s in enumerate(specs, 1):
                tel.agent_login(i, uris[s.login])
            collect(tel, lambda es: tel.agent_leg_up(1) and tel.agent_leg_up(2), 10)
            assert tel.agent_leg_up(1) and tel.agent_leg_up(2)
            evs = customers(tel, [41], 1, hold_s=1.5) + customers(tel, [42], 2, hold_s=1.5)
    finally:
        stop_agents(procs)
    connected = {e.attempt_id: e.agent_id for e in evs if e.kind == "agent_connected"}
    assert connected == {41: 1, 42: 2}
    for e in (e for e in evs if e.kind == "hangup"):
        assert (e.stats or {})["agent"]["rx"] > 20  # the pjsua2 agent's RTP reached the bridge


def test_nailed_asked_for_but_too_small_a_process_is_a_clear_error(tmp_path: Path) -> None:
    agents = {f"a{i}": f"sip:a{i}@127.0.0.1:5999" for i in range(3)}
    # max_lines_per_host lifts the host clamp, so 600 lines + 3 agents overflow even a 512-call site build
    tel = Telephony(make_config(5999, agents, lines=600, extra_tel="max_lines_per_host = 100000"))
    with pytest.raises(TelephonyError, match=r'agent_legs = "nailed" needs one worker process holding 3 agent'):
        tel.start()
    assert not any(w.alive() for w in tel.workers.values())
