"""Issue 18 on a real PostgreSQL, without SIP: membership and epochs, the fenced hopper, settling a dead node,
the coordinator lease, callbacks kept for the node that holds the agent, the campaign-wide abandon feed,
LISTEN/NOTIFY of commands, and the refusal of multi-node on SQLite."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from dialer.config import CampaignConfig, parse_config
from dialer.errors import UserError
from dialer.node.budget import CampaignFeed
from dialer.node.leader import settle
from dialer.node.membership import Membership
from dialer.node.signals import CommandSignals
from dialer.store import nodes as store
from dialer.store.campaigns import request_command
from dialer.store.db import init_db
from dialer.store.entries import Hopper
from dialer.store.models import Agent, Attempt, CallListEntry
from pacing.engine import Pacer, PacerConfig
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

NOW = datetime.now(UTC)


def info(node_id: str, pid: int = 1) -> store.NodeInfo:
    return store.NodeInfo(node_id, "127.0.0.1", pid, 5070, 40000, ("t",), 8)


def seed(engine: store.Engine, n: int) -> list[int]:
    with Session(engine) as s:
        rows = [CallListEntry(customer_id=f"C{i:03d}", segment="dormant", phones=[f"+8190{10000000 + i:08d}"],
                              priority=float(100 - i), reason="テスト", timezone="Asia/Tokyo",
                              callable_from=NOW - timedelta(days=1), callable_until=NOW + timedelta(days=3))
                for i in range(n)]
        s.add_all(rows)
        s.commit()
        return [int(r.id or 0) for r in rows]


def stale(engine: store.Engine, node_id: str, age_s: float = 30.0) -> None:
    """A node whose heartbeat stopped AGE_S ago (what kill -9 leaves behind)."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE nodes SET heartbeat_at = now() - make_interval(secs => :a) WHERE node_id = :n"),
                     {"a": age_s, "n": node_id})


def test_membership_fenced_hopper_and_settling_a_dead_node(pg_url: str) -> None:  # noqa: F811
    engine, _ = init_db(pg_url)
    seed(engine, 20)
    a, b = Membership(engine, info("A", 11)), Membership(engine, info("B", 12))
    assert a.join() == 1 and b.join() == 1
    with pytest.raises(store.NodeBusy):  # a second live process under the same id is refused
        store.join(engine, info("A", 99), a.ttl_s)
    cc = CampaignConfig(name="t")
    ha, hb = Hopper(engine, cc, respect_calling_hours=False), Hopper(engine, cc, respect_calling_hours=False)
    ha.fence, hb.fence = a.fence, b.fence
    la = ha.lease(5, a.fence.owner, NOW)
    lb = hb.lease(5, b.fence.owner, NOW)
    assert len(la) == 5 and len(lb) == 5
    assert not {x.entry_id for x in la} & {x.entry_id for x in lb}  # the shared hopper never hands one out twice
    # B dials two of its entries (attempt rows carry node and epoch), then dies
    with Session(engine) as s:
        atts = [Attempt(campaign_id=1, entry_id=lz.entry_id, phone_e164=lz.phone_e164, state="ringing",
                        node_id="B", node_epoch=b.epoch) for lz in lb[:2]]
        s.add_all(atts)
        s.commit()
        att_ids = [int(x.id or 0) for x in atts]
    for lz, aid in zip(lb[:2], att_ids, strict=True):
        assert hb.mark_dialing(lz.entry_id, aid, NOW, lease_token=lz.lease_token)
    assert not ha.mark_dialing(lb[2].entry_id, 999, NOW, lease_token=la[0].lease_token)  # not A's lease: refused
    stale(engine, "B")
    assert hb.lease(1, b.fence.owner, NOW) == []  # B cannot prove its membership: it takes nothing
    assert not hb.mark_dialing(lb[2].entry_id, 998, NOW, lease_token=lb[2].lease_token)  # fence lapsed
    assert store.heartbeat(engine, "A", a.epoch, agents=0, stats={})
    assert store.mark_dead(engine, a.ttl_s) == ["B"]
    counts = settle(engine, ha, 1, NOW + timedelta(seconds=1))
    assert counts == {"attempts_interrupted": 2, "entries_settled": 2, "leases_released": 3}
    with Session(engine) as s:
        for aid in att_ids:
            att = s.get(Attempt, aid)
            assert att is not None and att.state == "interrupted" and att.outcome == "interrupted"
        for lz in lb[:2]:  # counted and given the retry delay, like single-host crash recovery: not redialled now
            e = s.get(CallListEntry, lz.entry_id)
            assert e is not None and e.status == "pending" and e.attempts == 1
            assert e.next_attempt_at is not None and e.next_attempt_at > NOW + timedelta(minutes=1)
        for lz in lb[2:]:
            e = s.get(CallListEntry, lz.entry_id)
            assert e is not None and e.status == "pending" and e.attempts == 0
    # A keeps its leases; settling again finds nothing
    assert settle(engine, ha, 1, NOW) == {"attempts_interrupted": 0, "entries_settled": 0, "leases_released": 0}
    # B comes back: a new epoch, and the old one's fence no longer holds
    old = b.fence
    assert b.join() == 2
    with engine.begin() as conn:
        assert not old.holds(conn) and b.fence.holds(conn)
    assert hb.lease(1, old.owner, NOW) == []  # a hopper still fenced with the old epoch takes nothing
    hb.fence = b.fence
    assert len(hb.lease(1, b.fence.owner, NOW)) == 1


