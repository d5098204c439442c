"""(issue 29) The `listen` command's argument: one written form for the service and the runner."""

from __future__ import annotations

import pytest

from dialer.domain.listen import ListenOrder, check_uri, parse_listen
from dialer.domain.vocabulary import ListenMode
from dialer.errors import UserError


def test_the_argument_round_trips() -> None:
    order = ListenOrder(ListenMode.WHISPER, 42, "sip:sv01@192.0.2.10:5060", "佐藤")
    assert parse_listen(order.argument()) == order


@pytest.mark.parametrize("arg", ["shout 1 sip:a@b x", "listen x sip:a@b x", "listen 1 tel:0312345678 x",
                                 "listen 1 sip:a@b", "listen 1 http://a@b x"])
def test_a_bad_argument_is_refused_with_what_was_wrong(arg: str) -> None:
    with pytest.raises(UserError):
        parse_listen(arg)


def test_a_phone_is_a_sip_uri_without_spaces() -> None:
    assert check_uri("  sip:sv01@127.0.0.1:5999 ") == "sip:sv01@127.0.0.1:5999"
    for bad in ("sip:sv01", "sv01@127.0.0.1", "sip:sv 01@127.0.0.1"):
        with pytest.raises(UserError):
            check_uri(bad)


def test_two_supervisors_join_the_same_call_and_each_join_is_logged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """(issue 29) Several supervisors per call: each join is its own command (its own leg on the worker, see
    tests/test_listen_sip.py) and its own audit row with who, which call and how; an agent is still refused."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from sqlmodel import Session, select

    from dialer.service.auth import Principal
    from dialer.service.listen import join_call
    from dialer.service.roles import PermissionDenied, Role
    from dialer.store.agents import ensure_agent
    from dialer.store.attempts import create_attempt
    from dialer.store.db import init_db
    from dialer.store.models import Agent, Campaign, ControlCommand, Customer
    from dialer.store.users import audit_trail

    engine, _ = init_db(f"sqlite:///{tmp_path / 't.db'}")
    ensure_agent(engine, SimpleNamespace(login="a01", name="佐藤 花子", sip_uri="sip:a01@127.0.0.1", segments=[],
                                         node=""))
    with Session(engine) as s:
        camp = Campaign(name="winback", mode="predictive")
        s.add(camp)
        s.add(Customer(customer_id="C9", name="山田 太郎", phone="+81312345678"))
        s.commit()
        s.refresh(camp)
        agent_id = s.exec(select(Agent.id).where(Agent.login == "a01")).one()
    now = datetime.now(UTC)
    call = create_attempt(engine, campaign_id=camp.id, customer_id="C9", phone="+81312345678", agent_id=agent_id,
                          state="connected", dialed_at=now, agent_connected_at=now)
    sv1, sv2 = Principal("sv01", Role.SUPERVISOR), Principal("鈴木", Role.SUPERVISOR)
    join_call(engine, sv1, call, "listen", "sip:sv01@127.0.0.1:5071", origin="web")
    join_call(engine, sv2, call, "whisper", "sip:sv02@127.0.0.1:5072", origin="terminal")
    with pytest.raises(PermissionDenied):
        join_call(engine, Principal("a02", Role.AGENT, agent_login="a02"), call, "listen", "sip:a02@127.0.0.1")
    with Session(engine) as s:
        cmds = s.exec(select(ControlCommand).order_by(ControlCommand.id)).all()
    orders = [(parse_listen(c.argument), c.requested_by, c.campaign) for c in cmds]
    assert orders == [(ListenOrder(ListenMode.LISTEN, call, "sip:sv01@127.0.0.1:5071", "sv01"), "web:sv01", "winback"),
                      (ListenOrder(ListenMode.WHISPER, call, "sip:sv02@127.0.0.1:5072", "鈴木"), "terminal:鈴木",
                       "winback")]
    joins = [(a.actor, a.allowed, a.target, a.detail) for a in reversed(audit_trail(engine))
             if a.action == "recording.play" or a.actor == "a02"]
    assert [j[:3] for j in joins if j[1]] == [("sv01", True, f"winback:call {call}"), ("鈴木", True, f"winback:call {call}")]
    assert "listen on sip:sv01@127.0.0.1:5071" in joins[0][3] and "whisper on sip:sv02" in joins[1][3]
    assert any(actor == "a02" and not allowed for actor, allowed, _t, _d in joins)  # the refusal is logged too
