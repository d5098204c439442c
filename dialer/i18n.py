"""The UI's language: gettext catalogs (`dialer/locale/<lang>/LC_MESSAGES/tsunagu.po`, compiled to .mo) for
Japanese and English, Japanese date/time formats, and NFKC input so an IME left in 全角 mode still works.

Chosen by `[ui] language` ("ja" / "en"), else the locale ($LC_ALL, $LC_MESSAGES, $LANG). Strings are
translated when shown (`_()` looks up the current catalog on every call), so module-level tables mark their
strings with `N_()` and translate at render time.
"""

from __future__ import annotations

import gettext
import os
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dialer.domain.vocabulary import Command

DOMAIN = "tsunagu"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("ja", "en")

_current: gettext.NullTranslations = gettext.NullTranslations()
_lang = "en"


def locale_language(env: dict[str, str] | None = None) -> str:
    """'ja' when the locale says Japanese, else 'en' (the order POSIX gives these variables)."""
    e = os.environ if env is None else env
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = e.get(var, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


def set_language(lang: str | None = None) -> str:
    """Switch the catalog; None or "" picks from the locale. Returns the language now in use."""
    global _current, _lang
    chosen = (lang or locale_language()).lower().split("_")[0].split("-")[0]
    if chosen not in LANGUAGES:
        chosen = "en"
    _current = gettext.translation(DOMAIN, str(LOCALE_DIR), languages=[chosen], fallback=True)
    _lang = chosen
    return chosen


def language() -> str:
    return _lang


def _(message: str) -> str:
    return _current.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _current.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (module-level tables)."""
    return message


def nfkc(text: str) -> str:
    """Full-width letters, digits and punctuation to their plain forms (ｐ→p, １→1, ：→:, ，→,, ￥→¥)."""
    return unicodedata.normalize("NFKC", text)


_WEEKDAYS_JA = "月火水木金土日"


def fmt_datetime(dt: datetime | None, tz: str, kind: str = "datetime") -> str:
    """A local time in the UI's language: kind is 'datetime', 'date', 'time', 'hm', 'md' or 'full'."""
    if dt is None:
        return "—"
    from datetime import UTC

    d = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(ZoneInfo(tz))
    if _lang == "ja":
        wd = _WEEKDAYS_JA[d.weekday()]
        formats = {"datetime": f"{d.year}年{d.month}月{d.day}日 {d:%H:%M}",
                   "full": f"{d.year}年{d.month}月{d.day}日({wd}) {d:%H:%M:%S}",
                   "date": f"{d.year}年{d.month}月{d.day}日", "md": f"{d.month}月{d.day}日",
                   "time": f"{d:%H:%M:%S}", "hm": f"{d:%H:%M}"}
    else:
        formats = {"datetime": f"{d:%Y-%m-%d %H:%M}", "full": f"{d:%a %Y-%m-%d %H:%M:%S %Z}",
                   "date": f"{d:%Y-%m-%d}", "md": f"{d:%m-%d}", "time": f"{d:%H:%M:%S}", "hm": f"{d:%H:%M}"}
    return formats[kind]


def extract_ast(fileobj: Any, keywords: Any, comment_tags: Any, options: Any) -> Iterator[
        tuple[int, str, str | tuple[str, ...], list[str]]]:
    """Babel extraction method that reads the syntax tree, so `_()` inside f-strings is found on Python 3.11
    (whose tokenizer sees an f-string as one token). Used by babel.cfg."""
    import ast

    tree = ast.parse(fileobj.read())
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name in ("_", "N_") and len(args) >= 1 and len(node.args) == 1:
            yield node.lineno, name, args[0], []
        elif name == "ngettext" and len(args) >= 2:
            yield node.lineno, name, (args[0], args[1]), []


# ---------------------------------------------------------------------------------------- monitor commands
# (issue 27) the monitor's confirmations and the runner's command results in the UI's language: the runner
# stores its result in English words (the event log's language); they are said again here when shown.
_COMMANDS = {"pause": N_("pause"), "resume": N_("resume"), "stop": N_("stop"), "stop_now": N_("stop now"),
             "mode": N_("mode"), "target": N_("abandon target")}
_MODES = {"preview": N_("preview"), "progressive": N_("progressive"), "power": N_("power"),
          "predictive": N_("predictive")}
_REGIMES = {"us": N_("US (abandoned ÷ answered by a person)"), "uk": N_("UK (machine false positives counted)")}


def percent(fraction: float) -> str:
    """0.015 -> '1.5 %' (a target is typed and read in percent, stored as a fraction)."""
    return f"{round(fraction * 100, 3):g} %"


def _argument(command: str, argument: str) -> str:
    if command == Command.TARGET:
        try:
            return percent(float(argument))
        except ValueError:
            return argument
    if command == Command.MODE:
        return _(_MODES[argument]) if argument in _MODES else argument
    return argument


def command_text(command: str, argument: str = "") -> str:
    """`target 0.0150` -> 'abandon target 1.5 %' / '放棄率目標 1.5 %'; `mode power` -> 'モード パワー'."""
    word = _(_COMMANDS[command]) if command in _COMMANDS else command
    return f"{word} {_argument(command, argument)}".strip()


def regime_text(regime: str) -> str:
    return _(_REGIMES[regime]) if regime in _REGIMES else regime


def command_result(result: str) -> str:
    """A runner's result ('abandon target 0.015', 'refused: ...', 'expired: ...') in the UI's language."""
    import re

    if result.startswith("abandon target "):
        return command_text("target", result.removeprefix("abandon target "))
    if result.startswith("mode "):
        return command_text("mode", result.removeprefix("mode "))
    fixed = {"accepted": N_("accepted"), "running": N_("running"),
             "paused: no new dials; calls in progress continue": N_("paused: no new dials; calls in progress continue")}
    if result in fixed:
        return _(fixed[result])
    m = re.fullmatch(r"expired: not applied within (\d+) min", result)
    if m:
        return _("expired: not applied within {n} min").format(n=m.group(1))
    if result.startswith("refused: "):
        return _("refused: {why}").format(why=result.removeprefix("refused: "))
    return result
