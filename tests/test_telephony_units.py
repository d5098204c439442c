"""Pure parts of telephony: SIP status -> outcome, numbers -> Request-URI (no SIP needed)."""

from __future__ import annotations

import pytest

from dialer.config import TrunkConfig
from dialer.telephony import outcome_for_status
from dialer.telephony.numbers import format_number, request_uri


@pytest.mark.parametrize(("status", "outcome"), [
    (486, "busy"), (600, "busy"), (408, "no_answer"), (480, "no_answer"), (404, "invalid"), (484, "invalid"),
    (604, "invalid"), (603, "rejected"), (503, "congestion"), (500, "congestion"), (None, "congestion"),
    (0, "congestion"), (487, "cancelled"), (502, "congestion"), (699, "rejected"), (420, "failed"),
])
def test_outcome_for_status(status: int | None, outcome: str) -> None:
    assert outcome_for_status(status) == outcome


def test_our_cancel_is_no_answer_on_ring_timeout_and_cancelled_otherwise() -> None:
    assert outcome_for_status(487, ring_timeout=True) == "no_answer"
    assert outcome_for_status(487, cancelled=True) == "cancelled"


def _trunk(**kw: object) -> TrunkConfig:
    return TrunkConfig.model_validate({"name": "t", "proxy": "sip:127.0.0.1:5060", **kw})


def test_number_formats() -> None:
    assert format_number("+81312345678", _trunk()) == "+81312345678"
    assert format_number("+81312345678", _trunk(number_format="national")) == "0312345678"
    assert format_number("+81 90-1234-5678", _trunk(number_format="digits", dial_prefix="0033")) == "0033819012345678"
    assert format_number("1001", _trunk(number_format="national")) == "1001"


def test_request_uri() -> None:
    assert request_uri("+81312345678", _trunk()) == "sip:+81312345678@127.0.0.1:5060"
    assert request_uri("+81312345678", _trunk(proxy="sip:carrier.example;lr", transport="tcp")) == \
        "sip:+81312345678@carrier.example;lr;transport=tcp"
    assert request_uri("sip:echo@127.0.0.1:5999", _trunk()) == "sip:echo@127.0.0.1:5999"
