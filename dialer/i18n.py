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
