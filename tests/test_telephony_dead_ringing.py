"""No call left ringing by a dead worker (issue 24): a worker killed while its call rings leaves the far end
with a CANCEL from the supervisor (sent from the dead worker's SIP port), and a 200 OK that crosses that CANCEL
(the callee picked up) is ACKed and ended with BYE. Checked against what SIPp saw."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from dialer.config import Config
from dialer.telephony import Telephony
from tests.sipp import Sipp, free_udp_port
from tests.test_telephony_calls import collect, make_config, telephony  # noqa: F401

pytestmark = [pytest.mark.sip, pytest.mark.timeout(90)]


@pytest.mark.parametrize(("scenario", "want"), [
    ("carrier_noanswer", (200, 487, 0)),  # CANCEL 200, INVITE 487 (ACKed), no BYE needed
    ("carrier_200_crosses_cancel", (200, 200, 200)),  # the callee answered as the CANCEL crossed: ACK + BYE
])
def test_worker_killed_while_ringing_cancels_and_ends_a_late_200(
        tmp_path: Path, scenario: str, want: tuple[int, int, int],
        telephony: Callable[[Config], Telephony]) -> None:  # noqa: F811
    with Sipp(scenario, port=free_udp_port(), workdir=tmp_path, trace_msg=True) as carrier:
        tel = telephony(make_config(carrier.port, lines=1))
        assert tel.originate(1, "+81312345678", "carrier")
        evs = collect(tel, lambda es: any(e.kind == "ringing" for e in es) and 1 in tel.early, 10)
        worker = next(e.worker for e in evs if e.kind == "ringing")
        old_pid = tel.worker_pids()[worker]
        os.kill(old_pid, signal.SIGKILL)
        evs2 = collect(tel, lambda _: len(tel.cancels) == 1, 20)
        collect(tel, lambda _: tel.worker_pids().get(worker) not in (None, old_pid), 10)  # restarted afterwards
    failed = [e for e in evs2 if e.kind == "failed"]
    assert [(e.attempt_id, e.outcome) for e in failed] == [(1, "interrupted")]
    assert "CANCEL sent" in failed[0].detail
    assert tel.cancels == [(1, want)]
    assert carrier.received("CANCEL") == 1 and carrier.received("ACK") >= 1
    log = carrier.messages()
    if want[1] == 200:
        assert carrier.received("BYE") == 1 and log.index("ACK sip:") < log.index("BYE sip:")
    else:
        assert carrier.sent(487) == 1 and carrier.received("BYE") == 0
