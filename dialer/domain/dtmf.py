"""Dispositions keyed on the agent's softphone: a small DTMF code table for agents without the console.

A code is `*` + outcome digit [+ `*` + argument] + `#`. The argument is an amount in yen for sales,
hours from now for a callback (default 24), and a reason code for a refusal. A callback time the campaign
cannot call is moved to the next calling slot (dialer.domain.callbacks) and the agent hears
`CALLBACK_MOVED_TONE`.

| keys | outcome | argument |
|---|---|---|
| `*1[*AMOUNT]#` | sale | amount (yen) |
| `*2[*AMOUNT]#` | upsell | amount (yen) |
| `*3[*AMOUNT]#` | cross_sell | amount (yen) |
| `*4[*HOURS]#` | callback | hours from now (default 24); moved to the next calling slot if closed then |
| `*5*REASON#` | refused | reason code (see REFUSAL_REASONS) |
| `*6#` | dnc | — do not call again, effective at once |
| `*7#` | wrong_number | — |
| `*8#` | machine | — |
| `*9#` | no_interest | — |
| `*0#` | other | — |
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dialer.domain.callbacks import DEFAULT_CALLBACK
from dialer.domain.vocabulary import Disposition

CALLBACK_MOVED_TONE = "99"
"""Played to the agent (RFC 2833 digits: two short beeps) when a keyed callback time fell outside calling hours
or on a closed day and was moved to the next calling slot (the keypad has no screen to say it on)."""

OUTCOME_BY_DIGIT = {"1": "sale", "2": "upsell", "3": "cross_sell", "4": "callback", "5": "refused",
                    "6": "dnc", "7": "wrong_number", "8": "machine", "9": "no_interest", "0": "other"}
DIGIT_BY_OUTCOME = {v: k for k, v in OUTCOME_BY_DIGIT.items()}
assert set(OUTCOME_BY_DIGIT.values()) == {d.value for d in Disposition}, "every disposition has a key"

# Why a customer said no: the voice of the customer that flows back to the next list build.
REFUSAL_REASONS = {
    "1": "price",
    "2": "no_effect_felt",        # expected a result, did not feel one
    "3": "still_has_stock",
    "4": "switched_product",
    "5": "too_many_calls",
    "6": "instructions_unclear",
    "7": "health_or_life_change",
    "8": "dislikes_phone_sales",
    "9": "other",
}


SALE_WORDS = ("sale", "upsell", "cross_sell")


@dataclass(frozen=True)
class DtmfDisposition:
    outcome: str
    amount: float = 0.0
    callback_hours: float = 0.0
    reason_code: str = ""


class DtmfDecodeError(ValueError):
    pass


def decode(keys: str) -> DtmfDisposition:
    """'*1*5980#' -> sale of 5980 yen. Raises DtmfDecodeError naming what was wrong."""
    if not (keys.startswith("*") and keys.endswith("#")) or len(keys) < 3:
        raise DtmfDecodeError(f"a disposition is *CODE[*ARG]#, got {keys!r}")
    body = keys[1:-1]
    code, _, arg = body.partition("*")
    outcome = OUTCOME_BY_DIGIT.get(code)
    if outcome is None:
        raise DtmfDecodeError(f"unknown disposition code {code!r} in {keys!r}")
    if arg and not arg.isdigit():
        raise DtmfDecodeError(f"argument must be digits, got {arg!r} in {keys!r}")
    if outcome in SALE_WORDS:
        return DtmfDisposition(outcome, amount=float(arg or 0))
    if outcome == Disposition.CALLBACK:
        hours = float(arg) if arg else DEFAULT_CALLBACK.total_seconds() / 3600
        if hours <= 0:
            raise DtmfDecodeError(f"callback hours must be > 0 in {keys!r}")
        return DtmfDisposition(outcome, callback_hours=hours)
    if outcome == Disposition.REFUSED:
        if arg not in REFUSAL_REASONS:
            raise DtmfDecodeError(f"refusal needs a reason code 1-9 (*5*N#), got {keys!r}")
        return DtmfDisposition(outcome, reason_code=arg)
    if arg:
        raise DtmfDecodeError(f"{outcome} takes no argument, got {keys!r}")
    return DtmfDisposition(outcome)


class DtmfCollector:
    """Collects digits of one call until a complete `*...#` sequence; stray digits before `*` are ignored."""

    def __init__(self) -> None:
        self.buf = ""

    def feed(self, digit: str) -> str | None:
        if digit == "*" and not self.buf:
            self.buf = "*"
            return None
        if not self.buf:
            return None
        self.buf += digit
        if digit == "#":
            done, self.buf = self.buf, ""
            return done
        if len(self.buf) > 16:
            self.buf = ""
        return None


def encode_disposition(outcome: str, rng: random.Random | None = None) -> str:
    """The keys a simulated agent presses for an outcome (random amounts/reasons from rng)."""
    r = rng or random.Random(0)
    d = DIGIT_BY_OUTCOME[outcome]
    if outcome in SALE_WORDS:
        return f"*{d}*{r.choice([2980, 3980, 5980, 9800, 12800])}#"
    if outcome == Disposition.CALLBACK:
        return f"*{d}*{r.choice([2, 24, 48])}#"
    if outcome == Disposition.REFUSED:
        return f"*{d}*{r.choice(list(REFUSAL_REASONS))}#"
    return f"*{d}#"
