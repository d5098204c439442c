"""Timed jobs: the nightly list build, campaign start/stop by calendar and calling hours, window openings.

APScheduler 3 with its SQLAlchemyJobStore on the dialer's own database (table `apscheduler_jobs`), so a
restart loses nothing: every job's next run time is stored, and what was missed while the scheduler was down
is settled explicitly when it comes back (APScheduler compares the stored run time with now):

| job | trigger | misfire_grace_time | coalesce | why |
|---|---|---|---|---|
| `list_build` | cron `[schedules] nightly_list_build` ("02:00" = daily), in `[schedules] timezone` | `[schedules] list_build_grace` (6h) | yes | a build missed by hours still runs once (it is idempotent per day); later than the grace it is skipped and recorded rather than run in business hours |
| `campaign_start:NAME`, `campaign_stop:NAME` | cron at the calling-hours start / end, `active_days`, `active_from`..`active_until` | none (always run) | yes | they RECONCILE: decide from the time they actually run whether the campaign should be dialling, so a late or repeated run is harmless |
| `windows:NAME` | hourly during calling hours | 1h | yes | a report of entries whose windows opened; stale ones are dropped |

Missed and failed runs are written to `campaign_events` (kinds `job_missed`, `job_error`) so they are visible.
Job functions take only strings (the config path, a campaign name): they are stored by reference and
re-read the config and database at run time.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from dialer.config import CampaignConfig, Config, ConfigError, load_config, parse_duration
from dialer.domain.calling_hours import WEEKDAYS, parse_hhmm
from dialer.domain.policy import CampaignPolicy
from dialer.domain.vocabulary import CampaignState
from dialer.store import campaigns as campaigns_store
from dialer.store import entries as entries_store
from dialer.store.db import get_engine, init_db, resolve_url
from dialer.store.jobs import job_store

log = logging.getLogger("dialer.schedule")

MANAGED = ("list_build", "campaign_start:", "campaign_stop:", "windows:", "recordings_purge")
RUNNER_STALE_S = 10.0


@dataclass
class JobSpec:
    id: str
    func: str  # "module:function", stored by reference
    trigger: BaseTrigger
    args: list[str]
    name: str
    misfire_grace_time: int | None
    coalesce: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- what should be scheduled
def job_specs(cfg: Config, config_path: str) -> list[JobSpec]:
    tz = ZoneInfo(cfg.schedules.timezone)
    try:
        nightly = CronTrigger.from_crontab(cfg.schedules.nightly_cron(), timezone=tz)
    except ValueError as exc:
        raise ConfigError(f"{cfg.source}: [schedules].nightly_list_build: {exc}") from None
    specs = [JobSpec("list_build", "dialer.schedule:run_list_build", nightly, [config_path],
                     "nightly list build", int(parse_duration(cfg.schedules.list_build_grace)))]
    if cfg.recordings.keep_days > 0:  # (issue 29) the retention policy, enforced daily (a missed day runs late)
        specs.append(JobSpec("recordings_purge", "dialer.schedule:purge_recordings",
                             CronTrigger(hour=3, minute=30, timezone=tz), [config_path],
                             f"delete recordings older than {cfg.recordings.keep_days} days", 20 * 3600))
    for cc in cfg.campaigns:
        start, end = parse_hhmm(cc.calling_hours[0]), parse_hhmm(cc.calling_hours[1])
        common: dict[str, Any] = {"day_of_week": cc.active_days, "timezone": tz,
                                  "start_date": cc.active_from, "end_date": _end_date(cc)}
        try:
            t_start: BaseTrigger = CronTrigger(hour=start.hour, minute=start.minute, **common)
            t_stop: BaseTrigger = CronTrigger(hour=end.hour, minute=end.minute, **common)
            if cc.weekday_hours:  # (issue 27) a short Saturday stops at its own hour, a closed Sunday not at all
                t_start, t_stop = _weekday_triggers(cc, common)
            last_hour = end.hour - 1 if end.minute == 0 else end.hour
            t_win = CronTrigger(hour=f"{start.hour}-{max(start.hour, last_hour)}", minute=0, **common)
        except ValueError as exc:
            raise ConfigError(f"{cfg.source}: campaign {cc.name!r}: active_days {cc.active_days!r}: {exc}") from None
        specs += [
            JobSpec(f"campaign_start:{cc.name}", "dialer.schedule:reconcile_campaign", t_start,
                    [config_path, cc.name], f"start {cc.name} ({cc.calling_hours[0]})", None),
            JobSpec(f"campaign_stop:{cc.name}", "dialer.schedule:reconcile_campaign", t_stop,
                    [config_path, cc.name], f"stop {cc.name} ({cc.calling_hours[1]})", None),
            JobSpec(f"windows:{cc.name}", "dialer.schedule:window_openings", t_win, [config_path, cc.name],
                    f"window openings for {cc.name}", 3600),
        ]
    return specs


def _weekday_triggers(cc: CampaignConfig, common: dict[str, Any]) -> tuple[BaseTrigger, BaseTrigger]:
    """Start and stop triggers when hours differ by weekday: one cron per distinct window, on the weekdays that
    have it AND are in `active_days` (an OrTrigger of them)."""
    from apscheduler.triggers.combining import OrTrigger

    hours = CampaignPolicy.of(cc).hours
    active = set(_active_weekdays(cc.active_days))
    groups: dict[tuple[dtime, dtime], list[str]] = {}
    for i, w in enumerate(hours.weekly):
        if w is not None and WEEKDAYS[i] in active:
            groups.setdefault(w, []).append(WEEKDAYS[i])
    base = {k: v for k, v in common.items() if k != "day_of_week"}
    starts: list[BaseTrigger] = []
    stops: list[BaseTrigger] = []
    for (a, b), days in groups.items():
        starts.append(CronTrigger(day_of_week=",".join(days), hour=a.hour, minute=a.minute, **base))
        stops.append(CronTrigger(day_of_week=",".join(days), hour=b.hour, minute=b.minute, **base))
    if not starts:  # every active weekday closed: triggers that never fire before the end of time
        never = CronTrigger(year="2999", month=1, day=1, **base)
        return never, never
    return (starts[0] if len(starts) == 1 else OrTrigger(starts)), (stops[0] if len(stops) == 1 else OrTrigger(stops))


def _active_weekdays(active_days: str) -> list[str]:
    """The weekday names a cron day_of_week expression selects ("mon-fri" -> mon..fri)."""
    monday = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    probe = CronTrigger(day_of_week=active_days, hour=0, minute=0, timezone=UTC)
    return [WEEKDAYS[k] for k in range(7)
            if probe.get_next_fire_time(None, monday + timedelta(days=k)) == monday + timedelta(days=k)]


def _end_date(cc: CampaignConfig) -> datetime | None:
    if cc.active_until is None:
        return None
    return datetime.combine(cc.active_until, datetime.max.time())


# ---------------------------------------------------------------------- the scheduler and its store
class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    """APScheduler's loop runs one last `_process_jobs` after shutdown, with the executors gone: that pass
    would log submit errors and could consume a misfire (advance a missed job's next run time) on the way
    out -- e.g. when `schedule show` closes its paused scheduler. A stopped scheduler processes nothing."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


def build_scheduler(cfg: Config) -> BackgroundScheduler:
    url = resolve_url(cfg.database.url)
    init_db(url)
    store = job_store(url)
    sched = _Scheduler(jobstores={"default": store}, executors={"default": ThreadPoolExecutor(2)},
                                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
                                timezone=ZoneInfo(cfg.schedules.timezone))

    def on_event(ev: JobExecutionEvent) -> None:
        kind = "job_missed" if ev.code == EVENT_JOB_MISSED else "job_error"
        msg = (f"{ev.job_id}: run due {ev.scheduled_run_time.isoformat()} was missed beyond its misfire grace"
               if kind == "job_missed" else f"{ev.job_id}: {ev.exception!r}")
        _event(cfg, None, kind, msg, "warning")

    sched.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    return sched


def ensure_jobs(sched: BaseScheduler, specs: list[JobSpec]) -> dict[str, str]:
    """Add missing jobs, update changed ones, drop ones no longer configured; keep run times otherwise.

    Re-adding with replace_existing would recompute next_run_time from now and silently forget a misfire,
    so an unchanged job is left exactly as stored.
    """
    out: dict[str, str] = {}
    wanted = {s.id for s in specs}
    for job in sched.get_jobs():
        if job.id.startswith(MANAGED) and job.id not in wanted:
            sched.remove_job(job.id)
            out[job.id] = "removed"
    for s in specs:
        job = sched.get_job(s.id)
        opts = {"args": s.args, "name": s.name, "misfire_grace_time": s.misfire_grace_time,
                "coalesce": s.coalesce, "max_instances": 1}
        if job is None:
            sched.add_job(s.func, s.trigger, id=s.id, **opts)
            out[s.id] = "added"
            continue
        changed = []
        if job.func_ref != s.func or list(job.args) != s.args or job.name != s.name \
                or job.misfire_grace_time != s.misfire_grace_time or job.coalesce != s.coalesce:
            sched.modify_job(s.id, func=s.func, **opts)
            changed.append("options")
        if repr(job.trigger) != repr(s.trigger):
            sched.reschedule_job(s.id, trigger=s.trigger)
            changed.append("trigger")
        out[s.id] = "updated" if changed else "kept"
    return out


def open_store(cfg: Config, config_path: str) -> tuple[BackgroundScheduler, dict[str, str]]:
    """A scheduler started PAUSED (nothing runs) with the configured jobs registered: for `schedule show`."""
    sched = build_scheduler(cfg)
    sched.start(paused=True)
    changes = ensure_jobs(sched, job_specs(cfg, config_path))
    return sched, changes


def describe_jobs(sched: BaseScheduler) -> list[dict[str, Any]]:
    rows = []
    for job in sorted(sched.get_jobs(), key=lambda j: (j.next_run_time is None, j.next_run_time, j.id)):
        rows.append({"id": job.id, "name": job.name, "trigger": str(job.trigger),
                     "next_run": job.next_run_time.isoformat() if job.next_run_time else None,
                     "misfire_grace_s": job.misfire_grace_time, "coalesce": job.coalesce})
    return rows


# ---------------------------------------------------------------------- decisions (pure, injected time)
def should_run(cc: CampaignConfig, at: datetime, tz_name: str) -> tuple[bool, str]:
    """Should the campaign be dialling at AT (campaign calendar + calling hours in the schedule's zone)?"""
    tz = ZoneInfo(tz_name)
    local = at.astimezone(tz)
    day = local.date()
    if cc.active_from is not None and day < cc.active_from:
        return False, f"before the campaign's first day {cc.active_from.isoformat()}"
    if cc.active_until is not None and day > cc.active_until:
        return False, f"after the campaign's last day {cc.active_until.isoformat()}"
    midnight = datetime.combine(day, datetime.min.time(), tz)
    probe = CronTrigger(day_of_week=cc.active_days, hour=0, minute=0, timezone=tz)
    if probe.get_next_fire_time(None, midnight) != midnight:
        return False, f"{local.strftime('%a')} is not one of the campaign's days ({cc.active_days})"
    hours = CampaignPolicy.of(cc).hours  # the whole calendar: holidays, closure days, hours per weekday
    closed = hours.day_closed(day)
    if closed:
        return False, closed
    if not hours.open_at_local(local):
        return False, f"outside calling hours ({hours.window_label(day)} {tz_name})"
    return True, "inside calling hours on an active day"


def reconcile(cfg: Config, name: str, at: datetime, config_path: str = "") -> dict[str, Any]:
    """Bring a campaign in line with its calendar at AT: pause or resume a live runner, maybe start one."""
    cc = cfg.campaign(name)
    run, why = should_run(cc, at, cfg.schedules.timezone)
    engine = get_engine(resolve_url(cfg.database.url))
    out: dict[str, Any] = {"campaign": name, "should_run": run, "why": why, "command": "", "launched": False}
    camp_id, state, live = campaigns_store.runner_liveness(engine, name, at, RUNNER_STALE_S)
    # commands only reach a live runner; a stale one would be applied by tomorrow's fresh runner
    if live:
        if run and state == CampaignState.PAUSED:
            out["command"] = "resume"
        elif not run and state == CampaignState.RUNNING:
            out["command"] = "pause"
        if out["command"]:
            campaigns_store.request_command(engine, name, out["command"], requested_by="scheduler", at=at)
    if run and not live and cfg.schedules.launch_runners:
        out["launched"] = _launch_runner(cfg, cc, at, config_path)
    _event(cfg, camp_id, "schedule",
           f"{name}: {'run' if run else 'idle'} ({why})" + (f"; sent {out['command']}" if out["command"] else "")
           + ("; runner launched" if out["launched"] else ""))
    return out


def _launch_runner(cfg: Config, cc: CampaignConfig, at: datetime, config_path: str) -> bool:
    tz = ZoneInfo(cfg.schedules.timezone)
    local = at.astimezone(tz)
    window = CampaignPolicy.of(cc).hours.window(local.date())  # that weekday's own end (a short Saturday)
    end = datetime.combine(local.date(), window[1] if window else parse_hhmm(cc.calling_hours[1]), tz)
    seconds = int((end - local).total_seconds())
    if seconds <= 60:
        return False
    logdir = Path("var/log")
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "dialer", "campaign", "run", cc.name, "--headless", "--for", f"{seconds}s"]
    if config_path:
        cmd += ["--config", config_path]
    with open(logdir / f"campaign-{cc.name}.log", "ab") as fh:
        subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    return True


