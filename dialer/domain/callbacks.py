"""When a promised callback may be: ONE rule for the console, the keypad and the store, and what agents type.

Why one rule: the console refused 20:30 (outside the campaign's 09:00-20:00), the keypad stored `*4*2#` keyed
at 19:30 as 21:30 and the store defaulted a callback without a time to one hour later, unchecked: the customer
promised two hours was called next morning by someone else. Now:

- a callback without a time is due `DEFAULT_CALLBACK` (24 h) later;
- `callback_slot` is the rule: a time the campaign cannot call (outside that weekday's hours, a public
  holiday, the centre's closure days) moves to the next calling slot, and says that it moved. The keypad and
  the store apply it (the keypad tells the agent by a tone); the console refuses such a time instead, so the
  agent can agree another one with the customer while still on the line.

`parse_callback` reads what agents type: `14:30`, `14時30分`, `14時`, `明日 14:00`, `明後日 10時`, `12/8 10:00`,
`12月8日 10:00`, `2026-12-08 10:00`, `+2h`, `+30m`, `+1d`, with full-width digits (NFKC).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from dialer.domain.calling_hours import DEFAULT_ZONE, CallingHours, zone

DEFAULT_CALLBACK = timedelta(hours=24)
"""A callback with no time given (keypad `*4#`, the store's default) is asked for this much later."""

SLOT_HORIZON_DAYS = 60  # 年末年始 plus a closed week still finds a slot


class CallbackTimeError(ValueError):
    """A callback time that cannot be used; the message says why in the agent's terms.

    `reason` is "unreadable", "past", "outside_hours" or "closed_day" (with `when`, `hours` and, for a closed
    day, `why`), so a view can say it in the agent's language.
    """

    def __init__(self, message: str, reason: str, when: datetime | None = None,
                 hours: CallingHours | None = None, why: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.when = when
        self.hours = hours
        self.why = why


def callback_slot(wanted: datetime, hours: CallingHours, zones: tuple[str, ...]) -> tuple[datetime, bool]:
    """(the time to book, moved?): WANTED when every zone of the contact is open then, else the next slot."""
    if hours.is_open(wanted, zones):
        return wanted, False
    nxt = hours.next_open(wanted, zones, horizon_days=SLOT_HORIZON_DAYS)
    if nxt is None:  # a calendar closed for two months: keep the time (the hopper still never dials outside)
        return wanted, False
    return nxt, True


_REL_DAY = {"今日": 0, "本日": 0, "明日": 1, "あした": 1, "あす": 1, "明後日": 2, "あさって": 2,
            "today": 0, "tomorrow": 1}
_TIME_JA = re.compile(r"^(\d{1,2})\s*時\s*(?:(\d{1,2})\s*分|半)?$")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_MD_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})$")
_MD_JA = re.compile(r"^(\d{1,2})月(\d{1,2})日$")
_YMD = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
_YMD_JA = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日$")


def _clock(text: str) -> dtime:
    m = _TIME.match(text)
    if m:
        return dtime(int(m.group(1)), int(m.group(2)))
    m = _TIME_JA.match(text)
    if m:
        minute = 30 if text.endswith("半") else int(m.group(2) or 0)
        return dtime(int(m.group(1)), minute)
    raise ValueError(text)


def _day(text: str, today: date) -> tuple[date, bool]:
    """(the day, explicit year?) of a day word: 明日, 12/8, 12月8日, 2026-12-08, 2026年12月8日."""
    if text in _REL_DAY:
        return today + timedelta(days=_REL_DAY[text]), True
    for rx in (_YMD, _YMD_JA):
        m = rx.match(text)
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))), True
    for rx in (_MD_SLASH, _MD_JA):
        m = rx.match(text)
        if m:
            return date(today.year, int(m.group(1)), int(m.group(2))), False
    raise ValueError(text)


def _split_day_time(t: str) -> tuple[str, str]:
    """'明日 14:00' / '明日14時' / '12/8 10:00' / '12月8日10時' -> (day part, time part); ('', t) without a day."""
    if " " in t:
        a, _, b = t.partition(" ")
        return a.strip(), b.strip()
    for word in sorted(_REL_DAY, key=len, reverse=True):
        if t.startswith(word):
            return word, t[len(word):].strip()
    m = re.match(r"^(\d{4}年\d{1,2}月\d{1,2}日|\d{1,2}月\d{1,2}日)(.*)$", t)
    if m:
        return m.group(1), m.group(2).strip()
    return "", t


def read_callback(text: str, now: datetime, tz: str) -> datetime:
    """What the agent typed -> an aware UTC instant (no hours check). ValueError when it cannot be read."""
    tzinfo = zone(tz) or zone(DEFAULT_ZONE)
    assert tzinfo is not None
    t = unicodedata.normalize("NFKC", text).strip().lower().replace("　", " ")
    t = re.sub(r"\s+", " ", t)
    loc_now = now.astimezone(tzinfo)
    if t.startswith("+"):
        secs = float(t[1:-1]) * {"m": 60, "h": 3600, "d": 86400}[t[-1]]
        return now + timedelta(seconds=secs)
    day_t, time_t = _split_day_time(t)
    if not day_t:
        try:  # a time alone: today, or tomorrow once it has passed
            clock = _clock(time_t)
        except ValueError:
            when = datetime.fromisoformat(t.replace("/", "-"))
            return (when if when.tzinfo else when.replace(tzinfo=tzinfo)).astimezone(UTC)
        when_l = datetime.combine(loc_now.date(), clock, tzinfo)
        if when_l <= loc_now:
            when_l += timedelta(days=1)
        return when_l.astimezone(UTC)
    day, explicit_year = _day(day_t, loc_now.date())
    when_l = datetime.combine(day, _clock(time_t), tzinfo)
    if not explicit_year and when_l <= loc_now:  # 1/5 typed in December is next January
        when_l = datetime.combine(day.replace(year=day.year + 1), when_l.time(), tzinfo)
    return when_l.astimezone(UTC)


def parse_callback(text: str, now: datetime, tz: str, hours: CallingHours | None = None) -> datetime:
    """What the agent typed (see the module docstring) -> aware UTC, refused unless the campaign can call then.

    Must be in the future, on a day the campaign calls (no public holiday, closure day or closed weekday) and
    inside that day's hours (HOURS: the campaign's; default the legal 08:00-21:00), in local time TZ.
    """
    hours = hours or CallingHours.legal()
    tzinfo = zone(tz) or zone(DEFAULT_ZONE)
    assert tzinfo is not None
    try:
        when = read_callback(text, now, tz)
    except (ValueError, KeyError, IndexError, OverflowError):
        raise CallbackTimeError(f"cannot read {text!r}: use HH:MM, 14時30分, 明日 14:00, 12/8 10:00, "
                                f"YYYY-MM-DD HH:MM, +2h, +30m or +1d", "unreadable") from None
    if when <= now:
        raise CallbackTimeError("the callback time must be in the future", "past", when)
    local = when.astimezone(tzinfo)
    why = hours.day_closed(local.date())
    if why:
        raise CallbackTimeError(f"{local:%Y-%m-%d} is a day the campaign does not call ({why})", "closed_day",
                                when, hours, why)
    if not hours.open_at_local(local):
        raise CallbackTimeError(f"{local:%Y-%m-%d %H:%M} is outside calling hours "
                                f"{hours.window_label(local.date())} ({tz})", "outside_hours", when, hours)
    return when


__all__ = ["DEFAULT_CALLBACK", "CallbackTimeError", "callback_slot", "parse_callback", "read_callback"]
