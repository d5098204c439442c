"""Load source exports into typed canonical tables inside DuckDB, sending every unusable row or cell to
`rejects` with its file and line instead of failing the build.

Everything after the CP932 transcode is SQL: a 5M-row orders file is parsed, mapped, typed and checked
in a few vectorised passes rather than row by row in Python.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from lists.errors import ListsError
from lists.mapping import KEYS, SCHEMA, Mapping, TableMapping

if TYPE_CHECKING:
    from lists.tablecache import TableCache

LOAD_ORDER = ("products", "customers", "orders", "order_lines", "subscriptions", "blocks")

_TRUE = ("1", "1.0", "true", "yes", "y", "t", "○", "〇", "◯", "可", "ok", "有", "有効", "あり", "はい")
_FALSE = ("0", "0.0", "false", "no", "n", "f", "×", "✕", "✖", "不可", "ng", "無", "無効", "なし", "いいえ")
# Compliance flags are read only in forms whose meaning for THAT field is unambiguous; anything else (拒否 as
# withdrawn, 2, 有効 as withdrawn: "valid membership"?) is unreadable and read as the customer-safe value
# (`PROTECT`): not listed, and a reject line with file, line and column (issue 26).
_YES = ("1", "1.0", "true", "yes", "y", "t", "○", "〇", "◯", "有", "あり", "はい")
_NO = ("0", "0.0", "false", "no", "n", "f", "×", "✕", "✖", "無", "なし", "いいえ")
COMPLIANCE_BOOLS: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    # permission to call: 可/不可, 許可/拒否, OK/NG, 同意 are about permission, so they are clear here
    ("customers", "tel_ok"): (
        (*_YES, "ok", "可", "許可", "有効", "同意", "同意済", "同意済み", "架電可", "電話可"),
        (*_NO, "ng", "不可", "不許可", "拒否", "拒否済", "無効", "不同意", "未同意", "同意なし", "同意撤回",
         "架電不可", "電話不可", "架電ng", "電話ng")),
    # membership: 退会 is withdrawn; a member status (本会員, 仮会員, 在籍) is not
    ("customers", "withdrawn"): (
        (*_YES, "退会", "退会済", "退会済み", "退会者"),
        (*_NO, "会員", "本会員", "仮会員", "在籍", "在籍中")),
    ("customers", "caution"): (
        (*_YES, "要注意", "注意", "クレーム", "クレーム有"),
        (*_NO, "問題なし", "通常")),
}
# the value an unreadable (or absent-with-no-default) compliance cell is read as: never "call"
PROTECT = {"tel_ok": "false", "withdrawn": "true", "caution": "true"}


def q(ident: str) -> str:
    """Quote an identifier for DuckDB (source columns are often Japanese or contain spaces)."""
    return '"' + ident.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def transcode(src: Path, dst: Path, encoding: str) -> int:
    """Stream a CP932 file to UTF-8 (DuckDB reads UTF-8 only); returns the number of undecodable bytes."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    bad = 0
    with src.open("rb") as fin, dst.open("w", encoding="utf-8", newline="") as fout:
        while chunk := fin.read(1 << 20):
            text = decoder.decode(chunk)
            bad += text.count("\ufffd")
            fout.write(text)
        tail = decoder.decode(b"", final=True)
        bad += tail.count("\ufffd")
        fout.write(tail)
    return bad


# identifiers matched across files (customer ids, skus): exact after trimming and Unicode NFKC, so a
# full-width "ＢＥＡＵＴＹ－ＳＥＲＵＭ" and "BEAUTY-SERUM " are one sku, while "beauty-serum" stays another
KEY_FIELDS = {"customer_id", "order_id", "subscription_id", "sku", "product_scope", "upgrade_sku"}
# (table, field) -> (low, high, low_open, what the reason says): a value outside is not cast, it is rejected
BOUNDS: dict[tuple[str, str], tuple[float, float, bool, str]] = {
    ("order_lines", "quantity"): (1, 1_000_000, False, "a whole number from 1 to 1000000"),
    ("subscriptions", "quantity"): (1, 1_000_000, False, "a whole number from 1 to 1000000"),
    ("subscriptions", "shipments_count"): (0, 1_000_000, False, "a whole number from 0 to 1000000"),
    ("subscriptions", "interval_days"): (1, 3650, False, "a whole number of days from 1 to 3650"),
    ("orders", "cycle_no"): (0, 1_000_000, False, "a whole number from 0 to 1000000"),
    ("orders", "total"): (-1e12, 1e10, False, "a finite amount up to 10000000000"),
    ("order_lines", "unit_price"): (0, 1e9, False, "a finite amount from 0 to 1000000000"),
    ("products", "price"): (0, 1e9, False, "a finite amount from 0 to 1000000000"),
    ("products", "unit_cost"): (0, 1e9, False, "a finite amount from 0 to 1000000000"),
    ("products", "days_per_unit"): (0, 3650, True, "days per unit > 0 and <= 3650"),
}
DATE_MIN, DATE_MAX = "1900-01-01", "2199-12-31"
# Japanese era -> the Gregorian year before its first year (令和元年 = 2019)
ERAS = {"明治": 1867, "大正": 1911, "昭和": 1925, "平成": 1988, "令和": 2018,
        "M": 1867, "T": 1911, "S": 1925, "H": 1988, "R": 2018}
_ERA_RE = (r"^\s*(明治|大正|昭和|平成|令和|[MTSHR])\s*(元|[0-9]{1,2})\s*[年./-]\s*([0-9]{1,2})\s*[月./-]"
           r"\s*([0-9]{1,2})\s*日?")


