"""Nodes (issue 18): several dialer hosts serving the same campaigns over one PostgreSQL.

Everything here is SQL on the database's own clock (`now()`), never a host's: a node's membership row carries
a heartbeat and an epoch; a node whose heartbeat is older than the TTL is dead, and everything it held (its
attempts in flight, its entry leases, its agents) is settled by a surviving node. The epoch is the fencing
token: a node that comes back after being declared dead gets a new epoch, and nothing written under the old
one is trusted (leases are owned by `node:<id>:<epoch>`, attempts carry the epoch they were dialled under).

Multi-node needs PostgreSQL (row locks with SKIP LOCKED / FOR SHARE, LISTEN/NOTIFY, one clock); the tables
exist on SQLite too so one schema serves both, but only `dialer node run` uses them and it refuses SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Field, Session, SQLModel, col, select

from dialer.domain.retry import OUTCOMES
from dialer.domain.vocabulary import LIVE_ATTEMPT, AgentState, AttemptState, CallOutcome, EntryStatus
from dialer.store.models import Agent, Attempt, ControlCommand, utcnow

NOTIFY_CHANNEL = "tsunagu_commands"
LIVE = tuple(s.value for s in LIVE_ATTEMPT)


class Node(SQLModel, table=True):
    """One dialer host process taking part in campaigns; `heartbeat_at` is written with the DB's now()."""

    __tablename__ = "nodes"
    node_id: str = Field(primary_key=True)
    host: str = ""
    pid: int = 0
    sip_port: int = 0
    rtp_port: int = 0
    campaigns: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    epoch: int = 0
    state: str = "up"  # up | dead (declared by a survivor) | left (stopped cleanly)
    lines: int = 0
    agents: int = 0
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class NodeRole(SQLModel, table=True):
    """A leased role (`coordinator:<campaign>`): held by one node epoch until `expires_at` (DB clock).

    `fence` grows each time the holder changes, so a late write from a former holder can be told apart."""

    __tablename__ = "node_roles"
    role: str = Field(primary_key=True)
    node_id: str = ""
    epoch: int = 0
    fence: int = 0
    expires_at: datetime = Field(default_factory=utcnow)


class NodeCommandAck(SQLModel, table=True):
    """A manager's command as applied by one node (every node applies every command of its campaigns)."""

    __tablename__ = "node_command_acks"
    command_id: int = Field(primary_key=True)
    node_id: str = Field(primary_key=True)
    result: str = ""
    acked_at: datetime = Field(default_factory=utcnow)


