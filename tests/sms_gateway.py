"""A real SMS gateway on loopback for the tests: honours idempotency keys, can be down, fail, or stall.

It remembers every key it accepted (the message reached a handset once) and how often each was posted, so a
test can prove exactly-once delivery however many times the sender retried. It can also be hostile (issue 26):
ignore the Idempotency-Key (every POST texts the customer again), answer 500 after it has texted, or cut the
connection after it has texted; and it offers a status API (GET /messages/by-key/KEY: 200 with the id when a
message with that key was texted, 404 when never) -- `texts` is what reached the handsets, every copy.
"""

from __future__ import annotations

import json
import socket
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
        self.texts: list[dict[str, Any]] = []  # every message that reached a handset, copies included
        self.honour_keys = True  # False: a repeated Idempotency-Key texts the customer again
        self.error_after_every = 0  # every Nth text is answered 500 (the body names the number)
        self.cut_after_every = 0  # every Nth text's connection is cut, no answer (wins over the 500)
        self.barrier_peers = 0  # hold every POST until this many client connections have posted (senders overlap)
        self.peers: set[tuple[str, int]] = set()
        self.status_gets = 0
        self.lock = threading.Lock()
        self.peer_seen = threading.Condition(self.lock)
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
                stall = cut = False
                with gw.lock:
                    gw.peers.add(self.client_address)
                    gw.peer_seen.notify_all()
                    gw.peer_seen.wait_for(lambda: len(gw.peers) >= gw.barrier_peers, timeout=60)
                    gw.requests += 1
                    gw.auth.add(self.headers.get("Authorization", ""))
                    gw.posts[key] = gw.posts.get(key, 0) + 1
                    if gw.fail_next > 0:
                        gw.fail_next -= 1
                        code, out = 503, {"error": "gateway busy"}
                    elif key in gw.accepted and gw.honour_keys:
                        code, out = 409, {"id": gw.accepted[key]["id"], "error": "duplicate"}
                    else:
                        mid = f"m{len(gw.texts) + 1}"
                        msg = {**body, "id": mid, "key": key}
                        gw.texts.append(msg)
                        gw.accepted.setdefault(key, msg)
                        code, out = 202, {"id": mid, "status": "accepted"}
                        stall = len(gw.accepted) == gw.stall_on and gw.accepted[key] is msg
                        n = len(gw.texts)
                        if gw.cut_after_every and n % gw.cut_after_every == 0:
                            cut = True
                        elif gw.error_after_every and n % gw.error_after_every == 0:
                            code, out = 500, {"error": f"internal error after delivery to {body['to']}"}
                if stall:
                    gw.stalled.set()
                    time.sleep(gw.stall_s)
                if cut:  # the message went; the sender never hears so
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._json(code, out)

            def do_GET(self) -> None:  # noqa: N802
                if "/by-key/" in self.path:
                    key = self.path.rsplit("/", 1)[-1]
                    with gw.lock:
                        gw.status_gets += 1
                        m = gw.accepted.get(key)
                    self._json(200 if m else 404, {"id": m["id"], "status": "accepted"} if m else {"error": "no such key"})
                    return
                mid = self.path.rsplit("/", 1)[-1]
                with gw.lock:
                    found = any(m["id"] == mid for m in gw.texts)
                self._json(200 if found else 404, {"id": mid, "status": "delivered" if found else "unknown"})

        self.handler = Handler

    def by_phone(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for m in self.texts:
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