def nfkc_key(value: str | None) -> str | None:
    """The matching form of an identifier: NFKC, trimmed (incl. ideographic spaces); empty -> NULL."""
    if value is None:
        return None
    out = unicodedata.normalize("NFKC", value).strip()
    return out or None


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """SQL helpers the loader's queries call (idempotent per connection)."""
    try:
        con.create_function("nfkc_key", nfkc_key, ["VARCHAR"], "VARCHAR",  # type: ignore[call-overload]
                            null_handling="special", side_effects=False)
    except duckdb.Error:
        pass  # already registered on this connection


def _key(expr: str) -> str:
    """NFKC only where it can change something: plain printable ASCII is already in normal form."""
    return f"(CASE WHEN {expr} IS NULL OR regexp_full_match({expr}, '[!-~]*') THEN {expr} ELSE nfkc_key({expr}) END)"


def _col(tm: TableMapping, name: str) -> str:
    expr = f"trim({q(name)})"
    single = "".join(p for p in tm.strip_prefixes if len(p) == 1)
    if single:
        # one-character prefixes (Excel's leading ') strip in one cheap ltrim
        expr = f"ltrim({expr}, {lit(single)})"
    for prefix in (p for p in tm.strip_prefixes if len(p) > 1):
        expr = f"CASE WHEN starts_with({expr}, {lit(prefix)}) THEN substr({expr}, {len(prefix) + 1}) ELSE {expr} END"
    return f"nullif(trim({expr}), '')" if tm.strip_prefixes else f"nullif({expr}, '')"


def _field_expr(tm: TableMapping, f: str) -> str:
    if f in tm.constants:
        expr = lit(tm.constants[f])
    elif f in tm.columns:
        src = tm.columns[f]
        if len(src.columns) == 1:
            expr = _col(tm, src.columns[0])
        else:
            expr = f"nullif(concat_ws({lit(src.sep)}, {', '.join(_col(tm, c) for c in src.columns)}), '')"
    else:
        expr = "CAST(NULL AS VARCHAR)"
    if f in tm.values:
        whens = " ".join(f"WHEN {lit(k.strip().lower())} THEN {lit(v)}" for k, v in tm.values[f].items())
        expr = f"(CASE lower({expr}) {whens} ELSE {expr} END)"
    if f in tm.if_value:
        whens = " ".join(f"WHEN lower({_col(tm, c)}) = {lit(v.strip().lower())} THEN {lit(r)}"
                         for c, m in tm.if_value[f].items() for v, r in m.items())
        expr = f"(CASE {whens} ELSE {expr} END)"
    if f == "interval_days" and tm.interval_from[0]:
        fq, unit = (_col(tm, c) for c in tm.interval_from)
        per = (f"CASE WHEN lower({unit}) LIKE 'day%' THEN 1 WHEN lower({unit}) LIKE 'week%' THEN 7 "
               f"WHEN lower({unit}) LIKE 'month%' THEN 30 WHEN lower({unit}) LIKE 'year%' THEN 365 END")
        expr = (f"coalesce({expr}, CAST(CAST(try_cast({fq} AS DOUBLE) * ({per}) AS BIGINT) AS VARCHAR))")
    if f in tm.if_nonempty:
        whens = " ".join(f"WHEN {_col(tm, c)} IS NOT NULL THEN {lit(v)}" for c, v in tm.if_nonempty[f].items())
        expr = f"(CASE {whens} ELSE {expr} END)"
    if f in tm.defaults:
        expr = f"coalesce({expr}, {lit(tm.defaults[f])})"
    if f in KEY_FIELDS:
        expr = _key(expr)
    return expr


def _label(tm: TableMapping, f: str) -> str:
    if f in tm.columns:
        return "+".join(tm.columns[f].columns)
    return f


def _era_date(s: str) -> str:
    """令和6年5月1日 / R6.5.1 / H31/4/30 -> DATE (NULL when not an era date or impossible)."""
    era = "CASE " + " ".join(f"WHEN regexp_extract({s}, {lit(_ERA_RE)}, 1) = {lit(k)} THEN {v}"
                             for k, v in ERAS.items()) + " END"
    y = f"(CASE WHEN regexp_extract({s}, {lit(_ERA_RE)}, 2) = '元' THEN 1 ELSE try_cast(regexp_extract({s}, {lit(_ERA_RE)}, 2) AS INTEGER) END)"
    m = f"try_cast(regexp_extract({s}, {lit(_ERA_RE)}, 3) AS INTEGER)"
    d = f"try_cast(regexp_extract({s}, {lit(_ERA_RE)}, 4) AS INTEGER)"
    return (f"(CASE WHEN regexp_matches({s}, {lit(_ERA_RE)}) THEN try_cast(printf('%04d-%02d-%02d', "
            f"{era} + {y}, {m}, {d}) AS DATE) END)")


