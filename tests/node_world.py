"""Several dialer nodes on loopback against one real PostgreSQL, for the issue 18 tests and the bench.

Each node is a real `dialer node run` process (its own process group, so `kill -9` takes its SIP workers too)
with its own config: its own SIP/RTP ports, its own SIPp carrier (so the carrier's INVITE count is that node's
dials) and its own simulated agents. A node may reach PostgreSQL through `PgProxy`, a loopback TCP proxy the
test can cut (silently: bytes are dropped and the sockets stay open, as in a network split) and restore.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from dialer.agentsim import AgentSpec, start_agents, stop_agents
from dialer.store.db import get_engine
from dialer.store.models import CallListEntry
from tests.conftest import REPO, run_env
from tests.sipp import Sipp, free_udp_port

CAMPAIGN = "multi"


def campaign_text() -> str:
    return f"""
[[campaigns]]
name = "{CAMPAIGN}"
mode = "predictive"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
max_lines_per_agent = 2.5
wrap_up_timeout_s = 5
prior_hit_rate = 0.5
prior_talk_s = 8
prior_wrap_s = 1
info_message = "{REPO / 'config' / 'sounds' / 'info.wav'}"
"""


def second_campaign_text() -> str:
    """A second campaign on the same trunk, on its own segment (the first keeps the other three)."""
    return campaign_text().replace(f'name = "{CAMPAIGN}"', f'name = "{CAMPAIGN}2"\nsegments = ["cross_sell"]')


def node_config(url: str, carrier_port: int, agents: list[tuple[str, int]], sip_base: int, rtp_base: int,
                lines: int, *, two_campaigns: bool = False) -> str:
    blocks = "\n".join(f'[[agents]]\nlogin = "{lg}"\nname = "エージェント{lg}"\nsip_uri = "sip:{lg}@127.0.0.1:{p}"\n'
                       for lg, p in agents)
    return f"""
[database]
url = "{url}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = {rtp_base}
lines = {lines}
agent_legs = "on_connect"
agent_check_s = 0
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = {lines}
max_cps = 20
sandbox = true
{blocks}
{campaign_text()}{second_campaign_text() if two_campaigns else ""}"""


def seed(url: str, n: int) -> set[int]:
    now = datetime.now(UTC)
    with Session(get_engine(url)) as s:
        rows = [CallListEntry(customer_id=f"C{i:04d}", segment=("dormant", "pre_churn", "upsell", "cross_sell")[i % 4],
                              sku="SKU-1", phones=[f"+8190{20000000 + i:08d}"], priority=float(1000 - i),
                              reason="テスト", callable_from=now - timedelta(days=1),
                              callable_until=now + timedelta(days=3)) for i in range(n)]
        s.add_all(rows)
        s.commit()
        return {int(r.id or 0) for r in rows}


class PgProxy:
    """A loopback TCP proxy to PostgreSQL that can be cut silently (a network split) and restored."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = int(self.lsock.getsockname()[1])
        self.cut_ = False
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.cut_:
                with self.lock:  # held open and silent, like a host behind a dead link
                    self.conns.append((c, c))
                continue
            try:
                u = socket.create_connection(self.target, timeout=3)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self.stopped:
                r, _, _ = select.select([a, b], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if self.cut_:
                        continue  # dropped on the floor
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):  # closed by restore()
            return

    def cut(self) -> None:
        self.cut_ = True

    def restore(self) -> None:
        """The link comes back: connections that lived through the split are reset, new ones work."""
        with self.lock:
            conns, self.conns = self.conns, []
        for c, u in conns:
            for s in {c, u}:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass
        self.cut_ = False

    def stop(self) -> None:
        self.stopped = True
        self.lsock.close()
        self.restore()


@dataclass
class NodeProc:
    node_id: str
    cfg_path: Path
    carrier: Sipp
    agent_procs: list[subprocess.Popen[str]]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    history: list[int] = field(default_factory=list)

    def start(self, duration_s: float) -> None:
        cmd = [sys.executable, "-m", "dialer", "node", "run", "--node-id", self.node_id, "--for", f"{duration_s:.0f}s",
               "--auto-login", "--config", str(self.cfg_path)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=run_env(), stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.history.append(self.proc.pid)

    def kill9(self) -> None:
        """The host dies: the node and its SIP workers, at once."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self, timeout_s: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def invites(self) -> int:
        """INVITEs this node's carrier has seen so far (SIPp dumps its counts every second)."""
        self.carrier._read()
        return self.carrier.received("INVITE")


_SIP_TAKEN: list[int] = []  # nodes' SIP port blocks handed out but perhaps not bound yet


def _sip_base() -> int:
    """A free block of 8 SIP ports that does not overlap one given to another node of this run."""
    for _try in range(200):
        p = free_udp_port(6900, 6999, span=8)
        if all(abs(p - q) >= 8 for q in _SIP_TAKEN):
            _SIP_TAKEN.append(p)
            del _SIP_TAKEN[:-6]
            return p
    raise RuntimeError("no free SIP port block for a node")


def make_node(tmp: Path, node_id: str, url: str, n_agents: int, lines: int, rtp_base: int, *,
              two_campaigns: bool = False, agent_s: float = 300) -> NodeProc:
    carrier_port = free_udp_port(6000, 6499)
    agent_base = free_udp_port(6500, 6899, span=n_agents)
    sip_base = _sip_base()
    logins = [(f"{node_id.lower()}{i}", agent_base + i) for i in range(n_agents)]
    cfg = tmp / f"node-{node_id}.toml"
    if two_campaigns:
        _SIP_TAKEN.append(sip_base + 50)  # the second campaign's workers: sip_port_base + 50
    cfg.write_text(node_config(url, carrier_port, logins, sip_base, rtp_base, lines, two_campaigns=two_campaigns),
                   encoding="utf-8")
    work = tmp / f"node-{node_id}"
    work.mkdir(exist_ok=True)
    carrier = Sipp(REPO / "config" / "sipp" / "demo-carrier.xml", port=carrier_port, workdir=work,
                   rtp_echo=True).start()
    specs = [AgentSpec(lg, "127.0.0.1", p) for lg, p in logins]
    agents = start_agents(specs, talk_mean=4.0, talk_cv=0.3, duration=agent_s, stats_dir=str(work),
                          rtp_base=rtp_base + 6000)
    return NodeProc(node_id, cfg, carrier, agents, tmp / f"node-{node_id}.log")


def teardown(nodes: list[NodeProc]) -> None:
    for n in nodes:
        n.stop(timeout_s=30)
    for n in nodes:
        stop_agents(n.agent_procs)
        n.carrier.stop(grace_s=0.5)


def q(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    with get_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params).all()]


def wait_for(cond, timeout_s: float, step: float = 0.1) -> float | None:  # type: ignore[no-untyped-def]
    """Seconds until COND() held, or None after TIMEOUT_S (bounded)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    return None
