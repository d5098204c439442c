"""A Japanese centre's calendar and the one callback rule (issue 27, issue 25's keypad callback).

Closure days (年末年始 wrapping the year end, お盆, one closure day), hours per weekday (a short Saturday, a
closed Sunday) and public holidays (元日) are obeyed by the rule every path uses: a callback never lands outside
the hours or on a closed day, and the callback form reads what agents type."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.config import ConfigError, parse_config
from dialer.domain import entry as lifecycle
from dialer.domain.callbacks import DEFAULT_CALLBACK, CallbackTimeError, callback_slot, parse_callback
from dialer.domain.calling_hours import CallingHours, ClosedSpan
from dialer.domain.dtmf import decode
from dialer.domain.policy import CampaignPolicy
from tests.test_domain import _Row

JST = ZoneInfo("Asia/Tokyo")
TZ = "Asia/Tokyo"

CENTRE = """
[calendar]
closed_days = ["12-29..01-03 年末年始", "08-13..08-16 お盆", "2026-12-08 棚卸"]

[[campaigns]]
name = "c1"
calling_hours = ["09:00", "20:00"]
weekday_hours = { sat = ["09:00", "17:00"], sun = "closed" }
"""


def jst(*a: int) -> datetime:
    return datetime(*a, tzinfo=JST)  # type: ignore[misc]


@pytest.fixture(scope="module")
def hours() -> CallingHours:
    return CampaignPolicy.of(parse_config(CENTRE, "centre.toml").campaign("c1")).hours


def test_calendar_in_config_reaches_the_rules(hours: CallingHours) -> None:
    assert hours.window(date(2026, 12, 12)) == (time(9), time(17))  # Saturday: short
    assert hours.window(date(2026, 12, 11)) == (time(9), time(20))  # Friday
    assert hours.day_closed(date(2026, 12, 13)) == "closed on sun: 2026-12-13"
    assert hours.day_closed(date(2026, 12, 8)) == "company closure: 2026-12-08 棚卸"
    for d in (date(2026, 12, 29), date(2026, 12, 31), date(2027, 1, 2), date(2027, 1, 3)):
        assert "年末年始" in (hours.day_closed(d) or "")
    assert hours.day_closed(date(2027, 1, 4)) is None and hours.day_closed(date(2026, 12, 28)) is None
    assert "お盆" in (hours.day_closed(date(2026, 8, 14)) or "")
    assert "元日" in (hours.day_closed(date(2027, 1, 1)) or "")  # public holiday first
    assert hours.closed_reason(jst(2026, 12, 12, 17, 30), (TZ,)) == \
        "outside calling hours in Asia/Tokyo: local 17:30 not in 09:00-17:00"
    assert hours.is_open(jst(2026, 12, 11, 17, 30), (TZ,))
    assert hours.next_open(jst(2026, 12, 28, 20, 0), (TZ,)) == jst(2027, 1, 4, 9, 0)


@pytest.mark.parametrize("bad", ["12-32", "2026-13-01", "12/29..01/03", "2026-12-10..2026-12-01", "12-29..2027-01-03"])
def test_bad_closure_day_is_refused_with_the_forms(bad: str) -> None:
    with pytest.raises(ConfigError, match="closed_days"):
        parse_config(f'[calendar]\nclosed_days = ["{bad}"]\n', "f.toml")


def test_bad_weekday_hours_refused() -> None:
    with pytest.raises(ConfigError, match="sat: calls between 21:00 and 08:00"):
        parse_config('[[campaigns]]\nname = "c"\nweekday_hours = { sat = ["07:00", "12:00"] }\n', "f.toml")
    with pytest.raises(ConfigError, match="weekday_hours.satur"):
        parse_config('[[campaigns]]\nname = "c"\nweekday_hours = { satur = "closed" }\n', "f.toml")


def test_keypad_callback_at_1930_for_2h_moves_to_next_morning(hours: CallingHours) -> None:
    d = decode("*4*2#")
    keyed = jst(2026, 12, 10, 19, 30)  # Thursday
    booked, moved = callback_slot(keyed + timedelta(hours=d.callback_hours), hours, (TZ,))
    assert moved and booked == jst(2026, 12, 11, 9, 0)
    # inside hours it stays exactly as keyed
    booked, moved = callback_slot(jst(2026, 12, 10, 10, 0) + timedelta(hours=2), hours, (TZ,))
    assert not moved and booked == jst(2026, 12, 10, 12, 0)
    # Saturday 16:00 + 2 h: past the short Saturday and Sunday is closed -> Monday 09:00
    booked, moved = callback_slot(jst(2026, 12, 12, 16, 0) + timedelta(hours=2), hours, (TZ,))
    assert moved and booked == jst(2026, 12, 14, 9, 0)


def test_default_callback_is_one_day_everywhere() -> None:
    assert DEFAULT_CALLBACK == timedelta(hours=24)
    assert decode("*4#").callback_hours == 24


_INSTANTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31),
                         timezones=st.just(UTC))
_WINDOW = st.tuples(st.integers(8, 19), st.integers(1, 12)).map(
    lambda p: (f"{p[0]:02d}:00", f"{min(p[0] + p[1], 21):02d}:00"))
_DAY_SPEC = st.one_of(st.just("closed"), _WINDOW)
_CLOSURE = st.sampled_from(["12-29..01-03 年末年始", "08-13..08-16 お盆", "2026-12-08", "05-01..05-07",
                            "2027-03-01..2027-03-31", "02-29"])


@settings(max_examples=300, deadline=None)
@given(wanted=_INSTANTS, base=_WINDOW,
       weekly=st.dictionaries(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), _DAY_SPEC,
                              max_size=6),
       closed=st.lists(_CLOSURE, max_size=4, unique=True), holidays=st.sampled_from(["JP", ""]),
       zones=st.sampled_from([(TZ,), ("Asia/Tokyo", "America/Los_Angeles"), ("Europe/London",)]))
def test_a_callback_never_lands_outside_hours_or_on_a_closed_day(
        wanted: datetime, base: tuple[str, str], weekly: dict[str, object], closed: list[str], holidays: str,
        zones: tuple[str, ...]) -> None:
    hours = CallingHours.from_campaign(base, holidays, weekly, closed)  # type: ignore[arg-type]
    booked, moved = callback_slot(wanted, hours, zones)
    if hours.next_open(wanted, zones, horizon_days=60) is None:
        return  # nothing open within two months (e.g. every weekday closed): the hopper still never dials
    assert booked >= wanted
    assert hours.is_open(booked, zones), (wanted, booked, hours.closed_reason(booked, zones))
    for z in zones:
        assert hours.day_closed(booked.astimezone(ZoneInfo(z)).date()) is None
    assert moved == (booked != wanted)
    if moved:  # the NEXT slot: nothing open between what was asked and what was booked (minute steps)
        probe = wanted
        while probe < booked - timedelta(minutes=1):
            probe = (probe + timedelta(minutes=30)).replace(second=0, microsecond=0)
            assert probe >= booked or not hours.is_open(probe, zones)


@settings(max_examples=150, deadline=None)
@given(keyed=_INSTANTS, h=st.integers(1, 72))
def test_store_books_every_keypad_callback_inside_hours(keyed: datetime, h: int) -> None:
    policy = CampaignPolicy.of(parse_config(CENTRE, "centre.toml").campaign("c1"))
    row = _Row(phones=["+81312345678"], timezone="Asia/Tokyo")
    booked = lifecycle.schedule_callback(row, keyed + timedelta(hours=h), "a01", timedelta(minutes=15), policy)
    assert row.callback_at == booked and row.next_attempt_at == booked
    assert policy.hours.is_open(booked, (TZ,)) and booked >= keyed + timedelta(hours=h)


NOW = jst(2026, 12, 7, 10, 0)  # Monday


@pytest.mark.parametrize(("typed", "expected"), [
    ("14時30分", jst(2026, 12, 7, 14, 30)),
    ("１４時３０分", jst(2026, 12, 7, 14, 30)),
    ("14時", jst(2026, 12, 7, 14, 0)),
    ("14時半", jst(2026, 12, 7, 14, 30)),
    ("明日 14:00", jst(2026, 12, 9, 14, 0)),
    ("明日14時", jst(2026, 12, 9, 14, 0)),
    ("12/9 10:00", jst(2026, 12, 9, 10, 0)),
    ("１２／９　１０：００", jst(2026, 12, 9, 10, 0)),
    ("12月9日 10時", jst(2026, 12, 9, 10, 0)),
    ("2026-12-09 10:00", jst(2026, 12, 9, 10, 0)),
    ("+2h", jst(2026, 12, 7, 12, 0)),
])
def test_callback_form_reads_what_agents_type(typed: str, expected: datetime) -> None:
    hours = CallingHours.from_campaign(("09:00", "20:00"), "JP")
    now = NOW + timedelta(days=1) if typed.startswith("明日") else NOW  # 明日 from 12-08 is 12-09
    assert parse_callback(typed, now, TZ, hours) == expected.astimezone(UTC)


def test_callback_form_refuses_new_years_day_closure_and_short_saturday(hours: CallingHours) -> None:
    with pytest.raises(CallbackTimeError) as e:
        parse_callback("2027-01-01 10:00", NOW, TZ, CallingHours.from_campaign(("09:00", "20:00"), "JP"))
    assert e.value.reason == "closed_day" and "元日" in e.value.why
    with pytest.raises(CallbackTimeError) as e:
        parse_callback("12/8 10:00", NOW, TZ, hours)
    assert e.value.reason == "closed_day" and "棚卸" in e.value.why
    with pytest.raises(CallbackTimeError) as e:
        parse_callback("12/12 18:00", NOW, TZ, hours)  # a Saturday: 09:00-17:00
    assert e.value.reason == "outside_hours" and "09:00-17:00" in str(e.value)
    assert parse_callback("12/12 16:30", NOW, TZ, hours) == jst(2026, 12, 12, 16, 30).astimezone(UTC)
    with pytest.raises(CallbackTimeError) as e:
        parse_callback("そのうち", NOW, TZ, hours)
    assert e.value.reason == "unreadable"


def test_a_month_day_already_past_is_next_year() -> None:
    assert parse_callback("1/5 10:00", NOW, TZ) == jst(2027, 1, 5, 10, 0).astimezone(UTC)


def test_closed_span_wraps_the_year_end() -> None:
    s = ClosedSpan.parse("12-29..01-03 年末年始")
    assert s.covers(date(2026, 12, 30)) and s.covers(date(2027, 1, 3)) and not s.covers(date(2027, 1, 4))
    assert s.describe() == "12-29..01-03 年末年始"


def test_compliance_report_counts_calls_on_a_closure_day(db_url: str, tmp_path: Path) -> None:
    """The report obeys the centre's calendar too: the demo store's calls (2026-11-22/23) were inside hours;
    declared a closure day, the 23rd's calls are calls outside hours."""
    from dialer.reports import compliance_report
    from dialer.store.db import get_engine
    from tests.test_reports import NOW, build_store, write_config

    build_store(db_url)
    text = write_config(tmp_path, db_url).read_text(encoding="utf-8")
    base = compliance_report(get_engine(db_url), parse_config(text, "t.toml"), now=NOW)["campaigns"]["demo"]
    assert base["calls_outside_hours"] == 0
    closed = parse_config(text + '\n[calendar]\nclosed_days = ["11-23 臨時休業"]\n', "t.toml")
    demo = compliance_report(get_engine(db_url), closed, now=NOW)["campaigns"]["demo"]
    assert demo["calls_outside_hours"] > 0
    assert all("company closure" in o["why"] and "臨時休業" in o["why"] for o in demo["outside_hours"])


