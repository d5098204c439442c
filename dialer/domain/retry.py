"""What happens to a contact after a dial: when to try again, on which number, or whether to give up.

Pure decisions (no store, no clock): the hopper feeds in the entry's counters and the outcome and writes back
what comes out. Defaults follow the issue: busy 30 min, no answer 4 h, congestion 10 min, machine the next
day at a different hour (so a contact who is out every morning is tried in the afternoon), invalid or wrong
number -> the next phone at once, at most `max_attempts` per contact and `max_attempts_per_phone` per number,
moving down the list of numbers (best first) before giving up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dialer.domain.calling_hours import DEFAULT_ZONE, CallingHours, zone
from dialer.domain.policy import CampaignPolicy, CampaignSource, RetryRules
from dialer.domain.vocabulary import MACHINE_OUTCOMES, NOT_RETRY_OUTCOMES, CallOutcome

OUTCOMES = tuple(o.value for o in CallOutcome if o not in NOT_RETRY_OUTCOMES)
BAD_NUMBER = ("invalid", "wrong_number")


@dataclass
class Counters:
    """The part of a call-list entry the retry rules read and change."""

    phones: list[str]
    phone_index: int = 0
    attempts: int = 0
    attempts_by_phone: dict[str, int] = field(default_factory=dict)
    phone_flags: dict[str, str] = field(default_factory=dict)
    attempt_limit: int | None = None


@dataclass(frozen=True)
class Next:
    status: str  # pending | exhausted
    next_attempt_at: datetime | None
    phone_index: int
    phone_flags: dict[str, str]
    reason: str


def usable_phone(c: Counters, per_phone_max: int, prefer: int | None = None) -> int | None:
    """The number to dial next: PREFER if still usable, else the best (lowest index) one still usable."""
    def ok(i: int) -> bool:
        p = c.phones[i]
        return bool(p) and p not in c.phone_flags and c.attempts_by_phone.get(p, 0) < per_phone_max

    if prefer is not None and 0 <= prefer < len(c.phones) and ok(prefer):
        return prefer
    for i in range(len(c.phones)):
        if ok(i):
            return i
    return None


def machine_retry(at: datetime, rules: RetryRules, hours: CallingHours, tz_name: str) -> datetime:
    """Next day, shifted by `machine_shift` inside the local calling day (wrapping), so the hour differs."""
    if rules.machine_delay is not None:
        return at + rules.machine_delay
    tz = zone(tz_name) or ZoneInfo(DEFAULT_ZONE)
    local = at.astimezone(tz)
    start = datetime.combine(local.date(), hours.start, tz)
    span = (datetime.combine(local.date(), hours.end, tz) - start).total_seconds()
    offset = min(max((local - start).total_seconds(), 0.0), max(span - 60, 0.0))
    shift = rules.machine_shift.total_seconds()
    new_offset = (offset + shift) % span if span > 0 else 0.0
    next_day = datetime.combine(local.date() + timedelta(days=1), hours.start, tz)
    when = (next_day + timedelta(seconds=new_offset)).astimezone(at.tzinfo)
    # a short Saturday, a closed Sunday or the centre's closure days: the next calling slot from there
    return hours.next_open(when, (tz_name,)) or when


def retry_at(outcome: str, at: datetime, campaign: CampaignPolicy | CampaignSource,
             tz_name: str = DEFAULT_ZONE) -> datetime:
    """When an entry whose last dial ended with OUTCOME may be dialled again."""
    policy = CampaignPolicy.of(campaign)
    if outcome in MACHINE_OUTCOMES:  # a message left is retried like any machine
        return machine_retry(at, policy.retry, policy.hours, tz_name)
    return at + policy.retry.delay(outcome)


def decide(outcome: str, at: datetime, c: Counters, campaign: CampaignPolicy | CampaignSource,
           tz_name: str = DEFAULT_ZONE) -> Next:
    """The entry's next state after a dial whose attempt is already counted in C."""
    campaign = CampaignPolicy.of(campaign)
    per_phone = campaign.max_attempts_per_phone
    flags = dict(c.phone_flags)
    current = c.phones[c.phone_index] if 0 <= c.phone_index < len(c.phones) else ""
    if outcome in BAD_NUMBER:
        if current:
            flags[current] = outcome
        if campaign.retry.invalid_done and outcome == CallOutcome.INVALID:
            return Next("exhausted", None, c.phone_index, flags, "invalid number (retry.invalid = done)")
        nxt = usable_phone(Counters(c.phones, c.phone_index, c.attempts, c.attempts_by_phone, flags), per_phone)
        if nxt is None:
            return Next("exhausted", None, c.phone_index, flags, f"{outcome}: no usable number left")
        limit = c.attempt_limit or campaign.max_attempts
        if c.attempts >= limit:
            return Next("exhausted", None, nxt, flags, f"max attempts ({limit}) reached")
        return Next("pending", at, nxt, flags, f"{outcome}: next number")
    limit = c.attempt_limit or campaign.max_attempts
    if c.attempts >= limit:
        return Next("exhausted", None, c.phone_index, flags, f"max attempts ({limit}) reached")
    when = retry_at(outcome, at, campaign, tz_name)
    nxt = usable_phone(Counters(c.phones, c.phone_index, c.attempts, c.attempts_by_phone, flags), per_phone,
                       prefer=c.phone_index)
    if nxt is None:
        return Next("exhausted", None, c.phone_index, flags, f"every number tried {per_phone} times")
    why = f"retry after {outcome}" + (" on the next number" if nxt != c.phone_index else "")
    return Next("pending", when, nxt, flags, why)


__all__ = ["OUTCOMES", "Counters", "Next", "decide", "machine_retry", "retry_at", "usable_phone"]
