"""`dialer trunk check`: place test calls through one trunk and count what happened, call by call.

Kept apart from the CLI so the bench can drive the same loop. Setup time is originate() -> answered
(the INVITE -> 200 OK time including ringing), measured only on answered calls.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from dialer.config import Config
from dialer.telephony.events import CallEvent, EventKind
from dialer.telephony.supervisor import Telephony

KEYS = ("answered", "busy", "no_answer", "rejected", "invalid", "congestion", "redirected", "trunk_error", "failed")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run_check(cfg: Config, trunk: str, to: str, *, calls: int, concurrency: int, hold_s: float,
              ring_timeout_s: float = 24.0, tel: Telephony | None = None) -> dict[str, Any]:
    """Place `calls` calls at most `concurrency` at a time; hang up answered ones after hold_s."""
    cfg.trunk(trunk)  # a clear ConfigError for an unknown trunk
    # a check must see every 503, not stop dialling at the first storm
    tc = cfg.telephony.model_copy(update={"lines": max(1, concurrency), "trunk_503_limit": 10**9})
    cfg = cfg.model_copy(update={"telephony": tc})
    own = tel is None
    tel = tel or Telephony(cfg)
    placed_at: dict[int, float] = {}
    answered_at: dict[int, float] = {}
    setup_ms: list[float] = []
    counts: Counter[str] = Counter()
    status: Counter[str] = Counter()
    ends: list[CallEvent] = []
    hang: dict[int, float] = {}
    trunk_down: list[str] = []
    nxt = 1
    done = 0
    deadline = time.monotonic() + math.ceil(calls / max(1, concurrency)) * (max(15.0, ring_timeout_s) + hold_s + 10) + 30
    try:
        if own:
            tel.start()
        while done < calls and time.monotonic() < deadline:
            while nxt <= calls and len(placed_at) - done < concurrency and \
                    tel.originate(nxt, to, trunk, ring_timeout_s=ring_timeout_s, connect_limit_s=hold_s + 3600):
                placed_at[nxt] = time.monotonic()
                nxt += 1
            for ev in tel.events(0.02):
                a = ev.attempt_id
                if ev.kind == EventKind.TRUNK_DOWN and ev.trunk == trunk:
                    trunk_down.append(ev.detail)
                if a is None:
                    continue
                if ev.kind == EventKind.ANSWERED:
                    answered_at[a] = time.monotonic()
                    setup_ms.append((answered_at[a] - placed_at[a]) * 1000)
                    hang[a] = time.monotonic() + hold_s
                elif ev.kind in (EventKind.FAILED, EventKind.HANGUP):
                    done += 1
                    ends.append(ev)
                    hang.pop(a, None)
                    if ev.kind == EventKind.HANGUP or a in answered_at:
                        counts["answered"] += 1
                        status["200"] += 1
                    else:
                        key = ev.outcome if ev.outcome in KEYS else "failed"
                        counts[key] += 1
                        status[str(ev.sip_status or 0)] += 1
            if trunk_down and tel.trunk_status(trunk)["down"] and len(placed_at) == done:
                break  # the trunk itself failed (credentials, Retry-After): say so instead of waiting
            now = time.monotonic()
            for a, t in list(hang.items()):
                if now >= t:
                    tel.hangup(a)
                    del hang[a]
    finally:
        if own:
            tel.stop()
    result: dict[str, Any] = {"calls": done}
    result.update({k: counts.get(k, 0) for k in KEYS})
    result["sip_status_counts"] = dict(sorted(status.items()))
    p50, p95 = percentile(setup_ms, 0.5), percentile(setup_ms, 0.95)
    result["setup_ms_p50"] = round(p50, 1) if p50 is not None else None
    result["setup_ms_p95"] = round(p95, 1) if p95 is not None else None
    if done < calls:
        result["not_finished"] = calls - done
    result["trunk_down"] = trunk_down
    # calls that failed for the trunk's own reasons (not the callee's): the check fails
    result["trunk_ok"] = not trunk_down and not counts.get("trunk_error", 0)
    return result
