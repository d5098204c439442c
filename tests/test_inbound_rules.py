"""Return calls (issue 30): the pure rules -- matching the caller, choosing the agent, the IVR menu."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dialer.domain.calling_hours import CallingHours
from dialer.domain.inbound import (
    AgentChoice,
    AgentFacts,
    CustomerFacts,
    Direction,
    Ivr,
    IvrAction,
    IvrEvent,
    IvrState,
    OutboundFacts,
    caller_e164,
    choose_agent,
    last_outbound,
    match_customer,
)

JST = ZoneInfo("Asia/Tokyo")
HOURS = CallingHours.from_campaign(("09:00", "20:00"), "JP")
ZONES = ("Asia/Tokyo",)

CUSTOMERS = [
    CustomerFacts("C001", "山田 太郎", ("03-1234-5678", "")),
    CustomerFacts("C002", "佐藤 花子", ("０６－６１２３－４５６７", "090-1234-5678")),  # full-width, and a mobile
]


def test_caller_number_forms_all_normalise() -> None:
    for raw in ("0312345678", "+81312345678", "81312345678", "03-1234-5678"):
        assert caller_e164(raw) == "+81312345678", raw
    assert caller_e164("anonymous") == ""
    assert caller_e164("") == ""


def test_match_uses_every_number_of_the_customer() -> None:
    assert match_customer(caller_e164("09012345678"), CUSTOMERS) == CUSTOMERS[1]  # her second number
    assert match_customer(caller_e164("+81661234567"), CUSTOMERS) == CUSTOMERS[1]  # full-width first number
    assert match_customer(caller_e164("0312345678"), CUSTOMERS) == CUSTOMERS[0]
    assert match_customer(caller_e164("0355556666"), CUSTOMERS) is None
    assert match_customer("", CUSTOMERS) is None


def test_last_outbound_is_the_most_recent_outbound_attempt() -> None:
    t0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    atts = [
        OutboundFacts(1, 10, "C002", "+81661234567", t0, agent_id=5, reason="休眠: 最終購入から180日"),
        OutboundFacts(2, 11, "C002", "+819012345678", t0 + timedelta(hours=1), reason="解約予兆"),
        OutboundFacts(3, 11, "C002", "+819012345678", t0 + timedelta(hours=2), direction=Direction.INBOUND),
        OutboundFacts(4, 10, "C001", "+81312345678", t0 + timedelta(hours=3)),
    ]
    got = last_outbound(atts, customer_id="C002")
    assert got is not None and got.attempt_id == 2 and got.reason == "解約予兆"  # inbound row 3 is not an answer
    by_phone = last_outbound(atts, phone_e164="+81661234567")
    assert by_phone is not None and by_phone.attempt_id == 1
    assert last_outbound(atts, customer_id="C999") is None


def test_agent_choice_last_agent_then_campaign_then_any() -> None:
    t = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    agents = [AgentFacts(1, "suzuki", 10, True, t), AgentFacts(2, "tanaka", 11, True, t - timedelta(minutes=5)),
              AgentFacts(3, "ito", 11, True, t - timedelta(minutes=1)), AgentFacts(4, "kato", 10, False, t)]
    a, why = choose_agent(agents, last_agent_id=3, campaign_id=10)
    assert (a and a.login, why) == ("ito", AgentChoice.LAST_AGENT)
    a, why = choose_agent(agents, last_agent_id=4, campaign_id=11)  # kato is busy: campaign 11, longest ready
    assert (a and a.login, why) == ("tanaka", AgentChoice.CAMPAIGN)
    a, why = choose_agent(agents[1:], last_agent_id=None, campaign_id=10)  # nobody of campaign 10 ready
    assert (a and a.login, why) == ("tanaka", AgentChoice.ANY)
    assert choose_agent([agents[3]], 4, 10) == (None, AgentChoice.NONE)


def _at(h: int, m: int = 0, day: int = 7) -> datetime:
    return datetime(2026, 12, day, h, m, tzinfo=JST).astimezone(UTC)


def test_queue_agent_free_connects() -> None:
    ivr = Ivr(HOURS, ZONES)
    assert ivr.digit("1", _at(10)) == []  # digits while queued are ignored
    assert ivr.event(IvrEvent.AGENT_FREE, _at(10)) == [IvrAction.CONNECT]
    assert ivr.state is IvrState.CONNECTED


def test_menu_2_is_dnc_at_once() -> None:
    ivr = Ivr(HOURS, ZONES)
    assert ivr.event(IvrEvent.TIMEOUT, _at(10)) == [IvrAction.PLAY_MENU]
    assert ivr.digit("2", _at(10)) == [IvrAction.RECORD_DNC, IvrAction.PLAY_DNC_CONFIRM, IvrAction.HANG_UP]
    assert ivr.state is IvrState.DNC
    assert ivr.digit("1", _at(10)) == []  # nothing after the end


def test_menu_1_keyed_hour_moves_into_calling_hours() -> None:
    ivr = Ivr(HOURS, ZONES)  # Monday 2026-12-07 at 10:00 JST
    ivr.event(IvrEvent.TIMEOUT, _at(10))
    assert ivr.digit("1", _at(10)) == [IvrAction.PLAY_HOUR_PROMPT]
    assert ivr.digit("1", _at(10)) == []
    assert ivr.digit("4", _at(10)) == [IvrAction.BOOK_CALLBACK, IvrAction.PLAY_CALLBACK_CONFIRM, IvrAction.HANG_UP]
    assert ivr.callback_at == _at(14) and not ivr.callback_moved
    late = Ivr(HOURS, ZONES)  # 22時 keyed: outside 09-20, moved to the next morning's opening
    late.event(IvrEvent.TIMEOUT, _at(10))
    late.digit("1", _at(10))
    late.digit("2", _at(10))
    late.digit("2", _at(10))
    assert late.callback_at == _at(9, day=8) and late.callback_moved


def test_menu_1_then_silence_is_the_next_free_slot() -> None:
    ivr = Ivr(HOURS, ZONES)  # 19:50: half an hour later is closed -> 09:00 next day
    ivr.event(IvrEvent.TIMEOUT, _at(19, 50))
    ivr.digit("1", _at(19, 50))
    assert ivr.event(IvrEvent.TIMEOUT, _at(19, 51))[0] is IvrAction.BOOK_CALLBACK
    assert ivr.callback_at == _at(9, day=8)
    soon = Ivr(HOURS, ZONES)
    soon.event(IvrEvent.TIMEOUT, _at(11))
    soon.digit("1", _at(11))
    soon.digit("#", _at(11))
    assert soon.callback_at == _at(11, 30) and soon.state is IvrState.CALLBACK_BOOKED


def test_other_digit_silence_or_hangup_leaves() -> None:
    for step in ("9", IvrEvent.TIMEOUT, IvrEvent.HANGUP):
        ivr = Ivr(HOURS, ZONES)
        ivr.event(IvrEvent.TIMEOUT, _at(10))
        acts = ivr.digit(step, _at(10)) if isinstance(step, str) else ivr.event(step, _at(10))
        assert ivr.state is IvrState.LEFT and IvrAction.RECORD_DNC not in acts
        assert ivr.callback_at is None


def test_the_desk_knows_each_campaigns_presented_number(tmp_path: object) -> None:
    """DIDs: a campaign's caller_id (any notation), else its trunk's; [inbound] dids add numbers by hand."""
    from pathlib import Path

    from dialer.config import parse_config
    from dialer.telephony.inbound_leg import desk_spec

    wavs = "".join(f'{k}_wav = "/x/{k}.wav"\n' for k in ("business", "queue", "menu", "hour", "callback", "dnc",
                                                                  "goodbye"))
    cfg = parse_config(
        '[[trunks]]\nname = "t1"\nproxy = "sip:127.0.0.1:5060"\ncaller_id = "0312345678"\n\n'
        '[[campaigns]]\nname = "dormant"\ntrunk = "t1"\ncaller_id = "050-1234-5678"\n\n'
        '[[campaigns]]\nname = "upsell"\ntrunk = "t1"\n\n'
        f'[inbound]\nsip_port = 5070\nmax_wait_s = 20\ndids = {{ "0120-123-456" = "upsell" }}\n{wavs}')
    spec = desk_spec(cfg, Path(str(tmp_path)))
    assert spec.dids == {"+815012345678": "dormant", "+81312345678": "upsell", "+81120123456": "upsell"}
    assert spec.max_wait_s == 20 and spec.prompts["menu"] == "/x/menu.wav"


def test_a_return_caller_takes_an_agent_no_answered_outbound_call_is_waiting_for() -> None:
    from dialer.domain.inbound import may_take_agent

    assert may_take_agent(ready=1, outbound_waiting=0)
    assert not may_take_agent(ready=1, outbound_waiting=1)  # that agent was dialled for: taking them = an abandon
    assert may_take_agent(ready=3, outbound_waiting=2)
    assert not may_take_agent(ready=0, outbound_waiting=0)
