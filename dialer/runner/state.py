"""What the runner keeps per call and per wrap-up, how late its loop runs, and the loop's constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dialer.domain.dtmf import DtmfCollector
from dialer.domain.vocabulary import Mode

TICK_S = 0.2
PREVIEW_LEASE_S = 600.0  # a reservation an agent sits on is renewed (released and re-leased) before this
PREVIEW_RENEW_S = 60.0
HEARTBEAT_STALE_S = 10.0
MODES = tuple(m.value for m in Mode)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass
class Live:
    """What the runner tracks for a call in flight (the attempt row holds the durable copy)."""

    attempt_id: int
    entry_id: int
    customer_id: str
    segment: str
    phone: str
    sku: str
    dialed: float
    ringing: float | None = None
    answered: float | None = None
    connected: float | None = None
    agent_id: int | None = None
    tried_agents: set[int] = field(default_factory=set)
    abandoned: bool = False
    dtmf: DtmfCollector = field(default_factory=DtmfCollector)
    disposed: bool = False
    machine: bool = False  # AMD said machine: occupies a line, never an agent
    preview_agent: int | None = None  # preview mode: the agent who dialled it gets it on answer
    dialed_mono: float | None = None  # (issue 31) the runner's monotonic clock at the dial: ages never use the wall
    connected_mono: float | None = None
    standby: bool = False  # agent_id was taken off standby (paused after this call was dialled)
    notes: list[str] = field(default_factory=list)  # (issue 25) what happened on the way (an agent leg lost)


class TickLag:
    """How late the runner's loop runs (issue 25: a starved host must not burst abandons).

    A turn is due every TICK_S at most (the telephony wait returns early when events come); the lag of a turn is
    how much longer than that the previous turn took. The loop is *lagging* while any turn in the last
    `WINDOW_S` was later than `limit_s`: dialling waits that long after the last late turn, so a host that
    catches up for a moment does not dial a burst into a queue it cannot serve."""

    WINDOW_S = 3.0

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.last: float | None = None
        self.recent: list[tuple[float, float]] = []  # (monotonic time, lag) of the last WINDOW_S
        self.lagging = False
        self._said = False
        self.max_s = 0.0  # worst lag this run (for the monitor and the log)

    def turn(self, t: float) -> None:
        if self.last is not None:
            lag = max(0.0, t - self.last - TICK_S)
            self.recent.append((t, lag))
            self.max_s = max(self.max_s, lag)
        self.last = t
        self.recent = [(at, lag) for at, lag in self.recent if t - at <= self.WINDOW_S]
        self.lagging = self.limit_s > 0 and any(lag > self.limit_s for _, lag in self.recent)

    def worst(self) -> float:
        return max((lag for _, lag in self.recent), default=0.0)

    def now_s(self) -> float:
        return self.recent[-1][1] if self.recent else 0.0

    def changed(self) -> bool | None:
        """True when lagging started since the last call, False when it ended, None when unchanged."""
        if self.lagging == self._said:
            return None
        self._said = self.lagging
        return self.lagging

    def status(self) -> dict[str, Any]:
        return {"now_s": round(self.now_s(), 3), "worst_s": round(self.worst(), 3), "max_s": round(self.max_s, 3),
                "limit_s": self.limit_s, "lagging": self.lagging}


@dataclass
class Wrap:
    agent_id: int
    attempt_id: int
    entry_id: int
    talk_s: float
    started: float
    disposed: bool
    started_mono: float | None = None  # (issue 31) the monotonic clock at the start of the wrap-up
