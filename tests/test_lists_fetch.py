"""`dialer lists fetch` against a flaky paged JSON API on loopback (ports 18000-18099)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from lists import load_mapping
from lists.fetch import FetchError, fetch_source
from tests.lists_util import read_csv

ITEMS = [{"customer_id": f"C{i:03d}", "name": f"顧客{i}", "phone": f"090-4000-{i:04d}", "tel_ok": 1}
         for i in range(7)]


class Api(ThreadingHTTPServer):
    fail_first = 0  # requests answered 503 before the API recovers
    fail_after_page: int | None = None  # pages served before it goes down for good
    seen = 0
    pages = 0
    auth_ok = True


class Handler(BaseHTTPRequestHandler):
    server: Api

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        srv.seen += 1
        if self.headers.get("Authorization") != "Bearer s3cret":
            srv.auth_ok = False
            self.send_response(401)
            self.end_headers()
            return
        if srv.seen <= srv.fail_first or (srv.fail_after_page is not None and srv.pages >= srv.fail_after_page):
            self.send_response(503)
            self.end_headers()
            return
        qs = parse_qs(urlparse(self.path).query)
        start = int(qs.get("cursor", ["0"])[0])
        limit = int(qs["limit"][0])
        page = ITEMS[start:start + limit]
        nxt = str(start + limit) if start + limit < len(ITEMS) else None
        body = json.dumps({"items": page, "next_cursor": nxt}).encode()
        srv.pages += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def api() -> Iterator[Api]:
    srv = None
    for port in range(18000, 18100):
        try:
            srv = Api(("127.0.0.1", port), Handler)
            break
        except OSError:
            continue
    assert srv is not None, "no free port in 18000-18099"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _mapping(tmp: Path, port: int, retries: int = 5) -> Path:
    p = tmp / "api.toml"
    p.write_text(f"""
[tables.customers]
glob = "customers.csv"
[tables.customers.columns]
customer_id = "customer_id"
[http]
url = "http://127.0.0.1:{port}/api"
token_env = "TEST_CRM_TOKEN"
page_size = 2
max_retries = {retries}
backoff_s = 0.01
timeout_s = 5
[http.resources]
customers = "/customers"
""", encoding="utf-8")
    return p


def test_fetch_retries_then_completes(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CRM_TOKEN", "s3cret")
    api.fail_first = 3
    counts = fetch_source(load_mapping(_mapping(tmp_path, api.server_address[1])), tmp_path / "out")
    assert counts == {"customers": 7}
    rows = read_csv(tmp_path / "out" / "customers.csv")
    assert [r["customer_id"] for r in rows] == [i["customer_id"] for i in ITEMS]
    assert rows[0]["phone"] == "090-4000-0000" and rows[0]["name"] == "顧客0"
    assert api.seen == 3 + 4 and api.auth_ok


def test_fetch_resumes_from_the_saved_cursor(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CRM_TOKEN", "s3cret")
    m = load_mapping(_mapping(tmp_path, api.server_address[1], retries=2))
    api.fail_after_page = 2
    with pytest.raises(FetchError, match="giving up after 3 tries"):
        fetch_source(m, tmp_path / "out")
    assert (tmp_path / "out" / ".customers.cursor").read_text() == "4"
    assert len(read_csv(tmp_path / "out" / "customers.csv")) == 4
    api.fail_after_page = None
    fetch_source(m, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "customers.csv")
    assert [r["customer_id"] for r in rows] == [i["customer_id"] for i in ITEMS]  # no gap, no duplicate
    assert (tmp_path / "out" / ".customers.cursor").read_text() == "DONE"


def test_fetch_needs_the_token(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_CRM_TOKEN", raising=False)
    with pytest.raises(FetchError, match="TEST_CRM_TOKEN"):
        fetch_source(load_mapping(_mapping(tmp_path, api.server_address[1])), tmp_path / "out")
    monkeypatch.setenv("TEST_CRM_TOKEN", "wrong")
    with pytest.raises(FetchError, match="401"):
        fetch_source(load_mapping(_mapping(tmp_path, api.server_address[1])), tmp_path / "out2")
