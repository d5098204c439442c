"""Telephony bench: how many concurrent bridged lines and call setups per second this machine sustains.

    .venv/bin/python -m bench.telephony.lines --lines 8 32 64 --hold 15      # concurrent lines, RTP loss
    .venv/bin/python -m bench.telephony.lines --cps 20 50 --calls 200         # setups per second

Concurrent run: `lines` customer calls to a SIPp carrier (-rtp_echo), each bridged at once to an agent leg
on a SIPp agent (-rtp_echo), held `hold` seconds with RTP flowing both ways on both legs. Reported: workers,
their summed RSS and PSS, their CPU (% of one core) during the hold, setup p50/p95 (originate -> answered),
answer -> agent connected p50/p95, and RTP loss on every leg (pjmedia's RTCP receive stats).
Setups-per-second run: short calls (answer, 0.2 s hold) placed as fast as the trunk's max_cps allows.
Ports: SIP 5100-5999, RTP 20000-29999.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dialer.config import parse_config  # noqa: E402
from dialer.telephony import CallEvent, Telephony  # noqa: E402
from dialer.telephony.check import percentile  # noqa: E402
from tests.sipp import Sipp, free_udp_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def _mem(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _cfg(carrier_port: int, lines: int, max_cps: float, *, agent_legs: str = "on_connect",
         agent_port: int = 0) -> Any:
    # one SIP port per worker: 1 on a site build, lines/2 on the wheel (other tests hold ports here too)
    workers = 1 if _build() == "site" else math.ceil(lines / 2)
    sip = free_udp_port(5100, 8999, span=workers + 4)
    agents = "".join(f'[[agents]]\nlogin = "b{i}"\nsip_uri = "sip:b{i}@127.0.0.1:{agent_port}"\n'
                     for i in range(1, lines + 1)) if agent_legs == "nailed" else ""
    return parse_config(f"""
