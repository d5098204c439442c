"""Store round-trip: every table written and read back on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlmodel import Session, SQLModel, select

from dialer.store import get_engine, init_db
from dialer.store.db import SCHEMA_VERSION, StoreError, current_version, dispose_engines, table_counts
from dialer.store.holdout import HoldoutAssignment, HoldoutExperiment
from dialer.store.journal import JournalApplied
from dialer.store.lift import LiftResult
from dialer.store.models import (
    Agent,
    AgentStateLog,
    Attempt,
    Block,
    CallListEntry,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    ControlCommand,
    Customer,
    Disposition,
    InboundDesk,
    Order,
    OrderLine,
    OutboxItem,
    Product,
    Subscription,
)
from dialer.store.nodes import Node, NodeCommandAck, NodeRole
from dialer.store.sms import SmsClaim, SmsMessage, UnpaidBalance
from dialer.store.users import AuditEntry, User, UserSession

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def _rows() -> list[SQLModel]:
    return [
        Customer(customer_id="C1", name="山田 花子", name_kana="ヤマダ ハナコ", phone="090-1234-5678",
                 prefecture="東京都", created_at=date(2022, 1, 5), ltv=180000.0),
        Product(sku="SKU-A", name="青汁 30日分", days_per_unit=30, is_trial=False, upgrade_sku="SKU-A-SUB",
                related_skus=["SKU-B", "SKU-C"], price=3000, unit_cost=900),
        Order(order_id="O1", customer_id="C1", ordered_at=date(2025, 1, 1), shipped_at=date(2025, 1, 3),
              status="shipped", subscription_id="S1", cycle_no=2, total=3000),
        OrderLine(order_id="O1", sku="SKU-A", quantity=2, unit_price=1500),
        Subscription(subscription_id="S1", customer_id="C1", sku="SKU-A", quantity=1, status="active",
                     started_at=date(2024, 11, 1), interval_days=30, next_ship_date=date(2026, 12, 1),
                     shipments_count=3),
        Block(phone_e164="+819012345678", kind="refusal", product_scope="SKU-A", source="crm", reason="r"),
        Campaign(name="demo", segments=["dormant", "upsell"], retry_rules={"busy": "30m"}, trunk="local"),
        CallListEntry(customer_id="C1", segment="dormant", phones=["+819012345678", "+81312345678"],
                      attempts_by_phone={"+819012345678": 1}, priority=1234.5, callable_from=T0,
                      callable_until=T0, reason="last purchase 400 days ago"),
        Attempt(campaign_id=1, entry_id=1, customer_id="C1", phone_e164="+819012345678", dialed_at=T0,
                answered_at=T0, sip_status=200, outcome="answered", abandoned=True, worker="w0"),
        Agent(login="a01", name="Sato", sip_uri="sip:a01@127.0.0.1:5301", segments=["dormant"]),
        Disposition(attempt_id=1, agent_id=1, customer_id="C1", outcome="refused", reason_code="R2",
                    voc_text="期待と違った", callback_at=T0),
        ControlCommand(campaign="demo", command="mode", argument="progressive", requested_by="test"),
        CampaignEvent(campaign_id=1, kind="mode_drop", message="budget spent"),
        CampaignStatus(campaign_id=1, mode="predictive", dial_level=1.4, stats={"abandon_1h": 0.01}),
        AgentStateLog(agent_id=1, state="ready", campaign_id=1, started_at=T0),
        OutboxItem(disposition_id=1, idempotency_key="k1", payload={"outcome": "refused"}),
        InboundDesk(desk_id="10.0.0.1:5070", address="10.0.0.1:5070", agents=["a01", "a02"], started_at=T0,
                    beat_at=T0),
        HoldoutAssignment(period="2026-11", customer_id="C1", segment="dormant", group="control",
                          first_build=date(2026, 11, 1), last_build=date(2026, 11, 20)),
        UnpaidBalance(customer_id="C1", order_ids="O1;O2", amount=1280.0, since=date(2026, 10, 1)),
        SmsMessage(campaign="demo", entry_id=1, customer_id="C1", phone_e164="+819012345678",
                   text="ご入金のお願い", amount=1280.0, idempotency_key="sms-k1"),
        SmsClaim(message_id=1, token="t1", owner="host:1", claimed_at=T0, expires_at=T0),
        HoldoutExperiment(name="冬の掘り起こし", start=date(2026, 11, 15), end=date(2026, 12, 31)),
        LiftResult(campaign="demo", period="2026-11", summary={"lift": 0.12}),
        Node(node_id="n1", host="host-1", campaigns=["demo"], epoch=2, stats={"demo": {"live": 1}}),
        NodeRole(role="coordinator:demo", node_id="n1", epoch=2, fence=1),
        NodeCommandAck(command_id=1, node_id="n1", result="paused"),
        User(login="a01", role="agent", agent_login="a01", password_hash="$argon2id$v=19$x"),
        UserSession(token_sha256="0" * 64, user_id=1, expires_at=T0),
        AuditEntry(actor="a01", role="agent", action="agent.console", target="a02", allowed=False),
        JournalApplied(key="runner:demo:1", op="attempt", source="var/journal/demo.jsonl"),
    ]


def test_every_table_round_trips(db_url: str) -> None:
    engine = get_engine(db_url)
    rows = _rows()
    # every table of the schema (except meta) is exercised here, so a new table cannot go untested
    tables = {type(r).__tablename__ for r in rows} | {"meta"}
    assert tables == set(SQLModel.metadata.tables)
    with Session(engine) as s:
        for r in rows:
            s.add(r)
        s.commit()
    dispose_engines()
    engine = get_engine(db_url)
    with Session(engine) as s:
        c = s.exec(select(Customer)).one()
        assert c.name == "山田 花子" and c.created_at == date(2022, 1, 5)
        p = s.exec(select(Product)).one()
        assert p.related_skus == ["SKU-B", "SKU-C"]
        e = s.exec(select(CallListEntry)).one()
        assert e.phones == ["+819012345678", "+81312345678"]
        assert e.attempts_by_phone == {"+819012345678": 1}
        assert e.callable_from == T0 and e.status == "pending"
        a = s.exec(select(Attempt)).one()
        assert a.abandoned is True and a.sip_status == 200
        d = s.exec(select(Disposition)).one()
        assert d.voc_text == "期待と違った"
        camp = s.exec(select(Campaign)).one()
        assert camp.retry_rules == {"busy": "30m"} and camp.segments == ["dormant", "upsell"]
        assert s.exec(select(Subscription)).one().next_ship_date == date(2026, 12, 1)
        assert s.exec(select(OrderLine)).one().quantity == 2
        assert s.exec(select(Block)).one().product_scope == "SKU-A"
    counts = table_counts(engine)
    assert all(counts[t] == 1 for t in tables if t != "meta")


def test_entry_unique_per_customer_and_segment(db_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    with Session(get_engine(db_url)) as s:
        s.add(CallListEntry(customer_id="C1", segment="dormant"))
        s.add(CallListEntry(customer_id="C1", segment="dormant"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_init_is_idempotent_and_versioned(db_url: str) -> None:
    _, action = init_db(db_url)
    assert action == "already up to date"
    assert current_version(get_engine(db_url)) == SCHEMA_VERSION


def test_newer_schema_is_refused_not_clobbered(db_url: str) -> None:
    eng = get_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(SCHEMA_VERSION + 1)})
    with pytest.raises(StoreError, match="newer than this release"):
        init_db(db_url)


def test_older_schema_runs_registered_migrations(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from dialer.store import db as dbmod

    eng = get_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(SCHEMA_VERSION - 1)})
    ran: list[int] = []
    monkeypatch.setitem(dbmod.MIGRATIONS, SCHEMA_VERSION, lambda e: ran.append(SCHEMA_VERSION))
    _, action = init_db(db_url)
    assert ran == [SCHEMA_VERSION]
    assert action == f"migrated from {SCHEMA_VERSION - 1}"
    assert current_version(eng) == SCHEMA_VERSION
