"""Fault injection under live nodes (issue 25): what each ordinary fault costs the customers.

    nice -n 5 flock /tmp/tsunagu-sip.lock python -m bench.faults [--minutes 8] [--every 90] [--json]

Two `dialer node run` processes share one campaign on a throwaway PostgreSQL (tests/node_world.py: each node its
own SIPp carrier and pjsua2 agents; node A also has one agent whose phone is on Do Not Disturb, a SIPp UAS that
answers OPTIONS 200 and every INVITE 486). Every `--every` seconds the next fault of the cycle is injected:

1. `kill -9` of one of node A's SIP worker processes (the runner lives on; the worker's calls die with it);
2. PostgreSQL stopped (`pg_ctl stop -m immediate`) for 20 s, then started again;
3. node B stopped (SIGTERM: drain) and started again at once.

Figures, from the store and the carriers' own counts after the run: conversations cut (an attempt that reached an
agent and was ended by the dialer or closed `interrupted`), outcomes lost (an attempt left without an outcome or
still live), dispositions written twice, abandons in total and in the 30 s after each fault, INVITEs that are not
attempts. Each cut or abandon is attributed to the fault whose window it falls in.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dialer.node.scratch_pg import PG_BIN, _run_as, pg_bin, start_server, stop_server
from dialer.store.db import dispose_engines, init_db
from tests.node_world import NodeProc, make_node, q, seed, teardown, wait_for
from tests.sipp import Sipp, free_udp_port

FAULT_WINDOW_S = 30.0
LIVE = ("dialing", "ringing", "answered", "connected")


def _restart_pg(server: Any) -> None:
    bin_dir = pg_bin() or PG_BIN
    prefix, _ = _run_as()
    base = server.datadir.parent
    opts = (f"-p {server.port} -h 127.0.0.1 -k {base} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB")
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(server.datadir), "-l", str(base / "log"), "-o", opts,
                    "-w", "-t", "30", "start"], check=True, capture_output=True, cwd=base)


def _workers_of(node: NodeProc) -> list[int]:
    """PIDs of the node's SIP worker processes (its process group, not the node itself)."""
    assert node.proc is not None
    out = subprocess.run(["ps", "-o", "pid=,pgid=,args=", "-e"], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == str(node.proc.pid) and parts[0] != str(node.proc.pid) \
                and "telephony" in parts[2]:
            pids.append(int(parts[0]))
    return pids


def run(minutes: float, every: float, tmp: Path) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="tsunagu-bench-faults-"))
    server = start_server(base)
    faults: list[dict[str, Any]] = []
    nodes: list[NodeProc] = []
    dnd: Sipp | None = None
    try:
        url = server.create_database("bench_faults")
        init_db(url)
        seed(url, 3000)
        agent_s = minutes * 60 + 600  # the simulated agents outlive the run
        a = make_node(tmp, "A", url, 4, 8, 41000, agent_s=agent_s)
        b = make_node(tmp, "B", url, 4, 8, 43000, agent_s=agent_s)
        nodes = [a, b]
        dnd_port = free_udp_port(6500, 6899)
        dnd = Sipp("agent_dnd", port=dnd_port, workdir=tmp).start()
        for n in nodes:
            text = n.cfg_path.read_text(encoding="utf-8")
            n.cfg_path.write_text(text.replace("[database]\n", f'[database]\njournal_dir = "{tmp / n.node_id}"\n', 1),
                                  encoding="utf-8")
        cfg = a.cfg_path.read_text(encoding="utf-8")
        a.cfg_path.write_text(cfg.replace("[[campaigns]]", f'[[agents]]\nlogin = "dnd1"\nname = "DND"\n'
                                          f'sip_uri = "sip:dnd1@127.0.0.1:{dnd_port}"\n\n[[campaigns]]', 1),
                              encoding="utf-8")
        total_s = minutes * 60
        for n in nodes:
            n.start(total_s + 600)
        if wait_for(lambda: all(n.invites() > 0 for n in nodes), 120) is None:
            raise RuntimeError("the nodes never dialled")
        t0 = time.monotonic()
        cycle = 0
        while time.monotonic() - t0 < total_s - 30:
            time.sleep(max(0.0, every - ((time.monotonic() - t0) % every)))
            if time.monotonic() - t0 >= total_s - 30:
                break
            kind = ("kill_worker", "pg_stop_20s", "node_restart")[cycle % 3]
            cycle += 1
            at = datetime.now(UTC)
            detail = ""
            if kind == "kill_worker":
                pids = _workers_of(a)
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    detail = f"worker pid {pids[0]} of node A"
            elif kind == "pg_stop_20s":
                stop_server(server)
                time.sleep(20)
                _restart_pg(server)
                dispose_engines()
            else:
                b.stop(timeout_s=120)
                b.start(total_s + 600)
            faults.append({"kind": kind, "at": at.isoformat(), "detail": detail,
                           "took_s": round((datetime.now(UTC) - at).total_seconds(), 1)})
        ended = time.monotonic() - t0
    finally:
        teardown(nodes)
        if dnd is not None:
            dnd.stop()
    try:
        return {"minutes": round(ended / 60, 1), "faults": faults, **figures(url, nodes, faults)}
    finally:
        dispose_engines()
        stop_server(server)
        shutil.rmtree(base, ignore_errors=True)


