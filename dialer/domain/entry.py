"""A call-list entry's life: may it be dialled now (and if not, why), and what a dial or a disposition does to it.

Pure: the store (dialer.store.entries) reads rows into these shapes, asks, and writes the answer back.

    pending --lease--> leased --mark_dialing--> dialing --result--> pending (retry) | exhausted | done
    any --disposition--> done (sale, refusal, dnc, ...) | pending (callback, wrong number, machine)
    pending --judge--> blocked | exhausted   (parked so it is not examined again)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from dialer.domain.callbacks import callback_slot
from dialer.domain.calling_hours import contact_zones
from dialer.domain.policy import CampaignPolicy
from dialer.domain.retry import Counters, Next, decide, usable_phone
from dialer.domain.vocabulary import BlockKind, Disposition, EntryStatus

NO_END_HOURS = 720.0  # an entry without callable_until ranks as if its window closed in 30 days


def aware(dt: datetime) -> datetime:
    """The store hands back aware UTC; a naive value (raw SQL, old rows) is taken to be UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def need_aware(dt: datetime) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"the hopper needs aware datetimes, got naive {dt.isoformat()}")


@dataclass(frozen=True)
class EntryFacts:
    """What the dialability rules read of an entry."""

    id: int
    customer_id: str
    segment: str = ""
    sku: str = ""
    phones: tuple[str, ...] = ()
    phone_index: int = 0
    attempts: int = 0
    attempts_by_phone: dict[str, int] = field(default_factory=dict)
    phone_flags: dict[str, str] = field(default_factory=dict)
    attempt_limit: int | None = None
    timezone: str = ""
    priority: float = 0.0
    callable_from: datetime | None = None
    callable_until: datetime | None = None
    callback_at: datetime | None = None
    callback_late: bool = False
    last_outcome: str = ""


@dataclass(frozen=True)
class BlockFacts:
    kind: str
    phone_e164: str | None = None
    customer_id: str | None = None
    product_scope: str = ""
    until: datetime | None = None


@dataclass(frozen=True)
class CustomerFacts:
    tel_ok: bool = True
    withdrawn: bool = False
    caution: bool = False
    prefecture: str = ""


class Ineligible(StrEnum):
    """Why an entry may not be dialled now, as a type: callers decide on this, never on `why`'s wording."""

    HOLDOUT = "holdout"  # the customer is in a hold-out control group being measured
    CUSTOMER = "customer"  # tel_ok=0, withdrawn or caution on the customer
    MAX_ATTEMPTS = "max_attempts"
    NO_NUMBER = "no_number"  # every number used up or blocked
    BLOCKED = "blocked"  # a do-not-call / refusal / no-consent block for the customer
    ABANDON_LOCK = "abandon_lock"  # abandoned recently: not again until the lock ends
    CLOSED = "closed"  # outside calling hours, a holiday or the centre's closure day


@dataclass
class Verdict:
    """Dialable or not; `cause` says why not (typed), `why` in words; `park` is what to write so the row is
    not re-examined."""

    ok: bool
    phone_index: int = 0
    why: str = ""
    park: dict[str, object] | None = None
    cause: Ineligible | None = None


def blocks_for(entry: EntryFacts, phone: str, blocks: Sequence[BlockFacts], at: datetime) -> list[BlockFacts]:
    """The blocks in force at AT for this entry on PHONE (a refusal only for its own product, if scoped)."""
    out = []
    for b in blocks:
        if b.until is not None and aware(b.until) <= at:
            continue
        by_phone = bool(b.phone_e164) and b.phone_e164 == phone
        by_customer = bool(b.customer_id) and b.customer_id == entry.customer_id
        if not (by_phone or by_customer):
            continue
        if b.kind == BlockKind.REFUSAL and b.product_scope and b.product_scope != entry.sku:
            continue
        out.append(b)
    return out


