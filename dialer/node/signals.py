"""Fast signalling between nodes with PostgreSQL LISTEN/NOTIFY: a manager's command reaches every node at once.

A trigger on `control_commands` NOTIFYs `tsunagu_commands` with "campaign:id" on every insert
(dialer.store.nodes.ensure_pg_objects); each node LISTENs on its own connection in a thread and flags the
campaign. The runner reads commands when flagged, and also every `POLL_S` whatever happens (the fallback
when the LISTEN connection is down or a notification was missed: NOTIFY is not durable, the table is).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dialer.store import nodes as store

log = logging.getLogger("dialer.node")

POLL_S = 2.0


class CommandSignals:
    def __init__(self, url: str, channel: str = store.NOTIFY_CHANNEL) -> None:
        self.dsn: dict[str, Any] = store.libpq_dsn(url)
        self.channel = channel
        self.connected = False
        self.received = 0
        self.last: dict[str, float] = {}  # campaign -> monotonic time of its last notification
        self._flags: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="listen-commands", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout_s: float = 5.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not self.connected:
            time.sleep(0.05)
        return self.connected

    def _loop(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(**self.dsn, autocommit=True, connect_timeout=3, keepalives=1,
                                     keepalives_idle=1, keepalives_interval=1, keepalives_count=2,
                                     tcp_user_timeout=3000) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self.connected = True
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            campaign = n.payload.rpartition(":")[0]
                            with self._lock:
                                self._flags.add(campaign)
                                self.received += 1
                                self.last[campaign] = time.monotonic()
            except Exception as exc:
                self.connected = False
                log.warning("LISTEN connection lost (%s); polling until it is back", str(exc).splitlines()[0][:200])
                self._stop.wait(1.0)
        self.connected = False

    def take(self, campaign: str) -> bool:
        """True (once) when a command for CAMPAIGN was notified since the last call."""
        with self._lock:
            if campaign in self._flags:
                self._flags.discard(campaign)
                return True
            return False

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)


__all__ = ["POLL_S", "CommandSignals"]
