"""Compliance columns never vanish silently.

When tonight's export renames `tel_ok` (or withdrawn, caution, or a blocks file's phone/customer/kind
column), every customer would read the default ("may call") and a refuser would be re-solicited with exit 0.
So a compliance column that the mapping names and an earlier build has seen is required from then on.

This module is the rule (pure): `presence` reads the header of every file a compliance table maps (cheap: one
line per file, also when the typed table comes from the table cache) and `judge` compares it with the keys
earlier builds saw. Where "seen" is remembered is the caller's business: the dialer keeps it in its store
(`dialer.store.crm`, meta key `lists_compliance_seen:<mapping name>`), written only when a build is applied.

Keys: `customers.tel_ok` (the field had a column) and `customers.tel_ok:電話NG日` (that column fed it).
A field seen before that has no column tonight refuses; so does a column seen before that the mapping still
names and the file lacks. A mapping edited to follow a renamed column (tel_ok -> 電話可否) passes.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import duckdb

from lists.mapping import Mapping, TableMapping

COMPLIANCE_FIELDS: dict[str, tuple[str, ...]] = {
    "customers": ("tel_ok", "withdrawn", "caution"),
    "blocks": ("phone", "customer_id", "kind", "product_scope"),
}


def source_columns(tm: TableMapping, f: str) -> list[str]:
    """Every source column that decides field `f` (mapped, if_nonempty, if_value)."""
    cols: list[str] = []
    if f in tm.columns:
        cols.extend(tm.columns[f].columns)
    for c in [*tm.if_nonempty.get(f, {}), *tm.if_value.get(f, {})]:
        if c not in cols:
            cols.append(c)
    return cols


def read_header(path: Path, tm: TableMapping) -> list[str]:
    """The file's column names (first line only; Parquet: its schema)."""
    if path.suffix.lower() == ".parquet":
        con = duckdb.connect()
        try:
            return [str(r[0]) for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]
        finally:
            con.close()
    enc = "cp932" if tm.encoding == "cp932" else "utf-8-sig"
    with path.open("r", encoding=enc, errors="replace", newline="") as fh:
        first = fh.readline(1 << 20)
    return next(csv.reader([first.rstrip("\r\n")], delimiter=tm.delimiter), [])


def presence(mapping: Mapping, files_by_table: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """One row per (table, field, column, file): is the compliance column in tonight's file?

    A field the mapping does not feed from any column gets one row with column "" (present False); a table
    whose glob matched no file gets rows with file = the glob (present False).
    """
    rows: list[dict[str, Any]] = []
    for table, fields in COMPLIANCE_FIELDS.items():
        tm = mapping.tables.get(table)
        if tm is None:
            continue
        files = files_by_table.get(table, [])
        headers = {p.name: set(read_header(p, tm)) for p in files}
        for f in fields:
            cols = source_columns(tm, f)
            if not cols:
                rows.append({"table": table, "field": f, "column": "", "file": "", "present": False})
                continue
            for c in cols:
                if not files:
                    rows.append({"table": table, "field": f, "column": c, "file": tm.glob, "present": False})
                for name, head in headers.items():
                    rows.append({"table": table, "field": f, "column": c, "file": name, "present": c in head})
    return rows


def judge(seen: set[str], rows: list[dict[str, Any]], mapping_path: str = "") -> tuple[list[str], set[str], set[str]]:
    """(reasons to refuse, keys present tonight, keys whose absence was reported).

    Apply: remember seen | present; with --force also forget the reported ones (the operator accepted them).
    """
    present: set[str] = set()
    missing: set[str] = set()
    reasons: list[str] = []
    by_field: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_field.setdefault(f"{r['table']}.{r['field']}", []).append(r)
    for fkey, frows in by_field.items():
        files = sorted({r["file"] for r in frows if r["file"]})
        cols = [c for c in dict.fromkeys(r["column"] for r in frows) if c]
        col_ok = {c: all(r["present"] for r in frows if r["column"] == c) for c in cols}
        file_ok = {fn: any(r["present"] for r in frows if r["file"] == fn) for fn in files}
        if files and all(file_ok.values()):
            present.add(fkey)
        present.update(f"{fkey}:{c}" for c, ok in col_ok.items() if ok)
        said = False
        for c in cols:
            if col_ok[c] or f"{fkey}:{c}" not in seen:
                continue
            for r in frows:
                if r["column"] == c and not r["present"]:
                    reasons.append(f"{r['file']}: compliance column {c!r} ({fkey}) not found; earlier builds had it "
                                   "(a renamed or dropped column would make every customer read as callable)")
            missing.add(f"{fkey}:{c}")
            said = True
        if fkey in seen and fkey not in present:
            missing.add(fkey)
            if said:
                continue
            if not cols:
                reasons.append(f"{mapping_path or 'the mapping'}: compliance field {fkey} is no longer read from any "
                               "column; earlier builds read it")
            else:
                for fn, ok in file_ok.items():
                    if not ok:
                        reasons.append(f"{fn}: compliance column {' / '.join(repr(c) for c in cols)} ({fkey}) not "
                                       "found; earlier builds had one")
    # a whole table dropped from the mapping (no [tables.blocks] tonight) loses its fields too
    for k in sorted(seen):
        fkey = k.split(":", 1)[0]
        if fkey in by_field:
            continue
        missing.add(k)
        if ":" not in k:
            reasons.append(f"{mapping_path or 'the mapping'}: compliance field {fkey} is no longer mapped; earlier "
                           "builds read it")
    return reasons, present, missing