[telephony]
sip_port_base = {sip}
rtp_port_base = 20000
rtp_ports_per_worker = 40
lines = {lines}
worker_start_timeout_s = 60
agent_legs = "{agent_legs}"
max_lines_per_host = {lines}  # measure what the host does beyond the supervisor's own estimate
[[trunks]]
name = "carrier"
proxy = "sip:127.0.0.1:{carrier_port}"
max_cps = {max_cps}
max_channels = 10000
{agents}""", "bench")


def _build() -> str:
    """Which pjsua2 this interpreter has: the PyPI wheel or a site build (scripts/build-pjsua2)."""
    from importlib import metadata

    try:
        v = metadata.version("pjsua2-python")
    except metadata.PackageNotFoundError:
        return "unknown"
    return "site" if "+site" in v else "wheel"


def concurrent(lines: int, hold: float, work: Path, agent_legs: str = "on_connect") -> dict[str, Any]:
    """`lines` customers, each bridged to its own agent leg, held `hold` s. With agent_legs = nailed every
    agent is logged in (called once, leg kept up) before the first customer is dialled."""
    with Sipp("carrier_answer", port=free_udp_port(), workdir=work, duration_ms=0, rtp_echo=True,
              media_port=29100) as carrier, \
            Sipp("agent_uas", port=free_udp_port(), workdir=work, rtp_echo=True, media_port=29200) as agent:
        tel = Telephony(_cfg(carrier.port, lines, max_cps=100, agent_legs=agent_legs, agent_port=agent.port))
        t0 = time.monotonic()
        tel.start()
        start_s = time.monotonic() - t0
        ends: list[CallEvent] = []
        legs_up_s = None
        free_agents: list[int] = []
        if agent_legs == "nailed":
            assert tel.agent_legs == "nailed", "the nailed run needs one process for every leg: a site build"
            t1 = time.monotonic()
            deadline = t1 + 60
            for i in range(1, lines + 1):  # log-ins paced at ~100/s (a burst overflows UDP buffers)
                tel.agent_login(i, agent.uri(f"b{i}"))
                tel.events(0.01)
            while len(tel.nailed.up) < lines and time.monotonic() < deadline:
                tel.events(0.05)
            legs_up_s = round(time.monotonic() - t1, 2)
            free_agents = sorted(tel.nailed.up, reverse=True)
        placed: dict[int, float] = {}
        answered: dict[int, float] = {}
        setup: list[float] = []
        bridge: list[float] = []
        nxt = 1
        end = time.monotonic() + 60
        connected = 0
        while connected + len(ends) < lines and time.monotonic() < end:
            while nxt <= lines and tel.originate(nxt, "1000", "carrier", connect_limit_s=hold + 60):
                placed[nxt] = time.monotonic()
                nxt += 1
            for ev in tel.events(0.01):
                if ev.kind == "answered" and ev.attempt_id is not None:
                    answered[ev.attempt_id] = ev.at
                    setup.append((time.monotonic() - placed[ev.attempt_id]) * 1000)
                    agent_id = free_agents.pop() if free_agents else 1
                    tel.connect_agent(ev.attempt_id, agent_id, agent.uri("agent"))
                elif ev.kind == "agent_connected" and ev.attempt_id is not None:
                    connected += 1
                    # both stamps are the worker's own (same process): answer -> customer bridged to the agent
                    bridge.append((ev.at - answered[ev.attempt_id]) * 1000)
                elif ev.kind in ("failed", "hangup", "abandoned"):
                    ends.append(ev)
        pids = list(tel.worker_pids().values())
        c0 = sum(_cpu(p) for p in pids)
        w0 = time.monotonic()
        while time.monotonic() - w0 < hold:
            ends += [e for e in tel.events(0.2) if e.kind in ("failed", "hangup")]
        cpu = (sum(_cpu(p) for p in pids) - c0) / (time.monotonic() - w0) * 100
        mem = [_mem(p) for p in pids]
        for a in list(tel.calls):
            tel.hangup(a)
        stop = time.monotonic() + 20
        while len(ends) < lines and time.monotonic() < stop:
            ends += [e for e in tel.events(0.2) if e.kind in ("failed", "hangup")]
        tel.stop()
    rx = lost = 0
    for e in ends:
        for leg in (e.stats or {}).values():
            rx += leg["rx"]
            lost += leg["loss"]
    return {"lines": lines, "build": _build(), "agent_legs": tel.agent_legs, "workers": len(pids),
            "calls_per_worker": tel.worker_capacity, "customer_slots_per_worker": tel.customer_slots_per_worker,
            "start_s": round(start_s, 2), "legs_up_s": legs_up_s,
            "bridged": connected, "rss_mb": round(sum(m[0] for m in mem) / 1024, 1),
            "pss_mb": round(sum(m[1] for m in mem) / 1024, 1), "cpu_pct": round(cpu, 1),
            "setup_ms_p50": _r(percentile(setup, 0.5)), "setup_ms_p95": _r(percentile(setup, 0.95)),
            "bridge_ms_p50": _r(percentile(bridge, 0.5)), "bridge_ms_p95": _r(percentile(bridge, 0.95)),
            "rtp_rx_packets": rx, "rtp_lost": lost, "rtp_loss_pct": round(100 * lost / max(1, rx + lost), 3),
            "carrier_invites": carrier.invites(), "agent_invites": agent.invites(),
            "load_1min": round(os.getloadavg()[0], 1)}


def setups(cps: float, calls: int, lines: int, work: Path) -> dict[str, Any]:
    from dialer.telephony.check import run_check

    with Sipp("carrier_answer", port=free_udp_port(), workdir=work, duration_ms=0, media_port=29300) as carrier:
        cfg = _cfg(carrier.port, lines, max_cps=cps)
        t0 = time.monotonic()
        tel = Telephony(cfg.model_copy(update={"telephony": cfg.telephony.model_copy(
            update={"lines": lines, "trunk_503_limit": 10**9})}))
        tel.start()
        t1 = time.monotonic()
        r = run_check(cfg, "carrier", "1000", calls=calls, concurrency=lines, hold_s=0.2, tel=tel)
        wall = time.monotonic() - t1
        tel.stop()
        del t0
    return {"max_cps": cps, "calls": r["calls"], "answered": r["answered"], "failed_other": r["calls"] - r["answered"],
            "achieved_cps": round(r["calls"] / wall, 1), "setup_ms_p50": r["setup_ms_p50"],
            "setup_ms_p95": r["setup_ms_p95"], "carrier_invites": carrier.invites(),
            "carrier_ok": carrier.stat("SuccessfulCall(C)")}


def _r(v: float | None) -> float | None:
    return round(v, 1) if v is not None else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="*", default=[])
    ap.add_argument("--hold", type=float, default=15.0)
    ap.add_argument("--cps", type=float, nargs="*", default=[])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--setup-lines", type=int, default=16)
    ap.add_argument("--agent-legs", choices=["on_connect", "nailed"], nargs="*", default=["on_connect"],
                    help="how agent legs are placed (nailed needs a site build: one process for every leg)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for n in a.lines:
            for legs in a.agent_legs:
                print(json.dumps({"run": "concurrent", **concurrent(n, a.hold, Path(d), legs)}), flush=True)
        for c in a.cps:
            print(json.dumps({"run": "setups", **setups(c, a.calls, a.setup_lines, Path(d))}), flush=True)


if __name__ == "__main__":
    main()
