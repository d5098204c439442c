"""(issues 25, 27) A callback keyed on the phone obeys calling hours, on the real runner with SIP.

A pjsua2 agent keys `*4*2#` (call me back in two hours) when two hours from now is past the end of calling
hours (or, late at night, on a closure day): the store books the next calling slot, never the keyed time, and
the agent hears the "moved" tone (RFC 2833 digits sent on the agent leg). The carrier is SIPp."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from dialer.agentsim import AgentSpec, read_stats, start_agents, stop_agents
from dialer.config import parse_config
from dialer.domain.dtmf import CALLBACK_MOVED_TONE
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Attempt, CallListEntry, CampaignEvent, Disposition
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port

pytestmark = [pytest.mark.sip, pytest.mark.slow]

JST = ZoneInfo("Asia/Tokyo")


def edge_calendar(now: datetime) -> tuple[str, str, datetime]:
    """(calling_hours line, closed_days line, the slot expected) such that now + 2 h cannot be called.

    In the day: hours end ten minutes before now + 2 h (the edge of hours). At night (now + 2 h before 08:30 or
    after 20:59, where no legal window ends just before it): that day is a closure day. Either way the next
    slot is the following day at the window's start (no holiday calendar, every weekday open)."""
    t2 = (now + timedelta(hours=2)).astimezone(JST)
    if dtime(8, 30) <= t2.time() <= dtime(20, 59):
        end = (t2 - timedelta(minutes=10)).strftime("%H:%M")
        return f'calling_hours = ["08:00", "{end}"]', "closed_days = []", \
            datetime.combine(t2.date() + timedelta(days=1), dtime(8, 0), JST)
    closed = [t2.date()] + ([t2.date() + timedelta(days=1)] if t2.time() >= dtime(23, 50) else [])
    first_open: date = closed[-1] + timedelta(days=1)
    return 'calling_hours = ["09:00", "20:00"]', f"closed_days = {[d.isoformat() for d in closed]}", \
        datetime.combine(first_open, dtime(9, 0), JST)


def test_keypad_callback_past_the_end_of_hours_books_next_slot_and_tones_the_agent(tmp_path: Path) -> None:
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    carrier_port = free_udp_port(6000, 6499)
    agent_port = free_udp_port(6500, 6899)
    sip_base = free_udp_port(6900, 6990, span=4)
    hours_line, closed_line, expected = edge_calendar(datetime.now(UTC))
    db = tmp_path / "kp.db"
    text = f"""
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 41500
lines = 2
agent_legs = "on_connect"
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
sandbox = true
[[agents]]
login = "k1"
name = "佐藤"
sip_uri = "sip:k1@127.0.0.1:{agent_port}"
[[campaigns]]
name = "kp"
mode = "progressive"
trunk = "loop"
holidays = ""
{hours_line}
{closed_line}
ring_timeout_s = 15
wrap_up_timeout_s = 3
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""
    cfg = parse_config(text, str(tmp_path / "kp.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    now = datetime.now(UTC)
    with Session(get_engine(url)) as s:
        s.add(CallListEntry(customer_id="K0001", segment="dormant", sku="SKU-1", phones=["+819011112222"],
                            priority=100.0, reason="test 山田 花子", callable_from=now - timedelta(days=1),
                            callable_until=now + timedelta(days=3)))
        s.commit()
    carrier = Sipp("carrier_answer", port=carrier_port, workdir=tmp_path, rtp_echo=True, max_calls=1).start()
    agents = start_agents([AgentSpec("k1", "127.0.0.1", agent_port)], talk_mean=1.5, talk_cv=0.1, duration=90,
                          stats_dir=str(tmp_path), rtp_base=47400, keys="*4*2#", linger=3.0)
    engine = get_engine(url)
    try:
        runner = CampaignRunner(cfg, "kp", engine, auto_login=True, state_logger=log_agent_state)
        done: dict[str, float] = {}

        def disposed_and_heard() -> bool:
            if "at" not in done:
                with Session(engine) as s:
                    if s.exec(select(Disposition).where(Disposition.source == "dtmf")).first() is not None:
                        done["at"] = time.monotonic()
                return False
            return time.monotonic() - done["at"] > 6.0  # the tone leaves, the agent lingers then hangs up

        runner.run(45.0, should_stop=disposed_and_heard)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    with Session(engine) as s:
        d = s.exec(select(Disposition).where(Disposition.source == "dtmf")).one()
        e = s.exec(select(CallListEntry)).one()
        atts = s.exec(select(Attempt)).all()
        moved = [x.message for x in s.exec(select(CampaignEvent).where(CampaignEvent.kind == "callback_moved"))]
    dispose_engines()
    assert carrier.received("INVITE") == len(atts) == 1
    assert d.outcome == "callback"
    booked = d.callback_at if d.callback_at.tzinfo else d.callback_at.replace(tzinfo=UTC)
    assert booked == expected, (booked.astimezone(JST), expected)  # never the keyed now + 2 h
    cb = e.callback_at if e.callback_at.tzinfo else e.callback_at.replace(tzinfo=UTC)  # type: ignore[union-attr]
    assert cb == expected and e.status == "pending"
    assert len(moved) == 1
    heard = "".join(read_stats(str(tmp_path))["k1"]["dtmf_received"])
    assert CALLBACK_MOVED_TONE in heard, heard