def test_coordinator_role_moves_only_when_it_expires(pg_url: str) -> None:  # noqa: F811
    engine, _ = init_db(pg_url)
    a, b = Membership(engine, info("A", 1)), Membership(engine, info("B", 2))
    a.join()
    b.join()
    f1 = store.acquire_role(engine, "coordinator:t", "A", a.epoch, 5.0)
    assert f1 == 1
    assert store.acquire_role(engine, "coordinator:t", "B", b.epoch, 5.0) is None
    assert store.acquire_role(engine, "coordinator:t", "A", a.epoch, 5.0) == 1  # renewal keeps the fence
    with engine.begin() as conn:
        conn.execute(text("UPDATE node_roles SET expires_at = now() - interval '1 second'"))
    assert store.acquire_role(engine, "coordinator:t", "B", b.epoch, 5.0) == 2
    assert store.role_holder(engine, "coordinator:t") == ("B", b.epoch, 2)
    stale(engine, "A")
    store.mark_dead(engine, 5.0)
    with engine.begin() as conn:  # a dead epoch cannot take a role
        conn.execute(text("UPDATE node_roles SET expires_at = now() - interval '1 second'"))
    assert store.acquire_role(engine, "coordinator:t", "A", a.epoch, 5.0) is None


def test_membership_lapses_on_the_nodes_own_clock() -> None:
    t = [100.0]
    m = Membership(None, info("X"), clock=lambda: t[0])  # type: ignore[arg-type]
    m.epoch = 1
    m._renewed = 100.0
    assert m.live()
    t[0] = 100.0 + m.self_fence_s - 0.01
    assert m.live()
    t[0] = 100.0 + m.self_fence_s
    assert not m.live()  # no DB answer needed to stop: the node gives up before the TTL lets others settle it
    assert m.self_fence_s < m.ttl_s


def test_callback_reserved_for_an_agent_on_node_b_is_left_to_b(pg_url: str) -> None:  # noqa: F811
    engine, _ = init_db(pg_url)
    ids = seed(engine, 3)
    a, b = Membership(engine, info("A", 1)), Membership(engine, info("B", 2))
    a.join()
    b.join()
    with Session(engine) as s:
        s.add(Agent(login="b01", name="鈴木", node_id="B"))
        s.add(Agent(login="a01", name="佐藤", node_id="A"))
        s.commit()
    cc = CampaignConfig(name="t", holidays="")  # no public holiday moves the callback either
    h = Hopper(engine, cc, respect_calling_hours=False)
    cust = f"C{0:03d}"
    # noon in Tokyo: a callback booked outside the campaign's calling hours moves to the next slot (one rule), so a
    # time taken from the wall clock made this test fail every evening
    at = NOW.astimezone(ZoneInfo("Asia/Tokyo")).replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC)
    h.set_callback(cust, "dormant", at - timedelta(minutes=1), agent_login="b01", reserve_s=900)
    ha, hb = Hopper(engine, cc, respect_calling_hours=False), Hopper(engine, cc, respect_calling_hours=False)
    ha.fence, hb.fence = a.fence, b.fence
    ha.foreign_agents = frozenset(store.foreign_reserved_agents(engine, "A"))
    hb.foreign_agents = frozenset(store.foreign_reserved_agents(engine, "B"))
    assert ha.foreign_agents == {"b01"} and hb.foreign_agents == {"a01"}
    got_a = ha.lease(3, a.fence.owner, at)
    assert ids[0] not in {x.entry_id for x in got_a}  # A skips it while the reservation holds
    got_b = hb.lease(3, b.fence.owner, at)
    assert [x.entry_id for x in got_b] == [ids[0]] and got_b[0].callback_agent == "b01"
    # after the reservation, anyone may make it
    hb.release(ids[0], at)
    later = at + timedelta(minutes=16)
    assert store.heartbeat(engine, "A", a.epoch, agents=0, stats={})
    assert ids[0] in {x.entry_id for x in ha.lease(3, a.fence.owner, later)}
    # moving an agent is explicit and checked
    assert store.move_agent(engine, "b01", "A") == "B"
    with pytest.raises(LookupError):
        store.move_agent(engine, "b01", "nowhere")


