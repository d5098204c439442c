"""Properties of the hopper: nothing is leased outside its window, its calling hours or while blocked; two
concurrent leasers (threads on SQLite, processes on SQLite and PostgreSQL) never get the same entry."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dialer.config import CampaignConfig
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.entries import Hopper
from dialer.store.models import Block, CallListEntry, Customer
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

BASE = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # a fortnight around 勤労感謝の日 (Mon 2026-11-23)
ZONES = {  # number -> the zone phonenumbers gives it
    "+819012340001": "Asia/Tokyo",
    "+819012340002": "Asia/Tokyo",
    "+12125550101": "America/New_York",
    "+442079460001": "Europe/London",
}
JP_HOLIDAYS = holidays.country_holidays("JP", years=2026)


def _open(at: datetime, zone: str) -> bool:
    """An independent statement of the rule: 09:00-20:00 local, not on a JP public holiday."""
    local = at.astimezone(ZoneInfo(zone))
    return 9 <= local.hour < 20 and local.date() not in JP_HOLIDAYS


entry_st = st.fixed_dictionaries({
    "phones": st.lists(st.sampled_from(sorted(ZONES)), min_size=1, max_size=3, unique=True),
    "zone": st.sampled_from(["Asia/Tokyo", "Asia/Tokyo", "America/New_York", "Europe/London"]),
    "start_h": st.integers(min_value=-48, max_value=300),
    "len_h": st.integers(min_value=1, max_value=200),
    "next_h": st.one_of(st.none(), st.integers(min_value=-10, max_value=300)),
    "sku": st.sampled_from(["", "A", "B"]),
    "tel_ok": st.booleans(),
    "priority": st.floats(min_value=-10, max_value=1000, allow_nan=False),
})
block_st = st.fixed_dictionaries({
    "kind": st.sampled_from(["dnc", "refusal", "no_consent", "abandon_lock"]),
    "by": st.sampled_from(["phone", "customer"]),
    "target": st.integers(min_value=0, max_value=30),
    "scope": st.sampled_from(["", "A", "B"]),
    "until_h": st.integers(min_value=-20, max_value=300),
})


@pytest.fixture(scope="module")
def prop_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    url = f"sqlite:///{tmp_path_factory.mktemp('props') / 'p.db'}"
    engine, _ = init_db(url)
    return engine


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(entry_st, min_size=1, max_size=12), blocks=st.lists(block_st, max_size=6),
       at_h=st.integers(min_value=0, max_value=14 * 24 - 1), at_m=st.sampled_from([0, 1, 29, 59]))
def test_never_leased_outside_window_hours_or_while_blocked(prop_engine: Engine, entries: list[dict],  # type: ignore[type-arg]
                                                            blocks: list[dict], at_h: int, at_m: int) -> None:  # type: ignore[type-arg]
    engine = prop_engine
    with Session(engine) as s:
        for table in (CallListEntry, Block, Customer):
            s.exec(delete(table))  # type: ignore[call-overload]
        for i, e in enumerate(entries):
            start = BASE + timedelta(hours=e["start_h"])
            s.add(CallListEntry(customer_id=f"c{i}", segment="dormant", phones=e["phones"], timezone=e["zone"],
                                callable_from=start, callable_until=start + timedelta(hours=e["len_h"]),
                                next_attempt_at=None if e["next_h"] is None else BASE + timedelta(hours=e["next_h"]),
                                sku=e["sku"], priority=e["priority"]))
            s.add(Customer(customer_id=f"c{i}", tel_ok=e["tel_ok"]))
        for b in blocks:
            tgt = entries[b["target"] % len(entries)]
            idx = b["target"] % len(entries)
            s.add(Block(kind=b["kind"], product_scope=b["scope"] if b["kind"] == "refusal" else "",
                        phone_e164=tgt["phones"][0] if b["by"] == "phone" else None,
                        customer_id=f"c{idx}" if b["by"] == "customer" else None,
                        until=BASE + timedelta(hours=b["until_h"]) if b["kind"] == "abandon_lock" else None))
        s.commit()
    at = BASE + timedelta(hours=at_h, minutes=at_m)
    h = Hopper(engine, CampaignConfig(name="p"))
    preview = {i.entry_id for i in h.preview(at, limit=100)}
    leases = h.lease(100, "prop", at)
    assert {lz.entry_id for lz in leases} == preview
    with Session(engine) as s:
        all_blocks = list(s.exec(Block.__table__.select()).all())  # type: ignore[attr-defined,call-overload]
        for lz in leases:
            row = s.get(CallListEntry, lz.entry_id)
            assert row is not None
            spec = entries[int(lz.customer_id[1:])]
            start = BASE + timedelta(hours=spec["start_h"])
            assert start <= at < start + timedelta(hours=spec["len_h"]), "leased outside its window"
            if spec["next_h"] is not None:
                assert BASE + timedelta(hours=spec["next_h"]) <= at, "leased before its retry time"
            assert _open(at, ZONES[lz.phone_e164]) and _open(at, spec["zone"]), "leased outside calling hours"
            assert spec["tel_ok"], "leased a customer with tel_ok = 0"
            for b in all_blocks:
                hits = b.phone_e164 == lz.phone_e164 or b.customer_id == lz.customer_id
                if not hits:
                    continue
                if b.kind == "abandon_lock":
                    assert b.until.replace(tzinfo=UTC) <= at, "leased while locked"
                elif b.kind == "refusal":
                    assert b.product_scope not in ("", spec["sku"]), "leased after a refusal for the product"
                else:
                    raise AssertionError(f"leased despite a {b.kind} block")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(st.sampled_from(["busy", "no_answer", "congestion", "machine", "invalid", "rejected",
                                          "failed", "cancelled", "interrupted"]), min_size=1, max_size=12),
       n_phones=st.integers(min_value=1, max_value=3), per_phone=st.integers(min_value=1, max_value=3),
       max_attempts=st.integers(min_value=1, max_value=8))
def test_retry_rules_respect_limits_and_spacing(prop_engine: Engine, outcomes: list[str], n_phones: int,
                                                per_phone: int, max_attempts: int) -> None:
    engine = prop_engine
    cc = CampaignConfig(name="p", max_attempts=max_attempts, max_attempts_per_phone=per_phone)
    phones = [f"+8190123400{i:02d}" for i in range(n_phones)]
    with Session(engine) as s:
        for table in (CallListEntry, Block, Customer):
            s.exec(delete(table))  # type: ignore[call-overload]
        e = CallListEntry(customer_id="r", segment="dormant", phones=phones, callable_from=BASE,
                          callable_until=BASE + timedelta(days=60))
        s.add(e)
        s.commit()
        s.refresh(e)
        eid = e.id
    assert eid is not None
    h = Hopper(engine, cc, respect_calling_hours=False)
    at = BASE
    minimum = {"busy": 1800, "no_answer": 4 * 3600, "congestion": 600, "rejected": 86400, "failed": 600,
               "cancelled": 600, "interrupted": 1800, "machine": 12 * 3600, "invalid": 0}
    for outcome in outcomes:
        with Session(engine) as s:
            row = s.get(CallListEntry, eid)
            assert row is not None
        leases = h.lease(1, "r", at)
        if row.status != "pending":
            assert not leases
            break
        if not leases:
            assert row.next_attempt_at is not None and row.next_attempt_at > at
            at = row.next_attempt_at
            leases = h.lease(1, "r", at)
        assert len(leases) == 1
        h.mark_dialing(eid, 1, at)
        h.record_result(eid, outcome, at)
        with Session(engine) as s:
            row = s.get(CallListEntry, eid)
            assert row is not None
            assert row.attempts <= max_attempts
            assert all(v <= per_phone for v in row.attempts_by_phone.values())
            if row.status == "pending":
                assert row.next_attempt_at is not None
                assert (row.next_attempt_at - at).total_seconds() >= minimum[outcome]
            else:
                assert row.status == "exhausted"


# ---------------------------------------------------------------- concurrency
N_ENTRIES = 240


def _fill(engine: Engine, n: int = N_ENTRIES) -> None:
    with Session(engine) as s:
        for i in range(n):
            s.add(CallListEntry(customer_id=f"k{i}", segment="dormant", phones=[f"+8190{i:08d}"],
                                priority=float(i % 7), callable_from=BASE,
                                callable_until=BASE + timedelta(days=5 + i % 3)))
        s.commit()


AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # Tuesday 11:00 JST


def _drain(url: str, owner: str, batch: int) -> list[int]:
    """Lease until nothing is left; the entries this leaser won."""
    engine = get_engine(url)
    h = Hopper(engine, CampaignConfig(name="c"))
    got: list[int] = []
    empty = 0
    while empty < 3:
        leases = h.lease(batch, owner, AT)
        if not leases:
            empty += 1
            continue
        empty = 0
        got.extend(lz.entry_id for lz in leases)
    return got


def _proc_drain(args: tuple[str, str, int]) -> list[int]:
    url, owner, batch = args
    try:
        return _drain(url, owner, batch)
    finally:
        dispose_engines()


def _check_disjoint(results: list[list[int]]) -> None:
    flat = [i for r in results for i in r]
    assert len(flat) == len(set(flat)), "an entry was leased twice"
    assert len(flat) == N_ENTRIES
    assert sum(1 for r in results if r) >= 2, "the race never happened: one leaser took everything"


def test_threads_on_sqlite_never_share_an_entry(db_url: str) -> None:
    _fill(get_engine(db_url))
    results: list[list[int]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        results[k] = _drain(db_url, f"thread-{k}", 3)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    _check_disjoint(results)


def _processes(url: str) -> list[list[int]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        return pool.map(_proc_drain, [(url, f"proc-{k}", 4) for k in range(3)])


def test_processes_on_sqlite_never_share_an_entry(db_url: str) -> None:
    _fill(get_engine(db_url))
    _check_disjoint(_processes(db_url))


def test_processes_on_postgresql_never_share_an_entry(pg_url: str) -> None:  # noqa: F811
    init_db(pg_url)
    engine = get_engine(pg_url)
    _fill(engine)
    h = Hopper(engine, CampaignConfig(name="c"))
    assert len(h.preview(AT, limit=10)) == 10  # the ordering SQL works on PostgreSQL too
    _check_disjoint(_processes(pg_url))


def test_threads_on_postgresql_and_the_full_cycle(pg_url: str) -> None:  # noqa: F811
    init_db(pg_url)
    engine = get_engine(pg_url)
    _fill(engine)
    results: list[list[int]] = [[] for _ in range(3)]

    def work(k: int) -> None:
        results[k] = _drain(pg_url, f"pgthread-{k}", 5)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    _check_disjoint(results)
    # the rest of the cycle on PostgreSQL: dial, busy, recover, refusal block
    h = Hopper(engine, CampaignConfig(name="c"))
    eid = results[0][0]
    h.mark_dialing(eid, 1, AT)
    h.record_result(eid, "busy", AT)
    assert h.recover(AT + timedelta(minutes=5))["leases_released"] == N_ENTRIES - 1
    assert eid not in {i.entry_id for i in h.preview(AT + timedelta(minutes=29), limit=N_ENTRIES)}
    assert eid in {i.entry_id for i in h.preview(AT + timedelta(minutes=31), limit=N_ENTRIES)}
    h.apply_disposition(eid, "refused", AT + timedelta(hours=1))
    assert h.check_dialable(eid, f"+8190{0:08d}", AT + timedelta(hours=2)) is not None
