"""Mapping files: Shopify (forward-fill, e-mail/phone join), EC-CUBE (CP932, CRLF, TEL1-3), loud failures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lists import ListsError, load_mapping
from tests.lists_util import DATA, REPO, build, listed, read_csv

SHOPIFY = REPO / "config" / "mappings" / "shopify.toml"
ECCUBE = REPO / "config" / "mappings" / "eccube2.toml"


def test_shopify_customers_and_orders(tmp_path: Path) -> None:
    with build(DATA / "shopify", tmp_path / "out", mapping=SHOPIFY) as r:
        got = listed(r)
        s = r.summary
        orders = {row[0]: row for b in r.table_rows("orders") for row in b}
        customers = {row[0]: row for b in r.table_rows("customers") for row in b}
    assert set(got) == {("7001", "dormant"), ("7002", "upsell")}
    assert customers["7001"][1] == "佐藤 花子"  # Last + First, leading ' stripped from the id
    assert got[("7001", "dormant")].phones == ["+819011117001", "+81331117001"]
    # forward-filled order cells, e-mail join is case-insensitive, phone join when the e-mail is empty
    assert orders["#1001"][1] == "7001" and orders["#1001"][4] == "shipped"
    assert orders["#1002"][1] == "7002"
    assert orders["#1004"][4] == "cancelled"
    rej = {(x["file"], x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv")}
    assert ("orders_export.csv", "5", "no customer with this e-mail or phone") in rej
    # 7002's Note spans two physical lines, so 7003 is on line 5
    assert ("customers_export.csv", "5", "phone toll_free") in rej
    assert s["suppressed"] == {"non_consumer_number": 0} or "non_consumer_number" not in s["suppressed"]
    assert s["conservation"]["customers_ok"] and s["conservation"]["rows_ok"]


def test_eccube_cp932_crlf_tel_columns(tmp_path: Path) -> None:
    raw = (DATA / "eccube" / "customer_20261122.csv").read_bytes()
    assert b"\r\n" in raw and "髙橋".encode("cp932") in raw  # really CP932 with CRLF
    with build(DATA / "eccube", tmp_path / "out", mapping=ECCUBE) as r:
        got = listed(r)
        s = r.summary
        customers = {row[0]: row for b in r.table_rows("customers") for row in b}
    assert customers["101"][1] == "髙橋 ①子" and customers["101"][2] == "タカハシ イチコ"
    assert set(got) == {("101", "dormant"), ("102", "upsell"), ("105", "cross_sell")}
    assert got[("101", "dormant")].phones == ["+819011110101", "+81331110101"]  # TEL1-TEL3 joined; mobile first
    assert got[("105", "cross_sell")].sku == "REG-B"
    assert s["suppressed"] == {"tel_ng": 1, "withdrawn": 1}
    rej = {(x["file"], x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv")}
    assert ("order_20261122.csv", "8", "bad date") in rej
    assert ("order_20261122.csv", "9", "quantity must be positive") in rej
    assert s["hazard"]["3"] == 0.5


def test_renamed_column_fails_with_file_and_column(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    shutil.copytree(DATA / "shopify", d)
    p = d / "customers_export.csv"
    p.write_text(p.read_text(encoding="utf-8").replace("Customer ID", "Customer Id", 1), encoding="utf-8")
    with pytest.raises(ListsError) as err:
        build(d, tmp_path / "out", mapping=SHOPIFY)
    assert "customers_export.csv" in str(err.value) and "'Customer ID'" in str(err.value)


@pytest.mark.parametrize(("text", "needle"), [
    ('[tables.customers]\nglob = "c.csv"\n[tables.customers.columns]\ncustomer_id = "id"\nshoe_size = "x"\n',
     "tables.customers.columns.shoe_size"),
    ('[tables.customers]\nglob = "c.csv"\nencoding = "shift_jis"\n[tables.customers.columns]\ncustomer_id = "id"\n',
     "cp932"),
    ('[tables.customers]\n[tables.customers.columns]\ncustomer_id = "id"\n', "glob is required"),
    ('[tables.orders]\nglob = "o.csv"\n', "[tables.customers] is required"),
    ('[tables.customers]\nglob = "c.csv"\n[tables.customers.columns]\nname = "n"\n', "key field 'customer_id'"),
    ("not toml [", "not valid TOML"),
])
def test_mapping_errors_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "m.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ListsError) as err:
        load_mapping(p)
    assert str(p) in str(err.value) and needle in str(err.value)


def test_shipped_mappings_load() -> None:
    for p in sorted((REPO / "config" / "mappings").glob("*.toml")):
        m = load_mapping(p)
        assert "customers" in m.tables


def test_parquet_input(tmp_path: Path) -> None:
    import duckdb

    d = tmp_path / "pq"
    shutil.copytree(DATA / "canonical", d)
    duckdb.execute(f"COPY (SELECT * FROM read_csv('{d / 'orders.csv'}', all_varchar=true)) TO '{d / 'orders.parquet'}' "
                   "(FORMAT parquet)")
    (d / "orders.csv").unlink()
    m = tmp_path / "m.toml"
    m.write_text((REPO / "config/mappings/canonical.toml").read_text(encoding="utf-8")
                 .replace('glob = "orders*.csv"', 'glob = "orders*.parquet"'), encoding="utf-8")
    with build(d, tmp_path / "out", mapping=m) as r:
        assert r.summary["entries"] == {"dormant": 1, "pre_churn": 1, "upsell": 1, "cross_sell": 2}
    rej = {(x["file"], x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv")}
    assert ("orders.parquet", "16", "unknown customer") in rej