def test_campaign_wide_abandon_feed(pg_url: str) -> None:  # noqa: F811
    engine, _ = init_db(pg_url)
    feed = CampaignFeed(engine, 1, "A")
    pacer = Pacer(PacerConfig(abandon_window="campaign"))
    t = datetime.now(UTC)
    with Session(engine) as s:
        for i in range(10):  # node B: 10 people answered, 2 of them abandoned, 7 reached an agent
            s.add(Attempt(campaign_id=1, node_id="B", node_epoch=1, state="ended", outcome="answered",
                          answered_at=t, ended_at=t, abandoned=i < 2,
                          agent_connected_at=t if i >= 3 else None))
        s.add(Attempt(campaign_id=1, node_id="A", node_epoch=1, state="ended", answered_at=t, abandoned=True))
        s.add(Attempt(campaign_id=1, node_id="B", node_epoch=1, state="ringing"))
        s.commit()
    assert feed.poll(pacer) == 10 + 2 + 7
    now = time.time()
    assert pacer.book.counts(now, "campaign") == (2.0, 10.0)  # A's own attempt is A's to record, not the feed's
    assert feed.poll(pacer) == 0  # each fact once
    with Session(engine) as s:  # the open attempt is answered and abandoned later: fed then
        row = s.exec(select(Attempt).where(Attempt.state == "ringing")).one()
        row.state, row.answered_at, row.abandoned, row.ended_at = "ended", t, True, t
        s.add(row)
        s.commit()
    assert feed.poll(pacer) == 2
    assert pacer.book.counts(now, "campaign") == (3.0, 11.0)
    assert pacer.budget_exhausted(now)  # 3/11 > 3 %: node A's pacer knows the campaign's budget is spent


def test_commands_notify_every_listening_node(pg_url: str) -> None:  # noqa: F811
    engine, _ = init_db(pg_url)
    store.ensure_pg_objects(engine)
    listeners = [CommandSignals(pg_url) for _ in range(3)]
    for s in listeners:
        s.start()
    try:
        assert all(s.wait_connected(10) for s in listeners)
        t0 = time.monotonic()
        request_command(engine, "t", "pause", requested_by="テスト")
        end = time.monotonic() + 10
        while time.monotonic() < end and not all("t" in s.last for s in listeners):
            time.sleep(0.01)
        assert all(s.take("t") for s in listeners)
        assert not any(s.take("t") for s in listeners)  # once
        assert all(s.last["t"] - t0 < 10 for s in listeners)
    finally:
        for s in listeners:
            s.stop()


