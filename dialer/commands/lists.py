"""`dialer lists`: build the nightly call lists, write a sample CRM export, fetch from a CRM API.

The store side (mirror, entries, lock, whole-file guard) is `dialer.store.crm`; this module is the command:
arguments, progress on a terminal, one clear line on failure.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from dialer.commands._common import add_config_arg, config_from, group
from dialer.config import Config, ConfigError
from dialer.errors import UserError
from dialer.privacy import mask_text as _mask_phones
from dialer.store.crm import (
    BuildLocked,
    build_lock,
    check_build,
    compliance_seen,
    mirror,
    plan_build,
    record_compliance_seen,
    store_suppressions,
    upsert_entries,
)
from dialer.store.db import init_db, resolve_url
from dialer.store.holdout import held_customers, record_assignments, record_experiment
from dialer.store.sms import record_unpaid
from lists import ListsError, ListSettings, build_lists, load_mapping
from lists.build import SEGMENTS
from lists.compliance import judge
from lists.holdout import HoldoutSettings
from lists.settings import LtvSettings
from lists.unpaid import UnpaidSettings

EXIT_REFUSED = 3  # the build was refused as a whole-file mistake (store untouched); --force applies it
EXIT_LOCKED = 75  # another build holds the lock (EX_TEMPFAIL, as scripts/nightly-list-build)


def settings_from(cfg: Config, csv_encoding: str | None = None) -> ListSettings:
    c = cfg.lists
    return ListSettings(
        region=c.region, dormant_min_days=c.dormant_min_days, dormant_max_days=c.dormant_max_days,
        loyal_min_orders=c.loyal_min_orders, pre_churn_min_hazard=c.pre_churn_min_hazard,
        pre_churn_days_before=tuple(c.pre_churn_days_before), upsell_days_before=c.upsell_days_before,  # type: ignore[arg-type]
        upsell_days_after=c.upsell_days_after, cooling_off_days=c.cooling_off_days,
        cross_sell_lookback_days=c.cross_sell_lookback_days, horizon_days=c.horizon_days,
        cost_per_attempt=c.cost_per_attempt, p_reach=c.p_reach, p_convert=dict(c.p_convert),
        ltv=LtvSettings(formula=c.ltv.formula, years=c.ltv.years, margin=c.ltv.margin,
                        acquisition_cost=c.ltv.acquisition_cost, retention_cost=c.ltv.retention_cost,
                        discount_rate=c.ltv.discount_rate),
        holdout=HoldoutSettings(share=c.holdout.share, seed=c.holdout.seed, period=c.holdout.period,
                                segments=dict(c.holdout.segments), experiment=c.holdout.experiment,
                                start=c.holdout.start, end=c.holdout.end),
        unpaid=UnpaidSettings(enabled=cfg.sms.enabled, max_amount=cfg.sms.max_amount,
                              min_age_days=cfg.sms.min_age_days, max_age_days=cfg.sms.max_age_days),
        block_customer_on_bad_phone=c.block_customer_on_bad_phone,
        csv_encoding=csv_encoding or c.csv_encoding,
    )


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def mask_text(text: str) -> str:
    """Phones and e-mail addresses out of anything printed (errors reach cron mail and scheduler events)."""
    return _EMAIL.sub(lambda m: m.group(0)[0] + "***@" + m.group(0).split("@", 1)[1], _mask_phones(text))


@contextmanager
def _progress(verbose: bool) -> Iterator[Callable[[str], None]]:
    """Phases on a terminal (rich.progress); quiet under cron unless -v asks for log lines on stderr."""
    if sys.stderr.isatty():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("lists: {task.description}"), TimeElapsedColumn(),
                      transient=True) as prog:
            task = prog.add_task("starting", total=None)
            yield lambda m: prog.update(task, description=mask_text(m))
        return
    if verbose:
        yield lambda m: print(f"lists: {mask_text(m)}", file=sys.stderr)
        return
    yield lambda _m: None


def _as_of(text: str | None, tz_name: str = "Asia/Tokyo", now: datetime | None = None) -> date:
    """--as-of, else today in the business time zone (issue 27: a UTC host's date is a day behind Tokyo's
    until 09:00 JST, so the morning's list was dated yesterday)."""
    if not text:
        from dialer.domain.calling_hours import business_today

        return business_today(tz_name, now or datetime.now(UTC))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"--as-of {text!r}: expected a date like 2026-11-23") from None


