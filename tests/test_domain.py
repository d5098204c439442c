"""The domain without a database: policy parsing, the entry lifecycle, calling hours and the callback window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialer.config import CampaignConfig, RetryConfig
from dialer.domain import entry as lifecycle
from dialer.domain.callbacks import CallbackTimeError, parse_callback
from dialer.domain.calling_hours import CallingHours
from dialer.domain.entry import BlockFacts, CustomerFacts, DispositionEffect, EntryFacts
from dialer.domain.legal import ABANDON_LIMIT, ABANDON_LOCK, EARLIEST_CALL, LATEST_CALL, MIN_RING_S
from dialer.domain.policy import CampaignPolicy
from dialer.domain.vocabulary import AbandonWindow, CallOutcome, Disposition, EntryStatus, Mode, Regime

JST = ZoneInfo("Asia/Tokyo")
AT = datetime(2026, 11, 24, 11, 0, tzinfo=JST)  # a Tuesday, 11:00 in Tokyo
POLICY = CampaignPolicy.of(CampaignConfig(name="t", holidays=""))


# ------------------------------------------------------------------------------ policy
def test_policy_parses_every_duration_and_enum_once() -> None:
    cc = CampaignConfig(name="p", mode="progressive", abandon_window="30d", abandon_regime="uk",
                        calling_hours=("10:00", "19:30"), callback_reserve="20m", callback_valid="2d",
                        retry=RetryConfig(busy="45m", machine="2h", invalid="done", abandoned="96h"))
    p = CampaignPolicy.of(cc)
    assert p.mode is Mode.PROGRESSIVE and p.abandon_window is AbandonWindow.DAYS_30 and p.abandon_regime is Regime.UK
    assert (p.hours.start, p.hours.end) == (time(10, 0), time(19, 30))
    assert p.callback_reserve == timedelta(minutes=20) and p.callback_valid == timedelta(days=2)
    assert p.retry.delay("busy") == timedelta(minutes=45) and p.retry.delay("no_answer") == timedelta(hours=4)
    assert p.retry.delay("nonsense") == timedelta(minutes=10)  # unknown outcomes retry like a failure
    assert p.retry.machine_delay == timedelta(hours=2) and p.retry.invalid_done
    assert p.retry.abandon_lock == timedelta(hours=96)
    assert CampaignPolicy.of(p) is p
    with pytest.raises(AttributeError):
        p.abandon_target = 0.5  # type: ignore[misc]


def test_policy_enforces_the_law_even_without_config_validation() -> None:
    assert (EARLIEST_CALL, LATEST_CALL, ABANDON_LIMIT, MIN_RING_S, ABANDON_LOCK) == (
        time(8), time(21), 0.03, 15.0, timedelta(hours=72))
    with pytest.raises(ValueError, match="abandon_target"):
        CampaignPolicy(name="x", abandon_target=0.04, abandon_limit=0.05)
    with pytest.raises(ValueError, match="ring_timeout_s"):
        CampaignPolicy(name="x", ring_timeout_s=10)
    wide = CallingHours.from_campaign(("06:00", "23:30"), "")
    assert (wide.start, wide.end) == (EARLIEST_CALL, LATEST_CALL)


# ------------------------------------------------------------------------------ entry lifecycle
def _entry(**kw: object) -> EntryFacts:
    base: dict[str, object] = {"id": 1, "customer_id": "C1", "segment": "dormant", "sku": "SKU-A",
                               "phones": ("+81312345678", "+81901234567"), "timezone": "Asia/Tokyo"}
    base.update(kw)
    return EntryFacts(**base)  # type: ignore[arg-type]


def test_judge_blocks_rotates_and_parks() -> None:
    e = _entry()
    ok = lifecycle.judge(e, AT, None, [], POLICY)
    assert ok.ok and ok.phone_index == 0 and ok.park is None
    # a dnc on the first number only: the second is used, and the flag is parked on the row
    v = lifecycle.judge(e, AT, None, [BlockFacts("dnc", phone_e164="+81312345678")], POLICY)
    assert v.ok and v.phone_index == 1 and v.park == {"phone_index": 1, "phone_flags": {"+81312345678": "dnc"}}
    # a dnc on the customer, a refusal of this product: blocked and parked
    v = lifecycle.judge(e, AT, None, [BlockFacts("dnc", customer_id="C1")], POLICY)
    assert not v.ok and v.park == {"status": "blocked", "status_reason": "blocked: dnc"}
    v = lifecycle.judge(e, AT, None, [BlockFacts("refusal", customer_id="C1", product_scope="SKU-A")], POLICY)
    assert not v.ok and v.why == "blocked: refusal (SKU-A)"
    # a refusal of another product does not stop this call (再勧誘の禁止 is per product)
    assert lifecycle.judge(e, AT, None, [BlockFacts("refusal", customer_id="C1", product_scope="SKU-B")], POLICY).ok
    # the 72 h lock after an abandon: not now, retried when it ends
    until = AT + timedelta(hours=5)
    v = lifecycle.judge(e, AT, None, [BlockFacts("abandon_lock", phone_e164="+81312345678", until=until)], POLICY)
    assert not v.ok and v.park == {"next_attempt_at": until}
    # an expired lock is no lock
    assert lifecycle.judge(e, AT, None, [BlockFacts("abandon_lock", phone_e164="+81312345678",
                                                    until=AT - timedelta(seconds=1))], POLICY).ok
    assert lifecycle.judge(e, AT, CustomerFacts(caution=True), [], POLICY).why == "customer caution flag"
    assert lifecycle.judge(e, AT, None, [], POLICY, in_control_group=True).park == {
        "status": "withdrawn", "status_reason": "suppressed: holdout"}
    used = _entry(attempts=6)
    assert lifecycle.judge(used, AT, None, [], POLICY).park == {"status": "exhausted",
                                                                "status_reason": "max attempts (6) reached"}


def test_judge_respects_calling_hours_unless_sandbox() -> None:
    night = AT.replace(hour=20, minute=30)
    e = _entry()
    v = lifecycle.judge(e, night, None, [], POLICY)
    assert not v.ok and "outside calling hours" in v.why and v.park is None  # not parked: it opens tomorrow
    assert lifecycle.judge(e, night, None, [], POLICY, respect_calling_hours=False).ok


@dataclass
class _Row:
    """A stored entry's mutable fields, as the store hands them to the lifecycle."""

    customer_id: str = "C1"
    sku: str = "SKU-A"
    phones: list[str] = field(default_factory=lambda: ["+81312345678", "+81901234567"])
    phone_index: int = 0
    attempts: int = 0
    attempts_by_phone: dict[str, int] = field(default_factory=dict)
    phone_flags: dict[str, str] = field(default_factory=dict)
    attempt_limit: int | None = None
    timezone: str = "Asia/Tokyo"
    status: str = "leased"
    status_reason: str = ""
    next_attempt_at: datetime | None = None
    lease_owner: str = "r1"
    lease_token: str = "tok"
    lease_expires_at: datetime | None = None
    current_attempt_id: int | None = 7
    callable_from: datetime | None = None
    callable_until: datetime | None = None
    callback_at: datetime | None = None
    callback_agent: str = ""
    callback_reserved_until: datetime | None = None
    callback_late: bool = False


