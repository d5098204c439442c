"""List-builder benchmark: cold build, warm rebuild (phone cache), and a pandas dormant baseline, each in
its own process so peak RSS is per step.

    python -m bench.lists.run --data var/bench/lists/1m [--as-of 2026-11-23]

pandas is a bench-only dependency (`pip install -e .[bench]`); the runtime never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _child(step: str, data: str, out: str, as_of: str) -> dict[str, float]:
    t = time.perf_counter()
    extra: dict[str, float] = {}
    if step in ("cold", "warm"):
        from lists import build_lists, load_mapping

        with build_lists(load_mapping(REPO / "config/mappings/canonical.toml"), data, out, date.fromisoformat(as_of),
                         phone_cache=Path(out) / "phone_cache.parquet", table_cache=Path(out) / "table_cache") as r:
            extra = {"entries": r.summary["entries_total"], **{f"t_{k}": round(v, 2) for k, v in r.timings.items()},
                     "parsed_phones": r.summary["phones"]["parsed_now"], "table_cache": r.summary["table_cache"]}
    elif step == "duckdb_dormant":
        import duckdb

        con = duckdb.connect()
        d = str(Path(data))
        con.execute(f"""COPY (
            WITH last AS (SELECT customer_id, max(coalesce(try_cast(shipped_at AS DATE), try_cast(ordered_at AS DATE))) AS d
                            FROM read_csv('{d}/orders.csv', all_varchar=true) WHERE status = 'shipped' GROUP BY 1)
            SELECT customer_id, d FROM last
             WHERE date_diff('day', d, DATE '{as_of}') > 180 AND date_diff('day', d, DATE '{as_of}') <= 1460
               AND customer_id NOT IN (SELECT customer_id FROM read_csv('{d}/subscriptions.csv', all_varchar=true)
                                        WHERE status = 'active'))
            TO '{out}/duckdb_dormant.csv' (HEADER)""")
        row = con.execute(f"SELECT count(*) FROM read_csv('{out}/duckdb_dormant.csv')").fetchone()
        extra = {"entries": int(row[0]) if row else 0}
    elif step == "pandas":
        import pandas as pd

        orders = pd.read_csv(Path(data) / "orders.csv", usecols=["customer_id", "ordered_at", "shipped_at", "status"],
                             dtype=str)
        subs = pd.read_csv(Path(data) / "subscriptions.csv", usecols=["customer_id", "status"], dtype=str)
        shipped = orders[orders["status"] == "shipped"].copy()
        d = pd.to_datetime(shipped["shipped_at"].fillna(shipped["ordered_at"]), errors="coerce", format="%Y-%m-%d")
        shipped["d"] = d
        last = shipped.groupby("customer_id")["d"].max()
        days = (pd.Timestamp(as_of) - last).dt.days
        active = set(subs.loc[subs["status"] == "active", "customer_id"])
        dormant = days[(days > 180) & (days <= 1460) & ~days.index.isin(active)]
        dormant.to_csv(Path(out) / "pandas_dormant.csv")
        extra = {"entries": int(len(dormant))}
    extra["seconds"] = round(time.perf_counter() - t, 2)
    extra["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return extra


class _LoadSampler:
    """The 1-minute load average every few seconds while a run goes: a contended machine's figures say so."""

    def __init__(self, every_s: float = 5.0) -> None:
        import threading

        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        xs = self.samples
        return {"start": round(xs[0], 2), "min": round(min(xs), 2), "mean": round(sum(xs) / len(xs), 2),
                "max": round(max(xs), 2)}