def migrate_add_node_columns(engine: Engine) -> None:
    """Issue 18: attempts say which node (and epoch) dialled them; agents say which node holds their legs."""
    insp = inspect(engine)
    att = {c["name"] for c in insp.get_columns("attempts")}
    ag = {c["name"] for c in insp.get_columns("agents")}
    with engine.begin() as conn:
        if "node_id" not in att:
            conn.execute(text("ALTER TABLE attempts ADD COLUMN node_id VARCHAR NOT NULL DEFAULT ''"))
        if "node_epoch" not in att:
            conn.execute(text("ALTER TABLE attempts ADD COLUMN node_epoch INTEGER NOT NULL DEFAULT 0"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_attempts_node_id ON attempts (node_id)"))
        if "node_id" not in ag:
            conn.execute(text("ALTER TABLE agents ADD COLUMN node_id VARCHAR NOT NULL DEFAULT ''"))


# ---------------------------------------------------------------------------------------- opening
def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


IDLE_TX_S = 3.0  # < the membership TTL (5 s): a split node's open transaction is gone before any survivor may declare it dead


def node_engine(url: str, *, io_timeout_s: float = 3.0, idle_tx_s: float = IDLE_TX_S) -> Engine:
    """An engine whose connections fail instead of hanging when the network to the server is cut.

    TCP keepalives and `tcp_user_timeout` make a query on a dead link raise within ~IO_TIMEOUT_S, so the
    node's loop notices a split instead of blocking forever in recv(). The server side needs the same care: a
    node cut off inside a transaction (its leasing one holds its node row FOR SHARE) would keep its locks until
    the server's own keepalive noticed, hours on Linux defaults, and the survivor declaring it dead would wait
    on them. `idle_in_transaction_session_timeout` makes the server end such a session after IDLE_TX_S."""
    ms = int(io_timeout_s * 1000)
    args = {"connect_timeout": max(1, int(io_timeout_s)), "keepalives": 1, "keepalives_idle": 1,
            "keepalives_interval": 1, "keepalives_count": 2, "tcp_user_timeout": ms,
            "options": f"-c idle_in_transaction_session_timeout={int(idle_tx_s * 1000)}"}
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8, connect_args=args)


def libpq_dsn(url: str) -> dict[str, Any]:
    """psycopg.connect() keyword arguments for a SQLAlchemy PostgreSQL URL (for LISTEN connections)."""
    u = make_url(url)
    out: dict[str, Any] = {"dbname": u.database, "host": u.host or "localhost", "port": u.port or 5432}
    if u.username:
        out["user"] = u.username
    if u.password:
        out["password"] = u.password
    return out


def ensure_pg_objects(engine: Engine) -> None:
    """The trigger that NOTIFYs every listening node when a manager's command is inserted (idempotent).

    Part of the schema: `init_db` calls it under the schema lock (concurrent `CREATE OR REPLACE` of one function
    fails with "tuple concurrently updated").
    """
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE OR REPLACE FUNCTION tsunagu_command_notify() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.campaign || ':' || NEW.id); RETURN NEW; END; $$ "
            "LANGUAGE plpgsql"))
        conn.execute(text("CREATE OR REPLACE TRIGGER tsunagu_command_notify AFTER INSERT ON control_commands "
                          "FOR EACH ROW EXECUTE FUNCTION tsunagu_command_notify()"))


# ---------------------------------------------------------------------------------------- membership
class NodeBusy(RuntimeError):
    """Another live process already runs under this node id."""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    host: str
    pid: int
    sip_port: int
    rtp_port: int
    campaigns: tuple[str, ...]
    lines: int


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        v = conn.execute(text("SELECT now()")).scalar_one()
    return v if isinstance(v, datetime) and v.tzinfo else datetime.now(UTC)


def join(engine: Engine, info: NodeInfo, ttl_s: float) -> int:
    """Enter the cluster with a new epoch; refuse when a live process holds this node id. Returns the epoch."""
    with engine.begin() as conn:
        row = conn.execute(text(
            "SELECT state, pid, host, extract(epoch from now() - heartbeat_at) AS age FROM nodes "
            "WHERE node_id = :n FOR UPDATE"), {"n": info.node_id}).first()
        if row is not None and row.state == "up" and float(row.age) < ttl_s and row.pid != info.pid:
            raise NodeBusy(f"node {info.node_id!r} is already running (pid {row.pid} on {row.host}, "
                           f"heartbeat {float(row.age):.1f}s ago); give this one another --node-id")
        values = {"n": info.node_id, "h": info.host, "p": info.pid, "sp": info.sip_port, "rp": info.rtp_port,
                  "c": _json(list(info.campaigns)), "l": info.lines}
        epoch = conn.execute(text(
            "INSERT INTO nodes (node_id, host, pid, sip_port, rtp_port, campaigns, started_at, heartbeat_at, "
            "epoch, state, lines, agents, stats) VALUES (:n, :h, :p, :sp, :rp, CAST(:c AS json), now(), now(), "
            "1, 'up', :l, 0, CAST('{}' AS json)) ON CONFLICT (node_id) DO UPDATE SET host = :h, pid = :p, "
            "sip_port = :sp, rtp_port = :rp, campaigns = CAST(:c AS json), started_at = now(), "
            "heartbeat_at = now(), epoch = nodes.epoch + 1, state = 'up', lines = :l RETURNING epoch"),
            values).scalar_one()
    return int(epoch)