def test_outcome_and_disposition_transitions() -> None:
    r = _Row()
    lifecycle.count_attempt(r, lifecycle.current_phone(r))
    assert r.attempts == 1 and r.attempts_by_phone == {"+81312345678": 1}
    nx = lifecycle.apply_outcome(r, "busy", AT.astimezone(UTC), None, POLICY)
    assert r.status == EntryStatus.PENDING and r.next_attempt_at == AT + timedelta(minutes=30) and nx.phone_index == 0
    assert (r.lease_owner, r.lease_token, r.current_attempt_id) == ("", "", None)
    # an abandon lock pushes the retry past the lock
    lock = AT + timedelta(hours=72)
    lifecycle.count_attempt(r, lifecycle.current_phone(r))
    lifecycle.apply_outcome(r, "busy", AT, lock, POLICY)
    assert r.next_attempt_at == lock
    # invalid number: the next one at once
    lifecycle.apply_outcome(r, "invalid", AT, None, POLICY)
    assert r.phone_index == 1 and r.phone_flags == {"+81312345678": "invalid"} and r.next_attempt_at == AT
    assert {d: lifecycle.disposition_effect(d) for d in Disposition} == {
        Disposition.SALE: DispositionEffect.FINISH, Disposition.UPSELL: DispositionEffect.FINISH,
        Disposition.CROSS_SELL: DispositionEffect.FINISH, Disposition.OTHER: DispositionEffect.FINISH,
        Disposition.CALLBACK: DispositionEffect.CALLBACK, Disposition.REFUSED: DispositionEffect.REFUSAL_BLOCK,
        Disposition.NO_INTEREST: DispositionEffect.REFUSAL_BLOCK, Disposition.DNC: DispositionEffect.DNC_BLOCK,
        Disposition.WRONG_NUMBER: DispositionEffect.AS_OUTCOME, Disposition.MACHINE: DispositionEffect.AS_OUTCOME}