def _typed(kind: str, s: str, tm: TableMapping, table: str = "", f: str = "") -> str:
    if kind == "date":
        fmts = "[" + ", ".join(lit(x) for x in tm.date_formats) + "]"
        # only plain ISO goes through the generic cast; BC, 5-digit years and impossible days come out NULL
        expr = (f"coalesce(CASE WHEN regexp_full_match({s}, '[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}([ T].*)?') "
                f"THEN try_cast(regexp_extract({s}, '^[0-9-]+') AS DATE) END, CAST(coalesce(try_strptime({s}, {fmts}), "
                f"try_strptime(regexp_extract({s}, '^\\S+'), {fmts})) AS DATE)"
                + (f", {_era_date(s)}" if tm.era_dates else "") + ")")
        return f"(CASE WHEN {expr} BETWEEN DATE {lit(DATE_MIN)} AND DATE {lit(DATE_MAX)} THEN {expr} END)"
    bounds = BOUNDS.get((table, f))
    if kind == "int":
        # a whole number only: DuckDB's own cast would round "1.5" to 2
        clean = f"regexp_replace({s}, '[,\\s]', '', 'g')"
        expr = (f"(CASE WHEN regexp_full_match({clean}, '[+-]?[0-9]{{1,15}}(\\.0+)?') "
                f"THEN CAST(CAST({clean} AS DOUBLE) AS BIGINT) END)")
    elif kind == "float":
        raw = (f"coalesce(try_cast({s} AS DOUBLE), try_cast(regexp_replace({s}, '[,¥円\\s]', '', 'g') AS DOUBLE))")
        expr = f"(CASE WHEN isfinite({raw}) THEN {raw} END)"
    else:
        expr = ""
    if expr:
        if bounds is None:
            return expr
        lo, hi, lo_open, _ = bounds
        return f"(CASE WHEN {expr} {'>' if lo_open else '>='} {lo!r} AND {expr} <= {hi!r} THEN {expr} END)"
    if kind == "bool":
        words = COMPLIANCE_BOOLS.get((table, f))
        t = ", ".join(lit(x) for x in (words[0] if words else _TRUE))
        fl = ", ".join(lit(x) for x in (words[1] if words else _FALSE))
        if words:
            # full-width ＯＫ / １ are read after NFKC; only cells the plain test misses pay for the Python call
            n = f"lower(nfkc_key({s}))"
            return (f"(CASE WHEN lower({s}) IN ({t}) THEN true WHEN lower({s}) IN ({fl}) THEN false "
                    f"WHEN {n} IN ({t}) THEN true WHEN {n} IN ({fl}) THEN false ELSE {PROTECT[f]} END)")
        return f"(CASE WHEN lower({s}) IN ({t}) THEN true WHEN lower({s}) IN ({fl}) THEN false END)"
    if kind.startswith("enum:"):
        opts = ", ".join(lit(x) for x in kind[5:].split("|"))
        return f"(CASE WHEN lower({s}) IN ({opts}) THEN lower({s}) END)"
    if kind == "list":
        return (f"list_filter(list_transform(string_split(coalesce({s}, ''), ';'), lambda x: {_key('trim(x)')}), "
                f"lambda x: x IS NOT NULL AND x <> '')")
    return s


def bool_readable(table: str, f: str, s: str) -> str:
    """SQL: the compliance cell `s` is one of the forms `_typed` reads (the rest were read as PROTECT)."""
    yes, no = COMPLIANCE_BOOLS[(table, f)]
    words = ", ".join(lit(x) for x in (*yes, *no))
    return f"(CASE WHEN lower({s}) IN ({words}) THEN true ELSE coalesce(lower(nfkc_key({s})) IN ({words}), false) END)"


def cell_reason(table: str, f: str, kind: str) -> str:
    """What a cell-level reject says: the bound when there is one, so the operator knows what to fix."""
    if (table, f) in COMPLIANCE_BOOLS:
        return (f"unreadable {f}: customer not listed (read as {f}={PROTECT[f]}; a compliance cell that cannot "
                "be read is no consent)")
    b = BOUNDS.get((table, f))
    if kind == "date":
        return f"bad date (not a date from {DATE_MIN} to {DATE_MAX} in the mapped formats)"
    if b is not None:
        return f"bad {kind}: must be {b[3]}"
    return f"bad {kind}"


MAX_FIELD = 2 << 20  # 2 MiB: a bigger cell is a broken export (an unterminated quote swallowing the file)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+$")


def needs_sanitize(src: Path, chunk_size: int = 1 << 24) -> bool:
    """Line endings DuckDB would count differently from a text editor: mixed CRLF/LF, lone CR, blank lines.

    Read in chunks; the blank-line patterns are up to 3 bytes long, so the last 2 bytes of a chunk are carried
    into the next (with 1, a CRLF blank line split as `\\r\\n\\r` | `\\n` on a chunk boundary went unseen)."""
    crlf = lf = cr = 0
    blank = False
    tail = b""
    with src.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            data = tail + chunk
            crlf += chunk.count(b"\r\n") + (1 if tail[-1:] == b"\r" and chunk.startswith(b"\n") else 0)
            lf += chunk.count(b"\n")
            cr += chunk.count(b"\r")
            blank = blank or b"\n\n" in data or b"\n\r\n" in data or b"\r\r" in data
            tail = data[-2:]
    return blank or (crlf and crlf != lf) or cr != crlf


