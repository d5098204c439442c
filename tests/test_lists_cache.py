"""The typed-table cache: a warm rebuild equals a cold one, changed inputs are re-ingested, bad caches are not used."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from lists import build_lists, load_mapping
from lists.sample import write_sample
from tests.lists_util import AS_OF, CANONICAL, DATA, REPO, read_csv

ALL = ["products", "customers", "orders", "order_lines", "subscriptions", "blocks"]
SHOPIFY = REPO / "config" / "mappings" / "shopify.toml"
ECCUBE = REPO / "config" / "mappings" / "eccube2.toml"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cache") / "in"
    write_sample(d, customers=400, seed=7, as_of=AS_OF, dirty=True, extra_orders=1)
    return d


def run(d: Path, out: Path, cache: Path | None, mapping: Path = CANONICAL) -> dict[str, Any]:
    with build_lists(load_mapping(mapping), d, out, AS_OF, table_cache=cache) as r:
        return dict(r.summary)


def same_outputs(a: Path, b: Path) -> None:
    for name in ("call_list.csv", "rejects.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((p / "summary.json").read_text(encoding="utf-8")) for p in (a, b))
    for s in (sa, sb):
        for k in ("timings_s", "table_cache"):
            s.pop(k, None)
        for k in ("parsed_now", "cached_before"):  # cache statistics: a warm run parses nothing
            s["phones"].pop(k)
        s["blocks"].pop("phones_parsed_now")
    assert sa == sb


def test_warm_rebuild_is_byte_identical_to_cold(sample: Path, tmp_path: Path) -> None:
    cold = run(sample, tmp_path / "cold", None)
    assert "table_cache" not in cold
    first = run(sample, tmp_path / "first", tmp_path / "tc")
    assert first["table_cache"]["loaded"] == [*ALL, "references", "cell_res"] and first["table_cache"]["reused"] == []
    warm = run(sample, tmp_path / "warm", tmp_path / "tc")
    assert warm["table_cache"] == {"reused": [*ALL, "references", "cell_res"], "loaded": [], "invalid": []}
    assert len(read_csv(tmp_path / "cold" / "rejects.csv")) > 0  # dirty sample: carried-over rejects are tested too
    same_outputs(tmp_path / "cold", tmp_path / "first")
    same_outputs(tmp_path / "cold", tmp_path / "warm")


def _listed(out: Path) -> dict[str, dict[str, str]]:
    return {r["customer_id"]: r for r in read_csv(out / "call_list.csv")}


def test_edited_customer_row_is_reingested(sample: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(sample, d)
    run(d, tmp_path / "first", tmp_path / "tc")
    victim = next(iter(_listed(tmp_path / "first")))
    with (d / "customers.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    for row in rows[1:]:
        if row and row[head.index("customer_id")] == victim:
            row[head.index("withdrawn")] = "1"
    with (d / "customers.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    warm = run(d, tmp_path / "warm", tmp_path / "tc")
    assert warm["table_cache"]["loaded"] == ["customers", "references", "cell_res"]
    assert set(warm["table_cache"]["reused"]) == set(ALL) - {"customers"}
    assert victim not in _listed(tmp_path / "warm")
    run(d, tmp_path / "cold", None)
    same_outputs(tmp_path / "cold", tmp_path / "warm")


def test_new_block_is_reingested(sample: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(sample, d)
    run(d, tmp_path / "first", tmp_path / "tc")
    victim, row = next((c, r) for c, r in _listed(tmp_path / "first").items() if r["phone_e164"])
    with (d / "blocks.csv").open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow([row["phone_e164"], "", "dnc", "", "2026-11-01"])
    warm = run(d, tmp_path / "warm", tmp_path / "tc")
    assert warm["table_cache"]["loaded"] == ["blocks", "references"]
    assert "cell_res" in warm["table_cache"]["reused"]  # customers unchanged: no phone work
    assert victim not in _listed(tmp_path / "warm")
    run(d, tmp_path / "cold", None)
    same_outputs(tmp_path / "cold", tmp_path / "warm")


def _flip_middle(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip_orders", "truncate_customers", "manifest_garbage", "manifest_counts",
                                    "references", "cell_res", "foreign_cache"])
def test_damaged_or_mismatched_cache_is_rebuilt_cold(sample: Path, tmp_path: Path, damage: str) -> None:
    tc = tmp_path / "tc"
    run(sample, tmp_path / "cold", None)
    run(sample, tmp_path / "first", tc)
    expect_invalid: list[str] = []
    if damage == "flip_orders":
        _flip_middle(tc / "orders.parquet")
        expect_invalid = ["orders"]
    elif damage == "truncate_customers":
        p = tc / "customers.parquet"
        p.write_bytes(p.read_bytes()[:100])
        expect_invalid = ["customers"]
    elif damage == "manifest_garbage":
        (tc / "manifest.json").write_text("{not json", encoding="utf-8")
        expect_invalid = ["manifest.json"]
    elif damage == "manifest_counts":
        # a manifest that lies about the data (same digests, other row count) must not be trusted either
        m = json.loads((tc / "manifest.json").read_text(encoding="utf-8"))
        m["tables"]["orders"]["rows"] += 1
        (tc / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
        expect_invalid = ["orders"]
    elif damage == "references":
        _flip_middle(tc / "references.parquet")
        expect_invalid = ["references"]
    elif damage == "cell_res":
        _flip_middle(tc / "cell_res.parquet")
        expect_invalid = ["cell_res"]
    else:
        # a cache built from other inputs (another export of the same shape) is never used
        other = tmp_path / "other"
        write_sample(other, customers=50, seed=99, as_of=AS_OF)
        shutil.rmtree(tc)
        run(other, tmp_path / "o", tc)  # same file names and format as a real cache of `sample`
    warm = run(sample, tmp_path / "warm", tc)
    assert warm["table_cache"]["invalid"] == expect_invalid
    assert set(expect_invalid) - {"manifest.json"} <= set(warm["table_cache"]["loaded"])
    if damage in ("manifest_garbage", "foreign_cache"):
        assert warm["table_cache"]["reused"] == []
    same_outputs(tmp_path / "cold", tmp_path / "warm")
    # the damaged entries were rewritten: the next run reuses everything
    again = run(sample, tmp_path / "again", tc)
    assert again["table_cache"] == {"reused": [*ALL, "references", "cell_res"], "loaded": [], "invalid": []}
    same_outputs(tmp_path / "cold", tmp_path / "again")


@pytest.mark.parametrize(("src", "mapping"), [("eccube", ECCUBE), ("shopify", SHOPIFY)])
def test_other_mappings_warm_equals_cold(tmp_path: Path, src: str, mapping: Path) -> None:
    """eccube reads orders and lines from one file; Shopify fills customer ids by join (never replayed)."""
    run(DATA / src, tmp_path / "cold", None, mapping)
    run(DATA / src, tmp_path / "first", tmp_path / "tc", mapping)
    warm = run(DATA / src, tmp_path / "warm", tmp_path / "tc", mapping)
    assert warm["table_cache"]["loaded"] == [] and warm["table_cache"]["invalid"] == []
    assert ("references" in warm["table_cache"]["reused"]) == (src != "shopify")
    same_outputs(tmp_path / "cold", tmp_path / "warm")


def test_touched_file_with_same_content_is_rehashed_not_misread(sample: Path, tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(sample, d)
    run(d, tmp_path / "first", tmp_path / "tc")
    p = d / "orders.csv"
    p.write_bytes(p.read_bytes())  # new mtime, same bytes: the key changes, so orders are loaded again
    warm = run(d, tmp_path / "warm", tmp_path / "tc")
    assert warm["table_cache"]["loaded"] == ["orders", "references"]
    same_outputs(tmp_path / "first", tmp_path / "warm")


def _blocks_run(d: Path, out: Path, phone_cache: Path | None) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    with build_lists(load_mapping(CANONICAL), d, out, AS_OF, phone_cache=phone_cache) as r:
        return dict(r.summary), sorted(tuple(map(str, x)) for b in r.table_rows("blocks") for x in b)


def test_block_numbers_parsed_once_across_nights(sample: Path, tmp_path: Path) -> None:
    """The blocks' numbers are cached by raw text: a night with the same blocks parses none, a new block only its
    own number, a cache from another parser version or an unreadable one is not used; the lists never differ."""
    d = tmp_path / "in"
    shutil.copytree(sample, d)
    pc = tmp_path / "pc" / "phone_cache.parquet"
    cache = pc.with_name("phone_cache_blocks.parquet")
    cold, cold_blocks = _blocks_run(d, tmp_path / "cold", None)
    assert cold["blocks"]["phones_parsed_now"] > 0 and not cache.exists()
    first, first_blocks = _blocks_run(d, tmp_path / "first", pc)
    assert first["blocks"]["phones_parsed_now"] == cold["blocks"]["phones_parsed_now"] and cache.exists()
    warm, warm_blocks = _blocks_run(d, tmp_path / "warm", pc)
    assert warm["blocks"]["phones_parsed_now"] == 0
    assert cold_blocks == first_blocks == warm_blocks
    same_outputs(tmp_path / "cold", tmp_path / "warm")
    # a new block: only its number is parsed, and its customer leaves the list as on a cold build
    victim, row = next((c, r) for c, r in _listed(tmp_path / "warm").items() if r["phone_e164"])
    raw = "0" + row["phone_e164"][3:6] + "-" + row["phone_e164"][6:]
    with (d / "blocks.csv").open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow([raw, "", "dnc", "", "2026-11-01"])
    new, new_blocks = _blocks_run(d, tmp_path / "new", pc)
    assert new["blocks"]["phones_parsed_now"] == 1
    assert victim not in _listed(tmp_path / "new")
    cold2, cold2_blocks = _blocks_run(d, tmp_path / "cold2", None)
    assert new_blocks == cold2_blocks
    same_outputs(tmp_path / "cold2", tmp_path / "new")
    # written by another parser version (or region): not trusted; unreadable: a cold parse, same lists
    for damage in ("stamp", "bytes"):
        if damage == "stamp":
            cache.with_suffix(".code").write_text("another parser", encoding="utf-8")
        else:
            cache.write_bytes(b"PAR1 not parquet")
        again, again_blocks = _blocks_run(d, tmp_path / damage, pc)
        assert again["blocks"]["phones_parsed_now"] == cold2["blocks"]["phones_parsed_now"]
        assert again_blocks == cold2_blocks
        same_outputs(tmp_path / "cold2", tmp_path / damage)
