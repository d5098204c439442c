"""Fetch a paged JSON CRM API into canonical CSV files, resumably.

Each page is appended to `<table>.csv` and the next cursor saved to `.<table>.cursor` only after the page
is on disk, so a run killed mid-way resumes at the first page it did not keep (no gap, no duplicate).
The bearer token comes from the environment variable the mapping names, never from the file.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from lists.mapping import SCHEMA, Mapping

RETRY_STATUS = {429, 500, 502, 503, 504}


class FetchError(Exception):
    """The API could not be read after the retries, or refused us (bad token, unknown resource)."""


def _get(client: httpx.Client, url: str, params: dict[str, Any], retries: int, backoff: float) -> dict[str, Any]:
    last = ""
    for attempt in range(retries + 1):
        try:
            resp = client.get(url, params=params)
            if resp.status_code in RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
            elif resp.status_code >= 400:
                raise FetchError(f"{url}: HTTP {resp.status_code} {resp.reason_phrase} (not retried)")
            else:
                data = resp.json()
                if not isinstance(data, dict):
                    raise FetchError(f"{url}: expected a JSON object per page")
                return data
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        except json.JSONDecodeError as exc:
            last = f"bad JSON: {exc}"
        if attempt < retries:
            time.sleep(min(backoff * (2 ** attempt), 10.0))
    raise FetchError(f"{url}: giving up after {retries + 1} tries ({last}); rerun to resume from the saved cursor")


def fetch_source(mapping: Mapping, out: Path, restart: bool = False) -> dict[str, int]:
    """Fetch every resource of `mapping.http` into `out/<table>.csv`; returns rows fetched per table."""
    http = mapping.http
    if http is None:
        raise FetchError(f"{mapping.path}: no [http] section")
    headers = {"Accept": "application/json"}
    if http.token_env:
        token = os.environ.get(http.token_env)
        if not token:
            raise FetchError(f"environment variable {http.token_env} (the API token) is not set")
        headers["Authorization"] = f"Bearer {token}"
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with httpx.Client(headers=headers, timeout=http.timeout_s) as client:
        for table, path in http.resources.items():
            if table not in SCHEMA:
                raise FetchError(f"{mapping.path}: [http.resources] {table!r} is not a canonical table")
            fields = [f for f in SCHEMA[table] if f not in ("customer_email", "customer_phone")]
            csv_path = out / f"{table}.csv"
            cursor_path = out / f".{table}.cursor"
            cursor: str | None = None
            if restart or not cursor_path.exists():
                with csv_path.open("w", encoding="utf-8", newline="") as fh:
                    csv.writer(fh).writerow(fields)
                cursor_path.write_text("", encoding="utf-8")
            else:
                saved = cursor_path.read_text(encoding="utf-8").strip()
                if saved == "DONE":
                    counts[table] = 0
                    continue
                cursor = saved or None
            n = 0
            url = http.url.rstrip("/") + "/" + path.lstrip("/")
            while True:
                params: dict[str, Any] = {http.limit_param: http.page_size}
                if cursor:
                    params[http.cursor_param] = cursor
                page = _get(client, url, params, http.max_retries, http.backoff_s)
                items = page.get(http.items_key, [])
                with csv_path.open("a", encoding="utf-8", newline="") as fh:
                    w = csv.writer(fh)
                    for item in items:
                        row = []
                        for f in fields:
                            v = item.get(f, "")
                            row.append(";".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))
                        w.writerow(row)
                n += len(items)
                cursor = page.get(http.next_key)
                cursor_path.write_text(str(cursor) if cursor else "DONE", encoding="utf-8")
                if not cursor:
                    break
            counts[table] = n
    return counts
