"""A trunk that refuses our credentials costs no contact an attempt (issue 13, item 2), end to end.

The real runner dials a SIPp carrier that answers every INVITE with 401 whatever the credentials: the trunk
goes down at once with the reason, every call it refused is given back to the hopper untouched (no attempt
row, no attempt counted on the entry), and the campaign's event log says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.config import parse_config
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry, CampaignEvent
from tests.sipp import Sipp, free_udp_port
from tests.test_campaign_e2e import seed

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def test_refused_credentials_take_the_trunk_down_and_cost_no_attempt(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from dialer.campaign import CampaignRunner

    monkeypatch.setenv("TSUNAGU_TEST_TRUNK_PW", "wrong-password")
    db = tmp_path / "auth.db"
    url = f"sqlite:///{db}"
    init_db(url)
    sip = free_udp_port(6900, 6990, span=8)
    with Sipp("carrier_auth_fail", port=free_udp_port(6000, 6499), workdir=tmp_path) as carrier:
        cfg = parse_config(f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip}
rtp_port_base = 43000
lines = 4
trunk_retry_s = 600
# per-call agent legs: a site build would otherwise pick nailed legs, where OPTIONS checks are skipped
agent_legs = "on_connect"
agent_check_s = 0
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier.port}"
username = "dialer"
password_env = "TSUNAGU_TEST_TRUNK_PW"
max_cps = 20
sandbox = true
[[agents]]
login = "a1"
sip_uri = "sip:a1@127.0.0.1:5999"
[[campaigns]]
name = "auth"
mode = "progressive"
trunk = "loop"
""", str(tmp_path / "auth.toml"))
        seed(url, 20)
        engine = get_engine(url)
        try:
            runner = CampaignRunner(cfg, "auth", engine, auto_login=True)
            runner.run(6.0)
            with Session(engine) as s:
                rows = list(s.exec(select(Attempt)).all())
                entries = list(s.exec(select(CallListEntry)).all())
                events = list(s.exec(select(CampaignEvent)).all())
        finally:
            dispose_engines()
    placed = runner.counts.get("dialled", 0)
    assert placed >= 1 and runner.counts.get("not_attempted_trunk_error", 0) == placed
    assert rows == []  # no attempt row survives
    assert all(e.attempts == 0 for e in entries)  # and no entry lost an attempt
    downs = [e for e in events if e.kind == "trunk_down"]
    assert len(downs) == 1 and "authentication failed" in downs[0].message
    # every call was challenged once and refused; nothing more was dialled once the trunk was down
    assert carrier.invites() == 2 * placed and carrier.sent(401) == 2 * placed


def test_agents_unreachable_by_options_and_back_when_they_answer(tmp_path: Path) -> None:
    """An agent whose phone answers OPTIONS with 480 (not registered) or not at all is `unreachable`, never
    offered a call; when its phone answers again (checked every agent_check_s) it is ready again."""
    from dialer.campaign import CampaignRunner
    from dialer.store.models import Agent

    db = tmp_path / "reach.db"
    url = f"sqlite:///{db}"
    init_db(url)
    sip = free_udp_port(6900, 6990, span=8)
    late_port = free_udp_port(6500, 6899)  # nothing listens here at first
    late: list[Sipp] = []
    with Sipp("carrier_busy", port=free_udp_port(6000, 6499), workdir=tmp_path) as carrier, \
            Sipp("agent_options_offline", port=free_udp_port(6500, 6899), workdir=tmp_path) as offline, \
            Sipp("agent_options_ok", port=free_udp_port(6500, 6899), workdir=tmp_path) as up:
        cfg = parse_config(f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip}
rtp_port_base = 43500
lines = 2
agent_check_s = 1
# per-call agent legs: a site build would otherwise pick nailed legs, where OPTIONS checks are skipped
agent_legs = "on_connect"
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier.port}"
max_cps = 5
sandbox = true
[[agents]]
login = "offline"
sip_uri = "{offline.uri('offline')}"
[[agents]]
login = "up"
sip_uri = "{up.uri('up')}"
[[agents]]
login = "late"
sip_uri = "sip:late@127.0.0.1:{late_port}"
[[campaigns]]
name = "reach"
mode = "progressive"
trunk = "loop"
""", str(tmp_path / "reach.toml"))
        seed(url, 10)
        engine = get_engine(url)
        seen: dict[str, set[str]] = {"offline": set(), "up": set(), "late": set()}
        t0 = [0.0]

        def watch() -> bool:
            import time

            if not t0[0]:  # called once before the first tick, which handles the start-up check's results
                t0[0] = time.monotonic()
                return False
            runner.board.refresh()
            for a in runner.board.agents.values():
                seen[a.login].add(a.state)
            if not late and time.monotonic() - t0[0] > 2.0:
                late.append(Sipp("agent_options_ok", port=late_port, workdir=tmp_path).start())
            return False

        try:
            runner = CampaignRunner(cfg, "reach", engine, auto_login=True)
            runner.run(6.0, should_stop=watch)
            with Session(engine) as s:
                events = list(s.exec(select(CampaignEvent)).all())
                agents = {a.login: a.state for a in s.exec(select(Agent)).all()}
        finally:
            for p in late:
                p.stop()
            dispose_engines()
    unreachable = [e.message for e in events if e.kind == "agent_unreachable"]
    assert any("offline" in m and "480" in m for m in unreachable)
    assert any("late" in m for m in unreachable)
    assert not any("agent up" in m for m in unreachable)
    # checked before the first dial decision: the offline agent was never ready while the campaign ran
    assert seen["offline"] == {"unreachable"}
    assert "unreachable" in seen["late"] and any(e.kind == "agent_reachable" and "late" in e.message for e in events)
    assert "unreachable" not in seen["up"]
    assert offline.sent(480) >= 2 and up.sent(200) >= 2 and late[0].sent(200) >= 1
    assert agents["offline"] in ("unreachable", "logged_out")
