"""When a promised callback may be: read what the agent typed and check it against the campaign's own hours.

Why: the console used to accept 08:00-21:00 (the legal window) while the campaign dialled 09:00-20:00, so a
callback promised for 20:30 was made the next morning. A callback is checked against the hours of the
campaign that will make it; without a campaign, against the legal window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dtime

from dialer.domain.calling_hours import DEFAULT_ZONE, CallingHours, zone


class CallbackTimeError(ValueError):
    """A callback time that cannot be used; the message says why in the agent's terms.

    `reason` is "unreadable", "past" or "outside_hours" (with `when` and `hours`), so a view can say it in
    the agent's language.
    """

    def __init__(self, message: str, reason: str, when: datetime | None = None,
                 hours: CallingHours | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.when = when
        self.hours = hours


def parse_callback(text: str, now: datetime, tz: str, hours: CallingHours | None = None) -> datetime:
    """'14:30' (today, or tomorrow if past), '2026-11-24 10:00', '+2h', '+30m', '+1d' -> aware UTC.

    Must be in the future and inside HOURS (the campaign's calling hours; default the legal 08:00-21:00)
    in local time TZ.
    """
    hours = hours or CallingHours.legal()
    tzinfo = zone(tz) or zone(DEFAULT_ZONE)
    assert tzinfo is not None
    t = text.strip()
    loc_now = now.astimezone(tzinfo)
    try:
        if t.startswith("+"):
            unit = t[-1]
            n = float(t[1:-1])
            secs = n * {"m": 60, "h": 3600, "d": 86400}[unit]
            when = now + timedelta(seconds=secs)
        elif len(t) <= 5 and ":" in t:
            h, m = (int(x) for x in t.split(":"))
            when_l = datetime.combine(loc_now.date(), dtime(h, m), tzinfo)
            if when_l <= loc_now:
                when_l += timedelta(days=1)
            when = when_l.astimezone(UTC)
        else:
            when = datetime.fromisoformat(t.replace("/", "-"))
            when = (when if when.tzinfo else when.replace(tzinfo=tzinfo)).astimezone(UTC)
    except (ValueError, KeyError, IndexError):
        raise CallbackTimeError(f"cannot read {text!r}: use HH:MM, YYYY-MM-DD HH:MM, +2h, +30m or +1d",
                                "unreadable") from None
    if when <= now:
        raise CallbackTimeError("the callback time must be in the future", "past", when)
    if not hours.contains(when.astimezone(tzinfo).time()):
        raise CallbackTimeError(f"{when.astimezone(tzinfo):%Y-%m-%d %H:%M} is outside calling hours "
                                f"{hours.label()} ({tz})", "outside_hours", when, hours)
    return when


__all__ = ["CallbackTimeError", "parse_callback"]