def count_window_openings(cfg: Config, cc: CampaignConfig, since: datetime, until: datetime) -> dict[str, int]:
    """Entries whose callable window opened, and callbacks that fell due, in (since, until]."""
    engine = get_engine(resolve_url(cfg.database.url))
    return entries_store.count_window_openings(engine, list(cc.segments), since, until)


# ---------------------------------------------------------------------- job entry points (stored by reference)
def _load(config_path: str) -> Config:
    return load_config(config_path or None)


def run_list_build(config_path: str) -> int:
    cfg = _load(config_path)
    s = cfg.schedules
    cmd = [sys.executable, "-m", "dialer", "lists", "build", "--mapping", s.list_mapping, "--input", s.list_input,
           "--out", s.list_out]
    if config_path:
        cmd += ["--config", config_path]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=4 * 3600)
        rc, tail = res.returncode, (res.stderr or res.stdout or "").strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        rc, tail = -1, ["timed out after 4 h"]
    _event(cfg, None, "list_build", f"nightly list build exited {rc}" + (": " + " | ".join(tail) if tail else ""),
           "info" if rc == 0 else "error")
    return rc


def purge_recordings(config_path: str) -> int:
    """(issue 29) `[recordings] keep_days`: delete older recordings, clear their paths, say so in the events."""
    from dialer.service.recordings import purge

    cfg = _load(config_path)
    url = resolve_url(cfg.database.url)
    init_db(url)
    res = purge(get_engine(url), cfg.recordings.keep_days, datetime.now(UTC))
    msg = f"recordings older than {cfg.recordings.keep_days} days: {res.deleted} deleted, {res.missing} already gone"
    if res.failed:
        msg += f", {len(res.failed)} NOT deleted (tried again tomorrow): " + " | ".join(res.failed[:3])
    _event(cfg, None, "recordings_purge", msg, "error" if res.failed else "info")
    return len(res.failed)