def _build(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    tz = ZoneInfo(cfg.schedules.timezone)
    as_of = _as_of(args.as_of, cfg.schedules.timezone)
    input_dir = Path(args.input)
    if not input_dir.is_dir():
        raise UserError(f"--input {input_dir}: not a directory")
    out = Path(args.out)
    t0, c0 = time.perf_counter(), time.process_time()
    url = resolve_url(cfg.database.url)
    engine, _ = init_db(url)
    enc = "cp932" if args.excel else None
    wait = cfg.lists.lock_wait_s if args.lock_wait is None else args.lock_wait
    try:
        with build_lock(engine, wait), _progress(args.verbose) as say:
            try:
                mapping = load_mapping(args.mapping)
                say("reading the dialer's blocks")
                sup = store_suppressions(engine, tz)
                cache = Path(args.phone_cache) if args.phone_cache else out / "phone_cache.parquet"
                ls = settings_from(cfg, enc)
                if ls.holdout.enabled:  # controls another measurement still holds: neither listed nor drawn (issue 26)
                    ls = replace(ls, holdout=replace(ls.holdout, held=frozenset(
                        held_customers(engine, as_of, ls.holdout.key_for(as_of)))))
                result = build_lists(mapping, input_dir, out, as_of, ls, sup, phone_cache=cache,
                                     table_cache=cache.parent / "table_cache", memory_limit=args.memory_limit, log=say)
            except ListsError as exc:
                raise UserError(mask_text(str(exc))) from None
            with result:
                t1, c1 = time.perf_counter(), time.process_time()
                say("checking what would change")
                plan = plan_build(engine, result)
                refused = check_build(plan, result, cfg.lists.max_withdraw_share)
                # a compliance column an earlier build had and tonight's export lacks refuses (lists.compliance)
                seen = compliance_seen(engine, mapping.name)
                lost, present, missing = judge(seen, result.summary.get("compliance_columns", []), mapping.path)
                refused = [*lost, *refused]
                s = result.summary
                segs = ", ".join(f"{k} {v}" for k, v in s["entries"].items())
                print(f"lists {as_of}: {s['entries_total']} entries ({segs}); {sum(s['rejected'].values())} rejects, "
                      f"{sum(s['suppressed'].values())} suppressed -> {out}")
                if args.dry_run:
                    print("dry run (store untouched): segment inserted/updated/withdrawn/kept")
                    for seg in SEGMENTS:
                        print(f"  {seg}: {plan.inserted.get(seg, 0)}/{plan.updated.get(seg, 0)}/"
                              f"{plan.withdrawn.get(seg, 0)}/{plan.kept.get(seg, 0)}")
                    for why in refused:
                        print(f"  would be refused: {why}")
                    return 0
                if refused and not args.force:
                    for why in refused:
                        print(f"lists: refused, store left untouched: {why}", file=sys.stderr)
                    print("lists: check the export; `--force` applies the build anyway", file=sys.stderr)
                    return EXIT_REFUSED
                record_compliance_seen(engine, mapping.name, (seen - missing) | present)
                say("mirroring CRM tables")
                mirrored = mirror(engine, result) if not args.no_mirror else {}
                t2, c2 = time.perf_counter(), time.process_time()
                say("writing entries")
                stored = upsert_entries(engine, result, tz, as_of)
                held = record_assignments(engine, result.holdout_rows(), as_of)
                h = cfg.lists.holdout
                if h.experiment and h.start is not None and h.end is not None:  # its controls held until end
                    record_experiment(engine, h.experiment, h.start, h.end)
                record_unpaid(engine, result.unpaid_rows(), as_of)
                t3, c3 = time.perf_counter(), time.process_time()
    except BuildLocked as exc:
        print(f"lists: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    print(f"store: {stored['inserted']} inserted, {stored['updated']} updated, {stored['unchanged']} unchanged, "
          f"{stored['withdrawn']} withdrawn, "
          f"{stored['kept_in_progress']} in progress kept, {stored['kept_final']} finished kept; "
          f"mirrored {sum(mirrored.values())} CRM rows" + (" (forced)" if refused else ""))
    if "holdout" in s:
        h = s["holdout"]
        ctl = sum(v.get("control", 0) for v in h["segments"].values())
        print(f"holdout {h['period']}: {ctl} control entries (suppressed: holdout), {held} assignments recorded")
    # wall and this process's CPU (all threads): on a shared host the two differ, and CPU is the build's own cost
    print(f"time: build {t1 - t0:.1f}s, mirror {t2 - t1:.1f}s, entries {t3 - t2:.1f}s; "
          f"cpu build {c1 - c0:.1f}s, mirror {c2 - c1:.1f}s, entries {c3 - c2:.1f}s")
    if not s["conservation"]["customers_ok"] or not s["conservation"]["rows_ok"]:
        print("lists: conservation check FAILED, see summary.json", file=sys.stderr)
        return 1
    return 0


def _sample(args: argparse.Namespace) -> int:
    from lists.sample import write_sample

    tz_name = "Asia/Tokyo"
    if not args.as_of:
        try:
            tz_name = config_from(args).schedules.timezone
        except ConfigError:
            pass  # a sample needs no config; the default business zone dates it
    counts = write_sample(args.out, customers=args.customers, seed=args.seed, as_of=_as_of(args.as_of, tz_name))
    print(f"sample CRM export in {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from lists.fetch import FetchError, fetch_source

    try:
        mapping = load_mapping(args.source)
        counts = fetch_source(mapping, Path(args.out), restart=args.restart)
    except (ListsError, FetchError) as exc:
        raise UserError(str(exc)) from None
    print(f"fetched into {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = group(sub, "lists", "call lists: build from CRM exports, write a sample export, fetch from a CRM API")
    p = g.add_parser("build", help="build dormant/pre_churn/upsell/cross_sell lists into --out and the store")
    add_config_arg(p)
    p.add_argument("--mapping", required=True, metavar="PATH", help="mapping file (config/mappings/*.toml)")
    p.add_argument("--input", required=True, metavar="DIR", help="directory holding the export files")
    p.add_argument("--out", required=True, metavar="DIR", help="where call_list.csv, rejects.csv, summary.json go")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="the build's 'today' (default: today)")
    p.add_argument("--phone-cache", metavar="PATH", help="parsed-phone cache (default: OUT/phone_cache.parquet)")
    p.add_argument("--no-mirror", action="store_true", help="do not copy CRM tables into the store")
    p.add_argument("--memory-limit", default="1500MB", metavar="SIZE",
                   help="DuckDB memory limit; beyond it the build spills to disk (default 1500MB)")
    p.add_argument("--dry-run", action="store_true",
                   help="build the files and show inserted/updated/withdrawn per segment; write nothing to the store")
    p.add_argument("--force", action="store_true",
                   help="apply a build refused as a whole-file mistake (too many withdrawals, an emptied table)")
    p.add_argument("--excel", action="store_true",
                   help="write call_list.csv in CP932 for Japanese Excel ([lists] csv_encoding sets the default)")
    p.add_argument("--lock-wait", type=float, metavar="SECONDS",
                   help="wait this long for another build's lock, then exit 75 (default [lists] lock_wait_s, 60)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each phase to stderr (a terminal shows progress)")
    p.set_defaults(func=_build)
    p = g.add_parser("sample", help="write a realistic sample CRM export in the canonical format")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-of", metavar="YYYY-MM-DD")
    p.set_defaults(func=_sample)
    p = g.add_parser("fetch", help="fetch a paged JSON CRM API into canonical CSV files (resumable)")
    p.add_argument("--source", required=True, metavar="PATH", help="mapping file with an [http] section")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--restart", action="store_true", help="ignore saved cursors and fetch from the start")
    p.set_defaults(func=_fetch)
