"""Phone cells from real exports -> E.164 numbers a consumer answers, or a reason why not.

`phonenumbers` does the numbering-plan work; this module handles what it does not: labels (TEL:, (携帯)),
extensions (内線), dashes NFKC leaves alone, several numbers in one cell, Excel-stripped leading zeros
(`9012345678` would otherwise be accepted silently) and dummy markers. Results are cached by raw string
because the same cell text recurs across customers and nights.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberMatcher, PhoneNumberType

KEEP_TYPES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed",
    PhoneNumberType.VOIP: "voip",
}
REJECT_TYPES = {
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.UAN: "shared_cost",  # 0570 (ナビダイヤル) is classed UAN
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
# dashes and long marks NFKC does not turn into '-'
_DASHES = dict.fromkeys(map(ord, "‐‑‒–—―−ｰー─━〜～﹣"), "-")
_EXT = re.compile(r"(x|#)\s*\d{1,5}\s*$", re.IGNORECASE)
_EXT_WORD = re.compile(r"[(（]?\s*(内線|ext\.?|extension)\s*[:：]?\s*\d+\s*[)）]?", re.IGNORECASE)
_LABEL = re.compile(r"(tel|phone|mobile|fax|携帯|自宅|電話|会社|勤務先|実家|日中|夜間)\s*[:：.]?", re.IGNORECASE)
_BRACKET_LABEL = re.compile(r"[(\[【（][^)\]】）\d]*[)\]】）]")
_SPLIT = re.compile(r"[/／,，、;；|]|\s{2,}|または|or")
_DUMMY_WORDS = {"なし", "無し", "不明", "none", "n/a", "na", "-", "--", "x", "xx", "未登録"}


@dataclass(frozen=True)
class PhoneResult:
    """One number found in a cell: e164 and kind when usable, else the reason it is not."""

    e164: str
    kind: str  # mobile | fixed | voip, or "" when rejected
    reason: str  # "" when usable; toll_free, pager, invalid_number, dummy_number, ...
    flag: str = ""  # leading_zero_restored: usable but worth a look


def _clean(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw).translate(_DASHES).strip()
    if text.startswith("'"):
        text = text[1:]
    return text


def _is_dummy(digits: str) -> bool:
    body = digits.lstrip("0")
    return not body or len(set(body)) == 1 or body.endswith("00000000") or digits in {"1234567890", "0123456789"}


def _classify(num: phonenumbers.PhoneNumber, flag: str = "") -> PhoneResult:
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(num):
        return PhoneResult(e164, "", "invalid_number", flag)
    t = phonenumbers.number_type(num)
    if t in KEEP_TYPES:
        return PhoneResult(e164, KEEP_TYPES[t], "", flag)
    return PhoneResult(e164, "", REJECT_TYPES.get(t, "not_consumer_number"), flag)


def _parse_one(text: str, region: str) -> PhoneResult:
    text = _EXT.sub("", text).strip()
    digits = re.sub(r"[^\d+]", "", text)
    plain = digits.lstrip("+")
    if not plain:
        return PhoneResult("", "", "no_digits")
    if _is_dummy(plain):
        return PhoneResult("", "", "dummy_number")
    flag = ""
    if region == "JP" and not digits.startswith("+"):
        # dialled from Japan with the international prefix: 0081-90-..., 010-81-...
        for idd in ("00", "010"):
            if plain.startswith(idd) and not plain.startswith("000") and len(plain) - len(idd) >= 10:
                digits = "+" + plain[len(idd):]
                break
    if region == "JP" and not digits.startswith(("0", "+")) and len(plain) in (9, 10):
        # Excel turned 090... into 9.01E+09 then back: restore the zero, and say so
        digits, flag = "0" + plain, "leading_zero_restored"
    try:
        num = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return PhoneResult("", "", "invalid_number")
    return _classify(num, flag)


@lru_cache(maxsize=1 << 20)
def parse_phone_cell(raw: str, region: str = "JP") -> tuple[PhoneResult, ...]:
    """Every number in one cell, in the order written. Empty cells give ()."""
    text = _clean(raw)
    if not text:
        return ()
    if text.lower() in _DUMMY_WORDS:
        return (PhoneResult("", "", "dummy_number"),)
    text = _EXT_WORD.sub(" ", text)
    text = _BRACKET_LABEL.sub(" ", text)
    text = _LABEL.sub(" ", text)
    parts = [p.strip() for p in _SPLIT.split(text) if p and p.strip()]
    out: list[PhoneResult] = []
    for part in parts:
        if len(re.sub(r"^(00|010)", "", re.sub(r"\D", "", part))) > 13:
            # several numbers separated only by a space: let the matcher find them
            found = [_classify(m.number) for m in PhoneNumberMatcher(part, region)]
            out.extend(found or [PhoneResult("", "", "invalid_number")])
        else:
            out.append(_parse_one(part, region))
    seen: set[str] = set()
    uniq: list[PhoneResult] = []
    for r in out:
        key = r.e164 or r.reason
        if r.e164 and key in seen:
            continue
        seen.add(key)
        uniq.append(r)
    return tuple(uniq)


def fast_jp_mobile(digits: str) -> bool:
    """The shape the SQL fast path accepts without calling phonenumbers (070/080/090 + 8 digits)."""
    return re.fullmatch(r"0[789]0[1-9]\d{7}", digits) is not None


def classify_digits(digits: str, region: str = "JP") -> PhoneResult:
    """A national number already reduced to digits with its trunk 0 (the bulk path: no text parsing).

    Skips phonenumbers' parser, which is most of its cost, and gives the same answer as parse_phone_cell
    for such input.
    """
    if _is_dummy(digits):
        return PhoneResult("", "", "dummy_number")
    cc = phonenumbers.country_code_for_region(region)
    num = phonenumbers.PhoneNumber(country_code=cc, national_number=int(digits[1:]))
    return _classify(num)
