"""The runner's store writes that must survive a store outage (issue 25): each goes through the StoreGuard, which
journals it locally while the store is down or full and replays it when it is back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialer.journal import JournalOp, Record, apply_record
from dialer.store import attempts as attempts_store
from dialer.store import outbox as outbox_store
from dialer.store.outbox import DispositionRecord

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class StoreWrites:
    """Why: the store down or full never costs a live call; every write a live call needs is one of these,
    with its journal op, so replay applies exactly what was missed."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def update_attempt(self, attempt_id: int, **fields: Any) -> None:
        self.r.guard.write(JournalOp.ATTEMPT, {"attempt_id": attempt_id, "fields": fields},
                           lambda: attempts_store.update_attempt(self.r.engine, attempt_id, **fields), None)

    def record_result(self, entry_id: int, outcome: str, at: datetime, *, abandoned: bool, phone_e164: str) -> None:
        self.r.guard.write(JournalOp.ENTRY_RESULT, {"entry_id": entry_id, "outcome": outcome, "at": at,
                                                    "abandoned": abandoned, "phone_e164": phone_e164},
                           lambda: self.r.hopper.record_result(entry_id, outcome, at, abandoned=abandoned,
                                                               phone_e164=phone_e164), None)

    def record_disposition(self, d: DispositionRecord) -> DispositionRecord:
        """The verdict and its outbox row; journalled (and returned without an id) while the store is away."""
        args = d.fields()
        return self.r.guard.write(JournalOp.DISPOSITION, args, lambda: outbox_store.record_disposition(self.r.engine, d),
                                  d)

    def not_an_attempt(self, attempt_id: int, entry_id: int, at: datetime) -> None:
        """The call never reached the contact (no slot, or the trunk's own failure such as refused
        credentials): drop the attempt row and give the entry back to the hopper untouched."""
        def do() -> None:
            attempts_store.delete_attempt(self.r.engine, attempt_id)
            self.r.hopper.release(entry_id, at)

        self.r.guard.write(JournalOp.NOT_AN_ATTEMPT, {"attempt_id": attempt_id, "entry_id": entry_id, "at": at},
                           do, None)

    def apply_journalled(self, rec: Record, conn: Any) -> None:
        apply_record(rec, conn, hopper=self.r.hopper, campaign_id=self.r.campaign_id,
                     state_logger=self.r.board.state_logger)

    def replay(self) -> None:
        """(issue 25) Writes a runner journalled during a store outage and could not replay before it ended."""
        n = self.r.guard.replay()
        if n:
            self.r._event("journal_replayed", f"{n} write(s) journalled by an earlier run during a store outage "
                                            f"replayed from {self.r.guard.journal.path}")