def judge(entry: EntryFacts, at: datetime, customer: CustomerFacts | None, blocks: Sequence[BlockFacts],
          policy: CampaignPolicy, *, respect_calling_hours: bool = True, in_control_group: bool = False) -> Verdict:
    """Can ENTRY be dialled at AT? If not, why, and what to write so it is not re-examined.

    IN_CONTROL_GROUP: the customer is in the hold-out control group of the entry's segment (never dialled).
    """
    if in_control_group:
        return Verdict(False, why="holdout: control group", cause=Ineligible.HOLDOUT,
                       park={"status": EntryStatus.WITHDRAWN.value, "status_reason": "suppressed: holdout"})
    cust = customer
    if cust is not None and (not cust.tel_ok or cust.withdrawn or cust.caution):
        flag = "tel_ok=0" if not cust.tel_ok else "withdrawn" if cust.withdrawn else "caution flag"
        return Verdict(False, why=f"customer {flag}", cause=Ineligible.CUSTOMER,
                       park={"status": EntryStatus.BLOCKED.value, "status_reason": f"customer {flag}"})
    limit = entry.attempt_limit or policy.max_attempts
    if entry.attempts >= limit:
        return Verdict(False, why=f"max attempts ({limit}) reached", cause=Ineligible.MAX_ATTEMPTS,
                       park={"status": EntryStatus.EXHAUSTED.value, "status_reason": f"max attempts ({limit}) reached"})
    counters = Counters(list(entry.phones), entry.phone_index, entry.attempts, dict(entry.attempts_by_phone),
                        dict(entry.phone_flags), entry.attempt_limit)
    while True:
        idx = usable_phone(counters, policy.max_attempts_per_phone, prefer=counters.phone_index)
        if idx is None:
            return Verdict(False, why="no usable number left", cause=Ineligible.NO_NUMBER,
                           park={"status": EntryStatus.EXHAUSTED.value, "status_reason": "no usable number left",
                                 "phone_flags": counters.phone_flags})
        phone = counters.phones[idx]
        hits = blocks_for(entry, phone, blocks, at)
        permanent = [b for b in hits if b.kind != BlockKind.ABANDON_LOCK]
        customer_wide = [b for b in permanent if b.kind == BlockKind.REFUSAL
                         or (b.customer_id == entry.customer_id and b.customer_id)]
        if customer_wide:
            b = customer_wide[0]
            why = f"{b.kind}" + (f" ({b.product_scope})" if b.product_scope else "")
            return Verdict(False, why=f"blocked: {why}", cause=Ineligible.BLOCKED,
                           park={"status": EntryStatus.BLOCKED.value, "status_reason": f"blocked: {why}"})
        if permanent:  # dnc / no_consent on this number only: try the next number
            counters.phone_flags[phone] = permanent[0].kind
            counters.phone_index = idx
            continue
        locks = [b.until for b in hits if b.kind == BlockKind.ABANDON_LOCK and b.until is not None]
        if locks:
            until = max(aware(u) for u in locks)
            return Verdict(False, why=f"abandon lock until {until.isoformat()}", park={"next_attempt_at": until},
                           cause=Ineligible.ABANDON_LOCK)
        break
    if respect_calling_hours:
        closed = closed_reason(entry, phone, at, customer, policy)
        if closed:
            return Verdict(False, why=closed, cause=Ineligible.CLOSED)
    park: dict[str, object] | None = None
    if idx != entry.phone_index or counters.phone_flags != dict(entry.phone_flags):
        park = {"phone_index": idx, "phone_flags": counters.phone_flags}
    return Verdict(True, phone_index=idx, park=park)


CUSTOMER_REST = timedelta(hours=24)  # after a finished entry's last call, the customer's other entries wait this long


@dataclass(frozen=True)
class SiblingFacts:
    """Another entry of the same customer (another segment of the same list): what the rest rule reads."""

    entry_id: int
    status: str
    lease_expires_at: datetime | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None