def _json(v: Any) -> str:
    import json

    return json.dumps(v, ensure_ascii=False)


def heartbeat(engine: Engine, node_id: str, epoch: int, *, agents: int, stats: dict[str, Any]) -> bool:
    """Renew membership; False when this epoch is no longer the node's live one (declared dead, superseded)."""
    with engine.begin() as conn:
        res = conn.execute(text(
            "UPDATE nodes SET heartbeat_at = now(), agents = :a, stats = CAST(:s AS json) "
            "WHERE node_id = :n AND epoch = :e AND state = 'up'"),
            {"n": node_id, "e": epoch, "a": agents, "s": _json(stats)})
        return int(res.rowcount or 0) == 1


def leave(engine: Engine, node_id: str, epoch: int) -> list[str]:
    """This node leaves cleanly; the campaigns it was the last up node to serve are marked stopped.

    Why here and under the campaign rows' lock: two nodes that stop at the same moment each saw the other still
    up when their campaign loop ended, so neither stopped the campaign. Leaving and the "anyone else?" check run in
    one transaction holding the campaign rows FOR UPDATE, so the second leaver sees the first one gone."""
    with engine.begin() as conn:
        row = conn.execute(text("SELECT campaigns FROM nodes WHERE node_id = :n AND epoch = :e AND state = 'up'"),
                           {"n": node_id, "e": epoch}).first()
        if row is None:
            return []
        raw = row.campaigns
        names = sorted(str(c) for c in (raw if isinstance(raw, list) else _load(raw, [])))
        if names:
            conn.execute(text("SELECT id FROM campaigns WHERE name IN :names ORDER BY id FOR UPDATE")
                         .bindparams(_expanding("names")), {"names": names})
        conn.execute(text("UPDATE nodes SET state = 'left' WHERE node_id = :n AND epoch = :e AND state = 'up'"),
                     {"n": node_id, "e": epoch})
        stopped: list[str] = []
        for c in names:
            other = conn.execute(text(
                "SELECT 1 FROM nodes WHERE state = 'up' AND node_id <> :n AND CAST(campaigns AS jsonb) ? :c LIMIT 1"),
                {"n": node_id, "c": c}).first()
            if other is not None:
                continue
            conn.execute(text("UPDATE campaigns SET state = 'stopped' WHERE name = :c"), {"c": c})
            conn.execute(text("UPDATE campaign_status SET runner = '' WHERE campaign_id IN "
                              "(SELECT id FROM campaigns WHERE name = :c)"), {"c": c})
            stopped.append(c)
    return stopped


def mark_dead(engine: Engine, ttl_s: float) -> list[str]:
    """Nodes whose heartbeat is older than TTL_S (DB clock) are dead from now on; returns their ids."""
    with engine.begin() as conn:
        rows = conn.execute(text(
            "UPDATE nodes SET state = 'dead' WHERE state = 'up' AND heartbeat_at < now() - make_interval(secs => :t) "
            "RETURNING node_id"), {"t": ttl_s}).scalars().all()
    return [str(r) for r in rows]


@dataclass(frozen=True)
class NodeFence:
    """Checked inside the transaction that leases or marks an entry: this epoch is up and fresh (FOR SHARE,
    so a survivor declaring it dead waits until this transaction is over, then settles what it took)."""

    node_id: str
    epoch: int
    ttl_s: float

    @property
    def owner(self) -> str:
        return f"node:{self.node_id}:{self.epoch}"

    def holds(self, conn: Connection) -> bool:
        row = conn.execute(text(
            "SELECT 1 FROM nodes WHERE node_id = :n AND epoch = :e AND state = 'up' "
            "AND heartbeat_at > now() - make_interval(secs => :t) FOR SHARE"),
            {"n": self.node_id, "e": self.epoch, "t": self.ttl_s}).first()
        return row is not None


