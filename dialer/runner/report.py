"""Reporting: campaign events (the event log the monitor shows) and the status the runner publishes each second."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dialer.journal import JournalOp
from dialer.runner.state import utc
from dialer.store import campaigns as campaigns_store
from dialer.store.campaigns import StatusUpdate

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class Reporting:
    """Why: monitors, the web wallboard and other nodes read the runner only through the store: events and
    the status row are its whole report."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def event(self, kind: str, message: str, level: str = "info") -> None:
        at = datetime.now(UTC)
        self.r.guard.write(JournalOp.EVENT, {"kind": kind, "message": message, "level": level, "at": at},
                           lambda: campaigns_store.record_event(self.r.engine, self.r.campaign_id, kind, message, level,
                                                                at=at), None)
        self.r.on_event(f"{kind}: {message}")

    def publish(self, now: float) -> None:
        d = self.r.last_decision
        rates = self.r.pacer.abandon_rates(now)
        campaigns_store.publish_status(self.r.engine, self.r.campaign_id, StatusUpdate(
            runner=self.r.runner_id, heartbeat_at=utc(now), mode=d.mode if d is not None else self.r.mode,
            dial_level=float(d.level) if d is not None else 0.0,
            lines_dialing=sum(1 for c in self.r.live.values() if c.ringing is None and c.answered is None),
            lines_ringing=sum(1 for c in self.r.live.values() if c.ringing is not None and c.answered is None),
            waiting_for_agent=len(self.r.waiting), hit_rate=float(self.r.pacer.hit_rate()), aht_s=float(self.r.pacer.aht()),
            stats={"abandon": rates, "state": self.r.state, "counts": dict(self.r.counts),
                   "note": d.note if d is not None else "", "target": self.r.pacer_target(),
                   "dropped_to_progressive": self.r.dropped, "pacer": self.r.pacer.to_state(),
                   "budget": self.r.pacer.budget(now),  # (issue 31) the regime's window budget, for the monitor
                   "telephony": self.telephony_status(), "drain": self.r.stopping.status(),
                   "store": self.r.guard.status(), "lag": self.r.lag.status()},
            state=self.r.state))

    def telephony_status(self) -> dict[str, Any]:
        """(issue 13) For the monitor: the trunk's state (down and why) and what this host can carry."""
        status = getattr(self.r.tel, "trunk_status", None)
        cap = getattr(self.r.tel, "capacity_info", None)
        return {"trunk": status(self.r.trunk.name) if callable(status) else {},
                "capacity": cap() if callable(cap) else {}}