def customer_resting(entry: EntryFacts, siblings: Sequence[SiblingFacts], at: datetime) -> str | None:
    """Why the customer must not be called for ENTRY now because of their other entries, or None.

    Why: a customer in two segments (pre_churn and cross_sell) is one person with one phone and two entries;
    the retry rules hold per entry, so without this a "busy" on one entry let the other ring the same number
    minutes later. One customer, one call at a time; an entry's retry delay holds for the customer; a finished
    entry's last call rests the customer for CUSTOMER_REST. A callback an agent booked is exempt (it was asked for).
    """
    if entry.callback_at is not None and aware(entry.callback_at) <= at:
        return None
    for s in siblings:
        if s.entry_id == entry.id:
            continue
        if s.status == EntryStatus.DIALING:
            return f"the customer is on a call for entry {s.entry_id}"
        if s.status == EntryStatus.LEASED and s.lease_expires_at is not None and aware(s.lease_expires_at) > at:
            return f"the customer's entry {s.entry_id} is leased to a dialer"
        if s.last_attempt_at is None:
            continue
        if (s.status in (EntryStatus.PENDING, EntryStatus.LEASED) and s.next_attempt_at is not None
                and aware(s.next_attempt_at) > at):
            return f"the customer rests until {aware(s.next_attempt_at).isoformat()} (entry {s.entry_id}'s retry delay)"
        if s.status in (EntryStatus.DONE, EntryStatus.EXHAUSTED) and at - aware(s.last_attempt_at) < CUSTOMER_REST:
            return f"the customer was called for entry {s.entry_id} in the last {human(CUSTOMER_REST)}"
    return None


def closed_reason(entry: EntryFacts, phone: str, at: datetime, customer: CustomerFacts | None,
                  policy: CampaignPolicy) -> str | None:
    """None when the contact's local time is inside the campaign's hours in every zone it may be in."""
    zones = contact_zones(phone, entry.timezone or "", customer.prefecture if customer is not None else "")
    return policy.hours.closed_reason(at, zones)


def due_because(entry: EntryFacts, at: datetime, policy: CampaignPolicy) -> tuple[str, bool]:
    """Why the entry is offered now (shown by `hopper preview`), and whether it is a late callback."""
    if entry.callback_at is not None and aware(entry.callback_at) <= at:
        cb = aware(entry.callback_at)
        late = bool(entry.callback_late) or at - cb > policy.callback_late_after
        if late:
            return f"callback_late (due {cb.isoformat()}, {human(at - cb)} late)", True
        return f"callback (due {cb.isoformat()})", False
    if entry.callable_until is not None:
        left = aware(entry.callable_until) - at
        if left <= timedelta(hours=24):
            return f"window_closing (closes in {human(left)})", False
    if entry.attempts:
        return f"retry (after {entry.last_outcome or 'a previous attempt'})", False
    if entry.callable_from is not None:
        return f"window_open (since {aware(entry.callable_from).isoformat()})", False
    return "window_open", False


def score(entry: EntryFacts, at: datetime) -> float:
    """Urgency weighted by value: priority / hours until the window closes (at least 1)."""
    if entry.callable_until is None:
        hours = NO_END_HOURS
    else:
        hours = max(1.0, (aware(entry.callable_until) - at).total_seconds() / 3600.0)
    return float(entry.priority) / hours


# ------------------------------------------------------------------------------ what happens to an entry


class MutableEntry(Protocol):
    """The fields of a stored entry that a dial result, a disposition or a callback rewrite."""

    customer_id: str
    sku: str
    phones: list[str]
    phone_index: int
    attempts: int
    attempts_by_phone: dict[str, int]
    phone_flags: dict[str, str]
    attempt_limit: int | None
    timezone: str
    status: str
    status_reason: str
    next_attempt_at: datetime | None
    lease_owner: str
    lease_token: str
    lease_expires_at: datetime | None
    current_attempt_id: int | None
    callable_from: datetime | None
    callable_until: datetime | None
    callback_at: datetime | None
    callback_agent: str
    callback_reserved_until: datetime | None
    callback_late: bool


class DispositionEffect(StrEnum):
    """What a disposition does to the entry (and which block it leaves behind)."""

    FINISH = "finish"  # sale, upsell, cross_sell, other, anything new: the contact is dealt with
    CALLBACK = "callback"  # due at the agreed time, held for the agent
    REFUSAL_BLOCK = "refusal_block"  # done + a permanent refusal for the product (再勧誘の禁止)
    DNC_BLOCK = "dnc_block"  # done + do-not-call on the number and the customer, at once
    AS_OUTCOME = "as_outcome"  # wrong number / machine: as the dial outcome of that name


def disposition_effect(outcome: str) -> DispositionEffect:
    if outcome == Disposition.CALLBACK:
        return DispositionEffect.CALLBACK
    if outcome in (Disposition.REFUSED, Disposition.NO_INTEREST):
        return DispositionEffect.REFUSAL_BLOCK
    if outcome == Disposition.DNC:
        return DispositionEffect.DNC_BLOCK
    if outcome in (Disposition.WRONG_NUMBER, Disposition.MACHINE):
        return DispositionEffect.AS_OUTCOME
    return DispositionEffect.FINISH