def test_scheduler_stops_a_short_saturday_at_its_own_hour_and_skips_closed_days() -> None:
    from dialer.schedule import job_specs

    cfg = parse_config('[[campaigns]]\nname = "c"\nactive_days = "mon-sat"\n'
                       'weekday_hours = { sat = ["09:00", "17:00"], wed = "closed" }\n', "f.toml")
    specs = {s.id: s for s in job_specs(cfg, "")}
    fires = []
    at = jst(2026, 12, 7, 0, 0)  # Monday
    for _ in range(6):
        at = specs["campaign_stop:c"].trigger.get_next_fire_time(None, at)
        fires.append(at.astimezone(JST).strftime("%a %H:%M"))
        at = at + timedelta(minutes=1)
    assert fires == ["Mon 20:00", "Tue 20:00", "Thu 20:00", "Fri 20:00", "Sat 17:00", "Mon 20:00"]
    start = specs["campaign_start:c"].trigger.get_next_fire_time(None, jst(2026, 12, 9, 0, 0))  # Wednesday
    assert start == jst(2026, 12, 10, 9, 0)
    plain = {s.id: s for s in job_specs(parse_config('[[campaigns]]\nname = "c"\n', "f.toml"), "")}
    assert "cron[" in str(plain["campaign_stop:c"].trigger) and "or[" not in str(plain["campaign_stop:c"].trigger)