def _pg_cpu_s(datadir: Path | None) -> float:
    """CPU seconds (user+sys) of the PostgreSQL server: the postmaster plus its exited backends (reaped by it)."""
    if datadir is None:
        return 0.0
    try:
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # after the ")" field 3 is the state: utime, stime, cutime, cstime are stat fields 14-17
        ticks = sum(int(x) for x in fields[11:15])
        live = 0
        for child in Path("/proc").iterdir():  # backends still connected (not yet reaped into cutime)
            if not child.name.isdigit():
                continue
            try:
                f = (child / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == pid:
                live += int(f[11]) + int(f[12])
        return (ticks + live) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _run_child(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float, float]:
    """Run CMD; (stdout, wall s, CPU s user+sys, peak RSS MB) of that child alone (os.wait4)."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=REPO, env=env)
        _pid, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, cmd, stdout, err.read())
    return stdout, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def _store_runs(a: argparse.Namespace, out: str, results: dict[str, Any]) -> None:
    """The whole CLI into a fresh store (SQLite, and PostgreSQL with --postgres): the first night inserts
    (cold caches), a same-day rerun (warm: unchanged inputs, mirror skipped), the next night (warm caches,
    every entry's window moves), and the night after.

    Each run reports wall time, the CLI's own CPU time (user+sys of that child, os.wait4), the PostgreSQL
    server's CPU during the run, the child's peak RSS and the 1-minute load average sampled during the run:
    on a shared machine wall time alone says little."""
    stores: list[tuple[str, str]] = [("sqlite", f"sqlite:///{Path(out) / 'bench.db'}")] if a.stores != "postgresql" else []
    server = None
    if (a.postgres and a.stores != "sqlite") or a.stores == "postgresql":
        sys.path.insert(0, str(REPO))
        from tests.pgserver import start_server

        (Path(out) / "pg").mkdir(parents=True, exist_ok=True)
        server = start_server(Path(out) / "pg")
        stores.append(("postgresql", server.create_database("bench")))
    try:
        for kind, url in stores:
            env = {**os.environ, "DIALER_DATABASE_URL": url}
            lists_out = Path(out) / f"lists_{kind}"
            shutil.rmtree(lists_out, ignore_errors=True)
            day0 = date.fromisoformat(a.as_of).toordinal()
            runs = [("first", 0), ("rerun", 0), ("next_day", 1), ("day_after", 2)][:a.nights + 2]
            for run, plus in runs:
                as_of = date.fromordinal(day0 + plus).isoformat()
                load = _LoadSampler()
                pg0 = _pg_cpu_s(server.datadir if server is not None and kind == "postgresql" else None)
                stdout, wall, cpu, rss = _run_child(
                    [sys.executable, "-m", "dialer", "lists", "build", "--mapping",
                     str(REPO / "config/mappings/canonical.toml"), "--input", a.data, "--out", str(lists_out),
                     "--as-of", as_of, "--force"], env)
                pg1 = _pg_cpu_s(server.datadir if server is not None and kind == "postgresql" else None)
                lines = stdout.splitlines()
                key = f"store_{kind}_{run}"
                results[key] = {"seconds": round(wall, 2), "cpu_s": round(cpu, 2),
                                "db_server_cpu_s": round(pg1 - pg0, 2), "peak_rss_mb": round(rss, 1),
                                "load_1m": load.stop(), "as_of": as_of,
                                "cli": [x for x in lines if x.startswith("time:")][0],
                                "store": [x for x in lines if x.startswith("store:")][0]}
                print(key, json.dumps(results[key]), flush=True)
    finally:
        if server is not None:
            from tests.pgserver import stop_server

            stop_server(server)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="")
    ap.add_argument("--as-of", default="2026-11-23")
    ap.add_argument("--step", default="")
    ap.add_argument("--postgres", action="store_true", help="also run the store steps on a throwaway PostgreSQL")
    ap.add_argument("--store-only", action="store_true", help="only the whole-CLI store runs")
    ap.add_argument("--stores", choices=("both", "sqlite", "postgresql"), default="both",
                    help="with --store-only: which stores (two benches side by side on a shared machine)")
    ap.add_argument("--nights", type=int, default=2, choices=(0, 1, 2),
                    help="store runs after the first night and the same-day rerun (default 2: next day, day after)")
    a = ap.parse_args()
    out = a.out or str(Path(a.data).parent / "out")
    if a.step:
        print(json.dumps(_child(a.step, a.data, out, a.as_of)))
        return
    shutil.rmtree(out, ignore_errors=True)
    Path(out).mkdir(parents=True)
    results: dict[str, Any] = {}
    for step in () if a.store_only else ("cold", "warm", "pandas", "duckdb_dormant"):
        p = subprocess.run([sys.executable, "-m", "bench.lists.run", "--data", a.data, "--out", out, "--as-of", a.as_of,
                            "--step", step], capture_output=True, text=True, cwd=REPO, check=True)
        results[step] = json.loads(p.stdout.strip().splitlines()[-1])
        print(step, results[step], flush=True)
    _store_runs(a, out, results)
    if a.store_only:
        print(json.dumps(results, indent=2))
        return
    dormant = sum(1 for _ in open(Path(out) / "call_list.csv", encoding="utf-8") if ",dormant," in _)
    results["ratios"] = {
        "cold_vs_pandas_dormant": round(results["cold"]["seconds"] / results["pandas"]["seconds"], 2),
        "warm_vs_pandas_dormant": round(results["warm"]["seconds"] / results["pandas"]["seconds"], 2),
        "duckdb_dormant_vs_pandas_dormant": round(results["duckdb_dormant"]["seconds"] / results["pandas"]["seconds"], 2),
        "dormant_listed": dormant,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
