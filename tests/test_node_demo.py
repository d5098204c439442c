"""`scripts/demo --nodes 2` (issue 18), shorter: a throwaway PostgreSQL, two nodes on loopback with their own
SIP/RTP ports and half of the simulated agents each, one SIPp carrier, and a report with attempts per node."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dialer.demo_nodes import node_config
from tests.conftest import run_env
from tests.sipp import free_udp_port


def test_node_configs_split_agents_and_ports(tmp_path: Path) -> None:
    args = argparse.Namespace(carrier_port=5060, agent_port_base=5300, sip_port_base=5070, mode="predictive",
                              agents=5)
    cfgs = [tomllib.loads(node_config(tmp_path, i, 2, args, "postgresql+psycopg://u@h:1/d", 6)) for i in range(2)]
    logins = [[a["login"] for a in c["agents"]] for c in cfgs]
    assert logins == [["a01", "a03", "a05"], ["a02", "a04"]]  # every agent on exactly one node
    assert len({c["telephony"]["sip_port_base"] for c in cfgs}) == 2
    assert len({c["telephony"]["rtp_port_base"] for c in cfgs}) == 2
    assert {c["database"]["url"] for c in cfgs} == {"postgresql+psycopg://u@h:1/d"}
    assert [c["campaigns"][0] for c in cfgs][0] == [c["campaigns"][0] for c in cfgs][1]  # one campaign, same rules


@pytest.mark.sip
@pytest.mark.slow
def test_demo_with_two_nodes(tmp_path: Path) -> None:
    carrier = free_udp_port(7000, 7499)
    agents = free_udp_port(7500, 7899, span=5)
    sip = free_udp_port(7900, 7990, span=8)
    r = subprocess.run([sys.executable, "-m", "dialer.demo", "--nodes", "2", "--headless", "--for", "25s",
                        "--agents", "4", "--customers", "200", "--work", str(tmp_path / "demo"), "--carrier-port",
                        str(carrier), "--agent-port-base", str(agents), "--sip-port-base", str(sip)],
                       cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0, out[-3000:] + r.stderr[-3000:]
    assert "campaign report" in out and "Traceback" not in r.stderr
    # both nodes joined and dialled, and the report counts attempts per node that add up to the total
    assert "[node1] node node1: joined" in out and "[node2] node node2: joined" in out
    total = int(re.search(r"attempts\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    per_node = {m.group(1): int(m.group(2)) for m in re.finditer(r"│ (node\d)\s+│\s+(\d+) │", out)}
    assert set(per_node) == {"node1", "node2"} and sum(per_node.values()) == total and min(per_node.values()) > 0
    nodes_tail = out[out.rfind("==> nodes"):]
    assert re.search(r"node1\s+left\s+epoch \d", nodes_tail) and re.search(r"node2\s+left\s+epoch \d", nodes_tail), \
        "\n".join(ln for ln in out.splitlines() if "node" in ln)[-4000:]
    assert "the throwaway PostgreSQL is gone" in out
