"""Why a customer is on the list, in the UI's language.

The list builder (`lists/`, which knows no UI language) writes one English sentence per entry, in a fixed
grammar (`lists/build.py`), and `call_list.csv` keeps it as written. An agent in Japanese must not read
"TRIAL-SERUM bought 2026-11-28, runs out 2026-12-12; offer …" on the screen pop: the consoles (terminal and
browser) show it through here. Each sentence form the builder writes is matched and said again through the
catalog; a sentence of a form not known here is shown as written, never dropped. The test builds real lists
and checks that every reason they carry is re-said, so a new form in the builder cannot slip past in English.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dialer.i18n import _, ngettext

_DAY = r"\d{4}-\d{2}-\d{2}"
_NUM = r"-?\d+(?:\.\d+)?"


def _dormant(m: re.Match[str]) -> str:
    n = int(m["n"])
    return _("last purchase {day} ({days} days ago), {orders}, ¥{revenue}, chance still a customer {p}").format(
        day=m["day"], days=m["days"], revenue=f"{int(float(m['rev'])):,}", p=m["p"],
        orders=ngettext("{n} order", "{n} orders", n).format(n=n))


def _pre_churn(m: re.Match[str]) -> str:
    return _("subscription {sub} ({sku}) after shipment {k}: cancel risk {h}, next shipment {day}").format(
        sub=m["sub"], sku=m["sku"], k=m["k"], h=m["h"], day=m["day"])


def _upsell(m: re.Match[str]) -> str:
    if m["own"]:  # the run-out date comes from the customer's own repurchase rhythm, not the product's
        text = _("{sku} bought {day}, runs out {out} (their own rhythm); offer the {target} subscription")
    else:
        text = _("{sku} bought {day}, runs out {out}; offer the {target} subscription")
    return text.format(sku=m["sku"], day=m["day"], out=m["out"], target=m["target"])


def _cross_sell(m: re.Match[str]) -> str:
    return _("subscribes to {base}; has not bought the related {related} in {days} days").format(
        base=m["base"], related=m["related"], days=m["days"])


_FORMS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(rf"last purchase (?P<day>{_DAY}) \((?P<days>-?\d+) days ago\), (?P<n>\d+) orders, "
                rf"¥(?P<rev>{_NUM}), P\(alive\) (?P<p>{_NUM})"), _dormant),
    (re.compile(rf"subscription (?P<sub>.+?) \((?P<sku>.*?)\) after shipment (?P<k>\d+): cancel hazard "
                rf"(?P<h>{_NUM}), next ship (?P<day>{_DAY})"), _pre_churn),
    (re.compile(rf"(?P<sku>.+?) bought (?P<day>{_DAY}), runs out (?P<out>{_DAY})(?P<own> \(own rhythm\))?; "
                r"offer (?P<target>.+) subscription"), _upsell),
    (re.compile(r"subscribes to (?P<base>.+?), has not bought related (?P<related>.+) in (?P<days>\d+) days"),
     _cross_sell),
)


def reason_words(text: str) -> str:
    """TEXT (a list entry's reason, as the builder wrote it) in the UI's language; unknown forms as written."""
    for form, say in _FORMS:
        m = form.fullmatch(text.strip())
        if m:
            return say(m)
    return text


__all__ = ["reason_words"]
