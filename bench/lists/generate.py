"""Write a synthetic canonical CRM export of any size (shared generator: lists.sample).

    python -m bench.lists.generate --out var/bench/lists/1m --customers 1000000 --extra-orders 3
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from lists.sample import write_sample


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--extra-orders", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", default="2026-11-23")
    a = ap.parse_args()
    t = time.perf_counter()
    counts = write_sample(a.out, a.customers, a.seed, date.fromisoformat(a.as_of), extra_orders=a.extra_orders)
    print(counts, f"{time.perf_counter() - t:.1f}s")


if __name__ == "__main__":
    main()
