"""Calling hours by time zone, holidays, and the retry arithmetic that depends on them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dialer.config import CampaignConfig
from dialer.domain.calling_hours import (
    CallingHours,
    contact_zones,
    holiday_name,
    zone_for_prefecture,
    zones_for_number,
)
from dialer.domain.retry import Counters, decide, retry_at

JP = CallingHours.from_campaign(("09:00", "20:00"), "JP")


def test_zones_from_number_prefecture_and_entry() -> None:
    assert zones_for_number("+819012345678") == ("Asia/Tokyo",)
    assert zones_for_number("+12125550123") == ("America/New_York",)
    assert zones_for_number("not a number") == ()
    assert zone_for_prefecture("北海道") == zone_for_prefecture("大阪府") == zone_for_prefecture("Tokyo") == "Asia/Tokyo"
    assert zone_for_prefecture("California") is None
    assert contact_zones("", "", "") == ("Asia/Tokyo",)
    assert contact_zones("+12125550123", "Asia/Tokyo") == ("America/New_York", "Asia/Tokyo")


def test_jp_holidays_close_the_day() -> None:
    assert holiday_name("JP", date(2026, 11, 23)) == "勤労感謝の日"
    assert holiday_name("JP", date(2026, 11, 24)) is None
    assert holiday_name("", date(2026, 11, 23)) is None
    mon_noon = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    assert "勤労感謝の日" in (JP.closed_reason(mon_noon, ("Asia/Tokyo",)) or "")
    assert JP.next_open(mon_noon, ("Asia/Tokyo",)) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # Tue 09:00 JST


@pytest.mark.parametrize(("utc_h", "ok"), [(23, False), (0, True), (10, True), (11, False), (12, False)])
def test_hours_in_tokyo(utc_h: int, ok: bool) -> None:
    at = datetime(2026, 11, 24, utc_h, 59 if utc_h == 10 else 0, tzinfo=UTC)
    assert JP.is_open(at, ("Asia/Tokyo",)) is ok


def test_hours_in_new_york_follow_daylight_saving() -> None:
    us = CallingHours.from_campaign(("09:00", "20:00"), "")
    summer = datetime(2026, 7, 1, 13, 0, tzinfo=UTC)  # 09:00 EDT
    winter = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert us.is_open(summer, ("America/New_York",))
    assert not us.is_open(winter, ("America/New_York",))


def test_the_legal_night_is_enforced_even_without_validation() -> None:
    wide = CallingHours.from_campaign(("06:00", "23:00"), "")
    assert not wide.is_open(datetime(2026, 11, 24, 21, 30, tzinfo=UTC) + timedelta(hours=-9), ("Asia/Tokyo",))
    assert not wide.is_open(datetime(2026, 11, 24, 7, 59, tzinfo=UTC) + timedelta(hours=-9), ("Asia/Tokyo",))


def test_retry_delays_and_rotation_rules() -> None:
    cc = CampaignConfig(name="t", max_attempts=6, max_attempts_per_phone=2)
    at = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    assert retry_at("busy", at, cc) - at == timedelta(minutes=30)
    assert retry_at("no_answer", at, cc) - at == timedelta(hours=4)
    assert retry_at("congestion", at, cc) - at == timedelta(minutes=10)
    machine = retry_at("machine", at, cc)  # 10:00 JST -> next day 13:00 JST
    assert machine == datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    c = Counters(["+81901", "+81902"], 0, 2, {"+81901": 2})
    nx = decide("busy", at, c, cc)
    assert nx.status == "pending" and nx.phone_index == 1
    nx = decide("invalid", at, Counters(["+81901"], 0, 1, {"+81901": 1}), cc)
    assert nx.status == "exhausted" and nx.phone_flags == {"+81901": "invalid"}
    nx = decide("no_answer", at, Counters(["+81901", "+81902"], 1, 6, {"+81901": 3, "+81902": 3}), cc)
    assert nx.status == "exhausted"
