"""Helpers for the list-builder tests: write a small canonical export from Python rows."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from lists import ListSettings, Suppressions, build_lists, load_mapping
from lists.build import BuildResult
from lists.sample import CANONICAL_HEADERS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "lists"
CANONICAL = REPO / "config" / "mappings" / "canonical.toml"
AS_OF = date(2026, 11, 23)

HEADS = CANONICAL_HEADERS
PRODUCTS = [
    {"sku": "TRIAL-A", "name": "お試し", "days_per_unit": 7, "is_trial": 1, "upgrade_sku": "REG-A", "price": 500},
    {"sku": "REG-A", "name": "定番A", "days_per_unit": 30, "is_trial": 0, "related_skus": "REG-B;REG-C", "price": 3980},
    {"sku": "REG-B", "name": "定番B", "days_per_unit": 30, "is_trial": 0, "price": 3480},
    {"sku": "REG-C", "name": "定番C", "days_per_unit": 30, "is_trial": 0, "price": 2480},
]


def write_export(d: Path, **tables: list[dict[str, Any]]) -> Path:
    """Write every canonical table (missing ones empty; products default to PRODUCTS)."""
    d.mkdir(parents=True, exist_ok=True)
    tables.setdefault("products", PRODUCTS)
    for name, head in HEADS.items():
        cols = head.split(",")
        with (d / f"{name}.csv").open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for row in tables.get(name, []):
                w.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
    return d


def customer(cid: str, phone: str, **kw: Any) -> dict[str, Any]:
    return {"customer_id": cid, "name": "テスト", "phone": phone, "tel_ok": 1, "withdrawn": 0, "caution": 0, **kw}


def order(oid: str, cid: str, shipped: str, status: str = "shipped", total: int = 3980) -> dict[str, Any]:
    return {"order_id": oid, "customer_id": cid, "ordered_at": shipped, "shipped_at": shipped, "status": status,
            "total": total}


def line(oid: str, sku: str, qty: int = 1) -> dict[str, Any]:
    return {"order_id": oid, "sku": sku, "quantity": qty, "unit_price": 100}


def sub(sid: str, cid: str, k: int, status: str = "active", next_ship: str = "", sku: str = "REG-A") -> dict[str, Any]:
    return {"subscription_id": sid, "customer_id": cid, "sku": sku, "quantity": 1, "status": status,
            "interval_days": 30, "next_ship_date": next_ship, "shipments_count": k}


def build(d: Path, out: Path | None = None, as_of: date = AS_OF, settings: ListSettings | None = None,
          sup: Suppressions | None = None, mapping: Path = CANONICAL) -> BuildResult:
    return build_lists(load_mapping(mapping), d, out or d.parent / (d.name + "_out"), as_of, settings, sup)


def listed(r: BuildResult) -> dict[tuple[str, str], Any]:
    return {(e.customer_id, e.segment): e for e in r.entries()}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))