def sanitize_csv(src: Path, dst: Path, delimiter: str) -> tuple[list[str], list[tuple[int, str, str]], int]:
    """Re-write a damaged CSV so DuckDB can read it: physical line numbers in a `__line` column.

    Python does what DuckDB's reader cannot recover from: a quote left open (that record is rejected and
    reading resumes on the next physical line), a field over 2 MiB, mixed CRLF/LF/CR and blank lines (skipped,
    numbering kept). Returns (header, rejects as (line, value, reason), records written).
    """
    import csv as _csv

    text = src.read_text(encoding="utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE.findall(text)
    if not lines:
        return [], [], 0
    header = next(_csv.reader([lines[0].rstrip("\r\n")], delimiter=delimiter), [])
    for i, h in enumerate(header):  # EC-CUBE's 受注CSV has 送料 twice: name the second as DuckDB would
        if h in header[:i]:
            header[i] = f"{h}_{header[:i].count(h)}"
    rejects: list[tuple[int, str, str]] = []
    written = 0
    with dst.open("w", encoding="utf-8", newline="") as fh:
        w = _csv.writer(fh, quoting=_csv.QUOTE_ALL, lineterminator="\n")
        w.writerow([*header, "__line"])
        i, n = 1, len(lines)
        while i < n:
            j, buf = i, lines[i]
            while buf.count('"') % 2 and j + 1 < n and len(buf) <= 2 * MAX_FIELD:
                j += 1
                buf += lines[j]
            if buf.count('"') % 2:
                rejects.append((i + 1, lines[i][:200].rstrip("\r\n"), "malformed CSV: unterminated quote"))
                i += 1
                continue
            body = buf.rstrip("\r\n")
            if not body.strip():
                i = j + 1
                continue
            if len(body) >= _csv.field_size_limit():
                _csv.field_size_limit(len(body) + 1)
            rec = next(_csv.reader([body.replace("\r\n", "\n").replace("\r", "\n")], delimiter=delimiter), [])
            if any(len(f) > MAX_FIELD for f in rec):
                rejects.append((i + 1, body[:200], "malformed CSV: field over 2 MiB"))
            elif len(rec) != len(header):
                rejects.append((i + 1, body[:200],
                                f"malformed CSV: expected {len(header)} fields, found {len(rec)}"))
            else:
                w.writerow([*rec, i + 1])
                written += 1
            i = j + 1
    return header, rejects, written


class Loader:
    """Loads one mapping's files into a DuckDB connection; `rejects` and `rows_read` accumulate."""

    def __init__(self, con: duckdb.DuckDBPyConnection, mapping: Mapping, input_dir: Path, workdir: Path,
                 log: Callable[[str], None] | None = None) -> None:
        self.con = con
        self.mapping = mapping
        self.input_dir = input_dir
        self.workdir = workdir
        self.rows_read: dict[str, int] = {}
        self.files_by_table: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.ref_rejects: list[tuple[str, int, int]] = []  # (table, first, end rowid in rejects) per reference check
        self.log = log or (lambda _m: None)
        self._n = 0
        register_functions(con)
        con.execute("CREATE OR REPLACE TABLE rejects (file VARCHAR, line BIGINT, \"column\" VARCHAR, "
                     "value VARCHAR, reason VARCHAR, level VARCHAR DEFAULT 'row')")

    # -- reading ------------------------------------------------------------------------------------

    def _fast_ok(self, tm: TableMapping, src: Path) -> bool:
        if tm.forward_fill_by or src.suffix.lower() == ".parquet":
            return False
        with src.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                if b'"' in chunk:
                    return False
        return True

    def _check_header(self, tm: TableMapping, path: Path, cols: list[str]) -> list[str]:
        """Fail on a missing required column; return the optional ones that are absent (read as empty)."""
        header = set(cols)
        need = tm.required_columns()
        missing: list[str] = []
        for f, src in tm.columns.items():
            for c in src.columns:
                if c not in header and c in need:
                    raise ListsError(
                        f"{path}: column {c!r} not found (mapped to {tm.table}.{f} in {self.mapping.path}); "
                        f"the file's columns are: {', '.join(cols)}")
        for c in tm.source_columns():
            if c not in header and c in need:
                raise ListsError(f"{path}: column {c!r} not found (used by {tm.table} in {self.mapping.path}); "
                                 f"the file's columns are: {', '.join(cols)}")
            if c not in header and c not in missing:
                missing.append(c)
        if tm.table == "blocks":
            # a block names a number or a customer; without either column every block would be dropped
            ids = [c for f in ("phone", "customer_id") if f in tm.columns for c in tm.columns[f].columns]
            if ids and not header & set(ids):
                raise ListsError(f"{path}: none of the columns {', '.join(repr(c) for c in ids)} found (blocks.phone / "
                                 f"blocks.customer_id in {self.mapping.path}); the file's columns are: {', '.join(cols)}")
        if missing:
            self.notes.append(f"{path.name}: optional columns absent, read as empty: {', '.join(missing)}")
        return missing

    def _csv(self, tm: TableMapping, src: Path, rej: str, scan: str) -> str:
        return (f"read_csv({lit(str(src))}, header=true, all_varchar=true, delim={lit(tm.delimiter)}, quote='\"', "
                f"escape='\"', store_rejects=true, rejects_table={lit(rej)}, rejects_scan={lit(scan)}, "
                f"null_padding=false)")

    def _utf8(self, tm: TableMapping, path: Path) -> Path:
        if tm.encoding != "cp932":
            if path.suffix.lower() != ".parquet":
                self._check_utf8(path)
            return path
        self._n += 1
        src = self.workdir / f"utf8_{self._n}_{path.name}"
        bad = transcode(path, src, "cp932")
        if bad:
            self.notes.append(f"{path.name}: {bad} bytes not valid CP932 were replaced by U+FFFD")
        return src

    def _check_utf8(self, path: Path) -> None:
        """A file that is mostly not UTF-8 is the wrong encoding, not bad rows: one message, not 1M rejects."""
        with path.open("rb") as fh:
            head = fh.read(1 << 20)
        try:
            head.decode("utf-8")
            return
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:
                return  # a character cut by the 1 MiB window
        lines = head.split(b"\n")[:-1] or [head]
        bad = 0
        for ln in lines:
            try:
                ln.decode("utf-8")
            except UnicodeDecodeError:
                bad += 1
        if bad * 2 > len(lines):
            try:
                head.decode("cp932")
                hint = "; it decodes as CP932: set encoding = \"cp932\" in the mapping"
            except UnicodeDecodeError:
                hint = ""
            raise ListsError(f"{path}: {bad} of the first {len(lines)} lines are not UTF-8 (the mapping says "
                             f"utf-8){hint}")

    def _read_sanitized(self, tm: TableMapping, path: Path, src: Path) -> tuple[str, str]:
        """The careful-careful path: Python re-writes the file (see sanitize_csv), DuckDB reads the result."""
        self._n += 1
        clean = self.workdir / f"clean_{self._n}.csv"
        header, rejects, written = sanitize_csv(src, clean, tm.delimiter)
        if not header:
            raise ListsError(f"{path}: no header row")
        raw = f"raw_{self._n}"
        cols = ", ".join(f"{lit(c)}: 'VARCHAR'" for c in [*header, "__line"])
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM read_csv({lit(str(clean))}, header=true, "
                         f"delim=',', quote='\"', escape='\"', columns={{{cols}}}, max_line_size={4 * MAX_FIELD})")
        self.con.execute(f"ALTER TABLE {raw} ALTER __line TYPE BIGINT")
        for c in self._check_header(tm, path, header):
            self.con.execute(f"ALTER TABLE {raw} ADD COLUMN {q(c)} VARCHAR")
        if rejects:
            self.con.executemany("INSERT INTO rejects VALUES (?, ?, '', ?, ?, 'row')",
                                 [[path.name, ln, v, why] for ln, v, why in rejects])
        clean.unlink()
        self.rows_read[path.name] = written + len(rejects)
        return raw, "__line"

    def _read_file(self, tm: TableMapping, path: Path, src: Path) -> tuple[str, str]:
        """One file -> a raw all-VARCHAR table with `__line`; malformed CSV records go to rejects."""
        self._n += 1
        n = self._n
        raw = f"raw_{n}"
        rej, scan = f"csvrej_{n}", f"csvscan_{n}"
        if path.suffix.lower() == ".parquet":
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM read_parquet(?)", [str(src)])
            cols = [r[0] for r in self.con.execute(f"DESCRIBE {raw}").fetchall()]
            casts = ", ".join(f"CAST({q(c)} AS VARCHAR) AS {q(c)}" for c in cols)
            casts += "".join(f", CAST(NULL AS VARCHAR) AS {q(c)}" for c in self._check_header(tm, path, cols))
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {casts}, rowid + 2 AS __line FROM {raw}")
            self.rows_read[path.name] = self._count(raw)
            return raw, "__line"
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM {self._csv(tm, src, rej, scan)}")
        except duckdb.Error:
            return self._read_sanitized(tm, path, src)
        cols = [r[0] for r in self.con.execute(f"DESCRIBE {raw}").fetchall()]
        for c in self._check_header(tm, path, cols):
            self.con.execute(f"ALTER TABLE {raw} ADD COLUMN {q(c)} VARCHAR")
        # one reject per bad record (DuckDB reports one per missing column); its `line` is a record number
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE rj_{n} AS SELECT line AS rec, min(error_type) AS et, "
                         f"min(csv_line) AS v, string_agg(DISTINCT coalesce(column_name, ''), '+') AS col "
                         f"FROM {rej} GROUP BY line")
        bad_lines = self._count(f"rj_{n}")
        cat = "concat_ws('', " + ", ".join(q(c) for c in cols) + ")" if cols else "''"
        has_nl = self.con.execute(f"SELECT count(*) FROM {raw} WHERE contains({cat}, chr(10))").fetchone()
        nl = f"len({cat}) - len(replace({cat}, chr(10), ''))" if has_nl and has_nl[0] else "0"
        if not bad_lines and nl == "0":
            # the common case: record i is on line i + 2, read straight from rowid without copying the table
            self.con.execute(f"DROP TABLE rj_{n}")
            self.con.execute(f"DROP TABLE IF EXISTS {rej}")
            self.con.execute(f"DROP TABLE IF EXISTS {scan}")
            self.rows_read[path.name] = self._count(raw)
            return raw, "rowid + 2"
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT *, rowid + 2 AS __rec, {nl} AS __nl FROM {raw}")
        if bad_lines:
            # good record i sits after every bad record j whose number minus the bad ones before it is <= i + 2
            self.con.execute(
                f"UPDATE {raw} SET __rec = __rec + (SELECT count(*) FROM (SELECT rec - row_number() OVER "
                f"(ORDER BY rec) + 1 AS b FROM rj_{n}) j WHERE j.b <= {raw}.__rec)")
        if nl != "0":
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * EXCLUDE (__nl), __rec + coalesce(sum(__nl) OVER "
                f"(ORDER BY __rec ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS __line, __nl FROM {raw}")
        else:
            self.con.execute(f"ALTER TABLE {raw} ADD COLUMN __line BIGINT")
            self.con.execute(f"UPDATE {raw} SET __line = __rec")
        if bad_lines:
            self.con.execute(
                f"INSERT INTO rejects SELECT {lit(path.name)}, rec + coalesce((SELECT sum(__nl) FROM {raw} "
                f"WHERE __rec < rj.rec), 0), col, v, 'malformed CSV: ' || lower(et), 'row' FROM rj_{n} rj")
        self.con.execute(f"DROP TABLE rj_{n}")
        self.con.execute(f"DROP TABLE IF EXISTS {rej}")
        self.con.execute(f"DROP TABLE IF EXISTS {scan}")
        self.rows_read[path.name] = self._count(raw) + bad_lines
        return raw, "__line"

    def _count(self, table: str) -> int:
        row = self.con.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    # -- mapping and typing -------------------------------------------------------------------------

    def load(self, table: str) -> None:
        """Create the typed canonical table `table` (empty when the mapping has no such table).

        One pass per file maps, types and checks every row (`chk_<table>`); then duplicates are found with a
        GROUP BY and the clean table is written once.
        """
        fields = SCHEMA[table]
        tm = self.mapping.tables.get(table)
        tmm = tm or TableMapping(table=table, glob="")
        files = self.files_for(table)
        if tm is not None:
            if not files and table == "customers":
                raise ListsError(f"{self.input_dir}: no file matches {tm.glob!r} (customers, {self.mapping.path})")
            if not files:
                self.notes.append(f"{table}: no file matches {tm.glob!r}; table left empty")
        self.files_by_table[table] = [p.name for p in files]
        chk = f"chk_{table}"
        checks = self._checks(table, tmm)
        case_id = " ".join(f"WHEN {c} THEN {i}" for i, (c, _, _, _) in enumerate(checks)) or "WHEN false THEN 0"
        checked = [f for f, k in fields.items() if k in ("date", "int", "float", "bool") or k.startswith("enum:")
                   or k == "list"]
        typed = ", ".join(f"{_typed(k, q(f), tmm, table, f)} AS {q(f)}" for f, k in fields.items())
        raws = ", ".join(f"{q(f)} AS {q('s_' + f)}" for f in checked)
        sources: list[tuple[str, str]] = []
        if not files:
            raw = f"raw_empty_{table}"
            cols = ", ".join(f"{q(c)} VARCHAR" for c in tmm.source_columns())
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} ({cols + ', ' if cols else ''}__line BIGINT)")
            sources.append(("", raw))
        first = True
        exprs = ", ".join(f"{_field_expr(tmm, f)} AS {q(f)}" for f in fields)

        keep = " AND ".join(f"trim({q(c)}) IN ({', '.join(lit(v) for v in vs)})" for c, vs in tmm.where.items())

        def select(source: str, fname: str, line: str, missing: list[str] | None = None) -> str:
            if missing:
                source = f"(SELECT *, {', '.join(f'CAST(NULL AS VARCHAR) AS {q(c)}' for c in missing)} FROM {source})"
            return (f"SELECT *, CASE {case_id} END AS __rr FROM (SELECT __file, __line, {typed}, {raws} FROM "
                    f"(SELECT {lit(fname)} AS __file, {line} AS __line, {exprs} FROM {source}"
                    f"{' WHERE ' + keep if keep else ''}))")

        def put(sql: str) -> None:
            nonlocal first
            if first:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {chk} AS {sql}")
                first = False
            else:
                self.con.execute(f"INSERT INTO {chk} {sql}")

        if not files:
            put(select(sources[0][1], "", "__line"))
            self.con.execute(f"DROP TABLE {sources[0][1]}")
        for path in files:
            if path.stat().st_size == 0:
                # a failed export, not "no rows": an empty blocks file read as no rows would forget every DNC
                what = "customers" if table == "customers" else "rows (a header-only file means no rows)"
                raise ListsError(f"{path}: empty file (0 bytes); expected a header row and {what}")
            src = self._utf8(tmm, path)
            sanitize = path.suffix.lower() != ".parquet" and needs_sanitize(src)
            if not sanitize and self._fast_ok(tmm, src):
                # one pass straight from the file: no quotes means no embedded newlines, so record i is on
                # line i + 1 unless DuckDB rejected a record, in which case the careful path below re-reads it
                self._n += 1
                rej, scan = f"csvrej_{self._n}", f"csvscan_{self._n}"
                try:
                    header = [r[0] for r in self.con.execute(
                        f"DESCRIBE SELECT * FROM {self._csv(tmm, src, rej + '_d', scan + '_d')}").fetchall()]
                except duckdb.Error:
                    header, sanitize = [], True
                if not sanitize:
                    missing = self._check_header(tmm, path, header)
                    put(select(f"(SELECT row_number() OVER () + 1 AS __rn, * FROM {self._csv(tmm, src, rej, scan)})",
                               path.name, "__rn", missing))
                    bad = self._count(rej)
                    for t in (rej, scan, rej + "_d", scan + "_d"):
                        self.con.execute(f"DROP TABLE IF EXISTS {t}")
                    if not bad:
                        row = self.con.execute(f"SELECT count(*) FROM {chk} WHERE __file = ?", [path.name]).fetchone()
                        self.rows_read[path.name] = int(row[0]) if row else 0
                        continue
                    self.con.execute(f"DELETE FROM {chk} WHERE __file = ?", [path.name])
            raw, line = self._read_sanitized(tmm, path, src) if sanitize else self._read_file(tmm, path, src)
            if tmm.forward_fill_by:
                key = q(tmm.forward_fill_by)
                fills = ", ".join(
                    f"coalesce(nullif(trim({q(c)}), ''), last_value(nullif(trim({q(c)}), '') IGNORE NULLS) OVER "
                    f"(PARTITION BY {key} ORDER BY {line} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) "
                    f"AS {q(c)}" for c in tmm.source_columns() if c != tmm.forward_fill_by)
                if fills:
                    self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT {line} AS __line, {key}, {fills} "
                                     f"FROM {raw}")
                    line = "__line"
            put(select(raw, path.name, line))
            self.con.execute(f"DROP TABLE {raw}")
        self._finish(table, tmm, tm is not None and tm.distinct, checks, checked)

    def _checks(self, table: str, tmm: TableMapping) -> list[tuple[str, str, str, str]]:
        """Row-level checks (condition, column label, value, reason): the first failing one rejects the row."""
        fields = SCHEMA[table]
        checks: list[tuple[str, str, str, str]] = []
        for f, k in fields.items():
            label = lit(_label(tmm, f))
            if k == "key" and not (table == "orders" and f == "customer_id"):
                checks.append((f"{q(f)} IS NULL", label, "''", lit(f"missing {f}")))
            if k.startswith("enum:") and (table, f) != ("blocks", "kind"):  # an unknown kind blocks as dnc
                s = q("s_" + f)
                checks.append((f"{q(f)} IS NULL", label, f"coalesce({s}, '')",
                               f"'unknown {f}: ' || coalesce({s}, '(empty)')"))
        if table in ("order_lines", "subscriptions"):
            raw_q = "try_cast(regexp_replace(s_quantity, '[,\\s]', '', 'g') AS DOUBLE)"
            checks.append(("quantity IS NULL", lit(_label(tmm, "quantity")), "coalesce(s_quantity, '')",
                           f"CASE WHEN s_quantity IS NULL THEN 'quantity is missing' "
                           f"WHEN NOT isfinite({raw_q}) THEN 'quantity is not a whole number' "
                           f"WHEN {raw_q} <= 0 THEN 'quantity must be positive' "
                           f"WHEN {raw_q} > 1000000 THEN 'quantity over 1000000' "
                           f"ELSE 'quantity is not a whole number' END"))
        if table == "subscriptions":
            checks.append(("shipments_count IS NULL", lit(_label(tmm, "shipments_count")),
                           "coalesce(s_shipments_count, '')", "'shipments_count must be a whole number from 0 to 1000000'"))
        if table == "orders":
            checks.append(("ordered_at IS NULL AND shipped_at IS NULL", lit(_label(tmm, "ordered_at")),
                           "coalesce(s_ordered_at, '')",
                           "CASE WHEN s_ordered_at IS NULL THEN 'no order date' ELSE 'bad date' END"))
            checks.append(("total < 0", lit(_label(tmm, "total")), "s_total", "'negative total'"))
        if table == "blocks":
            checks.append(("phone IS NULL AND customer_id IS NULL", lit("phone+customer_id"), "''",
                           "'block without phone or customer_id'"))
        return checks

    def _finish(self, table: str, tmm: TableMapping, distinct: bool, checks: list[tuple[str, str, str, str]],
                checked: list[str]) -> None:
        fields = SCHEMA[table]
        chk = f"chk_{table}"
        if checks:
            def pick(j: int) -> str:
                return "CASE __rr " + " ".join(f"WHEN {i} THEN {c[j]}" for i, c in enumerate(checks)) + " END"

            self.con.execute(f"INSERT INTO rejects SELECT __file, __line, {pick(1)}, {pick(2)}, {pick(3)}, 'row' "
                             f"FROM {chk} WHERE __rr IS NOT NULL")
        # cell-level: a value present but unreadable is dropped (NULL) and reported; the row is kept
        cells = [f"SELECT __file, __line, {lit(_label(tmm, f))}, {q('s_' + f)}, "
                 f"{lit(cell_reason(table, f, k))}, 'cell' FROM {chk} "
                 f"WHERE __rr IS NULL AND {q('s_' + f)} IS NOT NULL AND "
                 + (f"NOT {bool_readable(table, f, q('s_' + f))}" if (table, f) in COMPLIANCE_BOOLS else f"{q(f)} IS NULL")
                 for f, k in fields.items() if k in ("date", "int", "float", "bool") and f in checked]
        if cells:
            self.con.execute("INSERT INTO rejects " + " UNION ALL ".join(cells))
        if table == "blocks":
            # a kind nobody mapped (電話NG様, 要確認, empty) still blocks: as dnc, with a line saying so
            self.con.execute(
                f"INSERT INTO rejects SELECT __file, __line, {lit(_label(tmm, 'kind'))}, coalesce(s_kind, ''), "
                f"'unknown block kind ' || coalesce(chr(39) || s_kind || chr(39), '(empty)') || ': blocks as dnc "
                f"(map it in [blocks.kinds])', 'cell' FROM {chk} WHERE __rr IS NULL AND kind IS NULL")
            self.con.execute(f"UPDATE {chk} SET kind = 'dnc' WHERE kind IS NULL")
        keep = ", ".join(f"c.{q(f)}" for f in fields)
        key = KEYS.get(table)
        if key and distinct:
            self.con.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT c.__file, c.__line, {keep} FROM {chk} c "
                f"WHERE __rr IS NULL QUALIFY row_number() OVER (PARTITION BY {q(key)} ORDER BY __file, __line) = 1")
        elif key:
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE dupk AS SELECT {q(key)} AS k, min(__line) AS first_line "
                f"FROM {chk} WHERE __rr IS NULL GROUP BY 1 HAVING count(*) > 1")
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE duprej AS SELECT c.__file, c.__line, d.k, d.first_line FROM {chk} c "
                f"JOIN dupk d ON c.{q(key)} = d.k WHERE c.__rr IS NULL "
                f"QUALIFY row_number() OVER (PARTITION BY d.k ORDER BY c.__file, c.__line) > 1")
            self.con.execute(
                f"INSERT INTO rejects SELECT __file, __line, {lit(_label(tmm, key))}, k, "
                f"'duplicate {key} (first at line ' || first_line || ')', 'row' FROM duprej")
            # in place: delete the few rejected rows rather than copying millions of good ones
            self.con.execute(f"DELETE FROM {chk} USING duprej d WHERE {chk}.__file = d.__file AND {chk}.__line = d.__line")
            self.con.execute(f"DELETE FROM {chk} WHERE __rr IS NOT NULL")
            self.con.execute("DROP TABLE dupk")
            self.con.execute("DROP TABLE duprej")
            self._rename(chk, table, checked)
            return
        else:
            self.con.execute(f"DELETE FROM {chk} WHERE __rr IS NOT NULL")
            self._rename(chk, table, checked)
            return
        self.con.execute(f"DROP TABLE {chk}")

    def _rename(self, chk: str, table: str, checked: list[str]) -> None:
        for f in checked:
            self.con.execute(f"ALTER TABLE {chk} DROP COLUMN {q('s_' + f)}")
        self.con.execute(f"ALTER TABLE {chk} DROP COLUMN __rr")
        self.con.execute(f"ALTER TABLE {chk} RENAME TO {table}")

    # -- references ---------------------------------------------------------------------------------

    def _reject_where(self, table: str, cond: str, column: str, value: str, reason: str) -> None:
        before = self._count("rejects")
        self.con.execute(f"INSERT INTO rejects SELECT __file, __line, {lit(column)}, {value}, {reason}, 'row' "
                         f"FROM {table} WHERE {cond}")
        self.ref_rejects.append((table, before, self._count("rejects")))
        self.con.execute(f"DELETE FROM {table} WHERE {cond}")

    def check_references(self) -> None:
        """Join rows that point at nothing are rejected with their line (unknown customer, sku, order)."""
        o = self.mapping.tables.get("orders")
        if o is not None and "customer_id" not in o.columns and "customer_id" not in o.constants:
            # Shopify orders: no customer id; join on lower-cased e-mail, else on the phone's digits
            self.con.execute("""
                CREATE OR REPLACE TEMP TABLE email_ix AS SELECT lower(email) AS k, min(customer_id) AS cid
                FROM customers WHERE email IS NOT NULL GROUP BY 1""")
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE phone_ix AS SELECT k, min(customer_id) AS cid FROM (
                  SELECT {_digits('phone')} AS k, customer_id FROM customers UNION ALL
                  SELECT {_digits('phone2')}, customer_id FROM customers) WHERE length(k) >= 9 GROUP BY 1""")
            self.con.execute(f"""
                UPDATE orders SET customer_id = coalesce(
                  (SELECT cid FROM email_ix WHERE email_ix.k = lower(orders.customer_email)),
                  (SELECT cid FROM phone_ix WHERE phone_ix.k = {_digits('orders.customer_phone')}))
                WHERE customer_id IS NULL""")
            label = "+".join(_label(o, f) for f in ("customer_email", "customer_phone") if f in o.columns)
            self._reject_where("orders", "customer_id IS NULL", label,
                               "coalesce(customer_email, customer_phone, '')",
                               "'no customer with this e-mail or phone'")
        self._reject_where("orders", "customer_id IS NULL OR customer_id NOT IN (SELECT customer_id FROM customers)",
                           self._lab("orders", "customer_id"), "customer_id", "'unknown customer'")
        self._reject_where("order_lines", "order_id NOT IN (SELECT order_id FROM orders)",
                           self._lab("order_lines", "order_id"), "order_id", "'unknown or rejected order'")
        has_products = self._count("products") > 0
        if has_products:
            self._reject_where("order_lines", "sku NOT IN (SELECT sku FROM products)",
                               self._lab("order_lines", "sku"), "sku", "'unknown sku'")
            self._reject_where("subscriptions", "sku NOT IN (SELECT sku FROM products)",
                               self._lab("subscriptions", "sku"), "sku", "'unknown sku'")
        else:
            self.notes.append("no product master: skus are not checked and depletion dates cannot be computed")
        self._reject_where("subscriptions", "customer_id IS NULL OR customer_id NOT IN (SELECT customer_id FROM customers)",
                           self._lab("subscriptions", "customer_id"), "customer_id", "'unknown customer'")

    def _lab(self, table: str, f: str) -> str:
        tm = self.mapping.tables.get(table)
        return _label(tm, f) if tm else f

    def files_for(self, table: str) -> list[Path]:
        tm = self.mapping.tables.get(table)
        return sorted(p for p in self.input_dir.glob(tm.glob) if p.is_file()) if tm is not None else []

    def load_all(self, cache: TableCache | None = None) -> None:
        """Load every table (from `cache` when its input files are unchanged), then check references."""
        for t in LOAD_ORDER:
            files = self.files_for(t)
            key = cache.key(self, t, files) if cache is not None and (files or t != "customers") else ""
            if cache is not None and key and cache.restore(self, t, key):
                self.log(f"{t}: inputs unchanged, typed table from cache")
                continue
            self.log(f"loading {t}")
            rejects_from, notes_from = self._count("rejects"), len(self.notes)
            self.load(t)
            if cache is not None and key:
                cache.store(self, t, key, rejects_from, notes_from)
        o = self.mapping.tables.get("orders")
        joins_by_contact = o is not None and "customer_id" not in o.columns and "customer_id" not in o.constants
        # the reference checks only delete rows (except the Shopify join, which fills customer ids): when every
        # table matches its cache key, replaying their rejects and deletions is exact
        refs_ok = cache is not None and not joins_by_contact and cache.all_keyed(LOAD_ORDER)
        if cache is not None and refs_ok and cache.restore_refs(self):
            self.log("references: inputs unchanged, from cache")
            return
        notes_from = len(self.notes)
        self.check_references()
        if cache is not None and refs_ok:
            cache.store_refs(self, notes_from)


def _digits(expr: str) -> str:
    """Digits of a phone with +81 turned back into a trunk 0, for joining orders to customers by phone."""
    d = f"regexp_replace(coalesce({expr}, ''), '[^0-9]', '', 'g')"
    return f"(CASE WHEN starts_with({d}, '81') AND length({d}) >= 11 THEN '0' || substr({d}, 3) ELSE {d} END)"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)
