"""The monitor's reads (issue 28): what one frame of the campaign monitor shows, gathered from the store here so
the views (terminal monitor, browser wallboard) never touch the store or its rows.

Figures come from `dialer.reports` (recounted from attempts); the runner's `campaign_status` row adds only what
exists nowhere else (dial level, lines dialling/ringing/waiting, the mode in effect, heartbeat). Reading is
allowed to whoever opened the monitor (the screens check the supervisor's session before they call here);
commands go through `dialer.service.floor`, behind their permission check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dialer.config import Config
from dialer.control import runner_live
from dialer.domain.agent_time import agent_time, team_time
from dialer.domain.vocabulary import AgentState, CampaignState
from dialer.reports import (
    abandon_trend,
    campaign_report,
    campaign_team,
    count_abandons,
    open_until,
    team_spans,
)
from dialer.store import Engine
from dialer.store import campaigns as campaigns_store
from dialer.store import listen as listen_store
from dialer.store.dashboard import attempts_since, hopper_level, live_runner, state_stretches
from dialer.store.listen import LiveCall
from dialer.store.monitor import monitor_rows
from dialer.store.nodes import NodeRow, list_nodes
from dialer.store.rows import AttemptRow, StretchRow

BUCKET = timedelta(minutes=15)


def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class CampaignView:
    """Everything one frame shows about a campaign (plain data: render tests assert on it too)."""

    name: str
    report: dict[str, Any]
    status: dict[str, Any] | None
    agents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    commands: list[dict[str, Any]]
    trend: list[float | None]
    last_hour: dict[str, float]
    live: bool = False
    hopper: dict[str, int] = field(default_factory=dict)
    quarters: list[dict[str, Any]] = field(default_factory=list)
    eta_h: float | None = None


def quarter_hours(attempts: Sequence[AttemptRow], stretches: Sequence[StretchRow], campaign_id: int | None, now: datetime, *,
                  n: int, regime: str, fp_share: float, until: datetime | None = None) -> list[dict[str, Any]]:
    """Abandon rate, connects and occupancy per quarter hour (aligned to :00/:15/:30/:45), oldest first.

    Occupancy is the report's own count (dialer.domain.agent_time) over the campaign's agents' stretches; an
    open stretch counts up to UNTIL (now while a runner is live, else its last heartbeat)."""
    top = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    spans = team_spans(stretches, campaign_id, campaign_team(stretches, attempts, campaign_id))
    out = []
    for i in range(n - 1, -1, -1):
        lo = top - i * BUCKET
        hi = min(now, lo + BUCKET)
        c = count_abandons(attempts, lo, hi)
        connects = sum(1 for a in attempts if a.agent_connected_at is not None
                       and lo <= (aware(a.agent_connected_at) or now) < hi)
        t = team_time(agent_time(spans, lo, hi, until or now))
        out.append({"at": lo, "attempts": sum(1 for a in attempts if lo <= (aware(a.dialed_at) or now) < hi),
                    "abandon": c.rate(regime, fp_share), "connects": connects, "occupancy": t.occupancy})
    return out


def floor_state(rows: Any, now: datetime) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The live part of a campaign's view (runner status, agents and their states, whether a runner is live) from
    the monitor's rows: cheap, so a live page can read it on every push while the report figures are reused."""
    camp, st = rows.campaign, rows.status
    status = None
    live = False
    if st is not None:
        hb = aware(st.heartbeat_at)
        live = runner_live(st.runner, hb, camp.state, now)
        status = {"mode": st.mode, "dial_level": st.dial_level, "lines_dialing": st.lines_dialing,
                  "lines_ringing": st.lines_ringing, "waiting": st.waiting_for_agent, "runner": st.runner,
                  "heartbeat_at": hb, "heartbeat_age_s": (now - hb).total_seconds() if hb else None,
                  "stats": dict(st.stats or {})}
    agents = []
    for a, on_call_with in rows.agents:
        if a.campaign_id not in (None, camp.id):
            continue
        if a.state == AgentState.LOGGED_OUT and a.campaign_id is None:
            continue
        who = on_call_with if live else ""
        since = aware(a.state_since)
        # without a live runner nobody is on a call or waiting for one: show who is logged out, else idle
        state = a.state if live else (AgentState.LOGGED_OUT if a.state == AgentState.LOGGED_OUT else "idle")
        agents.append({"login": a.login, "name": a.name, "state": state, "since": since,
                       "for_s": (now - since).total_seconds() if since and live and state != AgentState.LOGGED_OUT else None,
                       "customer": who,
                       "pause_reason": a.pause_reason if live else "", "pending": a.pending_state if live else ""})
    return status, agents, live


