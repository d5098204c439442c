"""Load on the browser face (issue 29): N agent pages and W wallboards open against one `dialer web`.

Each open page is one Server-Sent Events stream (what a browser tab holds). The bench logs N agents and a
supervisor in through the real log-in form, opens their streams, then changes agents' states in the store the
way the runner does and measures how long until each affected page (the agent's own and every wallboard) has
received the change. Beside it, a probe process runs a 200 ms tick loop (the campaign runner's cadence) and
records how late each tick is, once with the web idle and once under the load: the ratio says whether the
pages steal the runner's time.

    python -m bench.web [--agents 50] [--wallboards 2] [--changes 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "bench-password-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(root: Path, n: int) -> Path:
    from types import SimpleNamespace

    from dialer.service import auth
    from dialer.store.agents import ensure_agent
    from dialer.store.db import init_db

    db = root / "bench.db"
    agents = "".join(f'[[agents]]\nlogin = "b{i:02d}"\nname = "エージェント{i:02d}"\nsip_uri = "sip:b{i:02d}@127.0.0.1:{6000 + i}"\n\n'
                     for i in range(n))
    cfg = root / "tsunagu.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n\n{agents}', encoding="utf-8")
    engine, _ = init_db(f"sqlite:///{db}")
    from sqlmodel import Session

    from dialer.store.models import Campaign

    with Session(engine) as s:  # the campaign the wallboards show (its runner beats in `_Beat`)
        s.add(Campaign(name="bench", mode="predictive"))
        s.commit()
    admin = auth.local_admin()
    auth.add_user(engine, admin, "sv", "supervisor", PASSWORD)
    for i in range(n):
        login = f"b{i:02d}"
        auth.add_user(engine, admin, login, "agent", PASSWORD)
        ensure_agent(engine, SimpleNamespace(login=login, name=login, sip_uri=f"sip:{login}@127.0.0.1", segments=[],
                                             node=""))
    return cfg


async def _beat(db: Path, stop: asyncio.Event) -> None:
    """Heartbeat as the campaign's runner does every second, so the floor treats the campaign as live."""
    from dialer.store.campaigns import claim
    from dialer.store.db import get_engine

    engine = get_engine(f"sqlite:///{db}")
    while not stop.is_set():
        await asyncio.to_thread(claim, engine, 1, "bench-runner", "predictive", "bench", stale_s=10.0,
                                alive=lambda _r: False)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass


