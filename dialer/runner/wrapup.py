"""Dispositions and wrap-up: keypad (DTMF) dispositions and callbacks, console dispositions, the end of wrap-up
(and of a nailed-up agent's wrap-up)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from dialer.domain.callbacks import callback_slot
from dialer.domain.calling_hours import contact_zones
from dialer.domain.dtmf import CALLBACK_MOVED_TONE, DtmfDecodeError, decode
from dialer.domain.vocabulary import AgentState, Disposition, DispositionSource
from dialer.journal import JournalOp
from dialer.runner.state import Live, utc
from dialer.store import attempts as attempts_store
from dialer.store import outbox as outbox_store
from dialer.store.outbox import DispositionRecord

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class WrapUp:
    """Why: a call's verdict comes from three places (keypad, console, timeout) and must be applied once; the
    keypad's callback obeys the one callback rule (domain.callbacks) and says "moved" with a tone."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def dtmf_disposition(self, call: Live, keys: str, at: float) -> None:
        try:
            d = decode(keys)
        except DtmfDecodeError as exc:
            self.r._event("dtmf_error", f"attempt {call.attempt_id}: {exc}", "warning")
            return
        cb = utc(at) + timedelta(hours=d.callback_hours) if d.outcome == Disposition.CALLBACK else None
        if cb is not None:  # (issues 25, 27) the one callback rule; the keypad has no screen: a tone says "moved"
            cb, moved = callback_slot(cb, self.r.policy.hours, contact_zones(call.phone))
            if moved:
                self.r.tel.agent_tone(call.attempt_id, CALLBACK_MOVED_TONE)
                self.r._event("callback_moved", f"attempt {call.attempt_id}: keyed callback outside calling hours, "
                                              f"booked for the next calling slot {cb.isoformat()}")
        row = self.r.writes.record_disposition(DispositionRecord(
            attempt_id=call.attempt_id, agent_id=call.agent_id, customer_id=call.customer_id,
            campaign_id=self.r.campaign_id, outcome=d.outcome, amount=d.amount, sku=call.sku,
            reason_code=d.reason_code, callback_at=cb, source="dtmf"))
        # not via last_disposition_id: a console row with a lower id may not have been read yet
        self.r.applied_here.add(int(row.id or 0))
        self.r._apply_disposition(row, at)

    def apply_dispositions(self, now: float) -> None:
        """Dispositions typed in agent consoles (other processes) since the last tick."""
        rows = outbox_store.dispositions_after(self.r.engine, self.r.last_disposition_id)
        for row in rows:
            self.r.last_disposition_id = max(self.r.last_disposition_id, int(row.id or 0))
            if int(row.id or 0) in self.r.applied_here:
                self.r.applied_here.discard(int(row.id or 0))
                continue
            if row.campaign_id not in (None, self.r.campaign_id) or row.source == DispositionSource.NETWORK:
                continue  # another campaign's, or a bad-number report (the attempt's result is already applied)
            self.r._apply_disposition(row, now)

    def apply_disposition(self, row: DispositionRecord, now: float) -> None:
        entry_id = None
        agent_login = ""
        live = self.r.live.get(row.attempt_id) if row.attempt_id is not None else None
        if live is not None:
            live.disposed = True
            entry_id = live.entry_id
        else:
            entry_id = attempts_store.entry_of(self.r.engine, row.attempt_id)
        if row.agent_id is not None and row.agent_id in self.r.board.agents:
            agent_login = self.r.board.agents[row.agent_id].login
        if entry_id is not None:
            at, eid = utc(now), entry_id
            self.r.guard.write(JournalOp.ENTRY_DISPOSITION,
                               {"entry_id": eid, "outcome": row.outcome, "at": at, "callback_at": row.callback_at,
                                "agent_login": agent_login, "sku": row.sku},
                               lambda: self.r.hopper.apply_disposition(eid, row.outcome, at, callback_at=row.callback_at,
                                                                       agent_login=agent_login, sku=row.sku), None)
        self.r._count(f"disposition_{row.outcome}")
        if row.agent_id is not None and row.agent_id in self.r.wraps:
            self.end_wrap(row.agent_id, now)

    def end_wrap(self, agent_id: int, now: float) -> None:
        w = self.r.wraps.pop(agent_id, None)
        if w is None:
            return
        self.r.pacer.record_handle(w.talk_s, self.r.age(w.started_mono, now - w.started))
        self.r.board.set_state(agent_id, self.r.legs.after_wrap(agent_id) if self.r.legs else "ready", utc(now))

    def end_wraps(self, now: float) -> None:
        for agent_id, w in list(self.r.wraps.items()):
            if self.r.age(w.started_mono, now - w.started) >= self.r.policy.wrap_up_timeout_s:
                self.r._event("wrap_timeout", f"agent {agent_id} wrap-up timed out without a disposition")
                self.end_wrap(agent_id, now)
        # unavailable agents get another chance after a minute (a softphone that was restarted)
        for a in list(self.r.board.agents.values()):
            if a.state == AgentState.UNAVAILABLE and self.r.state_age(a.id, a.state_since, now) >= 60:
                self.r.board.set_state(a.id, "ready", utc(now))
