"""(issue 29) The browser on several nodes: `dialer web` reads the shared PostgreSQL store, so the floor shows
every node's campaigns live, and a supervisor's command goes into the same command table the terminal
monitor writes to, where the node running that campaign applies it. A real PostgreSQL (tests/pgserver.py) and
a real `dialer web` subprocess; the two "nodes" are runner claims with heartbeats, as node runners write."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_env
from tests.pgserver import pg_server, pg_url  # noqa: F401
from tests.test_web import PW, _client_as, _dialer, _free_port

CONFIG = """
[database]
url = "{url}"

[business]
name = "つなぐ通販"

[[agents]]
login = "a01"
name = "佐藤 花子"
sip_uri = "sip:a01@127.0.0.1:5301"
"""
NODES = {"winback": "node-a:1101", "retention": "node-b:2202"}


@pytest.fixture()
def web_on_pg(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:  # noqa: F811
    cfg = tmp_path / "tsunagu.toml"
    cfg.write_text(CONFIG.format(url=pg_url), encoding="utf-8")
    env = {**run_env(), "TSUNAGU_CONFIG": str(cfg)}
    assert _dialer("db", "init", cwd=tmp_path, env=env).returncode == 0
    r = _dialer("user", "add", "boss", "--role", "admin", "--password-stdin", cwd=tmp_path,
                stdin=PW["boss"] + "\n", env=env)
    assert r.returncode == 0, r.stderr
    admin = {**env, "TSUNAGU_USER": "boss", "TSUNAGU_PASSWORD": PW["boss"]}
    r = _dialer("user", "add", "sv", "--role", "supervisor", "--password-stdin", cwd=tmp_path,
                stdin=PW["sv"] + "\n", env=admin)
    assert r.returncode == 0, r.stderr
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dialer", "web", "--port", str(port), "--push-s", "0.3",
                             "--insecure-loopback-cookies"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"dialer web exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                if httpx.get(base + "/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("dialer web did not answer in 60 s")
        yield base, pg_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _nodes_beat(url: str, stop: threading.Event) -> None:
    """Each campaign held by its own node's runner, heartbeating every second as node runners do."""
    from sqlmodel import Session, select

    from dialer.store.campaigns import claim
    from dialer.store.db import get_engine
    from dialer.store.models import Campaign

    engine = get_engine(url)
    ids: dict[str, int] = {}
    with Session(engine) as s:
        for name in NODES:
            camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
            if camp is None:
                camp = Campaign(name=name, mode="predictive")
                s.add(camp)
                s.commit()
                s.refresh(camp)
            assert camp.id is not None
            ids[name] = camp.id
    while not stop.is_set():
        for name, runner in NODES.items():
            claim(engine, ids[name], runner, "predictive", name, stale_s=10.0, alive=lambda _r: False)
        stop.wait(1.0)


def test_the_floor_shows_every_nodes_campaigns_and_commands_reach_their_node(
        web_on_pg: tuple[str, str]) -> None:
    from sqlmodel import Session, select

    from dialer.store.db import get_engine
    from dialer.store.models import ControlCommand

    base, url = web_on_pg
    stop = threading.Event()
    beat = threading.Thread(target=_nodes_beat, args=(url, stop), daemon=True)
    beat.start()
    try:
        with closing(_client_as(base, "sv")) as c:
            c.get("/lang/en")  # the words checked below are the English ones
            deadline = time.monotonic() + 30
            page = ""
            while time.monotonic() < deadline:
                page = c.get("/floor").text
                if all(f'id="campaign-{n}"' in page for n in NODES) and "no runner" not in page:
                    break
                time.sleep(0.3)
            # both nodes' campaigns on one floor, each with its live runner
            assert all(f'id="campaign-{n}"' in page for n in NODES), page[-2000:]
            assert "no runner" not in page
            m = re.search(r'data-csrf="([^"]+)"', page)
            assert m, "no csrf token on the floor"
            r = c.post("/floor/command", data={"csrf": m.group(1), "campaign": "retention", "command": "pause",
                                               "argument": "", "confirm": "yes"}, headers={"origin": base})
            assert r.status_code == 303, r.text[-500:]
            # unconfirmed: refused, nothing queued
            r = c.post("/floor/command", data={"csrf": m.group(1), "campaign": "winback", "command": "stop",
                                               "argument": ""}, headers={"origin": base})
            assert r.status_code == 400
        with Session(get_engine(url)) as s:
            rows = [(x.campaign, x.command, x.requested_by, x.applied_at)
                    for x in s.exec(select(ControlCommand)).all()]
        # one row, in the table node-b's runner applies commands from; applied there, and only there
        assert rows == [("retention", "pause", "web:sv", None)]
        from dialer.store.campaigns import apply_commands, load_campaign

        engine = get_engine(url)
        for name, expected in (("winback", []), ("retention", ["pause"])):
            done = apply_commands(engine, name, int(load_campaign(engine, name).id or 0),
                                  lambda cmd, _arg, _at, _now: f"ok: {cmd}",
                                  lambda: ("paused", "predictive", 0.01))
            assert [d.command for d in done] == expected
    finally:
        stop.set()
        beat.join(timeout=5)
