"""`scripts/demo --nodes N`: the demo campaign served by N dialer nodes on loopback over a throwaway PostgreSQL.

Starts PostgreSQL from Debian's binaries in a temporary directory, writes one config per node (its own SIP and
RTP ports, its share of the simulated agents; the same campaign and carrier), loads the sample CRM export into
the shared store, runs `dialer node run` N times beside one SIPp carrier, then prints the campaign report
(attempts per node) and the nodes. Everything started is stopped again, the database thrown away.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.config import load_config
from dialer.demo import DEMO_AGENT_NAMES, REPO, demo_config, sh, start_carrier
from dialer.domain.calling_hours import business_today
from dialer.errors import UserError
from dialer.node.scratch_pg import pg_bin, start_server, stop_server

SIP_STRIDE = 100
RTP_STRIDE = 4000


def node_config(work: Path, i: int, n_nodes: int, args: argparse.Namespace, url: str, lines: int) -> str:
    """Node I's config: the demo's, with its own ports and every N-th agent."""
    text = demo_config(work, 0, args.carrier_port, args.agent_port_base, args.sip_port_base + SIP_STRIDE * i,
                       args.mode, lines, url)
    text = text.replace("rtp_port_base = 40000", f"rtp_port_base = {40000 + RTP_STRIDE * i}")
    text = text.replace(f'recordings_dir = "{work / "recordings"}"',
                        f'recordings_dir = "{work / f"recordings-node{i + 1}"}"')
    blocks = "".join(
        f'[[agents]]\nlogin = "a{k:02d}"\nname = "{DEMO_AGENT_NAMES[(k - 1) % len(DEMO_AGENT_NAMES)]}"\n'
        f'sip_uri = "sip:a{k:02d}@127.0.0.1:{args.agent_port_base + k}"\n\n'
        for k in range(1, args.agents + 1) if (k - 1) % n_nodes == i)
    return text.replace("[[campaigns]]", blocks + "[[campaigns]]", 1)


def _relay(prefix: str, stream: IO[str]) -> None:
    for line in stream:
        print(f"[{prefix}] {line.rstrip()}", flush=True)


def run_nodes_demo(args: argparse.Namespace) -> int:
    n = int(args.nodes)
    if n < 1:
        raise UserError("--nodes must be at least 1")
    bin_dir = pg_bin()
    if bin_dir is None:
        raise UserError("PostgreSQL is not installed (apt-get install -y postgresql): multi-node needs it")
    work = (Path(args.work).resolve().parent / "demo-nodes") if args.work == "var/demo" else Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="tsunagu-demo-pg-"))
    procs: list[subprocess.Popen[str]] = []
    carrier = agents = None
    server = None
    cfgs: list[Path] = []
    stop = {"now": False}

    def _sigterm(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _sigterm)
    try:
        print(f"==> starting a throwaway PostgreSQL ({bin_dir})")
        server = start_server(base, bin_dir)
        url = server.create_database("tsunagu_demo")
        print(f"==> store {url}")
        per_node = max(1, -(-args.agents // n))
        lines = max(4, per_node * 2)
        for i in range(n):
            path = work / f"node{i + 1}.toml"
            path.write_text(node_config(work, i, n, args, url, lines), encoding="utf-8")
            cfgs.append(path)
        sh("db", "init", "--config", str(cfgs[0]), cwd=REPO)
        as_of = business_today(load_config(cfgs[0]).schedules.timezone, datetime.now(UTC)).isoformat()  # business date, not the host's
        crm = work / "crm"
        print(f"==> generating a sample CRM export ({args.customers} customers) and building the call lists")
        sh("lists", "sample", "--out", str(crm), "--customers", str(args.customers), "--as-of", as_of, cwd=REPO)
        r = sh("lists", "build", "--mapping", str(REPO / "config" / "mappings" / "canonical.toml"), "--input",
               str(crm), "--out", str(work / "lists"), "--as-of", as_of, "--config", str(cfgs[0]), cwd=REPO)
        print(r.stdout.strip())
        print(f"==> starting the SIPp carrier on 127.0.0.1:{args.carrier_port}")
        carrier = start_carrier(work, args.carrier_port, None)
        specs = [AgentSpec(f"a{k:02d}", "127.0.0.1", args.agent_port_base + k) for k in range(1, args.agents + 1)]
        stats_dir = work / "agents"
        stats_dir.mkdir(exist_ok=True)
        for f in stats_dir.glob("*.json"):
            f.unlink()
        print(f"==> starting {args.agents} simulated agents, split over {n} nodes")
        agents = start_agents(specs, talk_mean=args.talk_mean, duration=args.duration + 90, stats_dir=str(stats_dir))
        print(f"==> running campaign 'demo' ({args.mode}) on {n} nodes for {args.duration:.0f} s")
        for i, cfg in enumerate(cfgs):
            cmd = [sys.executable, "-m", "dialer", "node", "run", "--node-id", f"node{i + 1}", "--for",
                   f"{args.duration:.0f}s", "--auto-login", "--config", str(cfg)]
            p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 start_new_session=True)
            procs.append(p)
            assert p.stdout is not None
            threading.Thread(target=_relay, args=(f"node{i + 1}", p.stdout), daemon=True).start()
        end = time.monotonic() + args.duration + 60
        while any(p.poll() is None for p in procs) and time.monotonic() < end and not stop["now"]:
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if agents:
            stop_agents(agents)
        if carrier and carrier.poll() is None:
            carrier.send_signal(signal.SIGUSR1)
            try:
                carrier.wait(timeout=10)
            except subprocess.TimeoutExpired:
                carrier.kill()
                carrier.wait()
    rc = 0
    try:
        if server is not None and cfgs:
            print("==> campaign report")
            rc = subprocess.run([sys.executable, "-m", "dialer", "report", "campaign", "demo", "--config",
                                 str(cfgs[0])], cwd=REPO, text=True).returncode
            print("==> nodes")
            subprocess.run([sys.executable, "-m", "dialer", "node", "list", "--config", str(cfgs[0])], cwd=REPO,
                           text=True)
    finally:
        if server is not None:
            stop_server(server, bin_dir)
        shutil.rmtree(base, ignore_errors=True)
        print("the throwaway PostgreSQL is gone; configs and the CRM export stay in", work)
    return rc


__all__ = ["node_config", "run_nodes_demo"]
