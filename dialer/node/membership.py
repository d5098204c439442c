"""A node's membership: join with a new epoch, renew a heartbeat every second, and know on its own when it
may no longer act.

The database declares a node dead when its heartbeat (DB clock) is older than `ttl_s`. The node itself stops
dialling earlier, after `self_fence_s` (< ttl_s) on its own monotonic clock measured from the START of its
last successful renewal: that start is before the DB wrote the heartbeat, so the node always gives up before
any survivor may settle what it held, even when the network to the database is cut and nothing can tell it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from dialer.store import Engine
from dialer.store import nodes as store

log = logging.getLogger("dialer.node")

TTL_S = 5.0  # heartbeat older than this on the DB clock: dead
BEAT_S = 1.0
SELF_FENCE_S = 3.5  # the node stops dialling when its last good renewal started longer ago than this


class Membership:
    """The node's row in `nodes`, kept alive by a thread; `live()` says whether the node may dial now."""

    def __init__(self, engine: Engine, info: store.NodeInfo, *, ttl_s: float = TTL_S, beat_s: float = BEAT_S,
                 self_fence_s: float = SELF_FENCE_S, clock: Callable[[], float] = time.monotonic) -> None:
        if self_fence_s >= ttl_s:
            raise ValueError("self_fence_s must be shorter than ttl_s (the node must give up first)")
        self.engine = engine
        self.info = info
        self.ttl_s = ttl_s
        self.beat_s = beat_s
        self.self_fence_s = self_fence_s
        self.clock = clock
        self.epoch = 0
        self.lost = False  # the DB no longer knows this epoch as up: rejoin (new epoch) before doing anything
        self._renewed = -math.inf
        self._steady_since = math.inf  # start of the current run of renewals without a failure (issue 25)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats: dict[str, dict[str, Any]] = {}  # per campaign, written by the runners, shown by monitors
        self.agents = 0
        self.renew_failures = 0

    @property
    def node_id(self) -> str:
        return self.info.node_id

    @property
    def fence(self) -> store.NodeFence:
        return store.NodeFence(self.info.node_id, self.epoch, self.ttl_s)

    def join(self) -> int:
        t0 = self.clock()
        epoch = store.join(self.engine, self.info, self.ttl_s)
        with self._lock:
            self.epoch, self.lost, self._renewed = epoch, False, t0
            self._steady_since = t0
        log.info("node %s joined with epoch %d", self.node_id, epoch)
        return epoch

    def live(self) -> bool:
        with self._lock:
            return not self.lost and self.epoch > 0 and self.clock() - self._renewed < self.self_fence_s

    def steady_s(self) -> float:
        """How long this node has renewed without a failure. After the database itself was away every node's
        heartbeat is old at once: a coordinator declares others dead only once it has been steady for a TTL, so
        they had time to renew (issue 25: an outage of the database must not kill every node's calls)."""
        with self._lock:
            return max(0.0, self.clock() - self._steady_since) if self.live_unlocked() else 0.0

    def live_unlocked(self) -> bool:
        return not self.lost and self.epoch > 0 and self.clock() - self._renewed < self.self_fence_s

    def since_renewal(self) -> float:
        with self._lock:
            return self.clock() - self._renewed

    def renew(self) -> bool:
        """One heartbeat; True when the DB renewed this epoch."""
        t0 = self.clock()
        epoch = self.epoch
        try:
            ok = store.heartbeat(self.engine, self.node_id, epoch, agents=self.agents, stats=dict(self.stats))
        except Exception as exc:  # the DB is unreachable: keep trying; live() lapses on its own
            self.renew_failures += 1
            with self._lock:
                self._steady_since = math.inf
            log.warning("node %s: heartbeat failed: %s", self.node_id, str(exc).splitlines()[0][:200])
            return False
        with self._lock:
            if epoch != self.epoch:
                return False
            if ok:
                self._renewed = max(self._renewed, t0)
                if self._steady_since == math.inf:
                    self._steady_since = t0
            else:
                self.lost = True
        if not ok:
            log.warning("node %s: epoch %d is no longer live (declared dead): must rejoin", self.node_id, epoch)
        return ok

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.node_id}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.beat_s):
            if self.epoch > 0 and not self.lost:
                self.renew()

    def stop(self, *, leave: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if leave and self.epoch > 0 and not self.lost:
            try:
                store.leave(self.engine, self.node_id, self.epoch)
            except Exception as exc:
                log.warning("node %s: could not leave cleanly: %s", self.node_id, exc)


__all__ = ["BEAT_S", "SELF_FENCE_S", "TTL_S", "Membership"]
