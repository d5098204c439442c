"""Campaigns: the row (config's copy), the runner's live status, manager commands, and campaign events.

Config is the source of truth: every start rewrites the row from the campaign's policy, and each value that
differs from what the row held is recorded as a `config_changed` event (so an edited `abandon_target` is
visible in the event log and is the value the next run uses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.policy import CampaignPolicy
from dialer.domain.vocabulary import CampaignState
from dialer.errors import UserError
from dialer.store.models import Campaign, CampaignEvent, CampaignStatus, ControlCommand


class RunnerBusy(RuntimeError):
    """Another live runner holds the campaign."""


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _row_values(p: CampaignPolicy, retry_rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": p.mode.value, "segments": list(p.segments), "abandon_target": p.abandon_target,
        "abandon_limit": p.abandon_limit, "abandon_window": p.abandon_window.value,
        "abandon_regime": p.abandon_regime.value, "connect_limit_s": p.connect_limit_s,
        "calling_hours_start": f"{p.hours.start:%H:%M}", "calling_hours_end": f"{p.hours.end:%H:%M}",
        "holidays": p.holidays, "trunk": p.trunk, "max_attempts": p.max_attempts,
        "max_attempts_per_phone": p.max_attempts_per_phone, "ring_timeout_s": p.ring_timeout_s,
        "max_lines_per_agent": p.max_lines_per_agent, "power_ratio": p.power_ratio, "info_message": p.info_message,
        "record_calls": p.record_calls, "retry_rules": dict(retry_rules),
    }


def sync_campaign(engine: Engine, policy: CampaignPolicy, retry_rules: dict[str, Any] | None = None,
                  at: datetime | None = None) -> tuple[int, list[tuple[str, Any, Any]]]:
    """Upsert the campaign row from config; returns its id and the (field, stored, configured) that changed.

    Each change is written as a `config_changed` event in the same transaction. The live state is kept.
    """
    at = at or datetime.now(UTC)
    values = _row_values(policy, retry_rules or {})
    changes: list[tuple[str, Any, Any]] = []
    with Session(engine, expire_on_commit=False) as s:
        row = s.exec(select(Campaign).where(Campaign.name == policy.name)).first()
        if row is None:
            row = Campaign(name=policy.name)
        else:
            for key, new in values.items():
                old = getattr(row, key)
                if old != new:
                    changes.append((key, old, new))
        for key, new in values.items():
            setattr(row, key, new)
        row.updated_at = at
        s.add(row)
        s.flush()
        assert row.id is not None
        for key, old, new in changes:
            s.add(CampaignEvent(campaign_id=row.id, at=at, kind="config_changed",
                                message=f"{key}: {old!r} -> {new!r} (from config)"))
        s.commit()
        return row.id, changes


def load_campaign(engine: Engine, name: str) -> Campaign:
    """The campaign row, or a UserError naming the campaigns the store knows."""
    with Session(engine, expire_on_commit=False) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
        if camp is None:
            known = ", ".join(s.exec(select(Campaign.name)).all()) or "none"
            raise UserError(f"no campaign named {name!r} in the store (known: {known})")
        return camp


def list_campaigns(engine: Engine, name: str | None = None) -> list[Campaign]:
    with Session(engine, expire_on_commit=False) as s:
        q = select(Campaign).order_by(col(Campaign.name))
        if name:
            q = q.where(Campaign.name == name)
        return list(s.exec(q).all())


def campaign_names(engine: Engine) -> dict[int, str]:
    with Session(engine) as s:
        return {c.id: c.name for c in s.exec(select(Campaign)).all() if c.id is not None}


def stored_target(engine: Engine, campaign_id: int) -> float | None:
    with Session(engine) as s:
        row = s.get(Campaign, campaign_id)
        return row.abandon_target if row else None


# ------------------------------------------------------------------------------ events
def record_event(engine: Engine, campaign_id: int | None, kind: str, message: str, level: str = "info",
                 at: datetime | None = None) -> None:
    with Session(engine, expire_on_commit=False) as s:
        ev = CampaignEvent(campaign_id=campaign_id, kind=kind, message=message, level=level)
        if at is not None:
            ev.at = at
        s.add(ev)
        s.commit()


def recent_events(engine: Engine, campaign_id: int | None, limit: int = 3, kind: str | None = None
                  ) -> list[CampaignEvent]:
    with Session(engine, expire_on_commit=False) as s:
        q = select(CampaignEvent).where(CampaignEvent.campaign_id == campaign_id)
        if kind:
            q = q.where(CampaignEvent.kind == kind)
        return list(s.exec(q.order_by(col(CampaignEvent.id).desc()).limit(limit)).all())


# ------------------------------------------------------------------------------ live status
def claim(engine: Engine, campaign_id: int, runner_id: str, mode: str, name: str, *, stale_s: float,
          alive: Callable[[str], bool]) -> str:
    """Refuse to run beside another live runner; take over from a dead one (stale heartbeat). Returns the id of
    the runner taken over from ("" if none): what it still held (leases) is ours to release."""
    now = datetime.now(UTC)
    prior = ""
    with Session(engine, expire_on_commit=False) as s:
        st = s.get(CampaignStatus, campaign_id)
        if st is not None and st.runner and st.runner != runner_id:
            age = (now - _utc(st.heartbeat_at)).total_seconds()
            if age < stale_s and alive(st.runner):
                raise RunnerBusy(f"campaign {name!r} is already run by {st.runner} (heartbeat {age:.1f}s ago)")
            prior = st.runner
        if st is None:
            st = CampaignStatus(campaign_id=campaign_id)
        st.runner, st.heartbeat_at, st.mode = runner_id, now, mode
        s.add(st)
        camp = s.get(Campaign, campaign_id)
        if camp is not None:
            camp.state = CampaignState.RUNNING.value
            s.add(camp)
        s.commit()
    return prior


def saved_stats(engine: Engine, campaign_id: int) -> dict[str, Any]:
    with Session(engine, expire_on_commit=False) as s:
        st = s.get(CampaignStatus, campaign_id)
        return dict(st.stats or {}) if st is not None else {}


@dataclass
class StatusUpdate:
    """What the runner publishes every second for monitors on other hosts."""

    runner: str
    heartbeat_at: datetime
    mode: str
    dial_level: float
    lines_dialing: int
    lines_ringing: int
    waiting_for_agent: int
    hit_rate: float
    aht_s: float
    stats: dict[str, Any]
    state: str


def publish_status(engine: Engine, campaign_id: int, u: StatusUpdate) -> None:
    with Session(engine, expire_on_commit=False) as s:
        st = s.get(CampaignStatus, campaign_id) or CampaignStatus(campaign_id=campaign_id)
        st.runner, st.heartbeat_at, st.mode = u.runner, u.heartbeat_at, u.mode
        st.dial_level, st.lines_dialing, st.lines_ringing = u.dial_level, u.lines_dialing, u.lines_ringing
        st.waiting_for_agent, st.hit_rate, st.aht_s, st.stats = u.waiting_for_agent, u.hit_rate, u.aht_s, u.stats
        s.add(st)
        camp = s.get(Campaign, campaign_id)
        if camp is not None and camp.state != u.state:
            camp.state = u.state
            s.add(camp)
        s.commit()


def mark_stopped(engine: Engine, campaign_id: int) -> None:
    """The runner is gone: the campaign is stopped and holds no runner."""
    with Session(engine, expire_on_commit=False) as s:
        camp = s.get(Campaign, campaign_id)
        if camp is not None:
            camp.state = CampaignState.STOPPED.value
            s.add(camp)
        st = s.get(CampaignStatus, campaign_id)
        if st is not None:
            st.runner = ""
            s.add(st)
        s.commit()


def statuses(engine: Engine) -> dict[int, CampaignStatus]:
    with Session(engine, expire_on_commit=False) as s:
        return {st.campaign_id: st for st in s.exec(select(CampaignStatus)).all()}


def status_of(engine: Engine, campaign_id: int) -> CampaignStatus | None:
    with Session(engine, expire_on_commit=False) as s:
        return s.get(CampaignStatus, campaign_id)


# ------------------------------------------------------------------------------ manager commands
def request_command(engine: Engine, campaign: str, command: str, argument: str = "", requested_by: str = "",
                    at: datetime | None = None) -> int:
    with Session(engine) as s:
        row = ControlCommand(campaign=campaign, command=command, argument=argument, requested_by=requested_by)
        if at is not None:
            row.created_at = at
        s.add(row)
        s.commit()
        s.refresh(row)
        assert row.id is not None
        return row.id


def last_applied_command_id(engine: Engine, campaign: str) -> int:
    with Session(engine) as s:
        last = s.exec(select(ControlCommand.id).where(ControlCommand.campaign == campaign,
                                                      col(ControlCommand.applied_at).is_not(None))
                      .order_by(col(ControlCommand.id).desc())).first()
        return int(last or 0)


def apply_commands(engine: Engine, campaign: str, campaign_id: int,
                   handle: Callable[[str, str, datetime, datetime], str],
                   current: Callable[[], tuple[str, str, float]]) -> list[ControlCommand]:
    """Apply every unapplied command in order: HANDLE(command, argument, created_at, now) -> result; the row
    then takes CURRENT() = (state, mode, abandon target). Returns the commands applied (or expired)."""
    with Session(engine, expire_on_commit=False) as s:
        rows = list(s.exec(select(ControlCommand).where(ControlCommand.campaign == campaign,
                                                        col(ControlCommand.applied_at).is_(None))
                           .order_by(col(ControlCommand.id))).all())
        for cmd in rows:
            now = datetime.now(UTC)
            cmd.result = handle(cmd.command, cmd.argument, _utc(cmd.created_at), now)
            cmd.applied_at = now
            s.add(cmd)
            camp = s.get(Campaign, campaign_id)
            if camp is not None:
                camp.state, camp.mode, camp.abandon_target = current()
                s.add(camp)
        s.commit()
    return rows


def recent_commands(engine: Engine, campaign: str, limit: int = 4) -> list[ControlCommand]:
    with Session(engine, expire_on_commit=False) as s:
        return list(s.exec(select(ControlCommand).where(ControlCommand.campaign == campaign)
                           .order_by(col(ControlCommand.id).desc()).limit(limit)).all())


def runner_liveness(engine: Engine, name: str, at: datetime, stale_s: float) -> tuple[int | None, str, bool]:
    """(campaign id, state, whether a runner's heartbeat is fresh at AT) for the scheduler."""
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
        if camp is None or camp.id is None:
            return None, "", False
        st = s.get(CampaignStatus, camp.id)
        live = bool(st and st.runner and (at - _utc(st.heartbeat_at)).total_seconds() < stale_s)
        return camp.id, camp.state, live


__all__ = [
    "RunnerBusy",
    "StatusUpdate",
    "apply_commands",
    "campaign_names",
    "claim",
    "last_applied_command_id",
    "list_campaigns",
    "load_campaign",
    "mark_stopped",
    "publish_status",
    "recent_commands",
    "recent_events",
    "record_event",
    "request_command",
    "runner_liveness",
    "saved_stats",
    "status_of",
    "statuses",
    "stored_target",
    "sync_campaign",
]