def acquire_role(engine: Engine, role: str, node_id: str, epoch: int, ttl_s: float) -> int | None:
    """Take or renew ROLE for TTL_S (DB clock) when it is free, expired or already ours, and this epoch is
    live; returns the role's fencing number, or None when another node holds it."""
    with engine.begin() as conn:
        v = conn.execute(text(
            "INSERT INTO node_roles (role, node_id, epoch, fence, expires_at) "
            "SELECT CAST(:r AS varchar), CAST(:n AS varchar), CAST(:e AS integer), 1, "
            "now() + make_interval(secs => :t) WHERE EXISTS (SELECT 1 FROM nodes "
            "WHERE node_id = CAST(:n AS varchar) AND epoch = CAST(:e AS integer) AND state = 'up') "
            "ON CONFLICT (role) DO UPDATE SET node_id = EXCLUDED.node_id, epoch = EXCLUDED.epoch, "
            "fence = CASE WHEN node_roles.node_id = EXCLUDED.node_id AND node_roles.epoch = EXCLUDED.epoch "
            "THEN node_roles.fence ELSE node_roles.fence + 1 END, expires_at = EXCLUDED.expires_at "
            "WHERE node_roles.expires_at < now() OR (node_roles.node_id = EXCLUDED.node_id "
            "AND node_roles.epoch = EXCLUDED.epoch) RETURNING fence"),
            {"r": role, "n": node_id, "e": epoch, "t": ttl_s}).scalar_one_or_none()
    return int(v) if v is not None else None


def release_role(engine: Engine, role: str, node_id: str, epoch: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE node_roles SET expires_at = now() - interval '1 second' "
                          "WHERE role = :r AND node_id = :n AND epoch = :e"), {"r": role, "n": node_id, "e": epoch})


def role_holder(engine: Engine, role: str) -> tuple[str, int, int] | None:
    """(node id, epoch, fence) of ROLE's live holder, or None when nobody holds it now."""
    with engine.connect() as conn:
        row = conn.execute(text("SELECT node_id, epoch, fence FROM node_roles WHERE role = :r AND expires_at > now()"),
                           {"r": role}).first()
    return (str(row.node_id), int(row.epoch), int(row.fence)) if row is not None else None


# ---------------------------------------------------------------------------------------- settling the dead
_NOT_LIVE = ("NOT EXISTS (SELECT 1 FROM nodes n WHERE n.node_id = a.node_id AND n.epoch = a.node_epoch "
             "AND n.state = 'up')")


@dataclass(frozen=True)
class Reaped:
    attempts: list[tuple[int, int | None, bool, str]]  # (attempt id, entry id, abandoned, node id)
    entries: list[tuple[int, str, bool]]  # dialing entries to settle: (entry id, outcome, abandoned)
    leases_released: int


