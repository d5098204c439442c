"""A real SMS gateway on loopback for the tests: honours idempotency keys, can be down, fail, or stall.

It remembers every key it accepted (the message reached a handset once) and how often each was posted, so a
test can prove exactly-once delivery however many times the sender retried.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Gateway:
    def __init__(self) -> None:
        self.accepted: dict[str, dict[str, Any]] = {}  # key -> message (first acceptance only)
        self.posts: dict[str, int] = {}
        self.requests = 0
        self.fail_next = 0  # answer this many POSTs with 503 before accepting
        self.stall_on = 0  # the Nth accepted message: record it, signal `stalled`, then wait before answering
        self.stall_s = 5.0
        self.stalled = threading.Event()
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def _json(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                stall = False
                with gw.lock:
                    gw.requests += 1
                    gw.auth.add(self.headers.get("Authorization", ""))
                    gw.posts[key] = gw.posts.get(key, 0) + 1
                    if gw.fail_next > 0:
                        gw.fail_next -= 1
                        code, out = 503, {"error": "gateway busy"}
                    elif key in gw.accepted:
                        code, out = 409, {"id": gw.accepted[key]["id"], "error": "duplicate"}
                    else:
                        mid = f"m{len(gw.accepted) + 1}"
                        gw.accepted[key] = {**body, "id": mid, "key": key}
                        code, out = 202, {"id": mid, "status": "accepted"}
                        stall = len(gw.accepted) == gw.stall_on
                if stall:
                    gw.stalled.set()
                    time.sleep(gw.stall_s)
                self._json(code, out)

            def do_GET(self) -> None:  # noqa: N802
                mid = self.path.rsplit("/", 1)[-1]
                with gw.lock:
                    found = any(m["id"] == mid for m in gw.accepted.values())
                self._json(200 if found else 404, {"id": mid, "status": "delivered" if found else "unknown"})

        self.handler = Handler

    def by_phone(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.accepted.values():
            out[m["to"]] = out.get(m["to"], 0) + 1
        return out

    @contextmanager
    def serving(self, port: int) -> Iterator[Gateway]:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self.handler)
        t = threading.Thread(target=self.server.serve_forever, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            t.join(5)
