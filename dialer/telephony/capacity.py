"""How many lines this host can carry, so a config asking for more is clamped instead of losing RTP.

Why a model and not only the config: on the 4-call wheel, 150/200/300 lines started 75-150 worker processes
and lost 38/69/91% of RTP on 2 cores with answer-to-agent p95 past the 2 s connect limit. The cost has two
parts, both measured on this machine kind (shared/brief/telephony.md, every line bridged to an agent leg,
SIPp carrier and agent on the same cores):

- per worker process: ~2.2% of a core (wheel: 25 workers / 50 lines at 66-70% of a core, after the lines);
- per bridged line (customer + agent leg, G.711 at 8 kHz): ~0.24% of a core (site build: 200 lines in one
  process at 44-49%, 250 at 64%).

The clean points were wheel 50 lines and site build 250 lines; the lossy ones wheel 100 and site build 400.
A budget of 35% of the host's cores for media puts the limit between them on both builds (wheel on 2 cores:
52 lines; a 512-call site build: 273), leaving the rest for the campaign loop, the database and the kernel.
`max_lines_per_host` in `[telephony]` overrides the estimate (e.g. after a bench run on the real host).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

CORE_PER_WORKER = 0.022
CORE_PER_LINE = 0.0024
MEDIA_SHARE = 0.35


@dataclass(frozen=True)
class HostCapacity:
    cores: int
    calls_per_process: int
    lines_per_process: int
    max_lines: int
    source: str  # "estimate" | "config"

    def describe(self) -> str:
        how = ("max_lines_per_host from config" if self.source == "config" else
               f"estimate: {self.cores} core(s) x {MEDIA_SHARE:.0%} for media, {self.calls_per_process} calls "
               f"per process ({self.lines_per_process} bridged lines), {CORE_PER_WORKER:.1%} of a core per "
               f"process + {CORE_PER_LINE:.2%} per line")
        return f"{self.max_lines} lines on this host ({how})"


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def host_capacity(calls_per_process: int, agent_leg_ratio: float = 1.0, *, cores: int | None = None,
                  configured: int = 0) -> HostCapacity:
    """The most lines this host should carry (largest L whose process + line cost fits the media budget)."""
    cores = cores or cpu_count()
    per = max(1, math.floor(calls_per_process / (1.0 + agent_leg_ratio)))
    if configured > 0:
        return HostCapacity(cores, calls_per_process, per, configured, "config")
    budget = cores * MEDIA_SHARE
    lo, hi = 0, 100_000
    while lo < hi:  # the cost grows with L: binary search for the last L within budget
        mid = (lo + hi + 1) // 2
        if math.ceil(mid / per) * CORE_PER_WORKER + mid * CORE_PER_LINE <= budget:
            lo = mid
        else:
            hi = mid - 1
    return HostCapacity(cores, calls_per_process, per, max(1, lo), "estimate")
