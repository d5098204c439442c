"""When a contact may be called: its time zone(s), the campaign's calling hours, and public holidays.

A contact is callable only when its local time is inside the calling hours in EVERY zone it may be in: the
zones of its number (phonenumbers' area-level time zones: a JP number is Asia/Tokyo, a US number gets its
area code's zones), the entry's `timezone` column (set by the list builder) and its prefecture's zone. Asking
all of them is the conservative reading of "local time": when the sources disagree, the call waits until
every one of them is inside hours. 21:00-08:00 is refused whatever the config says (dialer.domain.legal).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
import phonenumbers
from phonenumbers import timezone as pn_timezone

from dialer.domain.legal import EARLIEST_CALL, LATEST_CALL

DEFAULT_ZONE = "Asia/Tokyo"

# The 47 prefectures: all on Japan Standard Time, so the prefecture only matters when the number says
# nothing (an unparseable or foreign number for a customer with a Japanese address).
PREFECTURES = (
    "北海道", "青森", "岩手", "宮城", "秋田", "山形", "福島", "茨城", "栃木", "群馬", "埼玉", "千葉", "東京",
    "神奈川", "新潟", "富山", "石川", "福井", "山梨", "長野", "岐阜", "静岡", "愛知", "三重", "滋賀", "京都",
    "大阪", "兵庫", "奈良", "和歌山", "鳥取", "島根", "岡山", "広島", "山口", "徳島", "香川", "愛媛", "高知",
    "福岡", "佐賀", "長崎", "熊本", "大分", "宮崎", "鹿児島", "沖縄",
)
_PREF_ROMAJI = (
    "hokkaido", "aomori", "iwate", "miyagi", "akita", "yamagata", "fukushima", "ibaraki", "tochigi", "gunma",
    "saitama", "chiba", "tokyo", "kanagawa", "niigata", "toyama", "ishikawa", "fukui", "yamanashi", "nagano",
    "gifu", "shizuoka", "aichi", "mie", "shiga", "kyoto", "osaka", "hyogo", "nara", "wakayama", "tottori",
    "shimane", "okayama", "hiroshima", "yamaguchi", "tokushima", "kagawa", "ehime", "kochi", "fukuoka", "saga",
    "nagasaki", "kumamoto", "oita", "miyazaki", "kagoshima", "okinawa",
)


def parse_hhmm(text: str) -> time:
    """'09:30' -> time(9, 30)."""
    h, m = text.split(":")
    return time(int(h), int(m))


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=200_000)
def zones_for_number(phone_e164: str) -> tuple[str, ...]:
    """The IANA zones phonenumbers gives for a number (empty when it does not know); cached by string."""
    try:
        pn = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    found = pn_timezone.time_zones_for_number(pn)
    return tuple(z for z in found if z != pn_timezone.UNKNOWN_TIMEZONE and zone(z) is not None)


def zone_for_prefecture(prefecture: str) -> str | None:
    p = prefecture.strip().lower()
    if not p:
        return None
    for suffix in ("都", "道", "府", "県", "-to", "-fu", "-ken", " prefecture"):
        if p.endswith(suffix) and p != "北海道":
            p = p[: -len(suffix)]
            break
    if p in PREFECTURES or p in _PREF_ROMAJI:
        return DEFAULT_ZONE
    return None


def contact_zones(phone_e164: str, entry_zone: str = "", prefecture: str = "") -> tuple[str, ...]:
    """Every zone the contact may be in (see the module docstring); never empty."""
    out: list[str] = list(zones_for_number(phone_e164)) if phone_e164 else []
    for extra in (entry_zone, zone_for_prefecture(prefecture) or ""):
        if extra and zone(extra) is not None and extra not in out:
            out.append(extra)
    return tuple(out) or (DEFAULT_ZONE,)


@lru_cache(maxsize=64)
def _holiday_calendar(country: str, year: int) -> dict[date, str]:
    try:
        cal = holidays_lib.country_holidays(country, years=year, language="ja" if country == "JP" else None)
    except NotImplementedError:
        raise ValueError(f"unknown holiday calendar {country!r} (a country code such as JP)") from None
    return dict(cal)


def holiday_name(country: str, day: date) -> str | None:
    """The holiday's name if DAY is a public holiday in COUNTRY ("" means no holiday calendar)."""
    if not country:
        return None
    return _holiday_calendar(country.upper(), day.year).get(day)


@dataclass(frozen=True)
class CallingHours:
    """A campaign's daily window in the contact's local time, plus its holiday calendar."""

    start: time = time(9, 0)
    end: time = time(20, 0)
    holidays: str = "JP"

    @classmethod
    def from_campaign(cls, calling_hours: tuple[str, str], holidays: str) -> CallingHours:
        start, end = parse_hhmm(calling_hours[0]), parse_hhmm(calling_hours[1])
        # the legal night is enforced here too, whatever a config that skipped validation says
        return cls(max(start, EARLIEST_CALL), min(end, LATEST_CALL), holidays)

    @classmethod
    def legal(cls) -> CallingHours:
        """The widest window the law allows, with no holiday calendar."""
        return cls(EARLIEST_CALL, LATEST_CALL, "")

    def contains(self, local_time: time) -> bool:
        """Is a local wall-clock time inside the daily window (holidays not considered)?"""
        return self.start <= local_time < self.end

    def label(self) -> str:
        return f"{self.start.strftime('%H:%M')}-{self.end.strftime('%H:%M')}"

    def closed_reason(self, at: datetime, zones: tuple[str, ...]) -> str | None:
        """None when AT is inside the hours in every zone; else why not (names the zone and local time)."""
        for name in zones:
            tz = zone(name) or ZoneInfo(DEFAULT_ZONE)
            local = at.astimezone(tz)
            hol = holiday_name(self.holidays, local.date())
            if hol:
                return f"holiday in {name}: {local.date().isoformat()} {hol}"
            if not self.contains(local.time()):
                return f"outside calling hours in {name}: local {local.strftime('%H:%M')} not in {self.label()}"
        return None

    def is_open(self, at: datetime, zones: tuple[str, ...]) -> bool:
        return self.closed_reason(at, zones) is None

    def next_open(self, at: datetime, zones: tuple[str, ...], horizon_days: int = 30) -> datetime | None:
        """The first instant at or after AT when every zone is open (minute resolution), or None."""
        if self.is_open(at, zones):
            return at
        # candidate instants: each zone's opening time on each of the next days; take the earliest that works
        candidates: set[datetime] = set()
        for name in zones:
            tz = zone(name) or ZoneInfo(DEFAULT_ZONE)
            d0 = at.astimezone(tz).date()
            for k in range(horizon_days + 1):
                day = d0 + timedelta(days=k)
                opening = datetime.combine(day, self.start, tz)
                if opening >= at:
                    candidates.add(opening.astimezone(at.tzinfo))
        for c in sorted(candidates):
            if self.is_open(c, zones):
                return c
        return None


def local_midnight(at: datetime, tz_name: str) -> datetime:
    """The start of AT's calendar day in TZ_NAME (aware, in that zone): the `day` abandon window starts here."""
    tz = zone(tz_name) or ZoneInfo(DEFAULT_ZONE)
    return datetime.combine(at.astimezone(tz).date(), time(0, 0), tz)


__all__ = [
    "DEFAULT_ZONE",
    "local_midnight",
    "zone",
    "CallingHours",
    "contact_zones",
    "holiday_name",
    "parse_hhmm",
    "zone_for_prefecture",
    "zones_for_number",
]
