"""The live A/B's carrier: a deterministic function of the dialled number, the same in SIPp and in the
simulator's world (so the prediction and the live runs face one world)."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from dialer.demo_compare import carrier_outcome, carrier_xml, world
from tests.sipp import free_udp_port


def test_world_shares_match_the_carrier_rule() -> None:
    outs = Counter(carrier_outcome(f"+8190000{i:03d}")[0] for i in range(1000))
    w = world(20, 240.0)["outcomes"]
    assert outs["human"] / 1000 == pytest.approx(w["human"])
    assert outs["busy"] / 1000 == pytest.approx(w["busy"])
    assert (outs["congestion"] + outs["invalid"]) / 1000 == pytest.approx(w["failed"])
    rings = [carrier_outcome(f"0{i:03d}")[1] for i in range(250)]
    talks = [carrier_outcome(f"0{i:03d}")[2] for i in range(250)]
    assert min(rings) == world(1, 1)["ring_to_answer"]["low"] and max(rings) == pytest.approx(
        world(1, 1)["ring_to_answer"]["high"])
    assert min(talks) == world(1, 1)["talk"]["low"] and max(talks) == pytest.approx(world(1, 1)["talk"]["high"])


@pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp not installed")
@pytest.mark.parametrize("number,code", [("0312345012", "200"), ("0312345271", "486"), ("0312345351", "503"),
                                         ("0312345401", "404")])
def test_sipp_carrier_answers_by_number(tmp_path: Path, number: str, code: str) -> None:
    scen = tmp_path / "ab.xml"
    scen.write_text(carrier_xml())
    assert carrier_outcome(number)[0] == {"200": "human", "486": "busy", "503": "congestion", "404": "invalid"}[code]
    cport, uport = free_udp_port(), free_udp_port()
    carrier = subprocess.Popen(["sipp", "-sf", str(scen), "-i", "127.0.0.1", "-p", str(cport), "-m", "1",
                                "-nostdin", "-timeout", "30s"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = tmp_path / "uac.log"
        subprocess.run(["sipp", f"127.0.0.1:{cport}", "-sn", "uac", "-s", number, "-i", "127.0.0.1", "-p", str(uport),
                        "-m", "1", "-nostdin", "-timeout", "25s", "-trace_msg", "-message_file", str(log)],
                       cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        finals = [ln for ln in log.read_text().splitlines() if ln.startswith("SIP/2.0 ") and not ln[8:9] == "1"]
        assert finals and finals[0].startswith(f"SIP/2.0 {code}"), finals
    finally:
        carrier.kill()
        carrier.wait()
