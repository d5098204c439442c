"""No formula reaches a spreadsheet: the one escaping rule for every CSV/Excel file tsunagu writes.

A cell that Excel, LibreOffice or Google Sheets would read as a formula (`=HYPERLINK(...)`, `@SUM(1)`,
`+cmd|'/C calc'!A0`, a leading tab or CR) is prefixed with a single quote, as the OWASP "CSV Injection"
guidance describes; the spreadsheet then shows it as text. Customer names, VOC notes and raw rejected
values come from outside, so every writer (call_list.csv, the --excel file, rejects.csv, outcomes export,
report and VOC CSVs) passes its text cells through here: `safe_cell` in Python, `sql_safe` for DuckDB's
COPY — both rendered from the same constants, so the rule lives once.

Decisions (tests/test_lists_compliance.py):
- only text is escaped; a number written as a number (a negative priority, -500 yen) is not text;
- a cell that is only a number (`-500`, `+1.5`) or only E.164 numbers (`+819012345678`,
  `+819012345678;+81312345678`) is kept as is: digits cannot call a function or DDE, and a dialer or CRM
  import reading the file needs the number intact (a spreadsheet may show it as a number);
- full-width ＝＋－＠ are not formula triggers in Excel, LibreOffice or Sheets and are left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import Any

# OWASP: = + - @, tab (0x09) and carriage return (0x0D) start a formula
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# a plain number, or one or more E.164 numbers separated by ';' (call_list.csv `phones`): kept usable
SAFE = r"[+-]?[0-9]+([.,][0-9]+)*|\+[0-9]{5,15}(;\+[0-9]{5,15})*"
_SAFE = re.compile(SAFE)


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet must see it: formula-looking text gets a leading `'`; anything else as is."""
    if isinstance(value, str) and value and value[0] in TRIGGERS and not _SAFE.fullmatch(value):
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """`safe_cell` over a DictWriter row."""
    return {k: safe_cell(v) for k, v in row.items()}


def safe_values(row: list[Any] | tuple[Any, ...]) -> list[Any]:
    """`safe_cell` over a csv.writer row."""
    return [safe_cell(v) for v in row]


def sql_safe(expr: str) -> str:
    """DuckDB twin of `safe_cell` for a VARCHAR expression inside `COPY (SELECT ...)`."""
    trig = ", ".join(f"chr({ord(c)})" for c in TRIGGERS)
    return (f"(CASE WHEN left({expr}, 1) IN ({trig}) AND NOT regexp_full_match({expr}, '{SAFE}') "
            f"THEN '''' || {expr} ELSE {expr} END)")


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """csv.DictWriter whose every row goes through `safe_row`: a writer cannot forget the rule."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow(safe_row(rowdict))

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for r in rowdicts:
            self.writerow(r)
