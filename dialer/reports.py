"""Campaign and compliance figures, computed from the attempts and dispositions themselves.

`campaign_status` is the runner's live estimate; reports recount from the ground truth (attempts,
dispositions, the agent state log) so a figure shown to a manager or a regulator never depends on a
process that may have crashed. Plain functions returning plain dicts: the CLI prints them, the monitor
renders them, the demo prints `campaign_report` at the end.

Definitions (also in the README):
- answered = attempts whose outcome is `answered` (a person; abandoned ones included).
- abandon rate, US = abandoned / answered. UK adds `machine_fp_share` x machine verdicts to both the
  abandoned and the answered counts (machines that were really people hung up on).
- hit rate = answered / finished dials (attempts no longer dialling or ringing).
- AHT = (talk + wrap) / calls handled by an agent.
- talk, wrap, logged-in time and occupancy (占有率) = (talk + wrap) / logged in: `dialer.domain.agent_time`, over
  the agent state log (on_call, wrap_up, any state but logged_out) of the agents who worked the campaign; a
  stretch left open counts up to now while a runner is live, else up to its last heartbeat. The report, the
  charts, the CSV and the monitor all count it there.
- connects / sales per hour only over at least an hour of activity (else None: the counts are shown).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dialer.amd.detector import AmdVerdict
from dialer.config import Config
from dialer.control import runner_live
from dialer.domain.agent_time import AgentTime, Span, agent_time, team_time
from dialer.domain.calling_hours import CallingHours, contact_zones
from dialer.domain.dtmf import REFUSAL_REASONS
from dialer.domain.durations import parse_duration
from dialer.domain.entry import aware
from dialer.domain.vocabulary import (
    IN_FLIGHT_ATTEMPT,
    LIVE_ATTEMPT,
    SALES,
    AttemptState,
    BlockKind,
    CallOutcome,
    CampaignState,
    Disposition,
    Regime,
)
from dialer.privacy import mask_phone
from dialer.settings import day_start_s
from dialer.store import Engine
from dialer.store.lift import holdout_status
from dialer.store.nodes import list_nodes
from dialer.store.reports import campaign_rows, compliance_rows
from dialer.store.rows import AttemptRow, DispositionRow, StatusRow, StretchRow
from pacing.abandon import WINDOWS, AbandonBook

NODE_TTL_S = 5.0  # dialer.node.membership.TTL_S (a node older than this is dead)

SALE_OUTCOMES = tuple(sorted(SALES))
IN_FLIGHT = tuple(IN_FLIGHT_ATTEMPT)
LIVE_STATES = tuple(LIVE_ATTEMPT)


def _aware(dt: datetime | None) -> datetime | None:
    """The store hands back aware UTC; a naive value (raw SQL, old rows) is taken to be UTC too."""
    if dt is None:
        return None
    return aware(dt)


def window_start(window: str, now: datetime, tz: str = "Asia/Tokyo") -> datetime | None:
    """Start of an abandon window ending now; None means "since the campaign began".

    The legal windows are the pacer's own (`pacing.abandon.AbandonBook.window_start`), with the calendar
    day anchored on local midnight in TZ exactly as the runner anchors the pacer (dialer.settings): the
    auditor and the pacer count the same day.
    """
    if window in WINDOWS:
        start = AbandonBook.window_start(now.timestamp(), window, day_start_s(tz, now))
        return None if start is None else datetime.fromtimestamp(start, UTC)
    return now - timedelta(seconds=parse_duration(window))


@dataclass
class AbandonCount:
    answered: int = 0
    abandoned: int = 0
    machine: int = 0

    def rate(self, regime: str = "us", machine_fp_share: float = 0.0) -> float | None:
        """The abandon rate under REGIME, by the pacer's own formula (`pacing.abandon.AbandonBook.counts`);
        None when nobody answered."""
        book = AbandonBook(regime=regime, amd_false_positive_rate=machine_fp_share)
        book.times, book.cum = [0.0], [(float(self.answered), float(self.abandoned), float(self.machine))]
        abandoned, answered = book.counts(0.0, "campaign")
        if answered <= 0:
            return None
        return abandoned / answered

    def as_dict(self, machine_fp_share: float = 0.0) -> dict[str, Any]:
        return {"answered": self.answered, "abandoned": self.abandoned, "machine": self.machine,
                "us": self.rate("us"), "uk": self.rate("uk", machine_fp_share)}


def count_abandons(attempts: Iterable[AttemptRow], since: datetime | None, until: datetime | None = None) -> AbandonCount:
    """Answers and machines are placed in time by answered_at (else dialed_at) so windows slide smoothly."""
    c = AbandonCount()
    for a in attempts:
        at = _aware(a.answered_at) or _aware(a.dialed_at)
        if at is None or (since is not None and at < since) or (until is not None and at >= until):
            continue
        if a.outcome == CallOutcome.ANSWERED:
            c.answered += 1
            c.abandoned += int(bool(a.abandoned))
        elif a.outcome == CallOutcome.MACHINE or a.machine:
            c.machine += 1
    return c


def latest_dispositions(rows: Iterable[DispositionRow]) -> list[DispositionRow]:
    """One disposition per attempt (the last one wins: a console correction overrides a DTMF code)."""
    by_attempt: dict[int, DispositionRow] = {}
    loose: list[DispositionRow] = []
    for d in sorted(rows, key=lambda r: r.id or 0):
        if d.attempt_id is None:
            loose.append(d)
        else:
            by_attempt[d.attempt_id] = d
    return list(by_attempt.values()) + loose


def reason_label(code: str) -> str:
    name = REFUSAL_REASONS.get(code)
    return f"{code} {name}" if name else (code or "unspecified")


def open_until(status: StatusRow | None, campaign_state: str, now: datetime) -> datetime:
    """Up to when an agent stretch still open counts: now while a runner is live, else its last heartbeat
    (a crashed runner left it open; nobody knows what the agent did after that). No status row: now."""
    if status is None:
        return now
    hb = _aware(status.heartbeat_at)
    if hb is None or runner_live(status.runner, hb, campaign_state, now):
        return now
    return min(now, hb)


def team_spans(log: Iterable[StretchRow], campaign_id: int | None, team: set[int]) -> list[Span]:
    """The stretches counted for a campaign: those tagged with it, and untagged ones (a console log-in before
    the runner tagged the agent) of agents who worked it."""
    out = []
    for r in log:
        if r.campaign_id == campaign_id or (r.campaign_id is None and r.agent_id in team):
            start = _aware(r.started_at)
            assert start is not None
            out.append(Span(r.agent_id, r.state, start, _aware(r.ended_at)))
    return out


def campaign_team(log: Iterable[StretchRow], attempts: Iterable[AttemptRow], campaign_id: int | None) -> set[int]:
    """Agents who worked a campaign: took one of its calls, or have a stretch tagged with it."""
    return ({a.agent_id for a in attempts if a.agent_id is not None}
            | {r.agent_id for r in log if r.campaign_id == campaign_id})


def campaign_start(log: Iterable[StretchRow], attempts: Iterable[AttemptRow], campaign_id: int | None
                   ) -> datetime | None:
    """Earliest of the first dial and the first stretch tagged with the campaign: untagged stretches count
    from there, not from an agent's log-in days earlier."""
    starts = [t for a in attempts for t in (_aware(a.dialed_at),) if t is not None]
    starts += [t for r in log if r.campaign_id == campaign_id for t in (_aware(r.started_at),) if t is not None]
    return min(starts, default=None)


