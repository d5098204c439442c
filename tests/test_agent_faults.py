"""Agents' phones that refuse or die never cost a customer (issue 25), on the real runner with SIPp peers.

- A phone on DND behind a PBX answers OPTIONS 200 and every INVITE 486: the customer it refused goes to another
  ready agent inside the connect limit, the agent is `refusing` (out of routing and of the pacer's agents at
  once), OPTIONS answers never bring them back, and the monitor says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlmodel import Session, select

from dialer.campaign import CampaignRunner
from dialer.config import parse_config
from dialer.store.agents import log_agent_state
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Agent, Attempt, CampaignEvent
from dialer.views.monitor import Monitor
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_campaign_e2e import seed

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(120)]


def config_text(url: str, carrier_port: int, agents: dict[str, str], sip_base: int, *, legs: str = "on_connect",
                check_s: float = 0, extra: str = "") -> str:
    rows = "".join(f'[[agents]]\nlogin = "{login}"\nsip_uri = "{uri}"\n' for login, uri in agents.items())
    return f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = {45400 + 40 * (sip_base % 20)}
rtp_ports_per_worker = 40
lines = 1
agent_legs = "{legs}"
agent_check_s = {check_s}
drain_s = 30
{extra}
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = 1
max_cps = 5
sandbox = true
{rows}
[[campaigns]]
name = "faults"
mode = "progressive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
wrap_up_timeout_s = 1
prior_hit_rate = 0.5
prior_talk_s = 3
prior_wrap_s = 1
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""


def _frame(engine: Any, cfg: Any) -> str:
    m = Monitor(engine, cfg, campaign="faults", by="test")
    m.refresh()
    con = Console(record=True, width=120, color_system=None)
    con.print(m.render(120))
    return con.export_text()


def test_agent_on_dnd_is_taken_out_of_routing_and_its_customer_rerouted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dnd.db'}"
    init_db(url)
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=1500,
              rtp_echo=True) as carrier, \
            Sipp("agent_dnd", port=free_udp_port(6500, 6899), workdir=tmp_path) as dnd, \
            Sipp("agent_uas_options", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as ok:
        # "dnd" is configured first: with both ready it is the one the first answered customer is offered to
        cfg = parse_config(config_text(url, carrier.port, {"dnd": dnd.uri("dnd"), "ok": ok.uri("ok")},
                                       free_udp_port(6900, 6990, span=8), check_s=0.5), str(tmp_path / "dnd.toml"))
        seed(url, 8)
        engine = get_engine(url)
        runner = CampaignRunner(cfg, "faults", engine, auto_login=True, state_logger=log_agent_state)
        seen: dict[str, Any] = {"frame": "", "pacer_agents": None, "states": []}
        t0 = time.monotonic()

        def watch() -> bool:
            refusing = [a for a in runner.board.agents.values() if a.state == "refusing"]
            now = [a.state for a in runner.board.agents.values() if a.login == "dnd"]
            if now and (not seen["states"] or seen["states"][-1] != now[0]):
                seen["states"].append(now[0])
            if refusing and seen["pacer_agents"] is None:
                seen["pacer_agents"] = len(runner.snapshot(runner.clock()).agents)
            if refusing and not seen["frame"]:
                seen["frame"] = _frame(engine, cfg)
            return runner.counts.get("connected", 0) >= 3 or time.monotonic() - t0 > 40

        try:
            runner.run(60.0, should_stop=watch)
            with Session(engine) as s:
                rows = list(s.exec(select(Attempt)).all())
                events = list(s.exec(select(CampaignEvent)).all())
                agents = {a.login: a for a in s.exec(select(Agent)).all()}
        finally:
            dispose_engines()
    answered = [r for r in rows if r.outcome == "answered"]
    assert len(answered) >= 3
    # no customer was lost to the refusing phone: every answered call reached the agent who takes calls
    assert all(r.agent_connected_at is not None and not r.abandoned for r in answered), \
        [(r.id, r.abandoned, r.agent_id) for r in answered]
    assert {r.agent_id for r in answered} == {agents["ok"].id}
    first = min(answered, key=lambda r: r.id)
    assert first.answered_at is not None and first.agent_connected_at is not None
    assert runner.counts.get("abandoned", 0) == 0 and runner.counts.get("rerouted") == 1
    # the phone was asked once; its OPTIONS 200s (checked every 0.5 s) never made the agent ready again
    assert dnd.invites() == 1 and dnd.sent(486) == 1 and dnd.sent(200) >= 2
    # ready, offered the call, refusing from then on (never ready again while the run lasted)
    states = seen["states"]
    assert "refusing" in states and "ready" not in states[states.index("refusing"):], states
    kinds = [e.kind for e in events]
    assert kinds.count("agent_refusing") == 1 and kinds.count("agent_rerouted") == 1
    assert "486" in next(e.message for e in events if e.kind == "agent_refusing")
    # the pacer counted only the agent who takes calls from the moment of the refusal
    assert seen["pacer_agents"] == 1
    # the monitor shows the agent as refusing calls, and why
    assert "refusing calls" in seen["frame"] and "agent_refusing" in seen["frame"], seen["frame"]
    print(f"re-route: customer answered -> second agent connected in "
          f"{(first.agent_connected_at - first.answered_at).total_seconds():.3f} s")


def byes_received(sipp: Sipp) -> int:
    """BYE requests that reached SIPp, from its own message trace (the carrier scenario has no step for one)."""
    blocks = sipp.messages().split("message received")[1:]
    return sum(1 for b in blocks if b.lstrip().split("\n", 1)[-1].lstrip().startswith("BYE "))


def _run(tmp_path: Path, cfg_text: str, url: str, until: Any) -> tuple[CampaignRunner, list[Attempt],
                                                                      list[CampaignEvent], dict[str, Agent]]:
    cfg = parse_config(cfg_text, str(tmp_path / "faults.toml"))
    engine = get_engine(url)
    runner = CampaignRunner(cfg, "faults", engine, auto_login=True, state_logger=log_agent_state)
    t0 = time.monotonic()
    try:
        runner.run(60.0, should_stop=lambda: until(runner) or time.monotonic() - t0 > 40)
        with Session(engine) as s:
            rows = list(s.exec(select(Attempt)).all())
            events = list(s.exec(select(CampaignEvent)).all())
            agents = {a.login: a for a in s.exec(select(Agent)).all()}
    finally:
        dispose_engines()
    return runner, rows, events, agents


def _rescued(rows: list[Attempt], events: list[CampaignEvent], agents: dict[str, Agent], good: str) -> Attempt:
    """Every answered customer reached an agent, none was abandoned or hung up by the dialer, and the one whose
    agent leg died is the one the other agent finished."""
    answered = [r for r in rows if r.outcome == "answered"]
    assert answered and all(r.agent_connected_at is not None and not r.abandoned and r.hangup_by == "customer"
                            for r in answered), [(r.id, r.abandoned, r.hangup_by, r.detail) for r in answered]
    lost = [e for e in events if e.kind == "agent_leg_lost"]
    assert len(lost) >= 1
    saved = next(r for r in answered if "lost" in (r.detail or ""))
    assert saved.agent_id == agents[good].id
    assert f"attempt {saved.id}" in lost[0].message
    assert any(e.kind == "agent_rerouted" and f"attempt {saved.id}" in e.message for e in events)
    return saved


def test_agent_who_answers_and_hangs_up_at_once_costs_the_customer_nothing(tmp_path: Path) -> None:
    """A softphone answers and sends BYE 0.3 s later: the customer stays up and the other agent takes them."""
    url = f"sqlite:///{tmp_path / 'bye.db'}"
    init_db(url)
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=2500,
              rtp_echo=True, trace_msg=True) as carrier, \
            Sipp("agent_bye", port=free_udp_port(6500, 6899), workdir=tmp_path, duration_ms=300,
                 rtp_echo=True) as flaky, \
            Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as ok:
        text = config_text(url, carrier.port, {"flaky": flaky.uri("flaky"), "ok": ok.uri("ok")},
                           free_udp_port(6900, 6990, span=8))
        seed(url, 6)
        runner, rows, events, agents = _run(
            tmp_path, text, url,
            lambda r: r.counts.get("agent_lost", 0) >= 1 and r.counts.get("connected", 0) >= 3)
    saved = _rescued(rows, events, agents, "ok")
    assert "hung up" in (saved.detail or "") and flaky.sent("BYE") == 1
    assert byes_received(carrier) == 0  # no customer heard the dialer hang up
    assert runner.counts.get("abandoned", 0) == 0 and runner.counts.get("agent_lost") == 1
    assert saved.answered_at is not None and saved.agent_connected_at is not None
    print(f"answer-then-BYE: customer answered -> second agent connected in "
          f"{(saved.agent_connected_at - saved.answered_at).total_seconds():.3f} s")


def test_silent_nailed_leg_is_noticed_and_its_customer_rescued(tmp_path: Path) -> None:
    """A nailed agent leg that sends no RTP (a dead PBX/NAT binding: no BYE either): the bridged customer is
    handed to the other agent within agent_silence_s, the dead leg is hung up and called again."""
    url = f"sqlite:///{tmp_path / 'mute.db'}"
    init_db(url)
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=4000,
              rtp_echo=True, trace_msg=True) as carrier, \
            Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path) as mute, \
            Sipp("agent_uas", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as ok:
        text = config_text(url, carrier.port, {"mute": mute.uri("mute"), "ok": ok.uri("ok")},
                           free_udp_port(6900, 6990, span=8), legs="nailed")
        seed(url, 8)
        runner, rows, events, agents = _run(
            tmp_path, text, url,
            lambda r: r.counts.get("agent_lost", 0) >= 1 and not r.live)
    saved = _rescued(rows, events, agents, "ok")
    assert "no RTP from the agent" in (saved.detail or "")
    assert byes_received(carrier) == 0 and runner.counts.get("abandoned", 0) == 0
    assert mute.invites() >= 2  # the dead leg was hung up and the phone called again
    lost_at = next(e.at for e in events if e.kind == "agent_leg_lost")
    assert saved.answered_at is not None and saved.agent_connected_at is not None
    print(f"silent nailed leg: detected {(lost_at - saved.answered_at).total_seconds():.2f} s after answer; "
          f"customer answered -> second agent connected in "
          f"{(saved.agent_connected_at - saved.answered_at).total_seconds():.3f} s")


def test_refusing_agent_is_back_once_its_phone_takes_a_real_call(tmp_path: Path) -> None:
    """DND goes off (the PBX now lets calls through): the next probe call is answered, the agent is ready again
    and takes customers. OPTIONS could not have told: the phone answered them all along."""
    url = f"sqlite:///{tmp_path / 'back.db'}"
    init_db(url)
    port = free_udp_port(6500, 6899)
    later: list[Sipp] = []
    with Sipp("carrier_callee_bye", port=free_udp_port(6000, 6499), workdir=tmp_path, duration_ms=1500,
              rtp_echo=True) as carrier, \
            Sipp("agent_uas_options", port=free_udp_port(6500, 6899), workdir=tmp_path, rtp_echo=True) as ok:
        dnd = Sipp("agent_dnd", port=port, workdir=tmp_path).start()
        text = config_text(url, carrier.port, {"dnd": f"sip:dnd@127.0.0.1:{port}", "ok": ok.uri("ok")},
                           free_udp_port(6900, 6990, span=8), extra="refusing_probe_s = 1")
        seed(url, 10)

        def until(r: CampaignRunner) -> bool:
            if r.counts.get("agent_refused") and not later:
                dnd.stop(grace_s=0.3)  # DND off: the same phone now answers
                later.append(Sipp("agent_uas_options", port=port, workdir=tmp_path / "after",
                                  rtp_echo=True).start())
            back = next((a for a in r.board.agents.values() if a.login == "dnd"), None)
            return bool(later) and back is not None and back.state == "wrap_up"

        try:
            runner, rows, events, agents = _run(tmp_path, text, url, until)
        finally:
            for p in later:
                p.stop()
    kinds = [e.kind for e in events]
    assert "agent_refusing" in kinds and "agent_back" in kinds
    assert kinds.index("agent_refusing") < kinds.index("agent_back")
    # the probe was a real call the phone answered; then it took a customer
    assert later and later[0].invites() >= 2
    assert any(r.agent_id == agents["dnd"].id and r.agent_connected_at is not None for r in rows)
    assert runner.counts.get("abandoned", 0) == 0
