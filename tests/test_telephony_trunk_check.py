"""`dialer trunk check` against a SIPp carrier: the JSON counts equal what SIPp itself saw."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sipp import Sipp, free_udp_port

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def test_trunk_check_counts_match_carrier(tmp_path: Path) -> None:
    n = 16
    with Sipp("carrier_mix", port=free_udp_port(), workdir=tmp_path) as carrier:
        sip = free_udp_port(5100, 5899, span=10)
        cfg = tmp_path / "t.toml"
        cfg.write_text(f"""
[telephony]
sip_port_base = {sip}
rtp_port_base = {20000 + 1000 * (sip % 9)}
[[trunks]]
name = "lab"
proxy = "sip:127.0.0.1:{carrier.port}"
max_cps = 30
number_format = "national"
""")
        out = subprocess.run([sys.executable, "-m", "dialer", "trunk", "check", "--config", str(cfg), "--trunk", "lab",
                              "--to", "+81312345678", "--calls", str(n), "--concurrency", "6", "--hold", "0.3",
                              "--json"], capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert set(r) >= {"calls", "answered", "busy", "no_answer", "rejected", "invalid", "congestion", "failed",
                      "sip_status_counts", "setup_ms_p50", "setup_ms_p95"}
    assert r["calls"] == n == carrier.invites()
    assert r["busy"] == carrier.sent(486) == r["sip_status_counts"].get("486", 0)
    assert r["no_answer"] == carrier.sent(480)
    assert r["invalid"] == carrier.sent(404)
    assert r["congestion"] == carrier.sent(503)
    assert r["answered"] == carrier.received("BYE") == r["sip_status_counts"].get("200", 0)
    assert sum(r[k] for k in ("answered", "busy", "no_answer", "rejected", "invalid", "congestion", "failed")) == n
    if r["answered"]:
        assert r["setup_ms_p50"] <= r["setup_ms_p95"]


def test_trunk_check_unknown_trunk_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text('[[trunks]]\nname = "lab"\nproxy = "sip:127.0.0.1:5999"\n')
    out = subprocess.run([sys.executable, "-m", "dialer", "trunk", "check", "--config", str(cfg), "--trunk", "nope",
                          "--to", "1001"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "no trunk named 'nope'" in out.stderr and "Traceback" not in out.stderr