def reap(engine: Engine, campaign_id: int, segments: Sequence[str], at: datetime, *,
         only_node: str | None = None) -> Reaped:
    """Close as `interrupted` the attempts of CAMPAIGN_ID dialled under an epoch that is no longer up, and
    give back the entry leases such epochs held; returns what the caller must settle in the hopper.

    ONLY_NODE limits it to one node's former epochs (a node rejoining settles its own past at once)."""
    seg = list(segments)
    only = " AND a.node_id = :only" if only_node else ""
    params: dict[str, Any] = {"c": campaign_id, "at": at, "only": only_node or ""}
    with engine.begin() as conn:
        rows = conn.execute(text(
            f"SELECT a.id, a.entry_id, a.abandoned, a.node_id FROM attempts a WHERE a.campaign_id = :c "
            f"AND a.node_id <> '' AND a.state IN ({', '.join(repr(s) for s in LIVE)}) AND {_NOT_LIVE}{only} "
            "FOR UPDATE OF a SKIP LOCKED"), params).all()
        for r in rows:
            conn.execute(text(
                "UPDATE attempts SET state = 'interrupted', outcome = CASE WHEN outcome = '' THEN 'interrupted' "
                "ELSE outcome END, ended_at = coalesce(ended_at, :at), detail = trim(detail || :why) WHERE id = :id"),
                {"id": r.id, "at": at, "why": f" node {r.node_id} lost (closed by a surviving node)"})
        dialing = conn.execute(text(
            "SELECT e.id, a.state, a.outcome, a.abandoned FROM call_list_entries e JOIN attempts a "
            f"ON a.id = e.current_attempt_id WHERE e.status = 'dialing' AND a.campaign_id = :c AND a.node_id <> '' "
            f"AND {_NOT_LIVE}{only}"), params).all()
        entries = []
        for d in dialing:
            outcome = d.outcome if d.state == AttemptState.ENDED and d.outcome in OUTCOMES \
                and d.outcome != CallOutcome.INTERRUPTED else CallOutcome.INTERRUPTED
            entries.append((int(d.id), str(outcome), bool(d.abandoned)))
        released = 0
        if seg:
            owner_like = f"node:{only_node}:%" if only_node else "node:%"
            res = conn.execute(text(
                "UPDATE call_list_entries SET status = 'pending', lease_owner = '', lease_token = '', "
                "lease_expires_at = NULL, updated_at = :at WHERE status = 'leased' AND lease_owner LIKE :like "
                "AND segment IN :segs AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.state = 'up' "
                "AND 'node:' || n.node_id || ':' || n.epoch = call_list_entries.lease_owner)")
                .bindparams(_expanding("segs")), {"at": at, "like": owner_like, "segs": seg})
            released = int(res.rowcount or 0)
    return Reaped([(int(r.id), r.entry_id, bool(r.abandoned), str(r.node_id)) for r in rows], entries, released)


def release_leases(engine: Engine, owner: str, at: datetime) -> int:
    """Entries OWNER leased and never dialled go back to the hopper (a node leaving cleanly)."""
    with engine.begin() as conn:
        res = conn.execute(text(
            "UPDATE call_list_entries SET status = 'pending', lease_owner = '', lease_token = '', "
            "lease_expires_at = NULL, updated_at = :at WHERE status = 'leased' AND lease_owner = :o"),
            {"at": at, "o": owner})
        return int(res.rowcount or 0)


def other_live_nodes(engine: Engine, campaign: str, node_id: str) -> list[str]:
    """Nodes other than NODE_ID that are up and serve CAMPAIGN (the last one out marks the campaign stopped)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT node_id FROM nodes WHERE state = 'up' AND node_id <> :n AND CAST(campaigns AS jsonb) ? :c"),
            {"n": node_id, "c": campaign}).scalars().all()
    return [str(r) for r in rows]


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def dead_nodes_agents(engine: Engine) -> list[tuple[int, str]]:
    """(agent id, node id) of agents assigned to a node that is not up and not yet shown disconnected."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT g.id, g.node_id FROM agents g JOIN nodes n ON n.node_id = g.node_id "
            "WHERE n.state <> 'up' AND g.state NOT IN (:lo, :un)"),
            {"lo": AgentState.LOGGED_OUT.value, "un": AgentState.UNREACHABLE.value}).all()
    return [(int(r.id), str(r.node_id)) for r in rows]


# ---------------------------------------------------------------------------------------- agents
def claim_agents(engine: Engine, node_id: str, logins: Iterable[str]) -> None:
    """Configured agents become this node's unless already assigned elsewhere (a move is explicit)."""
    with Session(engine) as s:
        for a in s.exec(select(Agent).where(col(Agent.login).in_(list(logins)))).all():
            if not a.node_id:
                a.node_id = node_id
                s.add(a)
        s.commit()


def agents_on(engine: Engine, node_id: str) -> set[str]:
    with Session(engine) as s:
        return {str(x) for x in s.exec(select(Agent.login).where(Agent.node_id == node_id)).all()}


def move_agent(engine: Engine, login: str, node_id: str) -> str:
    """Assign LOGIN to NODE_ID; the old node lets go of the agent when the agent is idle. Returns the old node."""
    with Session(engine) as s:
        a = s.exec(select(Agent).where(Agent.login == login)).first()
        if a is None:
            raise KeyError(f"no agent {login!r}")
        if s.get(Node, node_id) is None:
            raise LookupError(f"no node {node_id!r} has ever run (see `dialer node list`)")
        old = a.node_id
        a.node_id = node_id
        s.add(a)
        s.commit()
        return old


