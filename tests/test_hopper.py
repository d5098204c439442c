"""The hopper with an injected clock: windows, hours, retries, rotation, locks, callbacks, recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import CampaignConfig
from dialer.store.db import dispose_engines, get_engine
from dialer.store.entries import Hopper
from dialer.store.models import Attempt, Block, CallListEntry, Customer

# Tuesday 2026-11-24 11:00 JST; the day before (Mon 23rd) is 勤労感謝の日
TUE_11 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
JST_OFFSET = timedelta(hours=9)


def jst(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - JST_OFFSET


def add_entry(engine: Engine, customer_id: str, *, segment: str = "dormant", phones: list[str] | None = None,
              priority: float = 1.0, start: datetime | None = None, end: datetime | None = None,
              timezone: str = "Asia/Tokyo", sku: str = "", no_end: bool = False, **extra: Any) -> int:
    with Session(engine) as s:
        e = CallListEntry(customer_id=customer_id, segment=segment, reason=f"test {customer_id}",
                          phones=phones or ["+819012340000"], priority=priority,
                          callable_from=start if start is not None else TUE_11 - timedelta(days=2),
                          callable_until=None if no_end else end if end is not None else TUE_11 + timedelta(days=10),
                          timezone=timezone, sku=sku, **extra)
        s.add(e)
        s.commit()
        s.refresh(e)
        assert e.id is not None
        return e.id


def entry(engine: Engine, entry_id: int) -> CallListEntry:
    with Session(engine) as s:
        e = s.get(CallListEntry, entry_id)
        assert e is not None
        return e


def dial(h: Hopper, at: datetime, outcome: str, *, n: int = 1, abandoned: bool = False) -> list[int]:
    """Lease, dial and finish up to N entries with OUTCOME; returns the entry ids dialled."""
    leases = h.lease(n, "t", at)
    for lz in leases:
        assert h.check_dialable(lz.entry_id, lz.phone_e164, at) is None
        h.mark_dialing(lz.entry_id, 1000 + lz.entry_id, at)
        h.record_result(lz.entry_id, outcome, at + timedelta(seconds=20), abandoned=abandoned,
                        phone_e164=lz.phone_e164)
    return [lz.entry_id for lz in leases]


@pytest.fixture()
def engine(db_url: str) -> Engine:
    return get_engine(db_url)


@pytest.fixture()
def cc() -> CampaignConfig:
    return CampaignConfig(name="t")


def ids(h: Hopper, at: datetime) -> list[int]:
    return [i.entry_id for i in h.preview(at, limit=100)]


# ---------------------------------------------------------------- windows and hours
def test_window_opens_and_closes_on_the_right_day(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1", start=jst(2026, 11, 26, 0), end=jst(2026, 11, 28, 0))  # Thu..Fri
    h = Hopper(engine, cc)
    assert eid not in ids(h, jst(2026, 11, 25, 19, 59))  # Wednesday: not yet
    assert eid in ids(h, jst(2026, 11, 26, 9, 0))  # Thursday when hours open
    assert eid in ids(h, jst(2026, 11, 27, 19, 59))  # Friday, last minute of the hours
    assert eid not in ids(h, jst(2026, 11, 28, 10, 0))  # Saturday: the window has closed


def test_calling_hours_and_holiday(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1", start=jst(2026, 11, 20, 0), end=jst(2026, 12, 5, 0))
    h = Hopper(engine, cc)
    assert ids(h, jst(2026, 11, 24, 8, 59)) == []
    assert ids(h, jst(2026, 11, 24, 9, 0)) == [eid]
    assert ids(h, jst(2026, 11, 24, 20, 0)) == []
    assert ids(h, jst(2026, 11, 24, 21, 30)) == []
    assert ids(h, jst(2026, 11, 23, 11, 0)) == []  # 勤労感謝の日
    assert h.lease(5, "t", jst(2026, 11, 23, 11, 0)) == []
    assert "holiday" in (h.check_dialable(eid, "+819012340000", jst(2026, 11, 23, 11)) or "")
    # no holiday calendar: the same Monday is an ordinary day
    assert ids(Hopper(engine, CampaignConfig(name="t", holidays="")), jst(2026, 11, 23, 11, 0)) == [eid]
    # the sandbox switch skips hours and holidays, nothing else
    sandbox = Hopper(engine, cc, respect_calling_hours=False)
    assert ids(sandbox, jst(2026, 11, 23, 23, 0)) == [eid]
    assert ids(sandbox, jst(2026, 12, 6, 12, 0)) == []  # the window still applies


def test_calling_hours_follow_the_numbers_time_zone(engine: Engine, cc: CampaignConfig) -> None:
    # a New York number (entry zone set by the builder to New York as well)
    ny = add_entry(engine, "us1", phones=["+12125550123"], timezone="America/New_York")
    jp = add_entry(engine, "jp1")
    h = Hopper(engine, cc)
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 10:00 in New York, 00:00 in Tokyo
    assert ids(h, at) == [ny]
    assert ids(h, TUE_11) == [jp]  # 11:00 Tokyo is 21:00 the night before in New York
    # a number whose zone disagrees with the entry's: both must be open (the conservative reading)
    both = add_entry(engine, "mix", phones=["+12125550199"], timezone="Asia/Tokyo")
    assert both not in ids(h, at) and both not in ids(h, TUE_11)


def test_order_callbacks_first_then_urgency_weighted_by_priority(engine: Engine, cc: CampaignConfig) -> None:
    at = TUE_11
    a = add_entry(engine, "a", priority=10, end=at + timedelta(hours=2))  # 10 / 2 = 5
    b = add_entry(engine, "b", priority=100, end=at + timedelta(hours=100))  # 1
    c = add_entry(engine, "c", priority=100, end=at + timedelta(hours=10))  # 10
    d = add_entry(engine, "d", priority=3, end=at + timedelta(minutes=20))  # 3 / max(1, 1/3) = 3
    e = add_entry(engine, "e", priority=1000, no_end=True)  # no end -> 720 h -> 1.39
    f = add_entry(engine, "f", priority=0.1, end=at + timedelta(days=5))
    h = Hopper(engine, cc)
    cb = h.set_callback("f", "dormant", at - timedelta(minutes=1))
    assert cb == f
    assert ids(h, at) == [f, c, a, d, e, b]
    leases = h.lease(6, "x", at)
    assert [lz.entry_id for lz in leases] == [f, c, a, d, e, b]
    assert leases[0].due_because.startswith("callback")


# ---------------------------------------------------------------- retries, rotation, limits
@pytest.mark.parametrize(("outcome", "delay"), [("busy", timedelta(minutes=30)), ("no_answer", timedelta(hours=4)),
                                                ("congestion", timedelta(minutes=10)),
                                                ("interrupted", timedelta(minutes=30)),
                                                ("rejected", timedelta(days=1))])
def test_retry_spacing_per_outcome(engine: Engine, cc: CampaignConfig, outcome: str, delay: timedelta) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 10, 0)
    assert dial(h, at, outcome) == [eid]
    ended = at + timedelta(seconds=20)
    e = entry(engine, eid)
    assert e.status == "pending" and e.attempts == 1 and e.next_attempt_at == ended + delay
    assert h.lease(1, "t", ended + delay - timedelta(seconds=1)) == []
    assert [lz.entry_id for lz in h.lease(1, "t", ended + delay)] == [eid]


def test_machine_retries_next_day_at_a_different_hour(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 10, 0)
    dial(h, at, "machine")
    nxt = entry(engine, eid).next_attempt_at
    assert nxt is not None
    local = nxt + JST_OFFSET
    assert local.date() == datetime(2026, 11, 25).date() and local.hour != 10 and 9 <= local.hour < 20
    # late in the day the shift wraps inside the calling hours
    eid2 = add_entry(engine, "c2")
    at2 = jst(2026, 11, 24, 19, 0)
    dial(h, at2, "machine")
    local2 = entry(engine, eid2).next_attempt_at + JST_OFFSET  # type: ignore[operator]
    assert local2.date() == datetime(2026, 11, 25).date() and local2.hour != 19 and 9 <= local2.hour < 20


def test_max_attempts_and_phone_rotation(engine: Engine) -> None:
    cc = CampaignConfig(name="t", max_attempts=5, max_attempts_per_phone=2)
    phones = ["+819011110000", "+819022220000", "+81311112222"]
    eid = add_entry(engine, "c1", phones=phones)
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 9, 0)
    dialled: list[str] = []
    for _ in range(10):
        leases = h.lease(1, "t", at)
        if not leases:
            at += timedelta(minutes=31)
            if at > jst(2026, 11, 24, 19, 0):
                break
            continue
        lz = leases[0]
        dialled.append(lz.phone_e164)
        h.mark_dialing(lz.entry_id, 1, at)
        h.record_result(lz.entry_id, "busy", at)
    assert dialled == [phones[0], phones[0], phones[1], phones[1], phones[2]]
    e = entry(engine, eid)
    assert e.status == "exhausted" and e.attempts == 5 and "max attempts" in e.status_reason


def test_every_number_used_up_gives_exhausted(engine: Engine) -> None:
    cc = CampaignConfig(name="t", max_attempts=6, max_attempts_per_phone=1)
    eid = add_entry(engine, "c1", phones=["+819011110000", "+819022220000"])
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 9, 0)
    dial(h, at, "no_answer")
    dial(h, at + timedelta(hours=5), "no_answer")
    e = entry(engine, eid)
    assert e.status == "exhausted" and e.attempts == 2 and "every number" in e.status_reason


def test_invalid_moves_to_next_number_at_once_then_done(engine: Engine, cc: CampaignConfig) -> None:
    phones = ["+819011110000", "+819022220000"]
    eid = add_entry(engine, "c1", phones=phones)
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 9, 0)
    dial(h, at, "invalid")
    later = at + timedelta(minutes=1)
    leases = h.lease(1, "t", later)
    assert [lz.phone_e164 for lz in leases] == [phones[1]]
    h.mark_dialing(eid, 2, later)
    h.record_result(eid, "invalid", later)
    e = entry(engine, eid)
    assert e.status == "exhausted" and set(e.phone_flags) == set(phones)


def test_wrong_number_disposition_rotates(engine: Engine, cc: CampaignConfig) -> None:
    phones = ["+819011110000", "+819022220000"]
    eid = add_entry(engine, "c1", phones=phones)
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 9, 0)
    dial(h, at, "answered")
    h.apply_disposition(eid, "wrong_number", at + timedelta(minutes=2))
    assert [lz.phone_e164 for lz in h.lease(1, "t", at + timedelta(minutes=3))] == [phones[1]]


# ---------------------------------------------------------------- locks and blocks
def test_abandoned_call_locks_the_number_for_72_hours(engine: Engine, cc: CampaignConfig) -> None:
    phone = "+819033330000"
    eid = add_entry(engine, "c1", phones=[phone])
    other = add_entry(engine, "c1", segment="upsell", phones=[phone])  # same number, another segment
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 10, 0)
    leases = h.lease(1, "t", at)
    assert [lz.entry_id for lz in leases] == [eid]
    h.mark_dialing(eid, 1, at)
    h.record_result(eid, "answered", at, abandoned=True, phone_e164=phone)
    with Session(engine) as s:
        lock = s.exec(select(Block).where(Block.kind == "abandon_lock")).one()
        assert lock.phone_e164 == phone and lock.until == at + timedelta(hours=72)
    assert h.check_dialable(other, phone, at + timedelta(hours=71)) is not None
    for t in (at + timedelta(hours=1), at + timedelta(hours=24), at + timedelta(hours=71, minutes=59)):
        assert h.lease(5, "t", t) == []
    unlocked = at + timedelta(hours=72)
    got = [lz.entry_id for lz in h.lease(5, "t", unlocked)]
    assert len(got) == 1 and got[0] in (eid, other)  # one call per customer at a time (test_hopper_customer)


def test_refusal_blocks_the_product_and_dnc_blocks_every_entry(engine: Engine, cc: CampaignConfig) -> None:
    at = jst(2026, 11, 24, 10, 0)
    a = add_entry(engine, "c1", sku="SKU-A", phones=["+819044440000"])
    b = add_entry(engine, "c1", segment="upsell", sku="SKU-B", phones=["+819044440000"])
    c = add_entry(engine, "c1", segment="cross_sell", sku="SKU-A", phones=["+819044440000"])
    h = Hopper(engine, cc)
    lz = h.lease(1, "t", at)[0]
    assert lz.entry_id == a
    h.mark_dialing(a, 1, at)
    h.record_result(a, "answered", at)
    h.apply_disposition(a, "refused", at, sku="SKU-A")
    assert entry(engine, a).status == "done"
    later = at + timedelta(days=2)
    assert ids(h, later) == [b]  # SKU-A never again; SKU-B still allowed
    assert "refusal" in (h.check_dialable(c, "+819044440000", later) or "")
    lz = h.lease(1, "t", later)[0]
    h.mark_dialing(lz.entry_id, 2, later)
    h.apply_disposition(lz.entry_id, "dnc", later)
    assert ids(h, later + timedelta(days=1)) == []
    fresh = add_entry(engine, "c1", segment="pre_churn", sku="SKU-C", phones=["+819044440000"])
    assert "dnc" in (h.check_dialable(fresh, "+819044440000", later + timedelta(days=1)) or "")
    assert ids(h, later + timedelta(days=1)) == []
    with Session(engine) as s:
        kinds = sorted(b.kind for b in s.exec(select(Block)).all())
    assert kinds == ["dnc", "refusal"]
    # a DNC added by the CRM for the number blocks a brand-new entry of another customer with it
    d = add_entry(engine, "c9", phones=["+819044440000"])
    assert d not in ids(h, later) and h.check_dialable(d, "+819044440000", later) is not None


def test_number_level_dnc_falls_back_to_the_next_number(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1", phones=["+819055550000", "+819066660000"])
    with Session(engine) as s:
        s.add(Block(phone_e164="+819055550000", kind="dnc", source="crm"))
        s.commit()
    h = Hopper(engine, cc)
    assert [lz.phone_e164 for lz in h.lease(1, "t", TUE_11)] == ["+819066660000"]
    assert entry(engine, eid).phone_flags == {"+819055550000": "dnc"}


def test_customer_flags_block(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    with Session(engine) as s:
        s.add(Customer(customer_id="c1", tel_ok=False))
        s.commit()
    h = Hopper(engine, cc)
    assert h.lease(1, "t", TUE_11) == []
    assert entry(engine, eid).status == "blocked"


# ---------------------------------------------------------------- callbacks
def test_callback_survives_a_restart_and_is_flagged_late(db_url: str, cc: CampaignConfig) -> None:
    engine = get_engine(db_url)
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    at = jst(2026, 11, 24, 10, 0)
    dial(h, at, "answered")
    when = jst(2026, 11, 25, 15, 0)
    h.apply_disposition(eid, "callback", at + timedelta(minutes=1), callback_at=when, agent_login="a01")
    assert eid not in ids(h, when - timedelta(minutes=1))
    # restart: a new engine and a new hopper read the callback from the store
    dispose_engines()
    engine2 = get_engine(db_url)
    h2 = Hopper(engine2, cc)
    on_time = h2.preview(when)
    assert on_time[0].entry_id == eid and on_time[0].due_because.startswith("callback (")
    # the dialer was down until 17:30: offered as soon as it is back, flagged late, still first
    add_entry(engine2, "urgent", priority=1e6, end=when + timedelta(hours=3))
    late_at = when + timedelta(hours=2, minutes=30)
    items = h2.preview(late_at)
    assert items[0].entry_id == eid and items[0].due_because.startswith("callback_late")
    lz = h2.lease(1, "t", late_at)[0]
    assert lz.entry_id == eid and lz.callback_late
    assert lz.callback_agent == ""  # the 15-minute reservation has passed
    assert entry(engine2, eid).callback_late


def test_callback_reserved_for_agent_then_released(engine: Engine, cc: CampaignConfig) -> None:
    at = jst(2026, 11, 24, 10, 0)
    eid = h_id = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    assert h.set_callback("c1", "dormant", at, agent_login="a02", reserve_s=600) == h_id
    lz = h.lease(1, "t", at + timedelta(minutes=2))[0]
    assert lz.entry_id == eid and lz.callback_agent == "a02" and not lz.callback_late


def test_callback_outside_calling_hours_waits_for_them(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    h.set_callback("c1", "dormant", jst(2026, 11, 24, 20, 30))
    assert ids(h, jst(2026, 11, 24, 20, 45)) == []
    items = h.preview(jst(2026, 11, 25, 9, 0))
    # (issue 27) the one callback rule moved 20:30 to the next calling slot, so it is on time then, not late
    assert [i.entry_id for i in items] == [eid]
    assert items[0].due_because == f"callback (due {jst(2026, 11, 25, 9, 0).astimezone(UTC).isoformat()})"


def test_set_callback_creates_an_entry_from_the_customer(engine: Engine, cc: CampaignConfig) -> None:
    with Session(engine) as s:
        s.add(Customer(customer_id="n1", phone="090-1234-5678", prefecture="大阪府"))
        s.commit()
    h = Hopper(engine, cc)
    eid = h.set_callback("n1", "upsell", jst(2026, 11, 24, 14, 0))
    e = entry(engine, eid)
    assert e.phones == ["+819012345678"] and e.timezone == "Asia/Tokyo"
    assert ids(h, jst(2026, 11, 24, 14, 0)) == [eid]


# ---------------------------------------------------------------- leasing lifecycle and recovery
def test_lease_release_and_expiry(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    assert [lz.entry_id for lz in h.lease(3, "a", TUE_11, lease_s=60)] == [eid]
    assert h.lease(3, "b", TUE_11 + timedelta(seconds=30)) == []
    h.release(eid, TUE_11 + timedelta(seconds=31))
    e = entry(engine, eid)
    assert e.status == "pending" and e.attempts == 0
    assert [lz.entry_id for lz in h.lease(3, "b", TUE_11 + timedelta(seconds=32), lease_s=60)] == [eid]
    # b vanished: after expiry another dialer may take it without any recovery step
    assert [lz.entry_id for lz in h.lease(3, "c", TUE_11 + timedelta(seconds=93))] == [eid]


def test_release_after_mark_dialing_uncounts_the_attempt(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    h.lease(1, "a", TUE_11)
    h.mark_dialing(eid, 7, TUE_11)
    assert entry(engine, eid).attempts == 1
    h.release(eid, TUE_11)
    e = entry(engine, eid)
    assert e.status == "pending" and e.attempts == 0 and e.attempts_by_phone == {"+819012340000": 0}


def test_recover_after_a_crash(db_url: str, cc: CampaignConfig) -> None:
    engine = get_engine(db_url)
    at = jst(2026, 11, 24, 10, 0)
    dialing = add_entry(engine, "c1")
    leased = add_entry(engine, "c2")
    ended = add_entry(engine, "c3")
    h = Hopper(engine, cc)
    got = {lz.entry_id for lz in h.lease(3, "runner-1", at, lease_s=120)}
    assert got == {dialing, leased, ended}
    with Session(engine) as s:
        a1 = Attempt(entry_id=dialing, state="ringing", dialed_at=at)
        a3 = Attempt(entry_id=ended, state="ended", outcome="busy", dialed_at=at, ended_at=at + timedelta(seconds=9))
        s.add(a1)
        s.add(a3)
        s.commit()
        s.refresh(a1)
        s.refresh(a3)
        assert a1.id is not None and a3.id is not None
        a1_id, a3_id = a1.id, a3.id
    h.mark_dialing(dialing, a1_id, at)
    h.mark_dialing(ended, a3_id, at)
    # crash: everything in memory is lost; a new process starts two minutes later
    dispose_engines()
    engine2 = get_engine(db_url)
    h2 = Hopper(engine2, cc)
    restart = at + timedelta(minutes=3)
    counts = h2.recover(restart)
    assert counts == {"leases_released": 1, "interrupted": 1, "settled": 1}
    e1, e2, e3 = entry(engine2, dialing), entry(engine2, leased), entry(engine2, ended)
    assert e1.status == "pending" and e1.attempts == 1 and e1.next_attempt_at == restart + timedelta(minutes=30)
    assert e2.status == "pending" and e2.attempts == 0
    assert e3.status == "pending" and e3.attempts == 1 and e3.next_attempt_at == restart + timedelta(minutes=30)
    assert e3.last_outcome == "busy"
    with Session(engine2) as s:
        att = s.get(Attempt, a1_id)
        assert att is not None and att.state == "interrupted"
    # never redialled at once: only the entry that was merely leased is offered
    assert ids(h2, restart) == [leased]
    assert h2.recover(restart) == {"leases_released": 0, "interrupted": 0, "settled": 0}


def test_disposition_during_the_call_is_not_overwritten(engine: Engine, cc: CampaignConfig) -> None:
    eid = add_entry(engine, "c1")
    h = Hopper(engine, cc)
    h.lease(1, "t", TUE_11)
    h.mark_dialing(eid, 1, TUE_11)
    h.apply_disposition(eid, "sale", TUE_11 + timedelta(minutes=2))  # DTMF while talking
    h.record_result(eid, "answered", TUE_11 + timedelta(minutes=3))
    e = entry(engine, eid)
    assert e.status == "done" and e.status_reason == "sale" and e.attempts == 1


def test_naive_datetimes_are_refused(engine: Engine, cc: CampaignConfig) -> None:
    h = Hopper(engine, cc)
    with pytest.raises(ValueError, match="aware"):
        h.preview(datetime(2026, 11, 24, 11, 0))


def test_a_dead_runners_unexpired_leases_go_back_at_once(db_url: str, cc: CampaignConfig) -> None:
    """The runner restarted after a kill -9 takes over from the dead one: the leases it took for dials it never
    made go back to pending at once (expired or not); another owner's lease is left alone."""
    engine = get_engine(db_url)
    at = jst(2026, 11, 24, 10, 0)
    mine = add_entry(engine, "c1")
    theirs = add_entry(engine, "c2")
    h = Hopper(engine, cc)
    assert [lz.entry_id for lz in h.lease(1, "host:111", at, lease_s=600)] == [mine]
    assert [lz.entry_id for lz in h.lease(1, "preview:agent", at, lease_s=600)] == [theirs]
    assert h.release_owner("", at) == 0
    assert h.release_owner("host:111", at + timedelta(seconds=5)) == 1  # 595 s before its lease would expire
    with Session(engine) as s:
        e1, e2 = s.get(CallListEntry, mine), s.get(CallListEntry, theirs)
        assert e1 is not None and e2 is not None
        assert (e1.status, e1.lease_owner) == ("pending", "") and (e2.status, e2.lease_owner) == ("leased", "preview:agent")
    assert [lz.entry_id for lz in h.lease(1, "host:222", at + timedelta(seconds=6))] == [mine]  # dialable again
