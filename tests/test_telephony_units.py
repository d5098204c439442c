"""Pure parts of telephony: SIP status -> outcome, numbers -> Request-URI (no SIP needed)."""

from __future__ import annotations

from pathlib import Path

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


def test_pj_log_dir_is_created_or_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(issue 24) a missing TSUNAGU_PJ_LOG_DIR is created; one that cannot be is a TelephonyError, no traceback."""
    from dialer.telephony.supervisor import TelephonyError, pj_log_dir

    monkeypatch.delenv("TSUNAGU_PJ_LOG_DIR", raising=False)
    assert pj_log_dir() == ""
    want = tmp_path / "a" / "b"
    monkeypatch.setenv("TSUNAGU_PJ_LOG_DIR", str(want))
    assert pj_log_dir() == str(want) and want.is_dir()
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("TSUNAGU_PJ_LOG_DIR", str(tmp_path / "file" / "logs"))
    with pytest.raises(TelephonyError) as e:
        pj_log_dir()
    assert "TSUNAGU_PJ_LOG_DIR=" in str(e.value) and "\n" not in str(e.value)