def agent_nodes(engine: Engine, logins: Iterable[str]) -> dict[str, str]:
    with Session(engine) as s:
        return {str(lg): str(n) for lg, n in s.exec(select(Agent.login, Agent.node_id)
                                                    .where(col(Agent.login).in_(list(logins)))).all()}


def foreign_reserved_agents(engine: Engine, node_id: str) -> set[str]:
    """Logins assigned to another node: callbacks reserved for them are that node's to make."""
    with Session(engine) as s:
        return {str(x) for x in s.exec(select(Agent.login).where(Agent.node_id != "", Agent.node_id != node_id)).all()}


# ---------------------------------------------------------------------------------------- campaign-wide feed
@dataclass(frozen=True)
class AttemptFacts:
    id: int
    node_id: str
    state: str
    answered_at: datetime | None
    connected_at: datetime | None
    ended_at: datetime | None
    machine: bool
    abandoned: bool


def other_nodes_attempts(engine: Engine, campaign_id: int, node_id: str, after_id: int) -> list[AttemptFacts]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, node_id, state, answered_at, agent_connected_at, ended_at, machine, abandoned FROM attempts "
            "WHERE campaign_id = :c AND node_id <> :n AND id > :a ORDER BY id"),
            {"c": campaign_id, "n": node_id, "a": after_id}).all()
    return [AttemptFacts(int(r.id), str(r.node_id), str(r.state), _aware(r.answered_at), _aware(r.agent_connected_at),
                         _aware(r.ended_at), bool(r.machine), bool(r.abandoned)) for r in rows]


def site_attempts(engine: Engine, campaign_id: int, after_id: int, since: datetime) -> list[AttemptFacts]:
    """Attempts of every OTHER campaign of this store (the call centre) newer than AFTER_ID and dialled at or after
    SINCE: the facts a regime counted per call centre (uk_ofcom) adds to a campaign's abandon book."""
    q = select(Attempt).where(col(Attempt.campaign_id) != campaign_id, col(Attempt.id) > after_id,
                              col(Attempt.dialed_at) >= since).order_by(col(Attempt.id))
    with Session(engine) as s:
        return [AttemptFacts(int(r.id or 0), str(r.node_id), str(r.state), _aware(r.answered_at),
                             _aware(r.agent_connected_at), _aware(r.ended_at), bool(r.machine), bool(r.abandoned))
                for r in s.exec(q).all()]


def max_attempt_id(engine: Engine, campaign_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM attempts WHERE campaign_id = :c"),
                                {"c": campaign_id}).scalar_one())


