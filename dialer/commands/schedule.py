"""`dialer schedule show|run`: the timed jobs (nightly list build, campaign start/stop, window openings)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.config import ENV_CONFIG


def _config_path(args: argparse.Namespace) -> str:
    """The absolute config path stored with each job, so a job finds the same config wherever it runs."""
    chosen = getattr(args, "config", None) or os.environ.get(ENV_CONFIG)
    if not chosen and Path("config/tsunagu.toml").exists():
        chosen = "config/tsunagu.toml"
    return str(Path(chosen).resolve()) if chosen else ""


def _show(args: argparse.Namespace) -> int:
    from dialer.schedule import describe_jobs, open_store

    cfg = config_from(args)
    sched, changes = open_store(cfg, _config_path(args))
    try:
        rows = describe_jobs(sched)
    finally:
        sched.shutdown(wait=False)
    for r in rows:
        r["registered"] = changes.get(r["id"], "kept")
    if args.json:
        print(json.dumps({"timezone": cfg.schedules.timezone, "jobs": rows}, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"scheduled jobs ({cfg.schedules.timezone})")
    for col in ("job", "next run", "trigger", "misfire grace", "coalesce", "this run"):
        table.add_column(col)
    for r in rows:
        grace = "always run" if r["misfire_grace_s"] is None else f"{r['misfire_grace_s']}s"
        table.add_row(r["id"], r["next_run"] or "paused", r["trigger"], grace, str(r["coalesce"]), r["registered"])
    Console(width=max(Console().width, 160)).print(table)
    return 0


def _run(args: argparse.Namespace) -> int:
    from dialer.schedule import build_scheduler, ensure_jobs, job_specs, reconcile

    cfg = config_from(args)
    duration = args.duration
    path = _config_path(args)
    sched = build_scheduler(cfg)
    sched.start(paused=True)
    changes = ensure_jobs(sched, job_specs(cfg, path))
    print(f"scheduler: {len(changes)} jobs ({', '.join(f'{k} {v}' for k, v in sorted(changes.items()))})", flush=True)
    # settle the campaigns' state now rather than at the next start/stop time
    for cc in cfg.campaigns:
        out: dict[str, Any] = reconcile(cfg, cc.name, datetime.now(UTC), path)
        print(f"  {cc.name}: {'run' if out['should_run'] else 'idle'} ({out['why']})", flush=True)
    stop = {"flag": False}

    def _stop(_sig: int, _frm: Any) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    sched.resume()  # missed runs are settled here: run once (coalesced) within their grace, else recorded
    start = time.monotonic()
    try:
        while not stop["flag"] and (duration is None or time.monotonic() - start < duration):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sched.shutdown(wait=True)
    print("scheduler stopped", flush=True)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "schedule", "scheduled jobs: nightly list build, campaign start/stop, window openings")
    p = g.add_parser("show", help="list the scheduled jobs and their next run (registers configured jobs if missing)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_arg(p)
    p.set_defaults(func=_show)
    r = g.add_parser("run", help="run the scheduler in the foreground (jobs persist in the database)")
    r.add_argument("--for", dest="duration", metavar="DURATION", type=duration_arg, help="stop after this long (e.g. 30s, 8h)")
    add_config_arg(r)
    r.set_defaults(func=_run)
