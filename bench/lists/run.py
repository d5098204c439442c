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


def _store_runs(a: argparse.Namespace, out: str, results: dict[str, Any]) -> None:
    """The whole CLI into a fresh store (SQLite, and PostgreSQL with --postgres): the first night inserts
    (cold caches), a same-day rerun (warm: unchanged inputs, mirror skipped), the next night (warm caches,
    every entry's window moves)."""
    stores: list[tuple[str, str]] = [("sqlite", f"sqlite:///{Path(out) / 'bench.db'}")]
    server = None
    if a.postgres:
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
            next_day = date.fromisoformat(a.as_of).toordinal() + 1
            for run, as_of in (("first", a.as_of), ("rerun", a.as_of), ("next_day", date.fromordinal(next_day).isoformat())):
                t = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "dialer", "lists", "build", "--mapping",
                                    str(REPO / "config/mappings/canonical.toml"), "--input", a.data, "--out",
                                    str(lists_out), "--as-of", as_of, "--force"],
                                   capture_output=True, text=True, cwd=REPO, env=env, check=True)
                line = [x for x in p.stdout.splitlines() if x.startswith("time:")][0]
                key = f"store_{kind}_{run}"
                results[key] = {"seconds": round(time.perf_counter() - t, 2), "cli": line,
                                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}
                print(key, results[key], flush=True)
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
