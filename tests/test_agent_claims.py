"""An agent claimed by one owner is not taken by another (issue 30 with issue 28's runner): the inbound desk
reserves a ready agent with a conditional update; a campaign runner acting on its last read of the board then
asks for the same agent for its own customer. The store refuses, naming who holds the agent, so the runner's
routing picks someone else on its next pass instead of double-booking a person."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from dialer.domain.agents import taken_by_another
from dialer.domain.vocabulary import AgentState
from dialer.store.agents import move_agent
from dialer.store.db import get_engine, init_db
from dialer.store.models import Agent

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_a_runner_cannot_take_an_agent_the_desk_has_claimed(db_url: str) -> None:
    init_db(db_url)
    engine = get_engine(db_url)
    with Session(engine) as s:
        a = Agent(login="a01", name="佐藤", sip_uri="sip:a01@127.0.0.1:5301", state=AgentState.RESERVED.value,
                  current_attempt_id=41, state_since=NOW)
        s.add(a)
        s.commit()
        s.refresh(a)
        agent_id = a.id
    assert agent_id is not None
    with pytest.raises(ValueError, match="a01: already reserved for attempt 41"):
        move_agent(engine, agent_id, AgentState.RESERVED, NOW, campaign_id=None, attempt_id=42)
    with pytest.raises(ValueError, match="attempt 41"):
        move_agent(engine, agent_id, AgentState.ON_CALL, NOW, campaign_id=None, attempt_id=42)
    # the owner's own moves go through
    assert move_agent(engine, agent_id, AgentState.ON_CALL, NOW, campaign_id=None, attempt_id=41) == "on_call"
    assert move_agent(engine, agent_id, AgentState.WRAP_UP, NOW, campaign_id=None, attempt_id=41) == "wrap_up"
    assert move_agent(engine, agent_id, AgentState.READY, NOW, campaign_id=None) == "ready"
    # free again: anyone may reserve them
    assert move_agent(engine, agent_id, AgentState.RESERVED, NOW, campaign_id=None, attempt_id=42) == "reserved"


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(AgentState)), st.one_of(st.none(), st.integers(1, 5)),
       st.one_of(st.none(), st.integers(1, 5)))
def test_taken_only_when_busy_with_another_call(state: AgentState, holding: int | None, asked: int | None) -> None:
    taken = taken_by_another(state, holding, asked)
    if taken:
        assert state in (AgentState.RESERVED, AgentState.ON_CALL) and holding is not None and holding != asked
    if state in (AgentState.RESERVED, AgentState.ON_CALL) and holding is not None and asked is not None \
            and holding != asked:
        assert taken
