"""Issue 12: damaged and hostile exports never stop the build or lose a row, and never re-solicit.

`damaged_exports()` is the generator of the damaged corpus: each case is a customers.csv (bytes) beside good
orders, with the exact reject rows it must produce (file, physical line, reason prefix) and the customers
that must still be listed — or the one clear message the build must stop with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dialer.cli import main
from dialer.store.db import get_engine, init_db
from dialer.store.models import CallListEntry, Customer, OrderLine
from lists import ListsError, ListSettings, Suppressions
from lists.build import BlockRow
from tests.conftest import run_env
from tests.lists_util import (
    AS_OF,
    CANONICAL,
    HEADS,
    REPO,
    build,
    customer,
    line,
    listed,
    order,
    read_csv,
    write_export,
)
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)

CONFIG = REPO / "config" / "tsunagu.toml"
H = HEADS["customers"] + "\n"


def ago(n: int) -> str:
    return (AS_OF - timedelta(days=n)).isoformat()


def row(cid: str, phone: str, name: str = "テスト") -> str:
    return f"{cid},{name},,{phone},,,,,1,0,0"


@dataclass
class Case:
    name: str
    customers: bytes
    rejects: set[tuple[int, str]] = field(default_factory=set)  # (physical line, reason prefix) in customers.csv
    listed: set[str] = field(default_factory=set)
    error: str = ""  # instead: the build stops with one message containing this


def damaged_exports() -> Iterator[Case]:
    a, b, c = row("A", "090-2700-0001"), row("B", "090-2700-0002"), row("C", "090-2700-0003")
    yield Case("zero_bytes", b"", error="empty file (0 bytes)")
    yield Case("header_only", H.encode())
    yield Case("utf8_bom", ("\ufeff" + H + a + "\n").encode(), listed={"A"})
    yield Case("cp932_under_utf8", (H + a + "\n" + row("B", "090-2700-0002", "髙橋") + "\n").encode("cp932"),
               error='set encoding = "cp932"')
    # CRLF header, LF row, blank CRLF line, CRLF row, blank LF line, LF row: lines stay physical
    yield Case("mixed_crlf_blank", (H.replace("\n", "\r\n") + a + "\n\r\n" + b + "\r\n\n" + c + "\n").encode(),
               listed={"A", "B", "C"})
    yield Case("unterminated_quote", (H + a + "\n" + 'B,"x,,090-2700-0002,,,,,1,0,0\n' + c + "\n").encode(),
               rejects={(3, "malformed CSV: unterminated quote")}, listed={"A", "C"})
    yield Case("field_over_2mib", (H + a + "\n" + "B," + "x" * (3 << 20) + ",,090-2700-0002,,,,,1,0,0\n" + c
                                   + "\n").encode(), rejects={(3, "malformed CSV: field over 2 MiB")}, listed={"A", "C"})
    yield Case("too_few_fields", (H + a + "\nB,x\n" + c + "\n").encode(), rejects={(3, "malformed CSV")},
               listed={"A", "C"})
    yield Case("bad_dates", (H + a + "\n" + "B,x,,090-2700-0002,,,,2026-02-30,1,0,0\n"
                             + "C,y,,090-2700-0003,,,,10000-01-01,1,0,0\n").encode(),
               rejects={(3, "bad date"), (4, "bad date")}, listed={"A", "B", "C"})
    yield Case("full_width_ids", (H + "Ａ,x,,０９０－２７００－０００１,,,,,1,0,0\n").encode(), listed={"A"})


def _orders() -> dict[str, list[dict[str, object]]]:
    return {"orders": [order(f"o{x}", x, ago(300)) for x in "ABC"],
            "order_lines": [line(f"o{x}", "REG-A") for x in "ABC"]}


@pytest.mark.parametrize("case", list(damaged_exports()), ids=lambda c: c.name)
def test_damaged_customers_file(case: Case, tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[], **_orders())
    (d / "customers.csv").write_bytes(case.customers)
    if case.error:
        with pytest.raises(ListsError) as exc:
            build(d, tmp_path / "out")
        assert "customers.csv" in str(exc.value) and case.error in str(exc.value)
        return
    with build(d, tmp_path / "out") as r:
        got = {cid for cid, seg in listed(r) if seg == "dormant"}
        s = r.summary
    rej = {(int(x["line"]), x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv")
           if x["file"] == "customers.csv"}
    for ln, why in case.rejects:
        assert any(r_ln == ln and r_why.startswith(why) for r_ln, r_why in rej), (ln, why, rej)
    assert len(rej) == len(case.rejects), rej
    assert got == case.listed
    assert s["conservation"]["customers_ok"] and s["conservation"]["rows_ok"]
    assert oct(os.stat(tmp_path / "out" / "rejects.csv").st_mode & 0o777) == "0o600"


def test_mixed_line_endings_keep_physical_lines(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[], **_orders())
    text = H.replace("\n", "\r\n") + row("A", "090-2700-0001") + "\n\r\n" + "B,x,,090-2700-0002,,,,2026-13-01,1,0,0\r\n\n"
    (d / "customers.csv").write_bytes(text.encode())
    with build(d, tmp_path / "out"):
        pass
    rej = [(x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv") if x["file"] == "customers.csv"]
    assert rej == [("4", rej[0][1])] and rej[0][1].startswith("bad date")


def test_cell_bounds_reject_before_any_cast(tmp_path: Path) -> None:
    lines = [line("oA", "REG-A", 1)] + [
        {"order_id": f"o{i}", "sku": "REG-A", "quantity": q, "unit_price": 100}
        for i, q in enumerate(["abc", "-1", "1.5", "2000000", "NaN", "inf"])]
    orders = [order("oA", "A", ago(300))] + [order(f"o{i}", "A", ago(300)) for i in range(6)]
    prods = [{"sku": "REG-A", "name": "定番A", "days_per_unit": 30, "price": 3980},
             {"sku": "X0", "name": "零", "days_per_unit": 0}, {"sku": "X1", "name": "長", "days_per_unit": 4000},
             {"sku": "X2", "name": "NaN", "days_per_unit": "nan", "price": "inf"}]
    d = write_export(tmp_path / "x", customers=[customer("A", "090-2700-0001")], orders=orders,
                     order_lines=lines, products=prods)
    with build(d, tmp_path / "out") as r:
        assert ("A", "dormant") in listed(r)
        products = {p[0]: p for b in r.table_rows("products") for p in b}
    rej = {(x["file"], x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv")}
    assert ("order_lines.csv", "3", "quantity is not a whole number") in rej
    assert ("order_lines.csv", "4", "quantity must be positive") in rej
    assert ("order_lines.csv", "5", "quantity is not a whole number") in rej
    assert ("order_lines.csv", "6", "quantity over 1000000") in rej
    assert ("order_lines.csv", "7", "quantity is not a whole number") in rej
    assert ("order_lines.csv", "8", "quantity is not a whole number") in rej
    dpu = "bad float: must be days per unit > 0 and <= 3650"
    assert {("products.csv", "3", dpu), ("products.csv", "4", dpu), ("products.csv", "5", dpu)} <= rej
    assert products["X0"][2] is None and products["X1"][2] is None and products["REG-A"][2] == 30


def test_era_dates_when_the_mapping_says_so(tmp_path: Path) -> None:
    m = tmp_path / "era.toml"
    m.write_text(CANONICAL.read_text(encoding="utf-8").replace(
        '[tables.orders]\nglob = "orders*.csv"', '[tables.orders]\nglob = "orders*.csv"\nera_dates = true'),
        encoding="utf-8")
    d = write_export(tmp_path / "x", customers=[customer("A", "090-2700-0001"), customer("B", "090-2700-0002")],
                     orders=[order("oA", "A", "令和7年1月5日"), order("oB", "B", "R6.2.30")],
                     order_lines=[line("oA", "REG-A"), line("oB", "REG-A")])
    with build(d, tmp_path / "out", mapping=m) as r:
        orders = {o[0]: o for b in r.table_rows("orders") for o in b}
    assert str(orders["oA"][2]) == "2025-01-05"
    assert "oB" not in orders  # 2024-02-30 does not exist: the row has no date
    rej = {(x["line"], x["reason"]) for x in read_csv(tmp_path / "out" / "rejects.csv") if x["file"] == "orders.csv"}
    assert ("3", "bad date") in rej


def test_optional_columns_are_optional(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[], **_orders())
    (d / "customers.csv").write_text("customer_id,name,phone,phone2,email,prefecture,created_at,tel_ok,withdrawn\n"
                                     + "A,x,090-2700-0001,,,,,1,0\n", encoding="utf-8")
    with build(d, tmp_path / "out") as r:
        assert ("A", "dormant") in listed(r)
        assert any("name_kana" in n and "caution" in n for n in r.summary["notes"])


# --- compliance -------------------------------------------------------------------------------------------


def _upsell_export(d: Path, blocks: list[dict[str, object]]) -> Path:
    return write_export(d, customers=[customer("T", "090-2700-0009")], orders=[order("oT", "T", ago(3))],
                        order_lines=[line("oT", "TRIAL-A")], blocks=blocks)


def test_upsell_carries_the_offer_and_a_refused_offer_is_not_listed(tmp_path: Path) -> None:
    with build(_upsell_export(tmp_path / "a", []), tmp_path / "oa") as r:
        e = listed(r)[("T", "upsell")]
    assert (e.offer_sku, e.qualifying_sku) == ("REG-A", "TRIAL-A")
    row0 = read_csv(tmp_path / "oa" / "call_list.csv")[0]
    assert (row0["offer_sku"], row0["qualifying_sku"], row0["name"]) == ("REG-A", "TRIAL-A", "テスト")
    # a refusal of the product bought (the trial) does not stop offering the subscription...
    with build(_upsell_export(tmp_path / "b", [{"customer_id": "T", "kind": "refusal", "product_scope": "TRIAL-A"}]),
               tmp_path / "ob") as r:
        assert ("T", "upsell") in listed(r)
    # ...a refusal of the offered one does, written full-width with a trailing space
    with build(_upsell_export(tmp_path / "c", [{"customer_id": "Ｔ", "kind": "refusal", "product_scope": "ＲＥＧ－Ａ "}]),
               tmp_path / "oc") as r:
        assert ("T", "upsell") not in listed(r)
        assert r.summary["suppressed"] == {"refusal_product": 1}


def test_block_matching_nothing_is_reported(tmp_path: Path) -> None:
    d = _upsell_export(tmp_path / "a", [{"customer_id": "T", "kind": "refusal", "product_scope": "reg-a"},
                                        {"customer_id": "NOBODY", "kind": "dnc"},
                                        {"phone": "電話なし", "customer_id": "T", "kind": "dnc"}])
    with build(d, tmp_path / "o") as r:
        s = r.summary
        assert ("T", "upsell") not in listed(r)  # the unreadable number still blocks the customer it names
    rej = {(x["line"], x["reason"]) for x in read_csv(tmp_path / "o" / "rejects.csv") if x["file"] == "blocks.csv"}
    assert ("2", "warning: block matches no product (kept)") in rej  # lower-case scope: exact match, reported
    assert ("3", "warning: block matches no customer (kept)") in rej
    assert any(ln == "4" and why.startswith("block phone unreadable") for ln, why in rej)
    assert s["blocks"]["unmatched_product"] == 1 and s["blocks"]["unmatched_customer"] == 1
    assert s["blocks"]["unreadable_phone"] == 1
    # configurable: without the customer fallback the row is only rejected
    with build(d, tmp_path / "o2", settings=ListSettings(block_customer_on_bad_phone=False)) as r:
        assert ("T", "upsell") in listed(r)


def _forms(national: str) -> st.SearchStrategy[str]:
    """Textual forms of one JP mobile number as they appear in DNC exports."""
    a, b, c = national[:3], national[3:7], national[7:]
    fw = str.maketrans("0123456789-+", "０１２３４５６７８９－＋")
    base = st.sampled_from([
        f"{a}-{b}-{c}", f"{a}{b}{c}", f"{a}.{b}.{c}", f"{a} {b} {c}", f"({a}){b}-{c}", f"+81{national[1:]}",
        f"+81 (0){a[1:]}-{b}-{c}", f"0081-{a[1:]}-{b}-{c}", f"010-81-{a[1:]}-{b}-{c}", f"81-{a[1:]}-{b}-{c}",
        f"TEL:{a}-{b}-{c}", f"携帯：{a}-{b}-{c}", f"{a}-{b}-{c}（携帯）", f"{a}-{b}-{c} 内線12", f"{a}-{b}-{c} ext. 3"])
    return st.tuples(base, st.booleans()).map(lambda t: t[0].translate(fw) if t[1] else t[0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_blocked_number_in_any_form_is_never_listed(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    national = "090" + data.draw(st.from_regex(r"[1-9][0-9]{7}", fullmatch=True))
    blocked = data.draw(_forms(national), label="dnc form")
    listed_as = data.draw(_forms(national), label="customer form")
    tmp = tmp_path_factory.mktemp("dnc")
    d = write_export(tmp / "x", customers=[customer("A", listed_as), customer("B", "090-2700-0002")],
                     orders=[order("oA", "A", ago(300)), order("oB", "B", ago(300))],
                     order_lines=[line("oA", "REG-A"), line("oB", "REG-A")],
                     blocks=[{"phone": blocked, "kind": "dnc"}])
    with build(d, tmp / "o") as r:
        got = listed(r)
    assert ("B", "dormant") in got
    assert not any("+81" + national[1:] in e.phones for e in got.values())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scope=st.sampled_from(["REG-A", "ＲＥＧ－Ａ", " REG-A", "REG-A　"]), via_phone=st.booleans(),
       seg=st.sampled_from(["upsell", "cross_sell"]))
def test_a_refused_offer_is_never_listed(tmp_path_factory: pytest.TempPathFactory, scope: str, via_phone: bool,
                                         seg: str) -> None:
    tmp = tmp_path_factory.mktemp("ref")
    who = {"phone": "090-2700-0009"} if via_phone else {"customer_id": "T"}
    if seg == "upsell":
        d = _upsell_export(tmp / "x", [{**who, "kind": "refusal", "product_scope": scope}])
    else:  # a REG-B subscriber whose related product is REG-A... via products: REG-A relates REG-B;REG-C
        scope = scope.replace("A", "B").replace("Ａ", "Ｂ")
        d = write_export(tmp / "x", customers=[customer("T", "090-2700-0009")], orders=[order("oT", "T", ago(30))],
                         order_lines=[line("oT", "REG-A")],
                         subscriptions=[{"subscription_id": "S", "customer_id": "T", "sku": "REG-A", "quantity": 1,
                                         "status": "active", "interval_days": 30, "shipments_count": 1}],
                         blocks=[{**who, "kind": "refusal", "product_scope": scope}])
    with build(d, tmp / "o") as r:
        got = listed(r)
    offered = {e.offer_sku for (cid, s), e in got.items() if cid == "T" and s == seg}
    refused = "REG-A" if seg == "upsell" else "REG-B"
    assert refused not in offered


def test_dialer_refusal_blocks_the_offer_not_the_trial(tmp_path: Path) -> None:
    sup = Suppressions(blocks=[BlockRow(kind="refusal", customer_id="T", product_scope="REG-A")])
    with build(_upsell_export(tmp_path / "a", []), tmp_path / "o", sup=sup) as r:
        assert ("T", "upsell") not in listed(r)


# --- the store: whole-file mistakes, dry run, concurrency -------------------------------------------------


def _export(d: Path, n: int) -> Path:
    return write_export(d, customers=[customer(f"C{i:03d}", f"090-27{i:02d}-{i:04d}") for i in range(n)],
                        orders=[order(f"o{i}", f"C{i:03d}", ago(300)) for i in range(n)],
                        order_lines=[line(f"o{i}", "REG-A") for i in range(n)])


def _cli(inp: Path, out: Path, *extra: str) -> int:
    return main(["lists", "build", "--mapping", str(CANONICAL), "--input", str(inp), "--out", str(out),
                 "--as-of", AS_OF.isoformat(), "--config", str(CONFIG), *extra])


def _counts(url: str) -> tuple[int, int, int]:
    eng = get_engine(url)
    with eng.connect() as c:
        pending = c.execute(select(func.count()).select_from(CallListEntry).where(CallListEntry.status == "pending"))
        return (int(pending.scalar() or 0), int(c.execute(select(func.count()).select_from(Customer)).scalar() or 0),
                int(c.execute(select(func.count()).select_from(OrderLine)).scalar() or 0))


def test_whole_file_mistake_leaves_store_untouched(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    assert _cli(_export(tmp_path / "full", 40), tmp_path / "o1") == 0
    before = _counts(db_url)
    assert before == (40, 40, 40)
    # tonight's export lost half its customers (a truncated download)
    half = _export(tmp_path / "half", 20)
    assert _cli(half, tmp_path / "o2", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "dormant: 0/20/20/0" in out and "would be refused" in out
    assert _counts(db_url) == before
    assert _cli(half, tmp_path / "o3") == 3
    assert "max_withdraw_share" in capsys.readouterr().err
    assert _counts(db_url) == before
    # an emptied table is refused too
    empty = write_export(tmp_path / "empty", customers=[customer(f"C{i:03d}", f"090-27{i:02d}-{i:04d}") for i in range(40)])
    assert _cli(empty, tmp_path / "o4") == 3
    assert "orders is empty" in capsys.readouterr().err
    assert _counts(db_url) == before
    assert _cli(half, tmp_path / "o5", "--force") == 0
    assert _counts(db_url)[0] == 20


def _concurrent(url: str, inp: Path, tmp: Path) -> None:
    env = {**run_env(), "DIALER_DATABASE_URL": url}
    cmd = [sys.executable, "-m", "dialer", "lists", "build", "--mapping", str(CANONICAL), "--input", str(inp),
           "--as-of", AS_OF.isoformat(), "--config", str(CONFIG), "--lock-wait", "120"]
    results: list[subprocess.CompletedProcess[str]] = []

    def run(i: int) -> None:
        results.append(subprocess.run([*cmd, "--out", str(tmp / f"o{i}")], cwd=REPO, env=env, capture_output=True,
                                      text=True, timeout=300))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert _counts(url) == (30, 30, 30)
    eng = get_engine(url)
    with eng.connect() as c:
        dup = c.execute(select(CallListEntry.customer_id, CallListEntry.segment, func.count())
                        .group_by(CallListEntry.customer_id, CallListEntry.segment).having(func.count() > 1)).all()
    assert dup == []


def test_two_builds_at_once_sqlite(db_url: str, tmp_path: Path) -> None:
    _concurrent(db_url, _export(tmp_path / "x", 30), tmp_path)


def test_two_builds_at_once_postgresql(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    init_db(pg_url)
    _concurrent(pg_url, _export(tmp_path / "x", 30), tmp_path)


def test_lock_held_exits_75_with_a_clear_message(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from dialer.store.crm import build_lock

    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    with build_lock(get_engine(db_url), 0):
        assert _cli(_export(tmp_path / "x", 3), tmp_path / "o", "--lock-wait", "0") == 75
    assert "another list build is running" in capsys.readouterr().err
    assert _counts(db_url) == (0, 0, 0)


def test_excel_call_list_is_cp932(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    assert _cli(_export(tmp_path / "x", 3), tmp_path / "o", "--excel") == 0
    text = (tmp_path / "o" / "call_list.csv").read_bytes().decode("cp932")
    assert "テスト" in text and "offer_sku" in text.splitlines()[0]


def test_unchanged_tables_are_not_mirrored_again(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _unchanged(db_url, tmp_path, monkeypatch, capsys)


def test_unchanged_and_changed_mirror_postgresql(pg_url: str, tmp_path: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    init_db(pg_url)  # the COPY + INSERT ... ON CONFLICT path, inserting then updating
    _unchanged(pg_url, tmp_path, monkeypatch, capsys)


def _unchanged(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    d = _export(tmp_path / "x", 5)
    assert _cli(d, tmp_path / "o") == 0
    assert "mirrored 19 CRM rows" in capsys.readouterr().out  # customers 5, products 4, orders 5, lines 5
    eng = get_engine(db_url)
    assert _cli(d, tmp_path / "o") == 0
    assert "mirrored 0 CRM rows" in capsys.readouterr().out
    assert _counts(db_url) == (5, 5, 5)
    # a changed customers file re-mirrors customers and what depends on them
    (d / "customers.csv").write_text((d / "customers.csv").read_text(encoding="utf-8").replace("テスト", "変更"),
                                     encoding="utf-8")
    assert _cli(d, tmp_path / "o") == 0
    assert "mirrored 15 CRM rows" in capsys.readouterr().out  # customers, orders, lines; products unchanged
    with eng.connect() as c:
        assert {r[0] for r in c.execute(select(Customer.name))} == {"変更"}
    # the next night every dormant window moves a day: the bulk UPDATE path writes the new values
    assert main(["lists", "build", "--mapping", str(CANONICAL), "--input", str(d), "--out", str(tmp_path / "o"),
                 "--as-of", (AS_OF + timedelta(days=1)).isoformat(), "--config", str(CONFIG)]) == 0
    with eng.connect() as c:
        rows = c.execute(select(CallListEntry.callable_from, CallListEntry.build_date, CallListEntry.phones)).all()
    assert len(rows) == 5 and {r[1] for r in rows} == {AS_OF + timedelta(days=1)}
    assert {r[0].astimezone(UTC).isoformat() for r in rows} == {"2026-11-23T15:00:00+00:00"}  # 11-24 00:00 JST
    assert all(isinstance(r[2], list) and r[2][0].startswith("+8190") for r in rows)
