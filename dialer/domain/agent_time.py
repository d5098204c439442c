"""Agent time (logged in, talk, wrap-up) and occupancy, counted once from the agent state log's stretches.

Every figure that shows occupancy — the text report, the hourly chart, the CSV, the monitor's headline and its
15-minute rows — calls `agent_time` so one run cannot show two occupancies. Definitions:

- logged in = time in any state but logged_out;
- talk = time in on_call (the agent leg connected to the customer), wrap = time in wrap_up;
- occupancy (占有率) = (talk + wrap) / logged in. It is the share of logged-in time spent handling calls,
  which Japanese centres call 占有率; 稼働率 usually means logged-in time over scheduled time, which the dialer
  does not know.

A stretch still open (`ended_at` empty) is counted up to `open_until` and no further: "now" while a runner is
live, else the moment the campaign was last known alive (its last heartbeat). Counting it into the future
(the chart) or cutting it at the last call (the old text report) were the two wrong answers issue 27 found.
Pure: no I/O, no clock; the caller says which stretches belong to the figure and up to when.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dialer.domain.vocabulary import AgentState


class Stretch(Protocol):
    """One agent_state_log row (dialer.store.models.AgentStateLog) as this module reads it."""

    @property
    def agent_id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Span:
    """A stretch with aware datetimes (what callers build from store rows)."""

    agent_id: int
    state: str
    started_at: datetime
    ended_at: datetime | None


@dataclass
class AgentTime:
    """Seconds one agent (or a team) spent logged in, talking and in wrap-up within a period."""

    logged_in_s: float = 0.0
    talk_s: float = 0.0
    wrap_s: float = 0.0

    @property
    def busy_s(self) -> float:
        return self.talk_s + self.wrap_s

    @property
    def occupancy(self) -> float | None:
        """(talk + wrap) / logged in; None when nobody was logged in."""
        return self.busy_s / self.logged_in_s if self.logged_in_s > 0 else None

    def add(self, other: AgentTime) -> None:
        self.logged_in_s += other.logged_in_s
        self.talk_s += other.talk_s
        self.wrap_s += other.wrap_s


def _seconds(start: datetime, end: datetime, lo: datetime | None, hi: datetime | None) -> float:
    s = max(start, lo) if lo is not None else start
    e = min(end, hi) if hi is not None else end
    return max(0.0, (e - s).total_seconds())


def stretch_end(st: Stretch, open_until: datetime) -> datetime:
    """Where a stretch ends for counting: its end, or OPEN_UNTIL while it is open (never before its start)."""
    end = st.ended_at if st.ended_at is not None else open_until
    return max(end, st.started_at)


def agent_time(stretches: Iterable[Stretch], lo: datetime | None, hi: datetime | None,
               open_until: datetime) -> dict[int, AgentTime]:
    """Per agent id: logged-in, talk and wrap seconds of STRETCHES inside [LO, HI) (None: unbounded).

    Datetimes must be timezone-aware (the store hands back aware UTC)."""
    out: dict[int, AgentTime] = {}
    for st in stretches:
        if st.state == AgentState.LOGGED_OUT:
            continue
        secs = _seconds(st.started_at, stretch_end(st, open_until), lo, hi)
        t = out.setdefault(st.agent_id, AgentTime())
        if secs <= 0:
            continue
        t.logged_in_s += secs
        if st.state == AgentState.ON_CALL:
            t.talk_s += secs
        elif st.state == AgentState.WRAP_UP:
            t.wrap_s += secs
    return out


def team_time(per_agent: dict[int, AgentTime]) -> AgentTime:
    total = AgentTime()
    for t in per_agent.values():
        total.add(t)
    return total


def time_by_bucket(stretches: Iterable[Stretch], bounds: list[tuple[datetime, datetime]],
                   open_until: datetime) -> list[AgentTime]:
    """The team's time in each [lo, hi) of BOUNDS (hours for the chart, quarter hours for the monitor)."""
    rows = list(stretches)
    return [team_time(agent_time(rows, lo, hi, open_until)) for lo, hi in bounds]


__all__ = ["AgentTime", "Span", "Stretch", "agent_time", "stretch_end", "team_time", "time_by_bucket"]
