"""Issue 19's store modules on PostgreSQL: hold-out assignments (first of a period wins, `group` is a reserved
word), the SMS outbox through the hopper against a loopback gateway, the VOC summary in the outbox, lift results."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session

from dialer.config import parse_config
from dialer.sms import run
from dialer.store import sms as store
from dialer.store.db import init_db
from dialer.store.entries import Hopper
from dialer.store.holdout import assignments, controls, record_assignments
from dialer.store.lift import holdout_status, save_lift
from dialer.store.models import CallListEntry, Customer
from dialer.store.sms import SmsMessage, UnpaidBalance
from dialer.store.voc import enqueue_summary
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)
from tests.sms_gateway import Gateway
from tests.test_sms import NOON, config_text, free_tcp_port


def test_issue19_store_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("TSUNAGU_SMS_TOKEN", "t")
    monkeypatch.setenv("TSUNAGU_PAYLINK_SECRET", "s")
    engine, _ = init_db(pg_url)
    record_assignments(engine, [[("C0", "unpaid", "treatment", "2026-11"), ("C1", "unpaid", "control", "2026-11")]],
                       date(2026, 11, 23))
    record_assignments(engine, [[("C1", "unpaid", "treatment", "2026-11")]], date(2026, 11, 24))
    assert {(r[0], r[2]) for r in assignments(engine, ["unpaid"])} == {("C0", "treatment"), ("C1", "control")}
    with engine.connect() as conn:
        assert controls(conn, ["C0", "C1"], datetime(2026, 11, 24, 3, tzinfo=UTC)) == {"C1"}
    with Session(engine) as s:
        for i in range(3):
            s.add(Customer(customer_id=f"C{i}", name="鈴木"))
            s.add(CallListEntry(customer_id=f"C{i}", segment="unpaid", phones=[f"+81907777000{i}"],
                                timezone="Asia/Tokyo", callable_from=NOON - timedelta(days=1),
                                callable_until=NOON + timedelta(days=5)))
            s.add(UnpaidBalance(customer_id=f"C{i}", order_ids=f"O{i}", amount=2500))
        s.commit()
    port = free_tcp_port()
    cfg = parse_config(config_text("unused", port).replace("sandbox = true\n", ""))
    camp = cfg.campaign("pay")
    gw = Gateway()
    gw.fail_next = 1
    with gw.serving(port):
        res = run(cfg, camp, Hopper(engine, camp), clock=lambda: NOON, sleep=lambda _s: None)
        later = NOON + timedelta(minutes=5)  # after the 503's backoff
        res2 = run(cfg, camp, Hopper(engine, camp), clock=lambda: later, sleep=lambda _s: None)
    assert res.queued == 2 and res2.queued == 0  # C1 is control: never queued
    assert set(gw.by_phone()) == {"+819077770000", "+819077770002"}
    assert store.counts(engine, "pay") == {"delivered": 2}
    assert enqueue_summary(engine, "voc-key-1", {"type": "voc_summary"})
    assert not enqueue_summary(engine, "voc-key-1", {"type": "voc_summary"})
    save_lift(engine, "pay", "2026-11", {"segments": {"unpaid": {"enough_data": False}}})
    h = holdout_status(engine, "pay", ["unpaid"])
    assert h is not None and h["groups"] == {"unpaid": {"treatment": 1, "control": 1}}
    assert h["lift"]["period"] == "2026-11" and datetime.fromisoformat(h["lift"]["computed_at"]).tzinfo is not None
    assert datetime.now(UTC) > NOON
    # issue 26: one sender per message on PostgreSQL too -- 8 senders race for each of 5 messages, one wins each
    with Session(engine) as s:
        ids = []
        for i in range(5):
            m = SmsMessage(campaign="race", entry_id=1000 + i, customer_id=f"競{i}", phone_e164=f"+81908000000{i}",
                           text="t", idempotency_key=f"race-{i}", next_try_at=NOON)
            s.add(m)
            s.flush()
            ids.append(m.id or 0)
        s.commit()
    barrier = threading.Barrier(8)

    def racer(n: int) -> list[int]:
        won = []
        for mid in ids:
            barrier.wait(30)
            if store.claim(engine, mid, f"racer{n}", NOON, NOON + timedelta(seconds=60)) is not None:
                won.append(mid)
        return won

    with ThreadPoolExecutor(8) as pool:
        wins = [w for ws in pool.map(racer, range(8)) for w in ws]
    assert sorted(wins) == sorted(ids)  # each message claimed exactly once
    assert store.counts(engine, "race") == {"sending": 5}
    assert store.expire_claims(engine, "race", NOON + timedelta(seconds=61)) == 5  # dead senders: in doubt
    assert store.counts(engine, "race") == {"unknown": 5}
