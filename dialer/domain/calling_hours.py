"""When a contact may be called: its time zone(s), the campaign's calling hours, and public holidays.

A contact is callable only when its local time is inside the calling hours in EVERY zone it may be in: the
zones of its number (phonenumbers' area-level time zones: a JP number is Asia/Tokyo, a US number gets its
area code's zones), the entry's `timezone` column (set by the list builder) and its prefecture's zone. Asking
all of them is the conservative reading of "local time": when the sources disagree, the call waits until
every one of them is inside hours. 21:00-08:00 is refused whatever the config says (dialer.domain.legal).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
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


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS_JA = ("月", "火", "水", "木", "金", "土", "日")
_MD = re.compile(r"^(\d{2})-(\d{2})$")


def _closed_point(text: str) -> tuple[int, int, int]:
    """"12-29" -> (0, 12, 29) (every year); "2026-12-08" -> (2026, 12, 8). ValueError names the forms."""
    t = text.strip()
    m = _MD.match(t)
    try:
        if m:
            date(2024, int(m.group(1)), int(m.group(2)))  # a leap year: 02-29 is a day
            return 0, int(m.group(1)), int(m.group(2))
        d = date.fromisoformat(t)
        return d.year, d.month, d.day
    except ValueError:
        raise ValueError(f"{text!r}: a closure day is MM-DD (every year) or YYYY-MM-DD, a span FIRST..LAST"
                         ) from None


@dataclass(frozen=True)
class ClosedSpan:
    """Days the centre does not call: an annual span (12-29..01-03 年末年始, 08-13..08-16 お盆, wrapping the
    year end) or dated days (2026-12-08 a closure day). Inclusive at both ends."""

    first: tuple[int, int, int]
    last: tuple[int, int, int]
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> ClosedSpan:
        """"12-29..01-03 年末年始", "2026-12-08 棚卸", "08-13..08-16" (the label after a space is optional)."""
        body, _, label = text.strip().partition(" ")
        first_t, sep, last_t = body.partition("..")
        first = _closed_point(first_t)
        last = _closed_point(last_t) if sep else first
        if (first[0] == 0) != (last[0] == 0):
            raise ValueError(f"{text!r}: both ends annual (MM-DD) or both dated (YYYY-MM-DD)")
        if first[0] and date(*last) < date(*first):
            raise ValueError(f"{text!r}: the last day is before the first")
        return cls(first, last, label.strip())

    def covers(self, day: date) -> bool:
        if self.first[0]:
            return date(*self.first) <= day <= date(*self.last)
        md, a, b = (day.month, day.day), self.first[1:], self.last[1:]
        return a <= md <= b if a <= b else (md >= a or md <= b)

    def describe(self) -> str:
        def one(p: tuple[int, int, int]) -> str:
            return f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}" if p[0] else f"{p[1]:02d}-{p[2]:02d}"
        span = one(self.first) + ("" if self.first == self.last else ".." + one(self.last))
        return f"{span} {self.label}".strip()


@dataclass(frozen=True)
class CallingHours:
    """A campaign's daily window in the contact's local time, its holiday calendar and the centre's own.

    `weekly` (seven entries, Monday first; None = closed that weekday) replaces start/end per weekday when
    given, e.g. a short Saturday; `closed` holds the centre's closure days (年末年始, お盆, a closure day).
    Every rule that asks "may we call at this instant" (hopper, callbacks, retries, reports) asks this class.
    """

    start: time = time(9, 0)
    end: time = time(20, 0)
    holidays: str = "JP"
    weekly: tuple[tuple[time, time] | None, ...] = ()
    closed: tuple[ClosedSpan, ...] = ()

    @classmethod
    def from_campaign(cls, calling_hours: tuple[str, str], holidays: str,
                      weekday_hours: Mapping[Any, Sequence[str] | str] | None = None,
                      closed_days: Sequence[str] = ()) -> CallingHours:
        start, end = parse_hhmm(calling_hours[0]), parse_hhmm(calling_hours[1])
        weekly: tuple[tuple[time, time] | None, ...] = ()
        if weekday_hours:
            days: list[tuple[time, time] | None] = []
            for name in WEEKDAYS:
                spec = weekday_hours.get(name)
                if spec is None:
                    days.append((max(start, EARLIEST_CALL), min(end, LATEST_CALL)))
                elif isinstance(spec, str):
                    days.append(None)  # "closed"
                else:
                    days.append((max(parse_hhmm(spec[0]), EARLIEST_CALL), min(parse_hhmm(spec[1]), LATEST_CALL)))
            weekly = tuple(days)
        # the legal night is enforced here too, whatever a config that skipped validation says
        return cls(max(start, EARLIEST_CALL), min(end, LATEST_CALL), holidays, weekly,
                   tuple(ClosedSpan.parse(c) for c in closed_days))

    @classmethod
    def legal(cls) -> CallingHours:
        """The widest window the law allows, with no holiday calendar."""
        return cls(EARLIEST_CALL, LATEST_CALL, "")

    def contains(self, local_time: time) -> bool:
        """Is a local wall-clock time inside the default daily window (weekdays and holidays not considered)?"""
        return self.start <= local_time < self.end

    def label(self) -> str:
        base = f"{self.start.strftime('%H:%M')}-{self.end.strftime('%H:%M')}"
        if not self.weekly:
            return base
        odd = [f"{WEEKDAYS[i]} " + ("closed" if w is None else f"{w[0]:%H:%M}-{w[1]:%H:%M}")
               for i, w in enumerate(self.weekly) if w != (self.start, self.end)]
        return f"{base} ({', '.join(odd)})" if odd else base

    def day_closed(self, day: date) -> str | None:
        """Why nobody is called on DAY at all (public holiday, the centre's closure, a closed weekday), or None."""
        hol = holiday_name(self.holidays, day)
        if hol:
            return f"holiday: {day.isoformat()} {hol}"
        for span in self.closed:
            if span.covers(day):
                return f"company closure: {day.isoformat()} {span.label or span.describe()}".rstrip()
        if self.weekly and self.weekly[day.weekday()] is None:
            return f"closed on {WEEKDAYS[day.weekday()]}: {day.isoformat()}"
        return None

    def window(self, day: date) -> tuple[time, time] | None:
        """The calling window on local DAY, or None when the day is closed."""
        if self.day_closed(day):
            return None
        return self.weekly[day.weekday()] if self.weekly else (self.start, self.end)

    def window_label(self, day: date) -> str:
        w = self.window(day)
        return "closed" if w is None else f"{w[0]:%H:%M}-{w[1]:%H:%M}"

    def open_at_local(self, local: datetime) -> bool:
        """Is a local (zone-aware) wall-clock instant inside that day's window?"""
        w = self.window(local.date())
        return w is not None and w[0] <= local.time() < w[1]

    def closed_reason(self, at: datetime, zones: tuple[str, ...]) -> str | None:
        """None when AT is inside the hours in every zone; else why not (names the zone and local time)."""
        for name in zones:
            tz = zone(name) or ZoneInfo(DEFAULT_ZONE)
            local = at.astimezone(tz)
            why = self.day_closed(local.date())
            if why:
                kind, _, rest = why.partition(": ")
                return f"{kind} in {name}: {rest}"
            w = self.window(local.date())
            assert w is not None
            if not w[0] <= local.time() < w[1]:
                return (f"outside calling hours in {name}: local {local.strftime('%H:%M')} not in "
                        f"{w[0]:%H:%M}-{w[1]:%H:%M}")
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
                w = self.window(day)
                if w is None:
                    continue
                opening = datetime.combine(day, w[0], tz)
                if opening >= at:
                    candidates.add(opening.astimezone(at.tzinfo))
        for c in sorted(candidates):
            if self.is_open(c, zones):
                return c
        return None


def business_today(tz_name: str, now: datetime) -> date:
    """Today's date in the business time zone, whatever the host's zone (a UTC host is 9 h behind Tokyo).
    NOW comes from the caller: the domain reads no clock."""
    tz = zone(tz_name) or ZoneInfo(DEFAULT_ZONE)
    return now.astimezone(tz).date()


def local_midnight(at: datetime, tz_name: str) -> datetime:
    """The start of AT's calendar day in TZ_NAME (aware, in that zone): the `day` abandon window starts here."""
    tz = zone(tz_name) or ZoneInfo(DEFAULT_ZONE)
    return datetime.combine(at.astimezone(tz).date(), time(0, 0), tz)


__all__ = [
    "DEFAULT_ZONE",
    "WEEKDAYS",
    "ClosedSpan",
    "business_today",
    "local_midnight",
    "zone",
    "CallingHours",
    "contact_zones",
    "holiday_name",
    "parse_hhmm",
    "zone_for_prefecture",
    "zones_for_number",
]
