"""Outcomes back to the CRM: outbox, CSV export, and the webhook against a real local HTTP server that is
down, then failing, then drops an acknowledgement, then recovers — every outcome lands exactly once."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from dialer.config import OutcomesConfig
from dialer.outcomes import FIELDS, enqueue_missing, export_csv, push
from dialer.store.db import get_engine
from dialer.store.models import Disposition, OutboxItem
from dialer.store.outbox import enqueue_outcome
from tests.conftest import REPO, run_env
from tests.test_reports import NOW, build_store, write_config


def free_port() -> int:
    for port in range(18100, 18200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18100-18199")


class CRM:
    """A CRM endpoint with a memory: which idempotency keys it accepted, and how often each was sent."""

    def __init__(self, port: int, fail_first: int = 0, drop_ack_on: int = 0) -> None:
        self.accepted: dict[str, dict[str, Any]] = {}
        self.seen: dict[str, int] = {}
        self.requests = 0
        self.auth: set[str] = set()
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                crm.requests += 1
                crm.auth.add(self.headers.get("Authorization", ""))
                crm.seen[key] = crm.seen.get(key, 0) + 1
                assert body["outcome_id"] == key
                if crm.requests <= fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                if key not in crm.accepted:
                    crm.accepted[key] = body
                if crm.requests == drop_ack_on:  # processed, but the acknowledgement never reaches the dialer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CRM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture()
def store(db_url: str) -> Iterator[str]:
    build_store(db_url)
    yield db_url


def test_enqueue_is_idempotent_and_payload_is_documented(store: str) -> None:
    eng = get_engine(store)
    assert enqueue_missing(eng) == 8
    assert enqueue_missing(eng) == 0
    with Session(eng) as s:
        d = s.exec(select(Disposition).order_by(Disposition.id)).first()
        assert d is not None
        assert enqueue_outcome(s, d) is None
        items = s.exec(select(OutboxItem)).all()
    assert len({i.idempotency_key for i in items}) == 8
    sale = next(i.payload for i in items if i.payload["outcome"] == "sale")
    assert set(sale) == set(FIELDS)
    assert (sale["campaign"], sale["customer_id"], sale["amount"], sale["sku"], sale["agent"], sale["segment"]) == (
        "demo", "C1", 5980, "SKU-A", "a01", "dormant")
    assert sale["recorded_at_local"].endswith("+09:00")
    refused = next(i.payload for i in items if i.payload["reason_code"] == "2")
    assert refused["reason"] == "no_effect_felt" and refused["voc_text"].startswith("期待")


def test_webhook_down_failing_then_recovering_delivers_each_once(store: str) -> None:
    eng = get_engine(store)
    port = free_port()
    cfg = OutcomesConfig(webhook_url=f"http://127.0.0.1:{port}/outcomes", token_env="", allow_insecure_loopback=True, batch_size=3,
                         timeout_s=2, retry_base_s=0.05, retry_max_s=0.2)
    # 1. the CRM is down: nothing delivered, nothing lost, rows wait with a backoff
    res = push(eng, cfg, duration_s=0.3)
    assert res.delivered == 0 and res.pending == 8 and res.failed_tries >= 1
    with Session(eng) as s:
        assert all(i.status == "pending" for i in s.exec(select(OutboxItem)).all())
        assert max(i.tries for i in s.exec(select(OutboxItem)).all()) >= 1
    # 2. it comes back, answers 503 three times, then loses one acknowledgement, then works
    with CRM(port, fail_first=3, drop_ack_on=5) as crm:
        res = push(eng, cfg, duration_s=20)
    assert res.pending == 0 and res.dead == 0
    with Session(eng) as s:
        items = s.exec(select(OutboxItem)).all()
    keys = {i.idempotency_key for i in items}
    assert all(i.status == "delivered" for i in items)
    assert set(crm.accepted) == keys and len(crm.accepted) == 8
    assert max(crm.seen.values()) >= 2  # the 503s and the lost ack were retried with the same key
    assert sum(crm.seen.values()) == crm.requests
    # 3. a disposition recorded while the CRM is up again goes through on the next push, and only it
    with Session(eng) as s:
        s.add(Disposition(customer_id="C3", campaign_id=1, outcome="no_interest", created_at=NOW))
        s.commit()
    with CRM(port) as crm2:
        res = push(eng, cfg)
    assert res.queued == 1 and res.delivered == 1 and crm2.requests == 1


def test_rejected_outcome_is_kept_as_dead(store: str) -> None:
    eng = get_engine(store)
    cfg = OutcomesConfig(webhook_url="http://127.0.0.1:1/x", allow_insecure_loopback=True, retry_base_s=0.05, batch_size=100)
    import httpx

    transport = httpx.MockTransport(lambda req: httpx.Response(422, text="bad customer"))
    res = push(eng, cfg, transport=transport)
    assert res.dead == 8 and res.delivered == 0
    with Session(eng) as s:
        assert {i.last_error for i in s.exec(select(OutboxItem)).all()} == {"HTTP 422: bad customer"}


def test_export_csv(store: str) -> None:
    buf = io.StringIO()
    n = export_csv(get_engine(store), NOW - timedelta(hours=1), buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    # within the hour: the four dormant calls (sale, refused, dnc, callback) and the last upsell call (refused)
    assert n == len(rows) == 5
    assert list(rows[0]) == FIELDS
    assert [r["outcome"] for r in rows] == ["sale", "refused", "dnc", "callback", "refused"]
    assert rows[1]["reason"] == "no_effect_felt" and rows[0]["amount"] == "5980.0"


def test_outcomes_cli(store: str, tmp_path: Path) -> None:
    port = free_port()
    cfgp = write_config(tmp_path, store)
    cfgp.write_text(cfgp.read_text(encoding="utf-8") + f'\n[outcomes]\nwebhook_url = "http://127.0.0.1:{port}/o"\nallow_insecure_loopback = true\n'
                    'token_env = "CRM_TEST_TOKEN"\nretry_base_s = 0.05\n', encoding="utf-8")
    env = {**run_env(), "CRM_TEST_TOKEN": "s3cret"}
    out = tmp_path / "out.csv"
    r = subprocess.run([sys.executable, "-m", "dialer", "outcomes", "export", "--since", "2026-11-22",
                        "--out", str(out), "--config", str(cfgp)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(list(csv.DictReader(out.open(encoding="utf-8")))) == 8
    bad = subprocess.run([sys.executable, "-m", "dialer", "outcomes", "export", "--since", "yesterday",
                          "--config", str(cfgp)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr
    with CRM(port) as crm:
        r = subprocess.run([sys.executable, "-m", "dialer", "outcomes", "push", "--for", "10s", "--config", str(cfgp)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "delivered 8" in r.stdout and len(crm.accepted) == 8 and crm.auth == {"Bearer s3cret"}
