"""Return calls as the pacer's input (issue 30): what the runner adds to each Snapshot for the inbound desk.

Why: an agent the desk holds is not the outbound pacer's, and a predictive pacer that counts every agent as its own
leaves return callers waiting (or, when the desk takes the agent it counted on, an outbound answer: an abandon the
law counts). The rule is `pacing.inbound` (the same code the simulator runs: bench/pacing/inbound.py); this handler
reads its facts from the store (`dialer.store.return_calls`):

- every `REFRESH_S`, the campaign's calls left unanswered in the last `MEASURE_S` (the measured return-call rate,
  with the configured prior) and those of them still within the return window that have not come back (their ages);
- every `DESK_S`, the callers queued at the desk and the agents it holds.

A read that fails fails the tick like the runner's other reads (the store guard takes over: no dial meanwhile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialer.runner.state import utc
from dialer.store.return_calls import desk_now, unanswered_calls
from pacing.inbound import NO_INBOUND, InboundLoad

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner

REFRESH_S = 15.0  # the unanswered calls' ages move slowly (a return call comes ~30 min after): read them this often
DESK_S = 1.0  # the desk's queue and the agents it holds
MEASURE_S = 86400.0  # the return-call rate is measured over the last day's unanswered calls


class ReturnCalls:
    def __init__(self, r: CampaignRunner) -> None:
        self.r = r
        self.model = r.settings.returns
        self.rate = self.model.prior_rate
        self.open_dialled: list[float] = []  # epoch seconds of the unanswered calls that may still come back
        self.on_return: frozenset[int] = frozenset()
        self.queued = 0
        self._load = NO_INBOUND
        self._next_refresh = float("-inf")
        self._next_desk = float("-inf")

    def refresh(self, now: float) -> None:
        """Re-read what is due (NOW: the runner's wall clock, for ages of rows it wrote with that clock)."""
        mono = self.r.mono()
        r, m = self.r, self.model
        if mono >= self._next_refresh:
            self._next_refresh = mono + REFRESH_S
            rows = unanswered_calls(r.engine, r.campaign_id, utc(now - MEASURE_S))
            ages = [now - u.dialed_at.timestamp() for u in rows]
            self.rate = m.rate(ages, sum(1 for u in rows if u.returned))
            self.open_dialled = [u.dialed_at.timestamp() for u, a in zip(rows, ages, strict=True)
                                 if not u.returned and a < m.window_s]
        if mono >= self._next_desk:
            self._next_desk = mono + DESK_S
            desk = desk_now(r.engine, list(r.board.agents), utc(now), r.cfg.inbound.max_wait_s)
            self.queued, self.on_return = desk.queued, desk.on_return
            self._load = m.load(self.queued, [now - t for t in self.open_dialled], self.rate)

    def load(self) -> InboundLoad:
        return self._load


__all__ = ["DESK_S", "MEASURE_S", "REFRESH_S", "ReturnCalls"]
