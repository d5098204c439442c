"""Phone numbers never reach a log in full: mask all but the country code and the last digits."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\+?\d[\d\- ]{6,}\d")


def mask_phone(number: str, keep: int = 3) -> str:
    """'+819012345678' -> '+81*******678'. Non-numbers pass through untouched."""
    if not number:
        return number
    prefix = ""
    body = number
    if number.startswith("+"):
        # keep the country code visible: it is what an operator needs to read a trunk problem
        cc = 2 if number[1:3] in {"81", "44", "33", "49", "86", "82", "61", "65", "66", "39"} else 1
        prefix, body = number[: 1 + cc], number[1 + cc :]
    if len(body) <= keep:
        return prefix + "*" * len(body)
    return prefix + "*" * (len(body) - keep) + body[-keep:]


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits in a free-text line (SIP URIs, error messages)."""
    return _DIGITS.sub(lambda m: mask_phone(re.sub(r"[\- ]", "", m.group(0))), text)
