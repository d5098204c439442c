"""The legal limits, in one place: config validation, the hopper, the console and the reports read them here.

They are the law (Japan's 特定商取引法 guidance, the US TSR / FCC and UK Ofcom rules), not defaults: a campaign
may be stricter, never looser.
"""

from __future__ import annotations

from datetime import time, timedelta

EARLIEST_CALL = time(8, 0)  # 21:00-08:00 is a nuisance in Japan and illegal in the US
LATEST_CALL = time(21, 0)
ABANDON_LIMIT = 0.03  # abandoned / answered by a person, per window (US 30 days / campaign, UK 24 h)
MIN_RING_S = 15.0  # a call may not be given up before it has rung this long (FCC: 15 s or four rings)
ABANDON_LOCK = timedelta(hours=72)  # after an abandoned call the number is not dialled again for this long
MAX_CONNECT_LIMIT_S = 2.0  # an answered customer hears an agent (or the information message) within this

__all__ = ["ABANDON_LIMIT", "ABANDON_LOCK", "EARLIEST_CALL", "LATEST_CALL", "MAX_CONNECT_LIMIT_S", "MIN_RING_S"]
