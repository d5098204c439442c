"""Races and codecs answered right (issue 24), against SIPp carriers of that shape: a 200 OK that crosses the
ring-timeout CANCEL is an answered call (listened to, then an agent's or an abandon), a 200 OK with a codec we
did not offer is ACKed before its BYE, and the hangup says what the far end answered to our BYE. Each test
checks what the carrier saw (SIPp's own message log) and what the dialer reported or stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dialer.config import Config
from dialer.telephony import CallEvent, Telephony
from tests.sipp import Sipp, free_udp_port
from tests.test_telephony_announce import run_one_call
from tests.test_telephony_calls import collect, finished, make_config, telephony  # noqa: F401

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


def _order(log: str, *starts: str) -> list[int]:
    """Where each message first appears in SIPp's message log (-1: never)."""
    return [log.find(s) for s in starts]


@pytest.mark.slow
def test_200_crossing_the_ring_timeout_cancel_is_answered_then_abandoned(
        tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    """No agent takes it: the abandon it is (connect limit, then our BYE), never a no_answer with a 487."""
    with Sipp("carrier_200_crosses_ring_cancel", port=free_udp_port(), workdir=tmp_path, trace_msg=True) as carrier:
        tel = telephony(make_config(carrier.port, lines=1))
        assert tel.originate(1, "+81312345678", "carrier", ring_timeout_s=15, connect_limit_s=1.0)
        evs = collect(tel, finished(1), 40)
    kinds = [e.kind for e in evs]
    assert kinds == ["trying", "ringing", "answered", "abandoned", "hangup"], [(e.kind, e.detail) for e in evs]
    ans = next(e for e in evs if e.kind == "answered")
    end = evs[-1]
    assert "crossed our ring-timeout CANCEL" in ans.detail
    assert (end.by, end.sip_status) == ("dialer", 200) and "crossed our ring-timeout CANCEL" in end.detail, \
        (end.by, end.sip_status, end.detail)
    assert end.at - ans.at >= 1.0  # the connect limit ran: not hung up at once
    # the carrier: CANCEL (200, no 487), our ACK, and only later our BYE
    assert carrier.received("CANCEL") == 1 and carrier.sent(487) == 0
    assert carrier.received("ACK") == 1 and carrier.received("BYE") == 1
    log = carrier.messages()
    cancel, ack, bye = _order(log, "CANCEL sip:", "ACK sip:", "BYE sip:")
    assert 0 <= cancel < ack < bye


@pytest.mark.slow
def test_200_crossing_the_ring_timeout_cancel_reaches_an_agent_and_is_stored(tmp_path: Path) -> None:
    """The real runner with an agent ready: the call is routed to the agent; the attempt says answered, with its
    pick-up time, and no 487."""
    carrier = Sipp("carrier_200_crosses_ring_cancel", port=free_udp_port(6000, 6499), workdir=tmp_path,
                   trace_msg=True).start()
    res = run_one_call(tmp_path, carrier, timeout_s=45)
    assert len(res.attempts) == 1, [(r.outcome, r.detail) for r in res.attempts]
    r = res.attempts[0]
    assert (r.outcome, r.abandoned, r.sip_status) == ("answered", False, 200), (r.outcome, r.detail)
    assert r.answered_at is not None and r.agent_connected_at is not None and r.agent_id is not None
    assert "crossed our ring-timeout CANCEL" in r.detail
    assert not [d for d in res.dispositions if d.outcome == "bad_number"]
    # what the carrier saw (its message log: SIPp's counts file may be cut short when it is stopped mid-call)
    log = carrier.messages()
    cancel, ack, bye = _order(log, "CANCEL sip:", "ACK sip:", "BYE sip:")
    assert 0 <= cancel < ack and (bye == -1 or ack < bye) and "SIP/2.0 487" not in log, log[-3000:]


def test_hangup_reports_the_481_our_bye_got(tmp_path: Path,
                                            telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp("carrier_bye_481", port=free_udp_port(), workdir=tmp_path, duration_ms=50, trace_msg=True) as carrier:
        tel = telephony(make_config(carrier.port, lines=1))
        assert tel.originate(1, "+81312345678", "carrier", connect_limit_s=3600)

        def hang_up(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.hangup(1)

        evs = collect(tel, finished(1), 15, on=hang_up)
    end = evs[-1]
    assert (end.kind, end.by, end.sip_status) == ("hangup", "dialer", 481), end
    assert "our BYE: 481" in end.detail
    assert carrier.received("BYE") == 1 and carrier.sent(481) == 1
    assert "SIP/2.0 481 Call/Transaction Does Not Exist" in carrier.messages()