def test_callback_gets_fresh_attempts_and_a_wider_window() -> None:
    r = _Row(attempts=6, attempts_by_phone={"+81312345678": 3}, callable_until=AT + timedelta(hours=1))
    when = AT + timedelta(days=1)
    lifecycle.schedule_callback(r, when, "a01", timedelta(minutes=15), POLICY)
    assert r.status == "pending" and r.next_attempt_at == when and r.callback_agent == "a01"
    assert r.callback_reserved_until == when + timedelta(minutes=15)
    assert r.callable_until == when + timedelta(days=7) and r.attempt_limit == 6 + 3 and r.attempts_by_phone == {}
    lifecycle.finish(r, "done", "sale")
    assert r.callback_at is None and r.next_attempt_at is None and r.status == "done"


@given(st.sampled_from([o.value for o in CallOutcome]), st.integers(0, 8), st.integers(1, 3))
def test_retry_never_exceeds_the_limits(outcome: str, attempts: int, n_phones: int) -> None:
    r = _Row(phones=[f"+8131234567{i}" for i in range(n_phones)], attempts=attempts)
    lifecycle.count_attempt(r, lifecycle.current_phone(r))
    nx = lifecycle.apply_outcome(r, outcome, AT, None, POLICY)
    if r.attempts >= POLICY.max_attempts:
        assert nx.status == "exhausted" and r.next_attempt_at is None
    if nx.status == "pending":
        assert r.next_attempt_at is not None and r.next_attempt_at >= AT


# ------------------------------------------------------------------------------ callbacks and calling hours
def test_callback_window_is_the_campaigns_own() -> None:
    """The console used to accept 20:30 while the campaign dials 09:00-20:00: the call happened next morning."""
    now = datetime(2026, 11, 24, 18, 0, tzinfo=JST)
    tz = "Asia/Tokyo"
    campaign = POLICY.hours  # 09:00-20:00
    assert parse_callback("20:30", now, tz).astimezone(JST).hour == 20  # the legal window alone allows it
    with pytest.raises(CallbackTimeError, match="outside calling hours 09:00-20:00"):
        parse_callback("20:30", now, tz, campaign)
    assert parse_callback("19:45", now, tz, campaign).astimezone(JST).time() == time(19, 45)
    with pytest.raises(CallbackTimeError, match="outside calling hours"):
        parse_callback("08:30", now, tz, campaign)  # legal, but before this campaign opens
    with pytest.raises(CallbackTimeError, match="future"):
        parse_callback("2026-11-24 10:00", now, tz, campaign)
    assert parse_callback("+1d", now, tz, campaign) == now + timedelta(days=1)


@given(st.integers(0, 23), st.integers(0, 59))
def test_a_callback_accepted_is_one_the_campaign_will_dial(h: int, m: int) -> None:
    now = datetime(2026, 11, 24, 6, 0, tzinfo=JST)
    try:
        when = parse_callback(f"{h:02d}:{m:02d}", now, "Asia/Tokyo", POLICY.hours)
    except CallbackTimeError:
        assert not POLICY.hours.contains(time(h, m))
        return
    assert POLICY.hours.is_open(when, ("Asia/Tokyo",))


def test_every_refusal_of_judge_carries_its_typed_cause() -> None:
    """Issue 28: callers decide on `Verdict.cause` (an enum), never on the wording of `why`."""
    from dialer.domain.entry import Ineligible

    e = _entry()
    lock = BlockFacts("abandon_lock", phone_e164="+81312345678", until=AT + timedelta(hours=2))
    cases = [
        (lifecycle.judge(e, AT, None, [], POLICY, in_control_group=True), Ineligible.HOLDOUT),
        (lifecycle.judge(e, AT, CustomerFacts(tel_ok=False), [], POLICY), Ineligible.CUSTOMER),
        (lifecycle.judge(_entry(attempts=99), AT, None, [], POLICY), Ineligible.MAX_ATTEMPTS),
        (lifecycle.judge(_entry(phones=()), AT, None, [], POLICY), Ineligible.NO_NUMBER),
        (lifecycle.judge(e, AT, None, [BlockFacts("dnc", customer_id="C1")], POLICY), Ineligible.BLOCKED),
        (lifecycle.judge(_entry(phones=("+81312345678",)), AT, None, [lock], POLICY), Ineligible.ABANDON_LOCK),
        (lifecycle.judge(e, AT.replace(hour=22), None, [], POLICY), Ineligible.CLOSED),
    ]
    for verdict, cause in cases:
        assert not verdict.ok and verdict.cause is cause, (verdict, cause)
    ok = lifecycle.judge(e, AT, None, [], POLICY)
    assert ok.ok and ok.cause is None
