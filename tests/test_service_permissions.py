"""The service layer's permission checks (issue 28): an agent reads and acts only on their own calls, cards
and state; a supervisor commands the floor; every refusal is audited. Real SQLite store, rows written here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.domain import preview
from dialer.domain.vocabulary import EntryStatus
from dialer.service import console, floor
from dialer.service.auth import Principal
from dialer.service.roles import PermissionDenied, Role
from dialer.store import users as users_store
from dialer.store.agents import ensure_agent
from dialer.store.attempts import create_attempt
from dialer.store.db import dispose_engines, init_db
from dialer.store.models import Agent, CallListEntry, Campaign, ControlCommand, Customer, Disposition

A01 = Principal("a01", Role.AGENT, agent_login="a01")
A02 = Principal("a02", Role.AGENT, agent_login="a02")
SV = Principal("sv", Role.SUPERVISOR)


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Engine, dict[str, int]]:
    engine, _ = init_db(f"sqlite:///{tmp_path / 's.db'}")
    for login, name in (("a01", "佐藤 花子"), ("a02", "鈴木 一郎")):
        ensure_agent(engine, SimpleNamespace(login=login, name=name, sip_uri=f"sip:{login}@127.0.0.1:5301",
                                             segments=[], node=""))
    ids: dict[str, int] = {}
    with Session(engine) as s:
        s.add(Customer(customer_id="C1", name="山田 太郎", phone="+81312345678"))
        camp = Campaign(name="winback", mode="preview")
        s.add(camp)
        s.commit()
        s.refresh(camp)
        assert camp.id is not None
        ids["campaign"] = camp.id
        agents = {a.login: a.id for a in s.exec(select(Agent)).all()}
        entry = CallListEntry(campaign_id=camp.id, customer_id="C1", segment="dormant", phones=["+81312345678"],
                              status=EntryStatus.LEASED.value, lease_owner=preview.owner("winback", "a02"))
        s.add(entry)
        s.commit()
        s.refresh(entry)
        assert entry.id is not None
        ids["entry"] = entry.id
    ids["a02_call"] = create_attempt(engine, campaign_id=ids["campaign"], entry_id=ids["entry"], customer_id="C1",
                                     phone="+81312345678", agent_id=agents["a02"], state="connected",
                                     dialed_at=datetime.now(UTC))
    yield engine, ids
    dispose_engines()


def test_an_agent_cannot_read_another_agents_screen_pop(world: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = world
    assert console.screen_pop(engine, A02, "a02", ids["a02_call"]) is not None
    with pytest.raises(PermissionDenied):  # a01 asking for a02's console
        console.screen_pop(engine, A01, "a02", ids["a02_call"])
    with pytest.raises(PermissionDenied):  # a01 on their own console, naming a02's call id
        console.screen_pop(engine, A01, "a01", ids["a02_call"])
    assert console.screen_pop(engine, SV, "a02", ids["a02_call"]) is not None  # coaching
    refused = [a for a in users_store.audit_trail(engine, actor="a01") if not a.allowed]
    assert len(refused) == 2


def test_an_agent_cannot_dispose_another_agents_call(world: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = world
    d = {"attempt_id": ids["a02_call"], "customer_id": "C1", "campaign_id": ids["campaign"], "outcome": "no_interest"}
    with pytest.raises(PermissionDenied):
        console.dispose(engine, A01, "a01", d)
    with pytest.raises(PermissionDenied):  # an agent may not use the floor's "any call" form either
        console.dispose(engine, A01, None, d)
    with Session(engine) as s:
        assert s.exec(select(Disposition)).all() == []
    saved = console.dispose(engine, A02, "a02", d)
    with Session(engine) as s:
        assert [r.id for r in s.exec(select(Disposition)).all()] == [saved]
    with pytest.raises(PermissionDenied):  # a disposition must name a call
        console.dispose(engine, A02, "a02", {"customer_id": "C1", "outcome": "sale"})


def test_an_agent_cannot_take_or_dial_another_agents_preview_card(world: tuple[Engine, dict[str, int]]) -> None:
    engine, ids = world
    assert console.preview_card(engine, A01, "a01") is None
    card = console.preview_card(engine, A02, "a02")
    assert card is not None
    with pytest.raises(PermissionDenied):
        console.preview_card(engine, A01, "a02")
    with pytest.raises(PermissionDenied):  # a guessed entry id that is not a01's card
        console.preview_dial(engine, A01, "a01", ids["entry"])
    with pytest.raises(PermissionDenied):
        console.preview_skip(engine, A01, "a01", ids["entry"], "wrong")
    console.preview_dial(engine, A02, "a02", ids["entry"])
    with Session(engine) as s:
        cmds = s.exec(select(ControlCommand)).all()
    assert [(c.command, c.requested_by) for c in cmds] == [(preview.DIAL, "a02")]


def test_agent_state_only_on_ones_own_seat(world: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = world
    now = datetime.now(UTC)
    with pytest.raises(PermissionDenied):
        console.set_idle_state(engine, A01, "a02", "logged_out", "paused", now, "break")
    with pytest.raises(PermissionDenied):
        console.snapshot(engine, A01, "a02", None)
    agent, _ = console.snapshot(engine, A01, "a01", None)
    assert agent["login"] == "a01"


def test_floor_commands_are_for_supervisors_and_carry_who(world: tuple[Engine, dict[str, int]]) -> None:
    engine, _ = world
    with pytest.raises(PermissionDenied):
        floor.send_command(engine, A01, "winback", "pause")
    floor.send_command(engine, SV, "winback", "target", "0.015")
    with Session(engine) as s:
        cmds = [(c.command, c.argument, c.requested_by) for c in s.exec(select(ControlCommand)).all()]
    assert cmds == [("target", "0.015", "monitor:sv")]
    trail = users_store.audit_trail(engine)
    assert [(a.actor, a.allowed) for a in trail] == [("sv", True), ("a01", False)]
