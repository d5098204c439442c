"""Durations as the config writes them ('90s', '30m', '4h', '1d'), parsed once into seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'30m' -> 1800.0 seconds; used for retry delays and `--for`."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"expected a duration like 90s, 30m, 4h or 1d, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


__all__ = ["parse_duration"]
