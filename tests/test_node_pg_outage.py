"""Issue 25: PostgreSQL stopped for 20 s under live nodes costs no call and no outcome.

Real `dialer node run` processes (each with its own SIPp carrier and pjsua2 agents) on a PostgreSQL of the test's
own, which is stopped (`pg_ctl stop -m immediate`, as a crash) while customers are talking and started again 20 s
later. Checked against the carriers' own counts and the store: no INVITE leaves while the database is away (the
fence holds), the conversations that were up go on and end by themselves, no attempt is closed as `interrupted`,
no node is declared dead for an outage every node shared, every outcome is in the store after the replay and each
disposition exactly once, and the node said what happened in its log, without a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.node.scratch_pg import (
    PG_BIN,
    PgServer,
    _run_as,
    pg_bin,
    server_options,
    start_server,
    stop_server,
)
from dialer.store.db import dispose_engines, init_db
from tests.node_world import NodeProc, make_node, q, seed, teardown, wait_for

pytestmark = [pytest.mark.sip, pytest.mark.slow]

OUTAGE_S = 20.0
LIVE = "('dialing', 'ringing', 'answered', 'connected')"


@pytest.fixture()
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL this test alone may stop (the session's server is shared by other tests)."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    pytest.importorskip("psycopg")
    base = Path(tempfile.mkdtemp(prefix="tsunagu-pg-outage-"))
    server = start_server(base, durable=True)  # the crash must not undo commits the nodes were told of
    try:
        yield server
    finally:
        stop_server(server)
        dispose_engines()
        shutil.rmtree(base, ignore_errors=True)


def restart(server: PgServer) -> None:
    """Start the stopped server again on the same port and data."""
    bin_dir = pg_bin() or PG_BIN
    prefix, _ = _run_as()
    base = server.datadir.parent
    opts = server_options(server.port, base, durable=True)
    res = subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(server.datadir), "-l", str(base / "log"),
                          "-o", opts, "-w", "-t", "30", "start"], capture_output=True, text=True, cwd=base)
    assert res.returncode == 0, res.stderr + res.stdout


def _logs(nodes: list[NodeProc]) -> str:
    return "\n".join(f"--- {n.node_id}\n" + (n.log.read_text(errors="replace")[-3000:] if n.log.exists() else "")
                     for n in nodes)


def _talking(url: str, node: str) -> list[int]:
    return [int(r[0]) for r in q(url, "SELECT id FROM attempts WHERE node_id = :n AND state = 'connected'", n=node)]


@pytest.mark.parametrize("n_nodes", [1, 2])
def test_postgres_stopped_mid_call_cuts_no_call_and_loses_no_outcome(own_pg: PgServer, tmp_path: Path,
                                                                      n_nodes: int) -> None:
    url = own_pg.create_database()
    init_db(url)
    seed(url, 300)
    nodes: list[NodeProc] = []
    try:
        for node_id, rtp in (("A", 41000), ("B", 43000))[:n_nodes]:
            node = make_node(tmp_path, node_id, url, 3, 6, rtp)
            text = node.cfg_path.read_text(encoding="utf-8")  # each node's journal in the test's own directory
            node.cfg_path.write_text(text.replace("[database]\n", f'[database]\njournal_dir = "{tmp_path / node_id}"\n',
                                                  1), encoding="utf-8")
            nodes.append(node)
        for n in nodes:
            n.start(300)
        # customers in conversation on every node
        assert wait_for(lambda: all(len(_talking(url, n.node_id)) >= 1 for n in nodes), 90) is not None, _logs(nodes)
        talking = {n.node_id: _talking(url, n.node_id) for n in nodes}
        epochs = {str(r[0]): int(r[1]) for r in q(url, "SELECT node_id, epoch FROM nodes")}
        stop_server(own_pg)
        t0 = time.monotonic()
        time.sleep(3.5 + 1.5)  # the nodes' own fence (3.5 s) + an INVITE already on its way
        frozen = {n.node_id: n.invites() for n in nodes}
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t0)))
        dialled_while_down = {n.node_id: n.invites() - frozen[n.node_id] for n in nodes}
        alive = {n.node_id: n.proc is not None and n.proc.poll() is None for n in nodes}
        restart(own_pg)
        dispose_engines()  # this test's own pooled connections died with the server
        # the nodes renew, replay and dial again, under the same epoch
        assert wait_for(lambda: all(n.invites() > frozen[n.node_id] for n in nodes), 90) is not None, _logs(nodes)
        # the conversations that were up when the server stopped end by themselves and are recorded
        everyone = [a for ids in talking.values() for a in ids]
        assert wait_for(lambda: not q(url, f"SELECT id FROM attempts WHERE id = ANY(:ids) AND state IN {LIVE}",
                                      ids=everyone), 90) is not None, _logs(nodes)
    finally:
        teardown(nodes)
    logs = _logs(nodes)
    assert dialled_while_down == {n.node_id: 0 for n in nodes}, "a node dialled without its database"
    assert all(alive.values()), logs
    assert "Traceback" not in "".join(n.log.read_text(errors="replace") for n in nodes)
    for n in nodes:
        text = n.log.read_text(errors="replace")
        assert "store_unreachable: " in text and "store_back: " in text, text[-3000:]
    # nobody was declared dead for an outage everyone shared: same epochs, no reaping
    assert {str(r[0]): int(r[1]) for r in q(url, "SELECT node_id, epoch FROM nodes")} == epochs, logs
    rows = q(url, "SELECT id, node_id, state, outcome, hangup_by, agent_connected_at, entry_id FROM attempts")
    assert not [r for r in rows if r[2] == "interrupted"], [r for r in rows if r[2] == "interrupted"]
    assert all(r[2] == "ended" and r[3] for r in rows), [r for r in rows if r[2] != "ended" or not r[3]]
    by_id = {int(r[0]): r for r in rows}
    for ids in talking.values():
        for attempt_id in ids:
            r = by_id[attempt_id]
            assert r[3] == "answered" and r[4] != "dialer", r  # ended by the customer or the agent, not by us
    # every INVITE a carrier saw is an attempt of its node, each entry dialled once
    for n in nodes:
        assert n.carrier.received("INVITE") == sum(1 for r in rows if r[1] == n.node_id), n.node_id
    assert max(Counter(r[6] for r in rows).values()) == 1
    # dispositions keyed during and after the outage: in the store, each once
    per_attempt = Counter(int(r[0]) for r in q(url, "SELECT attempt_id FROM dispositions WHERE attempt_id IS NOT NULL"))
    assert not [a for a, c in per_attempt.items() if c > 1]
    assert not q(url, "SELECT key, result FROM journal_applied WHERE result <> ''")
    dispose_engines()