def test_multi_node_refuses_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dialer.node.service import Node

    cfg = parse_config(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n[[campaigns]]\nname = "t"\n')
    with pytest.raises(UserError, match="multi-node needs a PostgreSQL"):
        Node(cfg)


@pytest.mark.parametrize("engine_kind", ["sqlite", "postgresql"])
def test_schema_4_migrates_an_existing_database(engine_kind: str, db_url: str, request: pytest.FixtureRequest
                                                ) -> None:
    """A version-3 database (no node columns) is brought up to version 4 with its rows kept."""
    from sqlalchemy import inspect

    from dialer.store.db import SCHEMA_VERSION, current_version, get_engine

    url = db_url if engine_kind == "sqlite" else request.getfixturevalue("pg_url")
    engine, _ = init_db(url)
    with Session(engine) as s:
        s.add(Attempt(campaign_id=1, state="ended", outcome="busy"))
        s.add(Agent(login="a01", name="佐藤"))
        s.commit()
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_attempts_node_id"))
        conn.execute(text("ALTER TABLE attempts DROP COLUMN node_id"))
        conn.execute(text("ALTER TABLE attempts DROP COLUMN node_epoch"))
        conn.execute(text("ALTER TABLE agents DROP COLUMN node_id"))
        conn.execute(text("UPDATE meta SET value = '3' WHERE key = 'schema_version'"))
    engine.dispose()
    engine, action = init_db(url)
    assert action == "migrated from 3" and current_version(get_engine(url)) == SCHEMA_VERSION
    cols = {c["name"] for c in inspect(engine).get_columns("attempts")}
    assert {"node_id", "node_epoch"} <= cols
    with Session(engine) as s:
        att = s.exec(select(Attempt)).one()
        assert att.outcome == "busy" and att.node_id == "" and att.node_epoch == 0
        assert s.exec(select(Agent)).one().node_id == ""


def test_an_expired_lease_taken_by_another_node_is_never_dialled_by_the_first(pg_url: str) -> None:  # noqa: F811
    """A stalls after leasing (GC pause, slow DB): its lease expires, B takes the entry; A's late dial mark is
    refused, so the number cannot be dialled by both."""
    engine, _ = init_db(pg_url)
    seed(engine, 1)
    a, b = Membership(engine, info("A", 1)), Membership(engine, info("B", 2))
    a.join()
    b.join()
    cc = CampaignConfig(name="t")
    ha, hb = Hopper(engine, cc, respect_calling_hours=False), Hopper(engine, cc, respect_calling_hours=False)
    ha.fence, hb.fence = a.fence, b.fence
    (la,) = ha.lease(1, a.fence.owner, NOW, lease_s=1)
    (lb,) = hb.lease(1, b.fence.owner, NOW + timedelta(seconds=2))
    assert la.entry_id == lb.entry_id and la.lease_token != lb.lease_token
    assert not ha.mark_dialing(la.entry_id, 1, NOW + timedelta(seconds=3), lease_token=la.lease_token)
    assert hb.mark_dialing(lb.entry_id, 2, NOW + timedelta(seconds=3), lease_token=lb.lease_token)
    with Session(engine) as s:
        e = s.get(CallListEntry, la.entry_id)
        assert e is not None and e.status == "dialing" and e.current_attempt_id == 2 and e.attempts == 1


def test_node_cli_on_sqlite_and_postgresql(tmp_path, pg_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """`dialer node run` refuses SQLite with the reason (exit 2); `node list` and `node move-agent` on PostgreSQL."""
    import subprocess
    import sys

    from tests.conftest import REPO, run_env

    def dialer(*args: str, url: str) -> subprocess.CompletedProcess[str]:
        cfg = tmp_path / "c.toml"
        cfg.write_text(f'[database]\nurl = "{url}"\n[[agents]]\nlogin = "a01"\nname = "佐藤"\n'
                       'sip_uri = "sip:a01@127.0.0.1:5301"\n[[campaigns]]\nname = "t"\n', encoding="utf-8")
        return subprocess.run([sys.executable, "-m", "dialer", *args, "--config", str(cfg)], cwd=REPO, env=run_env(),
                              capture_output=True, text=True, timeout=60)

    r = dialer("node", "run", "--for", "1s", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert r.returncode == 2 and "multi-node needs a PostgreSQL" in r.stderr and "dialer campaign run" in r.stderr
    assert not (tmp_path / "x.db").exists()  # refused before touching any store
    engine, _ = init_db(pg_url)
    assert "no nodes" in dialer("node", "list", url=pg_url).stdout
    m = Membership(engine, info("A", 1))
    m.join()
    with Session(engine) as s:
        s.add(Agent(login="a01", name="佐藤", node_id="A"))
        s.commit()
    out = dialer("node", "list", url=pg_url).stdout
    assert "A" in out and "epoch 1" in out
    store.join(engine, info("B", 2), 5.0)
    r = dialer("node", "move-agent", "a01", "--node", "B", url=pg_url)
    assert r.returncode == 0 and "A -> B" in r.stdout
    assert store.agents_on(engine, "B") == {"a01"}
    r = dialer("node", "move-agent", "a01", "--node", "Z", url=pg_url)
    assert r.returncode == 2 and "no node 'Z'" in r.stderr
    r = dialer("node", "move-agent", "zz", "--node", "B", url=pg_url)
    assert r.returncode == 2 and "no agent 'zz'" in r.stderr


def test_the_last_node_out_stops_the_campaign_even_when_both_leave_at_once(pg_url: str) -> None:  # noqa: F811
    """Two nodes whose campaign loops end together each saw the other up; leaving under the campaign row's lock
    makes exactly one of them the last one out (the 2-node SIP test caught the campaign left 'running')."""
    import threading

    from dialer.store.models import Campaign

    engine, _ = init_db(pg_url)
    with Session(engine) as s:
        s.add(Campaign(name="t", segments=["dormant"], state="running"))
        s.commit()
    a, b = Membership(engine, info("A", 1)), Membership(engine, info("B", 2))
    a.join()
    b.join()
    assert store.other_live_nodes(engine, "t", "A") == ["B"] and store.other_live_nodes(engine, "t", "B") == ["A"]
    go = threading.Barrier(2)
    out: dict[str, list[str]] = {}

    def leave(node_id: str, epoch: int) -> None:
        go.wait()
        out[node_id] = store.leave(engine, node_id, epoch)

    threads = [threading.Thread(target=leave, args=(m.node_id, m.epoch)) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(out) == ["A", "B"]
    assert sorted(out["A"] + out["B"]) == ["t"]  # exactly one of them was the last one out
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "t")).one()
        assert camp.state == "stopped"
    assert {r.node_id: r.state for r in store.list_nodes(engine)} == {"A": "left", "B": "left"}
    # a node leaving while another still serves the campaign does not stop it
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "t")).one()
        camp.state = "running"
        s.add(camp)
        s.commit()
    c, d = Membership(engine, info("C", 3)), Membership(engine, info("D", 4))
    c.join()
    d.join()
    assert store.leave(engine, "C", c.epoch) == []
    with Session(engine) as s:
        assert s.exec(select(Campaign).where(Campaign.name == "t")).one().state == "running"
    assert store.leave(engine, "D", d.epoch) == ["t"]


