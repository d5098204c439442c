"""Return calls on several nodes (issue 30): one inbound desk per node, all on one store.

- the desk that receives the INVITE has no ready agent, another live desk has one: it answers 302 with that
  desk's address (a URI parameter marks the redirect, so the second desk never redirects again); SIPp as a trunk
  that follows redirects; the caller is bridged to the free agent on the second desk, recorded once, by it;
- a desk that dies while a caller waits does not lose the caller silently: the desk restarted on that address (or
  any other desk, once the dead one's beat is stale: tests/test_inbound_store.py) closes the attempt as an
  inbound abandon with the reason and frees the agents it held.
Real peers: two `dialer inbound run` processes (pjsua2), SIPp customer and agents, SQLite.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.domain.inbound import Direction, InboundOutcome
from dialer.store.models import Agent, Attempt
from tests import test_inbound_sip as base
from tests.sipp import Sipp, free_udp_port
from tests.test_inbound_sip import _inbound, _seed, _start_desk, _stop

pytestmark = [pytest.mark.sip, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("sipp") is None,
                                 reason="needs espeak-ng and sipp")]
desk, prompts = base.desk, base.prompts  # the same fixtures as the one-desk tests


def _pause(engine: Engine, login: str) -> None:
    with Session(engine) as s:
        a = s.exec(select(Agent).where(Agent.login == login)).one()
        a.state, a.state_since = "paused", datetime.now(UTC)
        s.add(a)
        s.commit()


def test_a_desk_with_nobody_free_redirects_the_caller_to_the_desk_with_a_free_agent(
        desk: tuple[Path, int, Engine], prompts: dict[str, str]) -> None:
    tmp, port_a, engine = desk
    port_b = free_udp_port()
    a01, a02 = free_udp_port(), free_udp_port()
    uris = {"a01": f"sip:a01@127.0.0.1:{a01}", "a02": f"sip:a02@127.0.0.1:{a02}"}
    out_id, _ = _seed(engine, uris, ready=True)
    _pause(engine, "a01")  # the last agent, on desk A, is paused: only desk B's a02 is free
    (tmp / "b").mkdir()
    (tmp / "a").mkdir()
    desk_b = _start_desk(tmp / "b", port_b, str(engine.url), {"a02": uris["a02"]}, prompts)
    desk_a = None
    try:
        desk_a = _start_desk(tmp / "a", port_a, str(engine.url), {"a01": uris["a01"]}, prompts)
        with Sipp("agent_uas", port=a01, workdir=tmp, rtp_echo=True) as ag1, \
                Sipp("agent_bye", port=a02, workdir=tmp, duration_ms=800, rtp_echo=True) as ag2:
            cust = Sipp("customer_redirected", port=free_udp_port(), workdir=tmp, max_calls=1, timeout_s=20,
                        keys={"caller": "09087654321"}, trace_msg=True,
                        extra=("-s", "0501234567", f"127.0.0.1:{port_a}")).start()
            cust.wait(25)
            att = _inbound(engine)
    finally:
        if desk_a is not None:
            _stop(desk_a)
        _stop(desk_b)
    assert cust.stat("SuccessfulCall(C)") == 1, cust.messages()
    assert f"127.0.0.1:{port_b};tsunagu-redirected" in cust.messages()  # the 302's Contact: desk B
    assert ag1.invites() == 0 and ag2.invites() == 1
    with Session(engine) as s:
        rows = s.exec(select(Attempt).where(Attempt.direction == Direction.INBOUND.value)).all()
        a02_id = s.exec(select(Agent.id).where(Agent.login == "a02")).one()
    assert len(rows) == 1  # recorded once, by the desk that answered
    assert (att.worker, att.outcome, att.agent_id, att.answers_attempt_id) == (
        f"127.0.0.1:{port_b}", InboundOutcome.ANSWERED, a02_id, out_id)


def test_a_caller_queued_on_a_desk_that_dies_is_recorded_as_cut(
        desk: tuple[Path, int, Engine], prompts: dict[str, str]) -> None:
    tmp, port, engine = desk
    uris = {"a01": f"sip:a01@127.0.0.1:{free_udp_port()}"}
    _seed(engine, uris, ready=False)  # nobody free: the caller queues
    proc = _start_desk(tmp, port, str(engine.url), uris, prompts)
    cust = Sipp("customer_call", port=free_udp_port(), workdir=tmp, max_calls=1, timeout_s=20,
                keys={"caller": "09087654321"}, extra=("-s", "0501234567", f"127.0.0.1:{port}")).start()
    try:
        end = time.monotonic() + 15
        while True:  # the caller is answered and queued (the attempt is written when answered)
            with Session(engine) as s:
                row = s.exec(select(Attempt).where(Attempt.direction == Direction.INBOUND.value)).first()
            if row is not None:
                break
            assert time.monotonic() < end, "the caller was never answered"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # the node dies: no BYE, no end written
        proc.wait(10)
        with Session(engine) as s:
            assert s.get(Attempt, row.id).ended_at is None  # type: ignore[union-attr]
        (tmp / "desk.log").unlink()
        proc = _start_desk(tmp, port, str(engine.url), uris, prompts)  # back on the same address
        att = _inbound(engine, timeout_s=5)
    finally:
        _stop(proc)
        cust.stop()
    assert att.outcome == InboundOutcome.QUEUE_ABANDONED and att.hangup_by == "dialer"
    assert f"desk 127.0.0.1:{port} stopped" in att.detail and "waiting" in att.detail