def _aware(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------- commands
def unacked_commands(engine: Engine, campaign: str, node_id: str, after_id: int) -> list[ControlCommand]:
    """Commands for CAMPAIGN newer than AFTER_ID that this node has not applied yet, oldest first."""
    with Session(engine, expire_on_commit=False) as s:
        acked = select(NodeCommandAck.command_id).where(NodeCommandAck.node_id == node_id)
        return list(s.exec(select(ControlCommand).where(
            ControlCommand.campaign == campaign, col(ControlCommand.id) > after_id,
            col(ControlCommand.id).not_in(acked)).order_by(col(ControlCommand.id))).all())


def ack_command(engine: Engine, command_id: int, node_id: str, result: str,
                campaign_fields: dict[str, Any] | None = None) -> None:
    """This node applied COMMAND_ID with RESULT; the command row shows the first node's result and time."""
    with Session(engine) as s:
        if s.get(NodeCommandAck, (command_id, node_id)) is None:
            s.add(NodeCommandAck(command_id=command_id, node_id=node_id, result=result))
        cmd = s.get(ControlCommand, command_id)
        if cmd is not None and cmd.applied_at is None:
            cmd.applied_at = datetime.now(UTC)
            cmd.result = f"{result} (node {node_id})"
            s.add(cmd)
        if campaign_fields and cmd is not None:
            from dialer.store.models import Campaign

            camp = s.exec(select(Campaign).where(Campaign.name == cmd.campaign)).first()
            if camp is not None:
                for k, v in campaign_fields.items():
                    setattr(camp, k, v)
                s.add(camp)
        s.commit()


def command_acks(engine: Engine, command_id: int) -> dict[str, tuple[str, datetime]]:
    with Session(engine) as s:
        return {a.node_id: (a.result, a.acked_at) for a in s.exec(
            select(NodeCommandAck).where(NodeCommandAck.command_id == command_id)).all()}


# ---------------------------------------------------------------------------------------- read models
@dataclass(frozen=True)
class NodeRow:
    node_id: str
    host: str
    pid: int
    sip_port: int
    state: str
    epoch: int
    lines: int
    agents: int
    heartbeat_age_s: float
    campaigns: list[str]
    stats: dict[str, Any]

    def health(self, ttl_s: float) -> str:
        if self.state != "up":
            return self.state
        return "ok" if self.heartbeat_age_s < ttl_s / 2 else ("late" if self.heartbeat_age_s < ttl_s else "stale")


def list_nodes(engine: Engine) -> list[NodeRow]:
    if not inspect(engine).has_table("nodes"):
        return []
    pg = engine.dialect.name == "postgresql"
    age = "extract(epoch from now() - heartbeat_at)" if pg else "(julianday('now') - julianday(heartbeat_at)) * 86400"
    with engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT node_id, host, pid, sip_port, state, epoch, lines, agents, {age} AS age, campaigns, stats "
            "FROM nodes ORDER BY node_id")).all()
    out = []
    for r in rows:
        camps = r.campaigns if isinstance(r.campaigns, list) else _load(r.campaigns, [])
        stats = r.stats if isinstance(r.stats, dict) else _load(r.stats, {})
        out.append(NodeRow(str(r.node_id), str(r.host), int(r.pid), int(r.sip_port), str(r.state), int(r.epoch),
                           int(r.lines), int(r.agents), float(r.age or 0.0), list(camps), dict(stats)))
    return out


def _load(v: Any, default: Any) -> Any:
    import json

    try:
        return json.loads(v) if isinstance(v, str) else default
    except ValueError:
        return default


def attempts_per_node(engine: Engine, campaign_id: int | None = None) -> dict[str, int]:
    """How many attempts each node dialled ("" = a single-host runner)."""
    q = "SELECT node_id, count(*) AS n FROM attempts"
    params: dict[str, Any] = {}
    if campaign_id is not None:
        q += " WHERE campaign_id = :c"
        params["c"] = campaign_id
    with engine.connect() as conn:
        rows = conn.execute(text(q + " GROUP BY node_id ORDER BY node_id"), params).all()
    return {str(r.node_id): int(r.n) for r in rows}


def entry_status_counts(engine: Engine, statuses: Sequence[str] = (EntryStatus.LEASED, EntryStatus.DIALING)
                        ) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM call_list_entries WHERE status IN :s")
                                .bindparams(_expanding("s")), {"s": [str(x) for x in statuses]}).scalar_one())


__all__ = [
    "NOTIFY_CHANNEL", "AttemptFacts", "Node", "NodeBusy", "NodeCommandAck", "NodeFence", "NodeInfo", "NodeRole",
    "NodeRow", "Reaped", "ack_command", "acquire_role", "agent_nodes", "agents_on", "attempts_per_node",
    "claim_agents", "command_acks", "db_now", "dead_nodes_agents", "ensure_pg_objects", "entry_status_counts",
    "foreign_reserved_agents", "heartbeat", "is_postgres", "join", "leave", "libpq_dsn", "list_nodes",
    "mark_dead", "max_attempt_id", "migrate_add_node_columns", "move_agent", "node_engine",
    "other_live_nodes", "other_nodes_attempts", "reap", "release_leases", "release_role", "role_holder", "unacked_commands",
]
