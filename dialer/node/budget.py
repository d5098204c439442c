"""The campaign-wide abandon book: every node's pacer also counts the other nodes' answers and abandons.

Why: the law counts abandons per campaign, not per host. Each node paces for its own agents (an answered call
must be bridged to an agent whose leg lives on that node), but its abandon book and controller must see the
whole campaign, so that a budget spent by node A also slows node B. Only the book and the controller are fed;
the estimators (hit rate, ring and handle times) stay local, as they describe this node's own lines.
The other nodes' facts are read from their attempt rows (durable, in the same database), so nothing is lost
when a node dies and nothing needs a second channel.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Protocol

from dialer.domain.vocabulary import LIVE_ATTEMPT
from dialer.store import Engine
from dialer.store import nodes as store
from pacing.abandon import AbandonBook

_LIVE = {s.value for s in LIVE_ATTEMPT}


class _Book(Protocol):
    def answered(self, now: float) -> None: ...
    def abandoned(self, now: float) -> None: ...
    def machine(self, now: float) -> None: ...


class _Ctl(Protocol):
    def observe(self, abandoned: bool) -> None: ...


class _PacerLike(Protocol):
    @property
    def book(self) -> _Book: ...
    @property
    def ctl(self) -> _Ctl: ...


def advance(after: int, seen: dict[int, set[str]], ids: list[int], still_open: list[int]
            ) -> tuple[int, dict[int, set[str]]]:
    """The next watermark of a feed that has read attempts IDS: just below the oldest attempt still open (its
    later facts must be read again), else past the newest; and the per-attempt facts above it still to remember."""
    if not ids:
        return after, seen
    after = (min(still_open) - 1) if still_open else max(ids)
    return after, {k: v for k, v in seen.items() if k > after}


class CampaignFeed:
    """Reads the other nodes' attempts of one campaign after a watermark and feeds each fact once."""

    def __init__(self, engine: Engine, campaign_id: int, node_id: str) -> None:
        self.engine = engine
        self.campaign_id = campaign_id
        self.node_id = node_id
        # the restored pacer state already holds what happened before this start
        self.after = store.max_attempt_id(engine, campaign_id)
        self.seen: dict[int, set[str]] = {}
        self.fed = {"answered": 0, "machine": 0, "abandoned": 0, "connected": 0}

    def poll(self, pacer: _PacerLike) -> int:
        """Feed new facts; returns how many were fed."""
        rows = store.other_nodes_attempts(self.engine, self.campaign_id, self.node_id, self.after)
        n = 0
        still_open: list[int] = []
        for f in rows:
            got = self.seen.setdefault(f.id, set())
            if f.answered_at is not None and "answer" not in got:
                got.add("answer")
                if f.machine:
                    pacer.book.machine(f.answered_at.timestamp())
                    self.fed["machine"] += 1
                else:
                    pacer.book.answered(f.answered_at.timestamp())
                    self.fed["answered"] += 1
                n += 1
            if f.abandoned and "abandon" not in got:
                got.add("abandon")
                at = f.ended_at or f.answered_at
                pacer.book.abandoned(at.timestamp() if at is not None else 0.0)
                pacer.ctl.observe(True)
                self.fed["abandoned"] += 1
                n += 1
            if f.connected_at is not None and "connect" not in got:
                got.add("connect")
                pacer.ctl.observe(False)
                self.fed["connected"] += 1
                n += 1
            if f.state in _LIVE:
                still_open.append(f.id)
        self.after, self.seen = advance(self.after, self.seen, [f.id for f in rows], still_open)
        return n


class _SitePacer(Protocol):
    window: str

    @property
    def cfg(self) -> Any: ...
    def site_book(self) -> _Book | None: ...


SITE_POLL_S = 5.0


class SiteFeed:
    """(issue 31) A regime counted per call centre (uk_ofcom: 3 % of live calls per call centre per 24 h): this
    campaign's pacer also counts every other campaign of the store (all nodes), so campaigns sharing one store
    share one budget. Only the book is fed (window budget, rolling-hour guard, monitor): the controller's bias
    estimate divides this pacer's abandons by its own risk, and other campaigns' abandons are not its doing.
    The site book is never saved with the pacer: each start reads the window from the store again, from the
    start of the regime's window, so nothing is counted twice and a campaign started late in the day still sees
    what the site spent that morning. A store error propagates to the tick's store guard; the watermark has
    not moved, so the facts are fed when the store is back."""

    def __init__(self, engine: Engine, campaign_id: int, pacer: _SitePacer, now: float) -> None:
        self.engine = engine
        self.campaign_id = campaign_id
        self.after = 0
        start = AbandonBook.window_start(now, pacer.window, pacer.cfg.day_start_s)
        # a call dialled up to a ring timeout before the window opened may be answered inside it
        self.since = datetime.fromtimestamp(max(0.0, (start if start is not None else 0.0) - 300.0), UTC)
        self.seen: dict[int, set[str]] = {}
        self.next_poll = -math.inf
        self.fed = {"answered": 0, "machine": 0, "abandoned": 0}

    @classmethod
    def for_pacer(cls, engine: Engine, campaign_id: int, pacer: _SitePacer, now: float) -> SiteFeed | None:
        """A feed when the pacer's regime is counted per call centre, else None (nothing to read)."""
        return cls(engine, campaign_id, pacer, now) if pacer.site_book() is not None else None

    def poll(self, pacer: _SitePacer, mono: float) -> int:
        """Feed the other campaigns' new facts (at most every SITE_POLL_S of MONO); returns how many were fed."""
        book = pacer.site_book()
        if book is None or mono < self.next_poll:
            return 0
        self.next_poll = mono + SITE_POLL_S
        rows = store.site_attempts(self.engine, self.campaign_id, self.after, self.since)
        n = 0
        still_open: list[int] = []
        for f in rows:
            got = self.seen.setdefault(f.id, set())
            if f.answered_at is not None and "answer" not in got:
                got.add("answer")
                (book.machine if f.machine else book.answered)(f.answered_at.timestamp())
                self.fed["machine" if f.machine else "answered"] += 1
                n += 1
            if f.abandoned and "abandon" not in got:
                got.add("abandon")
                at = f.ended_at or f.answered_at
                book.abandoned(at.timestamp() if at is not None else 0.0)
                self.fed["abandoned"] += 1
                n += 1
            if f.state in _LIVE:
                still_open.append(f.id)
        self.after, self.seen = advance(self.after, self.seen, [f.id for f in rows], still_open)
        return n


__all__ = ["CampaignFeed", "SiteFeed"]
