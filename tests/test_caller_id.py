"""Caller ID an operator controls (issue 24): the campaign's number (or the trunk's) in From with an optional
display name, in P-Asserted-Identity or P-Preferred-Identity as the trunk says, with `Privacy: none`; and
`dialer config check` refuses a real trunk that would present no number."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dialer.commands.config import caller_id_problems
from dialer.config import Config, parse_config
from dialer.telephony import Telephony
from tests.sipp import Sipp, free_udp_port
from tests.test_telephony_calls import collect, finished, make_config, telephony  # noqa: F401

BASE = """
[business]
name = "つなぐ商事"
phone = "0120-000-000"
[[trunks]]
name = "real"
proxy = "sip:sbc.carrier.example"
{trunk}
[[campaigns]]
name = "c1"
trunk = "real"
{campaign}
"""


def test_config_check_refuses_a_real_trunk_without_a_number() -> None:
    cfg = parse_config(BASE.format(trunk="", campaign=""), "t")
    problems = caller_id_problems(cfg)
    assert problems and "c1" in problems[0] and "presents no number" in problems[0]
    assert caller_id_problems(parse_config(BASE.format(trunk="", campaign='caller_id = "0312345678"'), "t")) == []
    assert caller_id_problems(parse_config(BASE.format(trunk='caller_id = "0312345678"', campaign=""), "t")) == []
    sandbox = BASE.replace("sip:sbc.carrier.example", "sip:127.0.0.1:5060").format(trunk="sandbox = true",
                                                                                    campaign="")
    assert caller_id_problems(parse_config(sandbox, "t")) == []


@pytest.mark.sip
@pytest.mark.parametrize(("header", "want"), [("pai", "P-Asserted-Identity"), ("ppi", "P-Preferred-Identity")])
def test_number_in_from_and_identity_header_with_privacy_none(tmp_path: Path, header: str, want: str,
                                                              telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50, trace_msg=True) as carrier:
        cfg = make_config(carrier.port, lines=2, extra_trunk=(
            f'from_domain = "carrier.example"\nidentity_header = "{header}"\ndisplay_name = "Tsunagu"'))
        tel = telephony(cfg)
        assert tel.originate(1, "+81312345678", "carrier", caller_id="0120999888", caller_name="つなぐ商事")
        collect(tel, finished(1), 10, on=lambda ev: tel.hangup(1) if ev.kind == "answered" else None)
    invite = carrier.messages().split("INVITE sip:", 1)[1].split("\n\n", 1)[0]
    lines = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in invite.splitlines() if ":" in ln}
    assert "sip:0120999888@carrier.example" in lines["From"] and "つなぐ商事" in lines["From"]
    assert "sip:0120999888@carrier.example" in lines[want]
    other = "P-Preferred-Identity" if want == "P-Asserted-Identity" else "P-Asserted-Identity"
    assert other not in lines and lines["Privacy"] == "none"
