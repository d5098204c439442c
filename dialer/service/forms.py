"""The agent's form fields as the service layer reads them (issue 28): the amount, the callback time and the opening
lines, one parser for the terminal console and the browser (the web calls these, not the terminal view).

A callback time is checked against the campaign's own calling hours (`dialer.domain.callbacks`, the one rule);
this module says the refusal in the agent's language.
"""

from __future__ import annotations

from datetime import datetime
from datetime import time as dtime
from zoneinfo import ZoneInfo

from dialer.domain import callbacks
from dialer.domain.calling_hours import CallingHours
from dialer.i18n import _, nfkc


class FormError(ValueError):
    """A field value the form refuses; the message is shown under the field."""


def parse_amount(text: str) -> float:
    t = nfkc(text).replace(",", "").replace("¥", "").replace("円", "").strip()
    try:
        v = float(t)
    except ValueError:
        raise FormError(_("amount must be a number of yen, got {text!r}").format(text=text)) from None
    if v < 0:
        raise FormError(_("amount must be 0 or more"))
    return v


def parse_callback(text: str, now: datetime, tz: str,
                   hours: tuple[dtime, dtime] | CallingHours | None = None) -> datetime:
    """'14:30', '14時30分', '明日 14:00', '12/8 10:00', '2026-11-24 10:00', '+2h', '+30m', '+1d' -> aware UTC.

    Must be in the future and inside the campaign's own calling hours (HOURS; the legal 08:00-21:00 when no
    campaign is known): a callback is a promise to call, and the runner will not call outside them. The rule
    is `dialer.domain.callbacks`; this says it in the agent's language.
    """
    window = CallingHours(hours[0], hours[1], "") if isinstance(hours, tuple) else hours
    try:
        return callbacks.parse_callback(nfkc(text), now, tz, window)
    except callbacks.CallbackTimeError as exc:
        if exc.reason == "past":
            raise FormError(_("the callback time must be in the future")) from None
        if exc.reason == "closed_day" and exc.when is not None:
            day = exc.when.astimezone(ZoneInfo(tz)).date()
            raise FormError(_("{day} is a day the campaign does not call ({why}): choose another day").format(
                day=f"{day:%Y-%m-%d}", why=exc.why.partition(": ")[2] or exc.why)) from None
        if exc.reason == "outside_hours" and exc.when is not None and exc.hours is not None:
            zone = ZoneInfo(tz)
            local = exc.when.astimezone(zone)
            w = exc.hours.window(local.date()) or (exc.hours.start, exc.hours.end)
            raise FormError(_("{when} is outside the campaign's calling hours {start}-{end} ({tz})").format(
                when=f"{local:%Y-%m-%d %H:%M}", start=f"{w[0]:%H:%M}", end=f"{w[1]:%H:%M}", tz=tz)) from None
        raise FormError(_("cannot read {text!r}: use HH:MM, 14時30分, 明日 14:00, 12/8 10:00, +2h or +1d").format(
            text=text)) from None


def opening_lines(business: str, agent_name: str, product: str, phone: str = "") -> str:
    """The opening a solicitation call must start with (特定商取引法 §16): who is calling — the business and the
    agent by name — what is offered, and that this is a sales call. Missing settings show as such, never as
    a made-up name (`dialer config check` fails on them for real trunks)."""
    who = business or _("[business] name not set")
    me = agent_name or _("agent name not set")
    text = (f"お忙しいところ失礼いたします。{who}の{me}と申します。"
            f"本日は「{product}」のご案内（お電話による勧誘・販売のご案内）でお電話いたしました。"
            "今、少しだけお時間よろしいでしょうか。")
    if phone:
        text += f"（お問い合わせ・ご意見窓口：{phone}）"
    return text


__all__ = ["FormError", "opening_lines", "parse_amount", "parse_callback"]