def test_a_node_cut_off_inside_its_leasing_transaction_does_not_block_the_survivor(pg_url: str) -> None:  # noqa: F811
    """Node C's link to the database goes silent while its leasing transaction holds its node row FOR SHARE (a
    split at the wrong instant). The server ends that session after IDLE_TX_S, so the survivor can declare C dead
    once its heartbeat is older than the TTL instead of waiting on C's locks until the link comes back."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    from tests.node_world import PgProxy

    engine, _ = init_db(pg_url)
    server_port = int(engine.url.port or 5432)
    proxy = PgProxy(server_port)
    c_engine = store.node_engine(proxy.url(str(engine.url.database)))
    # bounded: without the server-side timeout the survivor would wait for C's locks until the link came back
    survivor = create_engine(pg_url, connect_args={"options": "-c lock_timeout=15000"})
    c = Membership(c_engine, info("C", 3))
    c.join()
    conn = c_engine.connect()
    try:
        conn.begin()
        assert c.fence.holds(conn)  # C's node row is now held FOR SHARE by C's open transaction
        proxy.cut()
        t0 = time.monotonic()
        time.sleep(0.6)
        try:  # a TTL of 0.5 s on the DB clock: C's last heartbeat (its join) is older than that by now
            dead = store.mark_dead(survivor, 0.5)
        except OperationalError as exc:  # lock_timeout: C's transaction still held the row
            pytest.fail(f"the survivor waited on the cut-off node's locks: {exc}")
        waited = time.monotonic() - t0
        assert dead == ["C"]
        assert waited < store.IDLE_TX_S + 3.0, waited  # the server ended C's idle transaction, not the link's return
        print(f"survivor declared the cut-off node dead after {waited:.2f} s")
    finally:
        proxy.restore()
        try:
            conn.close()
        except Exception:
            pass
        proxy.stop()
        c_engine.dispose()
        survivor.dispose()
