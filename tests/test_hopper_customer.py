"""One customer, one call at a time: a customer in two segments has two entries and one phone.

Found by the live A/B (bench/RESULTS.md): a "busy" on the pre_churn entry let the cross_sell entry ring the
same number minutes later. The retry delay of one entry holds for the customer; a finished entry rests them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from dialer.config import CampaignConfig
from dialer.domain.entry import CUSTOMER_REST
from dialer.store.entries import Hopper
from tests.test_hopper import add_entry, dial, entry, jst

AT = jst(2026, 11, 24, 10, 0)


@pytest.fixture()
def engine(db_url: str) -> Engine:
    from dialer.store.db import get_engine
    return get_engine(db_url)


@pytest.fixture()
def cc() -> CampaignConfig:
    return CampaignConfig(name="t")


def test_two_entries_of_one_customer_are_never_leased_together(engine: Engine, cc: CampaignConfig) -> None:
    a = add_entry(engine, "c1", segment="pre_churn", priority=5.0)
    b = add_entry(engine, "c1", segment="cross_sell", priority=4.0)
    other = add_entry(engine, "c2", segment="dormant", priority=1.0)
    h = Hopper(engine, cc)
    got = [lz.entry_id for lz in h.lease(10, "t", AT)]
    assert sorted(got) == sorted([a, other])  # b waits: its customer is already leased
    assert b not in [i.entry_id for i in h.preview(AT, limit=10)]


def test_a_busy_on_one_entry_holds_the_other_for_the_retry_delay(engine: Engine, cc: CampaignConfig) -> None:
    a = add_entry(engine, "c1", segment="pre_churn", priority=5.0)
    b = add_entry(engine, "c1", segment="cross_sell", priority=4.0)
    h = Hopper(engine, cc)
    assert dial(h, AT, "busy") == [a]
    retry_at = entry(engine, a).next_attempt_at
    assert retry_at is not None
    # minutes later: neither entry of c1 is handed out while a's retry delay runs
    for minutes in (1, 5, 29):
        assert h.lease(5, "t", AT + timedelta(minutes=minutes)) == []
    later = [lz.entry_id for lz in h.lease(5, "t", retry_at.replace(tzinfo=AT.tzinfo) + timedelta(seconds=1))]
    assert len(later) == 1 and later[0] in (a, b)


def test_a_finished_entry_rests_the_customer_but_a_booked_callback_is_exempt(engine: Engine,
                                                                                cc: CampaignConfig) -> None:
    a = add_entry(engine, "c1", segment="pre_churn", priority=5.0)
    b = add_entry(engine, "c1", segment="cross_sell", priority=4.0)
    h = Hopper(engine, cc)
    assert dial(h, AT, "human") == [a]
    h.apply_disposition(a, "sale", AT + timedelta(minutes=3))
    assert entry(engine, a).status == "done"
    assert h.lease(5, "t", AT + timedelta(hours=2)) == []
    assert [lz.entry_id for lz in h.lease(5, "t", AT + CUSTOMER_REST + timedelta(minutes=1))] == [b]
    # a callback the agent booked on b is called when due, even right after another entry's call
    c = add_entry(engine, "c3", segment="pre_churn", priority=5.0)
    d = add_entry(engine, "c3", segment="cross_sell", priority=1.0)
    t0 = AT + timedelta(days=2)
    assert dial(h, t0, "human") == [c]
    h.apply_disposition(c, "callback", t0 + timedelta(minutes=2), callback_at=t0 + timedelta(minutes=30),
                        agent_login="a1")
    due = [lz.entry_id for lz in h.lease(5, "t", t0 + timedelta(minutes=31))]
    assert c in due and d not in due


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(outcomes=st.lists(st.sampled_from(["busy", "no_answer", "human", "machine", "failed"]), min_size=1,
                         max_size=6),
       gaps=st.lists(st.integers(min_value=0, max_value=240), min_size=6, max_size=6))
def test_property_a_customer_is_never_called_while_resting(db_url: str, outcomes: list[str],
                                                           gaps: list[int]) -> None:
    """Whatever the outcomes and the clock, no lease hands out an entry of a customer whose other entry is in
    flight or inside its retry delay."""
    from sqlmodel import Session, delete

    from dialer.store.db import get_engine
    from dialer.store.models import CallListEntry
    eng = get_engine(db_url)
    with Session(eng) as s:
        s.exec(delete(CallListEntry))  # type: ignore[call-overload]
        s.commit()
    add_entry(eng, "p", segment="pre_churn", priority=5.0)
    add_entry(eng, "p", segment="cross_sell", priority=4.0)
    add_entry(eng, "p", segment="upsell", priority=3.0)
    h = Hopper(eng, CampaignConfig(name="t"))
    at = AT
    for outcome, gap in zip(outcomes, gaps, strict=False):
        at = at + timedelta(minutes=gap)
        leases = h.lease(5, "t", at)
        assert len(leases) <= 1
        for lz in leases:
            with Session(eng) as s:
                from sqlmodel import select
                others = s.exec(select(CallListEntry).where(CallListEntry.id != lz.entry_id)).all()
                for o in others:
                    assert o.status != "dialing"
                    if o.status == "pending" and o.last_attempt_at is not None and o.next_attempt_at is not None:
                        assert o.next_attempt_at.replace(tzinfo=at.tzinfo) <= at
            h.mark_dialing(lz.entry_id, 1, at)
            h.record_result(lz.entry_id, outcome, at + timedelta(seconds=20), phone_e164=lz.phone_e164)