def live_floor(engine: Engine, name: str, now: datetime) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """`floor_state` read fresh from the store for campaign NAME."""
    return floor_state(monitor_rows(engine, name), now)


def gather(engine: Engine, name: str, cfg: Config, now: datetime) -> CampaignView:
    tz = cfg.schedules.timezone
    rep = campaign_report(engine, name, now=now, machine_fp_share=cfg.reports.machine_false_positive_share, tz=tz,
                          now_window=cfg.reports.now_window)
    rows = monitor_rows(engine, name)
    camp, st = rows.campaign, rows.status
    status, agents, live = floor_state(rows, now)
    events = [{"at": e.at, "level": e.level, "kind": e.kind, "message": e.message} for e in rows.events]
    commands = [{"id": c.id, "command": c.command, "argument": c.argument, "created_at": c.created_at,
                 "applied_at": c.applied_at, "result": c.result, "by": c.requested_by} for c in rows.commands]
    camp_id = camp.id
    quarters_n = 8
    since = now - max(timedelta(hours=1, minutes=5), quarters_n * BUCKET)
    attempts = attempts_since(engine, int(camp_id or 0), since)
    hour_ago = now - timedelta(hours=1)
    dials_h = sum(1 for a in attempts if (aware(a.dialed_at) or now) >= hour_ago)
    connects_h = sum(1 for a in attempts if a.agent_connected_at is not None
                     and (aware(a.agent_connected_at) or now) >= hour_ago)
    fp = cfg.reports.machine_false_positive_share
    trend = abandon_trend(attempts, now, regime=rep["abandon_regime"], machine_fp_share=fp)
    quarters = quarter_hours(attempts, state_stretches(engine, now - quarters_n * BUCKET), camp_id, now,
                             n=quarters_n, regime=rep["abandon_regime"], fp_share=fp,
                             until=open_until(st, camp.state, now))
    segments = list(rep["penetration"])
    remaining = sum(p["remaining"] for p in rep["penetration"].values())
    lh = rep.get("last_hour") or {}
    window_h = float(lh.get("window_s") or 3600.0) / 3600.0  # (issue 27) the real window, under an hour at first
    eta = remaining / (dials_h / window_h) if dials_h and live and window_h > 0 else None
    return CampaignView(name, rep, status, agents, events, commands, trend,
                        {"connects": float(connects_h), "dials": float(dials_h)}, live=live,
                        hopper=hopper_level(engine, segments, now), quarters=quarters, eta_h=eta)


def summaries(engine: Engine, only: str | None, now: datetime) -> list[dict[str, Any]]:
    """One line per campaign (or just ONLY): its name, state ("no_runner" when nobody is live), mode and the mode
    in effect."""
    camps = campaigns_store.list_campaigns(engine)
    statuses = campaigns_store.statuses(engine)
    if only:
        camps = [c for c in camps if c.name == only]
    out = []
    for c in camps:
        st = statuses.get(c.id) if c.id is not None else None
        live = st is not None and runner_live(st.runner, st.heartbeat_at, c.state, now)
        out.append({"name": c.name, "state": c.state if live or c.state == CampaignState.STOPPED else "no_runner",
                    "mode": c.mode, "effective": st.mode if st is not None and live else ""})
    return out


def nodes(engine: Engine) -> list[NodeRow]:
    """The dialer nodes (issue 18: multi-node on PostgreSQL)."""
    return list_nodes(engine)


def runner_alive(engine: Engine, name: str, now: datetime) -> tuple[bool, datetime | None]:
    """Whether campaign NAME has a live runner, and its last heartbeat."""
    return live_runner(engine, name, now)


def connected_calls(engine: Engine) -> list[LiveCall]:
    """(issue 29) The calls in conversation now, for a supervisor to join (the caller checks the permission)."""
    return listen_store.connected_calls(engine)


def campaign_names(engine: Engine) -> list[str]:
    """Every campaign's name (the wallboard's list)."""
    return [c.name for c in campaigns_store.list_campaigns(engine)]


__all__ = ["BUCKET", "CampaignView", "NodeRow", "campaign_names", "connected_calls", "floor_state", "gather", "live_floor", "nodes",
           "quarter_hours", "runner_alive", "summaries"]