def _amd_summary(engine: Engine, campaign_id: int | None, attempts: Sequence[AttemptRow]) -> dict[str, Any] | None:
    """AMD verdicts, decision time and the false-positive share in force (None when AMD never ran)."""
    judged = [a for a in attempts if a.amd_verdict]
    if not judged:
        return None
    from dialer.amd.share import corpus_fp_share, fp_share
    from dialer.store.amd import amd_counts

    c = amd_counts(engine, campaign_id)
    times = sorted(a.amd_decided_s for a in judged if a.amd_decided_s is not None)
    human_times = sorted(a.amd_decided_s for a in judged if a.amd_decided_s is not None and a.amd_verdict != AmdVerdict.MACHINE)
    return {"verdicts": {k: c[k] for k in ("human", "machine", "unsure", "hangup")},
            "decided_s_p50": times[len(times) // 2] if times else None,
            "human_decided_s_p50": human_times[len(human_times) // 2] if human_times else None,
            "agent_marked_machine": c["agent_marked_machine"], "agent_marked_person": c["agent_marked_person"],
            "fp_share": fp_share(corpus_fp_share(), c["agent_marked_person"], c["machine_reviewed"])}


def campaign_report(engine: Engine, name: str, *, now: datetime | None = None, machine_fp_share: float = 0.0,
                    tz: str = "Asia/Tokyo", now_window: str = "15m") -> dict[str, Any]:
    """Everything a manager asks after a run, recounted from attempts, dispositions and the state log."""
    now = now or datetime.now(UTC)
    rows = campaign_rows(engine, name)
    camp, attempts, agents, pen = rows.campaign, rows.attempts, rows.agents, rows.penetration
    disps = latest_dispositions(rows.dispositions)
    regime = camp.abandon_regime
    first = min((aware(a.dialed_at) for a in attempts), default=None)
    ends = [t for a in attempts for t in (_aware(a.ended_at), _aware(a.dialed_at)) if t is not None]
    in_flight = sum(1 for a in attempts if a.state in LIVE_STATES)
    last = max(ends, default=None)
    # agent time: one count (dialer.domain.agent_time) for the report, charts, CSV and monitor
    team = campaign_team(rows.state_log, attempts, camp.id)
    until = open_until(rows.status, camp.state, now)
    times = agent_time(team_spans(rows.state_log, camp.id, team), campaign_start(rows.state_log, attempts, camp.id),
                       now, until)
    dead = rows.status is not None and until < now  # a runner held it and went silent: activity ended there
    hi = now if (camp.state != CampaignState.STOPPED or in_flight) and not dead else (last or now)
    agent_ids = team
    amd = _amd_summary(engine, camp.id, attempts)
    if amd is not None:  # AMD ran: its measured false-positive share counts (UK), if above the configured one
        machine_fp_share = max(machine_fp_share, amd["fp_share"])

    def rate(c: AbandonCount) -> float | None:
        return c.rate(regime, machine_fp_share)

    total = count_abandons(attempts, None)
    windows: dict[str, dict[str, Any]] = {}
    for label, w in (("now", now_window), ("1h", "1h"), ("24h", "24h"), ("window", camp.abandon_window)):
        c = count_abandons(attempts, window_start(w, now, tz))
        windows[label] = {"span": w, **c.as_dict(machine_fp_share), "rate": rate(c)}

    finished = [a for a in attempts if a.state not in IN_FLIGHT]
    connected = [a for a in attempts if a.agent_connected_at is not None]
    tot: AgentTime = team_time(times)
    talk, wrap_total, logged_total = tot.talk_s, tot.wrap_s, tot.logged_in_s
    handled = sum(1 for a in connected if a.ended_at is not None)
    # rates per hour only over at least an hour of activity; before that the counts say it (issue 27: one sale
    # in three minutes is not "20 sales/h")
    span_s = max(0.0, (hi - first).total_seconds()) if first else 0.0
    hourly = span_s >= 3600.0
    sales = [d for d in disps if d.outcome in SALE_OUTCOMES]
    disp_counts = Counter(d.outcome for d in disps)
    refusals = Counter(reason_label(d.reason_code) for d in disps if d.outcome == Disposition.REFUSED)
    attempt_segment = {a.id: a.segment for a in attempts}

    by_segment: dict[str, dict[str, Any]] = {}
    for seg in sorted({a.segment for a in attempts} | set(pen)):
        seg_att = [a for a in attempts if a.segment == seg]
        seg_disps = [d for d in disps if attempt_segment.get(d.attempt_id) == seg]
        c = count_abandons(seg_att, None)
        seg_fin = [a for a in seg_att if a.state not in IN_FLIGHT]
        seg_sales = [d for d in seg_disps if d.outcome in SALE_OUTCOMES]
        by_segment[seg or "-"] = {
            "attempts": len(seg_att), "answered": c.answered, "abandoned": c.abandoned, "abandon_rate": rate(c),
            "hit_rate": (c.answered / len(seg_fin)) if seg_fin else None,
            "connected_to_agent": sum(1 for a in seg_att if a.agent_connected_at is not None),
            "outcomes": dict(Counter(a.outcome or "in_flight" for a in seg_att)),
            "dispositions": dict(Counter(d.outcome for d in seg_disps)),
            "sales": len(seg_sales), "revenue": sum(d.amount for d in seg_sales),
            "penetration": pen.get(seg, {}),
        }

    per_agent: dict[str, dict[str, Any]] = {}
    for aid in sorted(agent_ids | set(times), key=lambda i: agents[i].login if i in agents else str(i)):
        login = agents[aid].login if aid in agents else str(aid)
        a_sales = [d for d in sales if d.agent_id == aid]
        t = times.get(aid, AgentTime())
        a_handled = [a for a in connected if a.agent_id == aid]
        per_agent[login] = {
            "calls": len(a_handled), "talk_s": round(t.talk_s, 1),
            "wrap_s": round(t.wrap_s, 1), "logged_in_s": round(t.logged_in_s, 1),
            "aht_s": (t.busy_s / len(a_handled)) if a_handled else None,
            "occupancy": t.occupancy, "sales": len(a_sales),
            "revenue": sum(d.amount for d in a_sales),
        }

    by_node = _by_node(engine, attempts, rate)

    return {
        "campaign": camp.name, "generated_at": now.isoformat(), "state": camp.state, "mode": camp.mode,
        "abandon_regime": regime, "abandon_target": camp.abandon_target, "abandon_limit": camp.abandon_limit,
        "abandon_window": camp.abandon_window,
        "first_dial": first.isoformat() if first else None, "last_activity": last.isoformat() if last else None,
        "attempts": len(attempts), "in_flight": in_flight,
        "answered": total.answered, "abandoned": total.abandoned, "machine": total.machine,
        "machine_rate": (total.machine / (total.answered + total.machine)) if total.answered + total.machine else None,
        "amd": amd, "machine_false_positive_share": machine_fp_share,
        "abandon_rate": rate(total), "abandon_rate_us": total.rate("us"),
        "abandon_rate_uk": total.rate("uk", machine_fp_share), "abandon_windows": windows,
        "connected_to_agent": len(connected),
        "hit_rate": (total.answered / len(finished)) if finished else None,
        "talk_s": round(talk, 1), "wrap_s": round(wrap_total, 1),
        "aht_s": ((talk + wrap_total) / handled) if handled else None,
        "logged_in_s": round(logged_total, 1),
        "occupancy": ((talk + wrap_total) / logged_total) if logged_total > 0 else None,
        "occupancy_source": "agent_state_log" if rows.state_log else "none",
        "talk_minutes_per_agent_hour": ((talk / 60) / (logged_total / 3600)) if logged_total > 0 else None,
        "activity_span_s": round(span_s, 1),
        "connects_per_hour": (len(connected) / (span_s / 3600.0)) if hourly else None,
        "sales_per_hour": (len(sales) / (span_s / 3600.0)) if hourly else None,
        "last_hour": _last_hour(attempts, sales, first, now),
        "sales": len(sales), "revenue": sum(d.amount for d in sales),
        "outcomes": dict(Counter(a.outcome or "in_flight" for a in attempts)),
        "dispositions": dict(disp_counts),
        "dnc": disp_counts.get("dnc", 0),
        "refusals": {"total": sum(refusals.values()), "by_reason": dict(refusals.most_common())},
        "by_segment": by_segment, "agents": per_agent, "penetration": pen,
        "holdout": holdout_status(engine, camp.name, list(camp.segments)),  # issue 19: control group and lift
        "by_node": by_node,  # issue 18: which node dialled what (empty for a single-host runner)
        "inbound": inbound_summary(engine, camp.id, attempts),  # issue 30: return calls, apart from the above
    }


def _last_hour(attempts: Sequence[AttemptRow], sales: Sequence[DispositionRow], first: datetime | None, now: datetime
               ) -> dict[str, Any]:
    """Dials, connects and sales in the last 60 minutes, and how long that window really is (shorter when the
    campaign began less than an hour ago): the monitor shows these counts, never a rate scaled up from minutes."""
    lo = now - timedelta(hours=1)
    start = max(lo, first) if first is not None else now
    dials = sum(1 for a in attempts if (t := _aware(a.dialed_at)) is not None and lo <= t <= now)
    connects = sum(1 for a in attempts if (t := _aware(a.agent_connected_at)) is not None and lo <= t <= now)
    sold = sum(1 for d in sales if (t := _aware(d.created_at)) is not None and lo <= t <= now)
    revenue = sum(d.amount for d in sales if (t := _aware(d.created_at)) is not None and lo <= t <= now)
    return {"window_s": round(max(0.0, (now - start).total_seconds()), 1), "full_hour": start <= lo,
            "dials": dials, "connects": connects, "sales": sold, "revenue": revenue}


def _by_node(engine: Engine, attempts: Sequence[AttemptRow], rate: Any) -> dict[str, dict[str, Any]]:
    """Issue 18: attempts, answers and abandons per node, with each node's lines, agents and health."""
    ids = sorted({a.node_id for a in attempts if a.node_id})
    if not ids:
        return {}
    rows = {n.node_id: n for n in list_nodes(engine)}
    out: dict[str, dict[str, Any]] = {}
    for nid in ids:
        mine = [a for a in attempts if a.node_id == nid]
        c = count_abandons(mine, None)
        n = rows.get(nid)
        out[nid] = {"attempts": len(mine), "answered": c.answered, "abandoned": c.abandoned, "abandon_rate": rate(c),
                    "connected_to_agent": sum(1 for a in mine if a.agent_connected_at is not None),
                    "interrupted": sum(1 for a in mine if a.state == AttemptState.INTERRUPTED),
                    "lines": n.lines if n else None, "agents": n.agents if n else None,
                    "health": n.health(NODE_TTL_S) if n else "unknown", "epoch": n.epoch if n else None,
                    "heartbeat_age_s": round(n.heartbeat_age_s, 1) if n else None}
    return out


# ------------------------------------------------------------------------------------------- compliance


def compliance_report(engine: Engine, cfg: Config | None = None, *, now: datetime | None = None,
                      campaign: str | None = None) -> dict[str, Any]:
    """What an auditor asks: abandon rates per window and regime, calls outside hours, DNC honoured."""
    now = now or datetime.now(UTC)
    default_tz = cfg.schedules.timezone if cfg else "Asia/Tokyo"
    fp_share = cfg.reports.machine_false_positive_share if cfg else 0.0
    sandbox_trunks = {t.name for t in cfg.trunks if t.sandbox} if cfg else set()
    out: dict[str, Any] = {"generated_at": now.isoformat(), "timezone": default_tz,
                           "machine_false_positive_share": fp_share, "campaigns": {}}
    rows = compliance_rows(engine, campaign)
    camps, entry_tz, entry_sku, entry_pref = rows.campaigns, rows.entry_tz, rows.entry_sku, rows.entry_prefecture
    all_attempts, disps, blocks = rows.attempts, rows.dispositions, rows.blocks
    camp_names: dict[int | None, str] = {c.id: c.name for c in camps}
    total_outside = 0
    for camp in camps:
        attempts = [a for a in all_attempts if a.campaign_id == camp.id]
        windows = {}
        for w in ("1h", "24h", "30d", "day", "campaign"):
            windows[w] = count_abandons(attempts, window_start(w, now, default_tz)).as_dict(fp_share)
        conf = windows[camp.abandon_window]
        configured_rate = conf["uk" if camp.abandon_regime == Regime.UK else "us"]
        configured = [c for c in cfg.campaigns if c.name == camp.name] if cfg else []
        # the run's own hours and holidays (the row) plus the centre's calendar from config (issue 27): hours per
        # weekday and closure days
        hours = CallingHours.from_campaign((camp.calling_hours_start, camp.calling_hours_end), camp.holidays,
                                           configured[0].weekday_hours if configured else None,
                                           configured[0].closed_days if configured else ())
        outside: list[dict[str, Any]] = []
        sandbox_outside = 0
        for a in attempts:
            tzname = entry_tz.get(a.entry_id) or default_tz
            # (issue 12) every zone of the contact, as the hopper judges it: number, entry, prefecture
            zones = contact_zones(a.phone_e164 or "", tzname, entry_pref.get(a.entry_id) or "") or (tzname,)
            dialed = _aware(a.dialed_at)
            assert dialed is not None
            why = hours.closed_reason(dialed, zones)
            if why is None:
                continue
            if a.trunk and a.trunk in sandbox_trunks:
                sandbox_outside += 1
                continue
            local = dialed.astimezone(ZoneInfo(zones[0]) if zones[0] else ZoneInfo(default_tz))
            outside.append({"attempt_id": a.id, "phone": mask_phone(a.phone_e164), "local_time": local.isoformat(),
                            "timezone": tzname, "zones": list(zones), "why": why})
        total_outside += len(outside)
        out["campaigns"][camp.name] = {
            "regime": camp.abandon_regime, "target": camp.abandon_target, "limit": camp.abandon_limit,
            "window": camp.abandon_window, "calling_hours": [camp.calling_hours_start, camp.calling_hours_end],
            "attempts": len(attempts), "windows": windows, "abandon_rate_in_window": configured_rate,
            "within_limit": configured_rate is None or configured_rate <= camp.abandon_limit,
            "calls_outside_hours": len(outside), "calls_outside_hours_sandbox": sandbox_outside,
            "outside_hours": outside[:20],
        }
    out["calls_outside_hours"] = total_outside

    attempts_by_id = {a.id: a for a in all_attempts}
    for kind in (Disposition.DNC, Disposition.REFUSED):
        items: list[dict[str, Any]] = []
        for d in disps:
            if d.outcome != kind or (campaign and d.campaign_id not in camp_names):
                continue
            att = attempts_by_id.get(d.attempt_id)
            phone = att.phone_e164 if att else ""
            sku = d.sku or (entry_sku.get(att.entry_id, "") if att else "")
            at = _aware(d.created_at)
            assert at is not None
            block_kinds = (BlockKind.DNC,) if kind == Disposition.DNC else (BlockKind.REFUSAL, BlockKind.DNC)
            matching = [b for b in blocks if b.kind in block_kinds
                        and ((phone and b.phone_e164 == phone) or (d.customer_id and b.customer_id == d.customer_id))
                        and (kind == Disposition.DNC or b.kind == BlockKind.DNC or not b.product_scope
                             or b.product_scope == sku)]
            since = min((aware(b.since) for b in matching), default=None)
            after = []
            for a in all_attempts:
                dialed = _aware(a.dialed_at)
                assert dialed is not None
                if dialed <= at or a.id == d.attempt_id:
                    continue
                same = (phone and a.phone_e164 == phone) or (d.customer_id and a.customer_id == d.customer_id)
                if not same:
                    continue
                if kind == Disposition.REFUSED and sku and entry_sku.get(a.entry_id, "") not in ("", sku):
                    continue  # a refusal bars re-solicitation for that product, not every product
                after.append(a)
            items.append({
                "disposition_id": d.id, "customer_id": d.customer_id, "phone": mask_phone(phone),
                "campaign": camp_names.get(d.campaign_id, ""), "requested_at": at.isoformat(),
                "blocked_since": since.isoformat() if since else None,
                "block_delay_s": round((since - at).total_seconds(), 1) if since else None,
                "attempts_after": len(after), "reason": reason_label(d.reason_code) if kind == Disposition.REFUSED else "",
                "sku": sku,
            })
        key = "dnc" if kind == Disposition.DNC else "refusals"
        out[key] = {"requests": len(items), "blocked": sum(1 for i in items if i["blocked_since"]),
                    "honoured": sum(1 for i in items if i["blocked_since"] and i["attempts_after"] == 0),
                    "violations": sum(1 for i in items if i["attempts_after"] > 0), "items": items}
    return out


# --------------------------------------------------------------------------------------------- monitor


def inbound_summary(engine: Engine, campaign_id: int | None, attempts: Sequence[AttemptRow] = ()) -> dict[str, Any]:
    """(issue 30) Customers calling back CAMPAIGN_ID's calls: taken by an agent, hung up while queued (an inbound
    abandon, kept apart from the outbound abandon rate the law counts), callbacks and DNC keyed in the IVR, waits,
    and the return-call rate after the campaign's unanswered calls (what the pacer will need to expect)."""
    from dialer.domain.inbound import InboundOutcome
    from dialer.store.inbound import inbound_rows

    rows = [r for r in inbound_rows(engine) if r["campaign_id"] == campaign_id]
    n = Counter(r["outcome"] for r in rows)
    waits = sorted(w for r in rows if (w := r["wait_s"]) is not None)
    unanswered = sum(1 for a in attempts if a.outcome and a.outcome != CallOutcome.ANSWERED)
    returned = len({r["answers"] for r in rows if r["answers"] is not None})
    return {
        "return_calls": len(rows),
        "answered": n[InboundOutcome.ANSWERED],
        "abandoned_in_queue": n[InboundOutcome.QUEUE_ABANDONED],
        "inbound_abandon_rate": (n[InboundOutcome.QUEUE_ABANDONED] / len(rows)) if rows else None,
        "ivr_callbacks": n[InboundOutcome.IVR_CALLBACK],
        "ivr_dnc": n[InboundOutcome.IVR_DNC],
        "ivr_left": n[InboundOutcome.IVR_LEFT],
        "wait_p50_s": waits[len(waits) // 2] if waits else None,
        "wait_max_s": waits[-1] if waits else None,
        "return_call_rate": (returned / unanswered) if unanswered else None,
    }


def abandon_trend(attempts: Sequence[AttemptRow], now: datetime, *, buckets: int = 12, bucket_s: float = 300.0,
                  regime: str = "us", machine_fp_share: float = 0.0) -> list[float | None]:
    """Abandon rate per bucket over the last buckets x bucket_s seconds, oldest first (None: no answers)."""
    out: list[float | None] = []
    for i in range(buckets, 0, -1):
        lo = now - timedelta(seconds=i * bucket_s)
        hi = lo + timedelta(seconds=bucket_s)
        out.append(count_abandons(attempts, lo, hi).rate(regime, machine_fp_share))
    return out
