"""`dialer node run`: one process per host that owns the host's SIP workers and agents and takes part in
every campaign it is configured for, beside the other nodes on the same PostgreSQL.

Each campaign runs in its own thread (its own telephony workers, on ports offset per campaign). A runner that
fails (the database went away, this epoch was declared dead) stops its telephony (calls in progress on this node
end), waits until the database answers, rejoins with a new epoch and starts again; nothing needs an operator.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from dialer.config import Config
from dialer.errors import UserError
from dialer.node.membership import Membership
from dialer.node.runner import NodeContext, NodeRunner
from dialer.node.signals import CommandSignals
from dialer.store import nodes as store
from dialer.store.db import init_db, resolve_url
from dialer.telephony.switchboard import Switchboard

log = logging.getLogger("dialer.node")

PORT_STRIDE_SIP = 50  # campaign i of a node: SIP ports from sip_port_base + i * 50
PORT_STRIDE_RTP = 4000

MULTI_NODE_NEEDS_PG = (
    "multi-node needs a PostgreSQL database shared by every node ([database] url or $DIALER_DATABASE_URL = "
    "postgresql+psycopg://USER@HOST:PORT/DB); {url!r} is SQLite, which is single-host: run one campaign per "
    "host with `dialer campaign run` instead")


def require_postgres(url: str) -> None:
    if not store.is_postgres(url):
        raise UserError(MULTI_NODE_NEEDS_PG.format(url=url))


def _campaign_cfg(cfg: Config, i: int) -> Config:
    if i == 0:
        return cfg
    tel = cfg.telephony.model_copy(update={"sip_port_base": cfg.telephony.sip_port_base + i * PORT_STRIDE_SIP,
                                           "rtp_port_base": cfg.telephony.rtp_port_base + i * PORT_STRIDE_RTP})
    return cfg.model_copy(update={"telephony": tel})


class Node:
    """The node process: membership, command signals, and one serving thread per campaign."""

    def __init__(self, cfg: Config, *, campaigns: list[str] | None = None, node_id: str | None = None,
                 auto_login: bool = False, on_line: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.url = resolve_url(cfg.database.url)
        require_postgres(self.url)
        self.names = campaigns or [c.name for c in cfg.campaigns]
        if not self.names:
            raise UserError("the config has no [[campaigns]] for this node to serve")
        for n in self.names:
            cfg.campaign(n)  # a clear error for an unknown campaign before anything starts
        self.node_id = node_id or socket.gethostname()
        self.auto_login = auto_login
        self.out = on_line or (lambda s: print(s, flush=True))
        self.stop_event = threading.Event()
        self.hard_event = threading.Event()  # (issue 25) a second SIGTERM: hang up what the drain left
        self.runners: dict[str, NodeRunner] = {}
        self.switchboards: dict[str, Switchboard] = {}  # (issue 30) the node's telephony, by campaign
        self.results: dict[str, dict[str, Any]] = {}
        self.restarts = 0
        self._join_lock = threading.Lock()
        self._init_lock = threading.Lock()
        init_db(self.url)
        self.engine = store.node_engine(self.url)
        info = store.NodeInfo(self.node_id, socket.gethostname(), os.getpid(), cfg.telephony.sip_port_base,
                              cfg.telephony.rtp_port_base, tuple(self.names), cfg.telephony.lines)
        self.m = Membership(self.engine, info)
        self.signals = CommandSignals(self.url)

    def run(self, duration_s: float | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        try:
            epoch = self.m.join()
        except store.NodeBusy as exc:
            raise UserError(str(exc)) from None
        self.out(f"node {self.node_id}: joined (epoch {epoch}) for {', '.join(self.names)}")
        self.m.start()
        self.signals.start()
        threads = [threading.Thread(target=self._serve, args=(name, i), name=f"campaign-{name}", daemon=True)
                   for i, name in enumerate(self.names)]
        for t in threads:
            t.start()
        end = None if duration_s is None else time.monotonic() + duration_s
        last = 0.0
        try:
            while any(t.is_alive() for t in threads):
                if (end is not None and time.monotonic() >= end) or (should_stop is not None and should_stop()):
                    break
                time.sleep(0.2)
                if time.monotonic() - last >= 5.0:
                    last = time.monotonic()
                    self._status_line()
        finally:
            self.stop_event.set()
            # (issue 25) leaving drains: each campaign's calls end by themselves (at most drain_s), then it exits
            deadline = time.monotonic() + self.cfg.telephony.drain_s + 30
            for t in threads:
                t.join(timeout=max(1.0, deadline - time.monotonic()))
            self.signals.stop()
            self.m.stop(leave=True)
            self.engine.dispose()
        return {"node": self.node_id, "epoch": self.m.epoch, "restarts": self.restarts, "campaigns": self.results}

    def _status_line(self) -> None:
        for name, r in list(self.runners.items()):
            c = r.counts
            self.out(f"[{time.strftime('%H:%M:%S')}] node {self.node_id} {name}: dialled={c.get('dialled', 0)} "
                     f"answered={c.get('answered', 0)} abandoned={c.get('abandoned', 0)} live={len(r.live)} "
                     f"coordinator={'yes' if r.coordinator.holding else 'no'} "
                     f"dialling={'yes' if self.m.live() else 'NO (membership lapsed)'}")

    def _rejoin(self) -> bool:
        try:
            epoch = self.m.join()
        except store.NodeBusy:
            raise
        except Exception as exc:
            log.warning("node %s: rejoin failed: %s", self.node_id, str(exc).splitlines()[0][:200])
            return False
        self.out(f"node {self.node_id}: rejoined with epoch {epoch}")
        return True

    def _serve(self, name: str, index: int) -> None:
        from dialer.store.agents import log_agent_state

        cfg = _campaign_cfg(self.cfg, index)
        # (issue 30) the node owns the telephony; one switchboard per campaign, on the campaign's own ports, until
        # one telephony's events are dispatched to several campaigns
        switchboard = self.switchboards[name] = Switchboard(cfg)
        need_rejoin = False
        epoch_seen = self.m.epoch
        while not self.stop_event.is_set():
            if need_rejoin or self.m.lost:
                with self._join_lock:  # one rejoin per failure, whichever campaign's thread saw it first
                    if (self.m.lost or self.m.epoch == epoch_seen) and not self._rejoin():
                        self.stop_event.wait(1.0)
                        continue
                need_rejoin = False
            if not self.m.live():
                self.stop_event.wait(0.2)
                continue
            epoch_seen = self.m.epoch
            runner: NodeRunner | None = None
            try:
                with self._init_lock:  # campaigns start one at a time (they upsert the same agent rows)
                    runner = NodeRunner(cfg, name, self.engine, NodeContext(self.m, self.signals),
                                        auto_login=self.auto_login, state_logger=log_agent_state,
                                        on_event=self.out, switchboard=switchboard)
                self.runners[name] = runner
                counts = runner.run(None, should_stop=lambda: self.stop_event.is_set(),
                                    hard_stop=lambda: self.hard_event.is_set())
                self.results[name] = dict(counts)
                if runner.fenced_out:  # declared dead (rejoin), or another campaign's thread rejoined (restart)
                    need_rejoin = self.m.lost
                    self.out(f"node {self.node_id} {name}: epoch {runner.epoch} ended; "
                             + ("rejoining" if need_rejoin else f"restarting under epoch {self.m.epoch}"))
                    self.restarts += 1
                    continue
                return
            except Exception as exc:
                self.restarts += 1
                self.out(f"node {self.node_id} {name}: runner failed ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); stopping its calls, will rejoin")
                if runner is not None:
                    try:
                        switchboard.stop()  # the next runner of the campaign gets fresh workers
                    except Exception:
                        pass
                need_rejoin = True
                self.stop_event.wait(1.0)


def run_node(cfg: Config, *, campaigns: list[str] | None = None, node_id: str | None = None,
             duration_s: float | None = None, auto_login: bool = False,
             should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    node = Node(cfg, campaigns=campaigns, node_id=node_id, auto_login=auto_login)
    term = threading.Event()

    def _on_term(_sig: int, _frame: Any) -> None:
        if term.is_set():  # (issue 25) the first drains, a second hangs up what is left
            node.hard_event.set()
        term.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)
    try:
        return node.run(duration_s, should_stop=lambda: term.is_set() or bool(should_stop and should_stop()))
    except KeyboardInterrupt:
        node.stop_event.set()
        raise


__all__ = ["MULTI_NODE_NEEDS_PG", "Node", "require_postgres", "run_node"]