def figures(url: str, nodes: list[NodeProc], faults: list[dict[str, Any]]) -> dict[str, Any]:
    rows = q(url, "SELECT id, node_id, state, outcome, hangup_by, agent_connected_at, answered_at, abandoned, "
                  "ended_at, detail FROM attempts")
    starts = [(datetime.fromisoformat(f["at"]), f["kind"]) for f in faults]

    def fault_of(t: Any) -> str:
        if t is None:
            return ""
        t = t if t.tzinfo else t.replace(tzinfo=UTC)
        for at, kind in starts:
            if at <= t <= at + timedelta(seconds=FAULT_WINDOW_S + 20):
                return kind
        return ""

    cut = [r for r in rows if r[5] is not None and (r[2] == "interrupted" or r[4] == "dialer") and not r[7]]
    lost = [r for r in rows if not r[3] or r[2] in LIVE]
    abandons = [r for r in rows if r[7]]
    dup = q(url, "SELECT attempt_id FROM dispositions WHERE attempt_id IS NOT NULL GROUP BY attempt_id "
                 "HAVING count(*) > 1")
    by_fault: dict[str, dict[str, int]] = {}
    for kind in ("kill_worker", "pg_stop_20s", "node_restart", ""):
        by_fault[kind or "no_fault"] = {
            "cut": sum(1 for r in cut if fault_of(r[8]) == kind),
            "abandons": sum(1 for r in abandons if fault_of(r[6]) == kind)}
    events = q(url, "SELECT at, kind, message FROM campaign_events WHERE kind IN ('node_dead', 'reaped', 'tick_lag', "
                    "'agent_unavailable', 'agent_unreachable', 'worker_down', 'calls_cut', 'stop_now', "
                    "'drain_timeout') ORDER BY at")
    kinds: dict[str, int] = {}
    for _at, kind, _msg in events:
        kinds[str(kind)] = kinds.get(str(kind), 0) + 1
    invites = {n.node_id: n.invites() for n in nodes}
    attempts = {n.node_id: sum(1 for r in rows if r[1] == n.node_id) for n in nodes}
    connected = sum(1 for r in rows if r[5] is not None)
    return {"attempts": len(rows), "connected": connected, "conversations_cut": len(cut),
            "outcomes_lost": len(lost), "dispositions_twice": len(dup), "abandons": len(abandons),
            "by_fault": by_fault, "invites": invites, "attempts_per_node": attempts,
            "cut_detail": [f"{r[0]} {r[1]} {r[2]} {r[4]} ended {r[8]} {str(r[9])[:80]}" for r in cut][:20],
            "abandon_detail": [f"{r[0]} {r[1]} answered {r[6]} {str(r[9])[:100]}" for r in abandons][:30],
            "event_counts": kinds,
            "node_events": [f"{at} {kind} {str(msg)[:120]}" for at, kind, msg in events
                            if kind in ("node_dead", "reaped", "tick_lag", "worker_down", "calls_cut")][:30]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--every", type=float, default=90.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-faults-"))
    out = run(args.minutes, args.every, tmp)
    out["work"] = str(tmp)  # node logs (node-A.log, node-B.log) and carriers' stats stay here
    print(json.dumps(out, indent=1, ensure_ascii=False) if args.json else json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