def reconcile_campaign(config_path: str, name: str) -> dict[str, Any]:
    cfg = _load(config_path)
    return reconcile(cfg, name, datetime.now(UTC), config_path)


def window_openings(config_path: str, name: str) -> dict[str, int]:
    cfg = _load(config_path)
    cc = cfg.campaign(name)
    now = datetime.now(UTC)
    counts = count_window_openings(cfg, cc, now - timedelta(hours=1), now)
    if any(counts.values()):
        _event(cfg, None, "windows", f"{name}: {counts['opened']} entries' windows opened and "
                                     f"{counts['callbacks_due']} callbacks fell due in the last hour")
    return counts


def _event(cfg: Config, campaign_id: int | None, kind: str, message: str, level: str = "info") -> None:
    try:
        engine = get_engine(resolve_url(cfg.database.url))
        campaigns_store.record_event(engine, campaign_id, kind, message, level)
    except Exception:  # noqa: BLE001 - an event that cannot be written must not kill the scheduler
        log.exception("could not record %s event: %s", kind, message)


__all__ = [
    "JobSpec",
    "build_scheduler",
    "count_window_openings",
    "describe_jobs",
    "ensure_jobs",
    "job_specs",
    "open_store",
    "reconcile",
    "reconcile_campaign",
    "run_list_build",
    "should_run",
    "window_openings",
]