def _tick_probe(seconds: float) -> dict[str, float]:
    """A 200 ms loop in its own process: how late each tick wakes (the runner's tick, without its work)."""
    code = (
        "import time, json, sys\n"
        f"end = time.monotonic() + {seconds}\n"
        "lags = []\n"
        "nxt = time.monotonic() + 0.2\n"
        "while time.monotonic() < end:\n"
        "    time.sleep(max(0.0, nxt - time.monotonic()))\n"
        "    lags.append(max(0.0, time.monotonic() - nxt))\n"
        "    nxt += 0.2\n"
        "lags.sort()\n"
        "print(json.dumps({'p50_ms': lags[len(lags)//2]*1000, 'p99_ms': lags[int(len(lags)*0.99)]*1000,"
        " 'max_ms': lags[-1]*1000, 'ticks': len(lags)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 60)
    return dict(json.loads(out.stdout))


async def _login(client: httpx.AsyncClient, base: str, user: str) -> None:
    await client.get("/login")
    token = client.cookies.get("tsunagu_login_csrf")
    r = await client.post("/login", data={"user": user, "password": PASSWORD, "csrf": token},
                          headers={"origin": base})
    assert r.status_code == 303, (user, r.status_code)


class Stream:
    """One open page: the text of the last update it received, and when."""

    def __init__(self) -> None:
        self.last = ""
        self.updates = 0
        self.changed = asyncio.Event()

    async def follow(self, client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", url, timeout=None) as r:
            data: list[str] = []
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and data:
                    self.last = "\n".join(data)
                    self.updates += 1
                    data = []
                    self.changed.set()


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    from dialer.store.agents import set_idle
    from dialer.store.db import get_engine

    root = Path(tempfile.mkdtemp(prefix="bench-web-"))
    cfg = _setup(root, args.agents)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TSUNAGU_CONFIG": str(cfg)}
    proc = subprocess.Popen([sys.executable, "-m", "dialer", "web", "--port", str(port), "--push-s",
                             str(args.push_s), "--insecure-loopback-cookies"], cwd=root, env=env)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
            for _ in range(300):
                try:
                    if (await probe.get("/login")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
        stop = asyncio.Event()
        beat = asyncio.create_task(_beat(root / "bench.db", stop))
        idle_ticks = await asyncio.to_thread(_tick_probe, args.probe_s)
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        clients: dict[str, httpx.AsyncClient] = {}
        streams: dict[str, Stream] = {}
        tasks = []
        for i in range(args.agents):
            login = f"b{i:02d}"
            c = httpx.AsyncClient(base_url=base, limits=limits)
            await _login(c, base, login)
            clients[login], streams[login] = c, Stream()
            tasks.append(asyncio.create_task(streams[login].follow(c, f"/events/agent?login={login}")))
        boards = []
        for w in range(args.wallboards):
            c = httpx.AsyncClient(base_url=base, limits=limits)
            await _login(c, base, "sv")
            clients[f"wall{w}"] = c
            s = Stream()
            boards.append(s)
            tasks.append(asyncio.create_task(s.follow(c, "/events/wallboard")))
        await asyncio.sleep(3.0)
        engine = get_engine(f"sqlite:///{root / 'bench.db'}")
        latencies: list[float] = []
        board_latencies: list[float] = []
        probe_task = asyncio.create_task(asyncio.to_thread(_tick_probe, args.probe_s))
        state = {f"b{i:02d}": "logged_out" for i in range(args.agents)}
        for k in range(args.changes):
            login = f"b{k % args.agents:02d}"
            new = "ready" if state[login] != "ready" else "paused"
            s = streams[login]
            s.changed.clear()
            for b in boards:
                b.changed.clear()
            t0 = time.monotonic()
            await asyncio.to_thread(set_idle, engine, login, state[login], new, datetime.now(UTC), "break")
            state[login] = new
            mine = re.compile(r'class="state state-(\w+)" id="state"')
            theirs = re.compile(r'class="agent state-(\w+)" data-login="' + login + '"')

            def shows(text: str, rx: re.Pattern[str], want: str = new) -> bool:
                m = rx.search(text)
                return m is not None and m.group(1) == want

            deadline = t0 + 10
            while time.monotonic() < deadline and not shows(s.last, mine):
                s.changed.clear()
                try:
                    await asyncio.wait_for(s.changed.wait(), timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
            latencies.append(time.monotonic() - t0)
            for b in boards:
                while time.monotonic() < deadline:
                    if shows(b.last, theirs):
                        break
                    b.changed.clear()
                    try:
                        await asyncio.wait_for(b.changed.wait(), timeout=max(0.01, deadline - time.monotonic()))
                    except TimeoutError:
                        break
                board_latencies.append(time.monotonic() - t0)
            await asyncio.sleep(args.gap_s)
        loaded_ticks = await probe_task
        stop.set()
        await beat
        for t in tasks:
            t.cancel()
        for c in clients.values():
            await c.aclose()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    def q(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    return {
        "agents": args.agents, "wallboards": args.wallboards, "changes": args.changes, "push_s": args.push_s,
        "agent_page_latency_s": {"p50": statistics.median(latencies), "p95": q(latencies, 0.95),
                                 "max": max(latencies), "over_1s": sum(1 for x in latencies if x > 1.0)},
        "wallboard_latency_s": {"p50": statistics.median(board_latencies), "p95": q(board_latencies, 0.95),
                                "max": max(board_latencies), "over_1s": sum(1 for x in board_latencies if x > 1.0)},
        "tick_probe_idle": idle_ticks, "tick_probe_loaded": loaded_ticks,
        "tick_p99_ratio": loaded_ticks["p99_ms"] / max(idle_ticks["p99_ms"], 0.001),
        "load_avg": os.getloadavg()[0],
    }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--wallboards", type=int, default=2)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--gap-s", type=float, default=0.5)
    ap.add_argument("--push-s", type=float, default=0.3)
    ap.add_argument("--probe-s", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = asyncio.run(_run(args))
    print(json.dumps(out, indent=1, default=str) if args.json else out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