def current_phone(e: MutableEntry) -> str:
    return e.phones[e.phone_index] if 0 <= e.phone_index < len(e.phones) else ""


def count_attempt(e: MutableEntry, phone: str) -> None:
    """A dial is about to leave (or left without being marked): it counts against the contact and the number."""
    abp = dict(e.attempts_by_phone or {})
    abp[phone] = abp.get(phone, 0) + 1
    e.attempts_by_phone = abp
    e.attempts += 1


def uncount_attempt(e: MutableEntry, phone: str) -> None:
    abp = dict(e.attempts_by_phone or {})
    abp[phone] = max(0, abp.get(phone, 0) - 1)
    e.attempts_by_phone = abp
    e.attempts = max(0, e.attempts - 1)


def release_lease(e: MutableEntry) -> None:
    e.lease_owner, e.lease_token, e.lease_expires_at = "", "", None
    e.current_attempt_id = None


def clear_callback(e: MutableEntry) -> None:
    e.callback_at = None
    e.callback_agent = ""
    e.callback_reserved_until = None
    e.callback_late = False


def finish(e: MutableEntry, status: str, why: str) -> None:
    e.status, e.status_reason = status, why
    e.next_attempt_at = None
    release_lease(e)
    clear_callback(e)


def apply_outcome(e: MutableEntry, outcome: str, at: datetime, lock_until: datetime | None,
                  policy: CampaignPolicy) -> Next:
    """The retry rules after a dial (attempt already counted); an abandon lock pushes the retry past it."""
    c = Counters(list(e.phones or []), e.phone_index, e.attempts, dict(e.attempts_by_phone or {}),
                 dict(e.phone_flags or {}), e.attempt_limit)
    nx = decide(outcome, at, c, policy, e.timezone or "Asia/Tokyo")
    e.status, e.phone_index, e.phone_flags = nx.status, nx.phone_index, nx.phone_flags
    e.status_reason = nx.reason
    nxt = nx.next_attempt_at
    if lock_until is not None and nxt is not None and nxt < lock_until:
        nxt = lock_until
    e.next_attempt_at = nxt
    release_lease(e)
    return nx


def schedule_callback(e: MutableEntry, when: datetime, agent: str, reserve: timedelta,
                      policy: CampaignPolicy) -> datetime:
    """Make the entry due at WHEN, held for AGENT; the customer asked for it, so it gets fresh attempts.

    WHEN goes through the one callback rule (`callbacks.callback_slot`): a time the campaign cannot call (outside
    that day's hours in the contact's zones, a holiday, a closure day) is moved to the next calling slot.
    Returns the time booked."""
    need_aware(when)
    when, _moved = callback_slot(when, policy.hours, contact_zones(current_phone(e), e.timezone or ""))
    e.callback_at = when
    e.callback_agent = agent
    e.callback_reserved_until = when + reserve if agent else None
    e.callback_late = False
    e.next_attempt_at = when
    if e.status != EntryStatus.BLOCKED:
        e.status = EntryStatus.PENDING.value
        e.status_reason = "callback"
    if e.callable_from is not None and aware(e.callable_from) > when:
        e.callable_from = when
    if e.callable_until is None or aware(e.callable_until) < when + policy.callback_valid:
        e.callable_until = when + policy.callback_valid
    e.attempt_limit = max(e.attempt_limit or policy.max_attempts, e.attempts + policy.max_attempts_per_phone)
    e.attempts_by_phone = {}
    release_lease(e)
    return when


def human(td: timedelta) -> str:
    s = max(0, int(td.total_seconds()))
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


__all__ = [
    "BlockFacts",
    "CustomerFacts",
    "DispositionEffect",
    "EntryFacts",
    "MutableEntry",
    "Verdict",
    "apply_outcome",
    "aware",
    "blocks_for",
    "clear_callback",
    "closed_reason",
    "count_attempt",
    "current_phone",
    "disposition_effect",
    "due_because",
    "finish",
    "judge",
    "need_aware",
    "release_lease",
    "schedule_callback",
    "score",
    "uncount_attempt",
]
