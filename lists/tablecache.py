"""Typed-table cache, so a nightly rebuild re-ingests only the canonical tables whose input files changed.

Reading, typing and checking 10M order rows dominates a rebuild whose inputs barely move. After a table is
loaded (before the reference checks, which depend on other tables and so always rerun) it is written to
Parquet with the rejects its files produced and the loader's bookkeeping (rows read, notes). The key is the
table's mapping section plus every input file's name, size, mtime and SHA-256; the manifest also holds the
SHA-256 of each Parquet file, so a corrupted, truncated or foreign cache is detected and that table is loaded
cold (and re-cached) rather than used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from lists.ingest import lit, q

if TYPE_CHECKING:
    from lists.ingest import Loader

FORMAT = 1
# the loader's own code: a change to typing or checks must not reuse tables typed the old way
_CODE = hashlib.sha256(b"".join((Path(__file__).parent / m).read_bytes() for m in ("ingest.py", "mapping.py"))).hexdigest()
_MANIFEST = "manifest.json"
_REFS = "references"  # rejects of the reference checks, valid while every table is reused


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


class TableCache:
    """One directory: `<table>.parquet`, `<table>.rejects.parquet` and `manifest.json` (written last)."""

    def __init__(self, directory: Path, log: Callable[[str], None] | None = None) -> None:
        self.dir = directory
        self.log = log or (lambda _m: None)
        self.reused: list[str] = []
        self.loaded: list[str] = []
        self.invalid: list[str] = []
        self.manifest: dict[str, Any] = {}
        self.keys: dict[str, str] = {}  # table -> key of the inputs it holds (restored or stored)
        try:
            raw = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
            if isinstance(raw, dict) and raw.get("format") == FORMAT and isinstance(raw.get("tables"), dict):
                self.manifest = raw["tables"]
            else:
                self.invalid.append(_MANIFEST)
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            self.invalid.append(_MANIFEST)
            self.log(f"table cache {directory}: unreadable manifest, loading cold")

    def key(self, loader: Loader, table: str, files: list[Path]) -> str:
        tm = loader.mapping.tables.get(table)
        parts = {"format": FORMAT, "duckdb": duckdb.__version__, "code": _CODE, "table": table, "mapping": repr(tm),
                 "files": [[p.name, (st := p.stat()).st_size, st.st_mtime_ns, file_digest(p)] for p in files]}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _paths(self, table: str) -> tuple[Path, Path]:
        return self.dir / f"{table}.parquet", self.dir / f"{table}.rejects.parquet"

    def restore(self, loader: Loader, table: str, key: str) -> bool:
        """Recreate `table` and its rejects from the cache when the key and file digests match."""
        meta = self.manifest.get(table)
        if not isinstance(meta, dict) or meta.get("key") != key:
            return False
        con = loader.con
        data, rej = self._paths(table)
        try:
            if file_digest(data) != meta["data_sha256"] or file_digest(rej) != meta["rejects_sha256"]:
                raise ValueError("digest mismatch")
            cols = ", ".join(f"CAST({q(c)} AS {t}) AS {q(c)}" for c, t in meta["columns"])
            rcols = ", ".join(f"CAST({q(c)} AS {t})" for c, t in meta["rejects_columns"])
            con.execute(f"CREATE OR REPLACE TEMP TABLE __cache_rej AS SELECT {rcols} FROM read_parquet({lit(str(rej))})")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {cols} FROM read_parquet({lit(str(data))})")
            got = (loader._count(table), loader._count("__cache_rej"))
            if got != (meta["rows"], meta["rejects"]):
                raise ValueError(f"row counts {got} != {(meta['rows'], meta['rejects'])}")
            con.execute("INSERT INTO rejects SELECT * FROM __cache_rej")
        except (OSError, ValueError, KeyError, TypeError, duckdb.Error) as exc:
            self.invalid.append(table)
            self.log(f"table cache {table}: not usable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}),"
                     " loading cold")
            con.execute(f"DROP TABLE IF EXISTS {table}")
            return False
        finally:
            con.execute("DROP TABLE IF EXISTS __cache_rej")
        loader.files_by_table[table] = list(meta["files"])
        for name, n in meta["rows_read"]:
            loader.rows_read[name] = int(n)
        loader.notes.extend(meta["notes"])
        self.reused.append(table)
        self.keys[table] = key
        return True

    def store(self, loader: Loader, table: str, key: str, rejects_from: int, notes_from: int) -> None:
        """Write `table` and the rejects appended since row `rejects_from`; the manifest entry goes last."""
        con = loader.con
        self.dir.mkdir(parents=True, exist_ok=True)
        data, rej = self._paths(table)
        tmp_data, tmp_rej = data.with_suffix(".parquet.tmp"), rej.with_suffix(".parquet.tmp")
        con.execute(f"COPY (SELECT * FROM {table}) TO {lit(str(tmp_data))} (FORMAT parquet)")
        con.execute(f"COPY (SELECT * FROM rejects WHERE rowid >= {int(rejects_from)} ORDER BY rowid) "
                    f"TO {lit(str(tmp_rej))} (FORMAT parquet)")
        os.replace(tmp_data, data)
        os.replace(tmp_rej, rej)
        files = loader.files_by_table.get(table, [])
        self.manifest[table] = {
            "key": key,
            "files": files,
            "rows_read": [[f, loader.rows_read[f]] for f in files if f in loader.rows_read],
            "notes": loader.notes[notes_from:],
            "columns": [[r[0], r[1]] for r in con.execute(f"DESCRIBE {table}").fetchall()],
            "rejects_columns": [[r[0], r[1]] for r in con.execute("DESCRIBE rejects").fetchall()],
            "rows": loader._count(table),
            "rejects": loader._count("rejects") - rejects_from,
            "data_sha256": file_digest(data),
            "rejects_sha256": file_digest(rej),
        }
        self.loaded.append(table)
        self.keys[table] = key
        self._write_manifest()

    def all_keyed(self, tables: tuple[str, ...]) -> bool:
        """True when every table was restored or stored under a key, so the reference step can be keyed."""
        return all(t in self.keys for t in tables)

    def _refs_key(self) -> str:
        return hashlib.sha256(json.dumps(sorted(self.keys.items())).encode()).hexdigest()

    def restore_refs(self, loader: Loader) -> bool:
        """Replay the reference checks' rejects and deletions; False (nothing changed) when not usable."""
        meta = self.manifest.get(_REFS)
        if not isinstance(meta, dict) or meta.get("key") != self._refs_key():
            return False
        con = loader.con
        path = self.dir / f"{_REFS}.parquet"
        con.execute("BEGIN TRANSACTION")
        try:
            if file_digest(path) != meta["sha256"]:
                raise ValueError("digest mismatch")
            cols = ", ".join(f"CAST({q(c)} AS {t}) AS {q(c)}" for c, t in meta["columns"])
            con.execute(f"CREATE OR REPLACE TEMP TABLE __cache_ref AS SELECT {cols} FROM read_parquet({lit(str(path))})")
            if loader._count("__cache_ref") != meta["rejects"]:
                raise ValueError("row count mismatch")
            for table, rows in meta["rows_after"]:
                con.execute(f"DELETE FROM {table} WHERE (__file, __line) IN "
                            f"(SELECT (file, line) FROM __cache_ref WHERE tbl = {lit(table)})")
                if loader._count(table) != rows:
                    raise ValueError(f"{table}: row count mismatch after replay")
            con.execute("INSERT INTO rejects SELECT * EXCLUDE (tbl) FROM __cache_ref")
            con.execute("DROP TABLE __cache_ref")
            con.execute("COMMIT")
        except (OSError, ValueError, KeyError, TypeError, duckdb.Error) as exc:
            con.execute("ROLLBACK")
            self.invalid.append(_REFS)
            self.log(f"table cache references: not usable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                     ", checking cold")
            return False
        loader.notes.extend(meta["notes"])
        self.reused.append(_REFS)
        return True

    def store_refs(self, loader: Loader, notes_from: int) -> None:
        con = loader.con
        parts = [f"SELECT {lit(t)} AS tbl, * FROM rejects WHERE rowid >= {a} AND rowid < {b}"
                 for t, a, b in loader.ref_rejects]
        sql = " UNION ALL ".join(parts) if parts else "SELECT ''::VARCHAR AS tbl, * FROM rejects LIMIT 0"
        con.execute(f"CREATE OR REPLACE TEMP TABLE __cache_ref AS {sql}")
        path = self.dir / f"{_REFS}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        con.execute(f"COPY __cache_ref TO {lit(str(tmp))} (FORMAT parquet)")
        os.replace(tmp, path)
        tables = sorted({t for t, _, _ in loader.ref_rejects})
        self.manifest[_REFS] = {
            "key": self._refs_key(),
            "notes": loader.notes[notes_from:],
            "columns": [[r[0], r[1]] for r in con.execute("DESCRIBE __cache_ref").fetchall()],
            "rejects": loader._count("__cache_ref"),
            "rows_after": [[t, loader._count(t)] for t in tables],
            "sha256": file_digest(path),
        }
        con.execute("DROP TABLE __cache_ref")
        self.loaded.append(_REFS)
        self._write_manifest()

    def _write_manifest(self) -> None:
        tmp = self.dir / (_MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "tables": self.manifest}, ensure_ascii=False, indent=1),
                       encoding="utf-8")
        os.replace(tmp, self.dir / _MANIFEST)

    def derived_key(self, base: str, *parts: str) -> str | None:
        """Key for a table derived from cached table `base` (None when `base` has no key this run)."""
        if base not in self.keys:
            return None
        return hashlib.sha256(json.dumps([FORMAT, self.keys[base], *parts]).encode()).hexdigest()

    def restore_derived(self, con: duckdb.DuckDBPyConnection, name: str, key: str) -> dict[str, Any] | None:
        """Recreate temp table `name` stored by `store_derived` under `key`; returns its extras, else None."""
        meta = self.manifest.get(name)
        if not isinstance(meta, dict) or meta.get("key") != key:
            return None
        path = self.dir / f"{name}.parquet"
        try:
            if file_digest(path) != meta["sha256"]:
                raise ValueError("digest mismatch")
            cols = ", ".join(f"CAST({q(c)} AS {t}) AS {q(c)}" for c, t in meta["columns"])
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols} FROM read_parquet({lit(str(path))})")
            row = con.execute(f"SELECT count(*) FROM {name}").fetchone()
            if (row[0] if row else -1) != meta["rows"]:
                raise ValueError("row count mismatch")
        except (OSError, ValueError, KeyError, TypeError, duckdb.Error) as exc:
            self.invalid.append(name)
            self.log(f"table cache {name}: not usable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}),"
                     " computing cold")
            con.execute(f"DROP TABLE IF EXISTS {name}")
            return None
        self.reused.append(name)
        extras: dict[str, Any] = meta["extras"]
        return extras

    def store_derived(self, con: duckdb.DuckDBPyConnection, name: str, key: str, extras: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{name}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        con.execute(f"COPY (SELECT * FROM {name}) TO {lit(str(tmp))} (FORMAT parquet)")
        os.replace(tmp, path)
        row = con.execute(f"SELECT count(*) FROM {name}").fetchone()
        self.manifest[name] = {
            "key": key, "extras": extras, "rows": row[0] if row else 0, "sha256": file_digest(path),
            "columns": [[r[0], r[1]] for r in con.execute(f"DESCRIBE {name}").fetchall()],
        }
        self.loaded.append(name)
        self._write_manifest()

    def stats(self) -> dict[str, list[str]]:
        return {"reused": self.reused, "loaded": self.loaded, "invalid": self.invalid}
