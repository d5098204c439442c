"""Multi-node (issue 18) latencies on a throwaway PostgreSQL: signalling between nodes and the cost of fencing.

    nice -n 10 python -m bench.nodes [--samples 200] [--listeners 3] [--json]

Measures, wall clock on this host (loopback, one PostgreSQL):
- NOTIFY: a manager's command row committed -> each of N listening nodes notified (p50/p99 to one node and to
  the slowest of N: "command to all nodes", before the runner's next tick applies it);
- lease: `Hopper.lease(1)` with the membership fence (FOR SHARE on the node row in the same transaction)
  against the same lease without it, on 2000 entries;
- heartbeat: one membership renewal; feed: one read of the other nodes' new attempts (the campaign-wide book).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from dialer.config import CampaignConfig
from dialer.node.membership import Membership
from dialer.node.scratch_pg import start_server, stop_server
from dialer.node.signals import CommandSignals
from dialer.store import nodes as store
from dialer.store.campaigns import request_command
from dialer.store.db import init_db
from dialer.store.entries import Hopper
from dialer.store.models import Attempt, CallListEntry


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": round(1000 * pct(xs, 0.5), 2), "p99_ms": round(1000 * pct(xs, 0.99), 2),
            "mean_ms": round(1000 * statistics.fmean(xs), 2)}


def run(samples: int, listeners: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="tsunagu-bench-pg-"))
    server = start_server(base)
    try:
        url = server.create_database("bench_nodes")
        engine, _ = init_db(url)
        store.ensure_pg_objects(engine)
        now = datetime.now(UTC)
        with Session(engine) as s:
            s.add_all([CallListEntry(customer_id=f"C{i:05d}", segment="dormant", phones=[f"+8190{30000000 + i:08d}"],
                                     priority=float(i), reason="bench", timezone="Asia/Tokyo",
                                     callable_from=now - timedelta(days=1), callable_until=now + timedelta(days=3))
                       for i in range(2000)])
            s.add_all([Attempt(campaign_id=1, node_id="B", node_epoch=1, state="ended", answered_at=now)
                       for _ in range(200)])
            s.commit()
        # --- NOTIFY to N listening nodes
        sigs = [CommandSignals(url) for _ in range(listeners)]
        for sg in sigs:
            sg.start()
        if not all(sg.wait_connected(10) for sg in sigs):
            raise RuntimeError("LISTEN connections did not come up")
        one: list[float] = []
        every: list[float] = []
        for i in range(samples):
            camp = f"c{i}"
            t0 = time.monotonic()
            request_command(engine, camp, "pause", requested_by="bench")
            end = t0 + 5
            while time.monotonic() < end and not all(camp in sg.last for sg in sigs):
                time.sleep(0.0005)
            got = [sg.last[camp] - t0 for sg in sigs if camp in sg.last]
            if len(got) == len(sigs):
                one.append(got[0])
                every.append(max(got))
        for sg in sigs:
            sg.stop()
        # --- leasing with and without the fence, heartbeat, feed read
        m = Membership(engine, store.NodeInfo("A", "bench", 1, 0, 0, ("t",), 0))
        m.join()
        cc = CampaignConfig(name="t")
        fenced, plain = Hopper(engine, cc, respect_calling_hours=False), Hopper(engine, cc, respect_calling_hours=False)
        fenced.fence = m.fence
        lease_f: list[float] = []
        lease_p: list[float] = []
        beat: list[float] = []
        feed: list[float] = []
        for _i in range(samples):
            for h, out, owner in ((fenced, lease_f, m.fence.owner), (plain, lease_p, "bench")):
                t0 = time.perf_counter()
                got = h.lease(1, owner, now)
                out.append(time.perf_counter() - t0)
                for lz in got:
                    h.release(lz.entry_id, now)
            t0 = time.perf_counter()
            m.renew()
            beat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.other_nodes_attempts(engine, 1, "A", 0)
            feed.append(time.perf_counter() - t0)
        engine.dispose()
        return {"samples": samples, "listeners": listeners,
                "notify_one_node": summary(one), "notify_all_nodes": summary(every),
                "lease_fenced": summary(lease_f), "lease_unfenced": summary(lease_p),
                "heartbeat": summary(beat), "feed_read_200_rows": summary(feed)}
    finally:
        stop_server(server)
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.nodes", description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--listeners", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.samples, a.listeners)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
