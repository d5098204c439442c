"""The campaign manager's live view: everything read from the store, so it runs beside or far from the runner.

Figures come from `dialer.reports` (recounted from attempts); the runner's `campaign_status` row adds
only what exists nowhere else (dial level, lines dialling/ringing/waiting, the mode in effect, heartbeat).
Commands are INSERTed into `control_commands`; the runner applies them and writes the result back, and
the view shows each one as "requested" until then and "applied: <result>" after.
"""

from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.config import Config
from dialer.reports import SALE_OUTCOMES, abandon_trend, campaign_report
from dialer.store.models import (
    Agent,
    Attempt,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    ControlCommand,
    Customer,
    Disposition,
)
from dialer.views.render import LineField, aware, dur, local, pct, row, sparkline, yen

MODES = ("preview", "progressive", "power", "predictive")
STALE_S = 10.0
AGENT_ORDER = ("on_call", "reserved", "wrap_up", "ready", "paused", "unavailable")
STATE_STYLE = {"on_call": "bold green", "reserved": "green", "wrap_up": "yellow", "ready": "cyan",
               "paused": "magenta", "unavailable": "red"}


def requester() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "?"
    return f"monitor:{user}@{socket.gethostname()}"


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


def gather(engine: Engine, name: str, cfg: Config, now: datetime) -> CampaignView:
    tz = cfg.schedules.timezone
    rep = campaign_report(engine, name, now=now, machine_fp_share=cfg.reports.machine_false_positive_share, tz=tz,
                          now_window=cfg.reports.now_window)
    with Session(engine) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).one()
        st = s.get(CampaignStatus, camp.id)
        status = None
        if st is not None:
            hb = aware(st.heartbeat_at)
            status = {"mode": st.mode, "dial_level": st.dial_level, "lines_dialing": st.lines_dialing,
                      "lines_ringing": st.lines_ringing, "waiting": st.waiting_for_agent, "runner": st.runner,
                      "heartbeat_age_s": (now - hb).total_seconds() if hb else None, "stats": dict(st.stats or {})}
        agents = []
        for a in s.exec(select(Agent).order_by(Agent.login)).all():
            if a.state == "logged_out" or (a.campaign_id not in (None, camp.id)):
                continue
            who = ""
            if a.current_attempt_id is not None:
                att = s.get(Attempt, a.current_attempt_id)
                if att is not None:
                    cust = s.get(Customer, att.customer_id)
                    who = (cust.name if cust and cust.name else att.customer_id) + (f" [{att.segment}]" if att.segment
                                                                                      else "")
            since = aware(a.state_since)
            agents.append({"login": a.login, "name": a.name, "state": a.state,
                           "for_s": (now - since).total_seconds() if since else None, "customer": who,
                           "pause_reason": a.pause_reason, "pending": a.pending_state})
        events = [{"at": e.at, "level": e.level, "kind": e.kind, "message": e.message}
                  for e in s.exec(select(CampaignEvent).where(CampaignEvent.campaign_id == camp.id)
                                  .order_by(CampaignEvent.id.desc()).limit(3)).all()]  # type: ignore[union-attr]
        commands = [{"id": c.id, "command": c.command, "argument": c.argument, "created_at": c.created_at,
                     "applied_at": c.applied_at, "result": c.result, "by": c.requested_by}
                    for c in s.exec(select(ControlCommand).where(ControlCommand.campaign == name)
                                    .order_by(ControlCommand.id.desc()).limit(4)).all()]  # type: ignore[union-attr]
        hour_ago = now - timedelta(hours=1)
        attempts = list(s.exec(select(Attempt).where(Attempt.campaign_id == camp.id,
                                                     Attempt.dialed_at >= now - timedelta(hours=1, minutes=5))).all())
        sales_h = len(s.exec(select(Disposition.id).where(
            Disposition.campaign_id == camp.id, Disposition.created_at >= hour_ago,
            Disposition.outcome.in_(SALE_OUTCOMES))).all())  # type: ignore[attr-defined]
    connects_h = sum(1 for a in attempts if a.agent_connected_at is not None and aware(a.agent_connected_at)
                     and aware(a.agent_connected_at) >= hour_ago)  # type: ignore[operator]
    trend = abandon_trend(attempts, now, regime=rep["abandon_regime"],
                          machine_fp_share=cfg.reports.machine_false_positive_share)
    return CampaignView(name, rep, status, agents, events, commands, trend,
                        {"connects": float(connects_h), "sales": float(sales_h)})


def _status_line(v: CampaignView) -> Text:
    r, st = v.report, v.status
    t = Text()
    state = r["state"]
    t.append(f"{state.upper()}", style={"running": "bold green", "paused": "bold yellow"}.get(state, "bold red"))
    eff = st["mode"] if st and st["mode"] else r["mode"]
    t.append(f"  mode {r['mode']}")
    if eff != r["mode"]:
        t.append(f" → in effect {eff}", style="bold yellow")
    if st is None:
        t.append("  runner: never seen", style="dim")
    elif state != "stopped" and (st["heartbeat_age_s"] is None or st["heartbeat_age_s"] > STALE_S):
        t.append(f"  runner silent {dur(st['heartbeat_age_s'])}", style="bold red")
    return t


def render_campaign(v: CampaignView, tz: str, width: int) -> RenderableType:
    r, st = v.report, v.status
    wide = width >= 110
    lines: list[RenderableType] = []
    lines.append(_status_line(v))
    if st is not None:
        lines.append(Text(f"dial level {st['dial_level']:.2f}   dialling {st['lines_dialing']}   "
                          f"ringing {st['lines_ringing']}   waiting for agent {st['waiting']}"))
    else:
        lines.append(Text("dial level —   dialling —   ringing —   waiting for agent —", style="dim"))
    w = r["abandon_windows"]
    ab = Text("abandon ")
    for key, label in (("now", f"now({w['now']['span']})"), ("1h", "1h"), ("24h", "24h"),
                       ("window", f"window({r['abandon_window']})")):
        rate = w[key]["rate"]
        style = "bold red" if rate is not None and rate > r["abandon_limit"] else (
            "yellow" if rate is not None and rate > r["abandon_target"] else "")
        ab.append(f"{label} ", style="dim")
        ab.append(pct(rate), style=style)
        ab.append("  ")
    ab.append(f"target {pct(r['abandon_target'])} limit {pct(r['abandon_limit'])} [{r['abandon_regime']}] ")
    ab.append(sparkline(v.trend, r["abandon_limit"]), style="cyan")
    lines.append(ab)
    lines.append(Text(f"hit {pct(r['hit_rate'])}  AHT {dur(r['aht_s'])}  occupancy {pct(r['occupancy'], 0)}  "
                      f"connects/h {v.last_hour['connects']:.0f}  sales/h {v.last_hour['sales']:.0f}  "
                      f"revenue {yen(r['revenue'])}"))
    lines.append(Text(f"attempts {r['attempts']}  answered {r['answered']}  abandoned {r['abandoned']}  "
                      f"to agent {r['connected_to_agent']}  sales {r['sales']}  dnc {r['dnc']}  "
                      f"refused {r['refusals']['total']}", style="dim"))

    counts: dict[str, int] = {}
    for a in v.agents:
        counts[a["state"]] = counts.get(a["state"], 0) + 1
    agents = Table(box=None, padding=(0, 1), show_header=False, expand=False)
    agents.add_column("agent", no_wrap=True)
    agents.add_column("state", no_wrap=True)
    agents.add_column("for", justify="right", no_wrap=True)
    agents.add_column("customer", no_wrap=True, overflow="ellipsis", max_width=24 if not wide else 30)
    shown = sorted(v.agents, key=lambda a: (AGENT_ORDER.index(a["state"]) if a["state"] in AGENT_ORDER else 9,
                                            a["login"]))
    limit = 12 if wide else 4
    for a in shown[:limit]:
        extra = a["customer"] or (a["pause_reason"] if a["state"] == "paused" else "")
        if a["pending"]:
            extra = (extra + f" → {a['pending']}").strip()
        row(agents, f"{a['login']} {a['name']}"[:14], Text(a["state"], style=STATE_STYLE.get(a["state"], "")),
                       dur(a["for_s"]), extra)
    if len(shown) > limit:
        row(agents, f"+{len(shown) - limit} more", "", "", "")
    head = Text("agents ", style="bold")
    head.append("  ".join(f"{s} {counts[s]}" for s in AGENT_ORDER if counts.get(s)) or "none logged in")

    seg = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    for col in ("segment", "dialled", "left", "exhausted", "entries"):
        seg.add_column(col, justify="left" if col == "segment" else "right", no_wrap=True)
    for name, p in r["penetration"].items():
        row(seg, name, str(p["dialled"]), str(p["remaining"]), str(p["exhausted"]), str(p["entries"]))

    if wide:
        grid = Table.grid(padding=(0, 3))
        grid.add_column()
        grid.add_column()
        row(grid, Group(head, agents), seg)
        lines.append(grid)
    else:
        lines.append(head)
        lines.append(agents)
        lines.append(seg)
    for e in v.events[: (2 if wide else 1)]:
        if e["kind"] in ("mode_drop", "mode_restore", "trunk_down", "agent_unavailable", "recovered", "wrap_timeout"):
            lines.append(Text(f"{local(e['at'], tz, '%H:%M:%S')} {e['kind']}: {e['message']}"[: width - 4],
                              style="yellow" if e["level"] != "info" else "dim"))
    for c in v.commands[: (4 if wide else 2)]:
        state = f"applied: {c['result']}" if c["applied_at"] else "requested"
        lines.append(Text(f"cmd #{c['id']} {c['command']} {c['argument']} {local(c['created_at'], tz, '%H:%M:%S')}"
                          f" — {state}"[: width - 4], style="green" if c["applied_at"] else "bold yellow"))
    return Panel(Group(*lines), title=Text(v.name, style="bold"), title_align="left", padding=(0, 1))


@dataclass
class Monitor:
    """State of one monitor session: which campaign is selected and which prompt is open."""

    engine: Engine
    cfg: Config
    campaign: str | None = None
    store: str = ""  # which store this is, shown when it holds nothing
    by: str = field(default_factory=requester)
    selected: int = 0
    prompt: str = ""  # "" | "confirm" | "mode" | "target"
    pending: tuple[str, str] | None = None
    line: LineField = field(default_factory=LineField)
    message: str = ""
    quit: bool = False
    names: list[str] = field(default_factory=list)
    views: dict[str, CampaignView] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)

    def refresh(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        with Session(self.engine) as s:
            camps = list(s.exec(select(Campaign).order_by(Campaign.name)).all())
            statuses = {st.campaign_id: st for st in s.exec(select(CampaignStatus)).all()}
        if self.campaign:
            camps = [c for c in camps if c.name == self.campaign]
        self.names = [c.name for c in camps]
        self.summary = [{"name": c.name, "state": c.state, "mode": c.mode,
                         "effective": statuses[c.id].mode if c.id in statuses else "",
                         "level": statuses[c.id].dial_level if c.id in statuses else None} for c in camps]
        if self.names:
            self.selected %= len(self.names)
            name = self.names[self.selected]
            self.views = {name: gather(self.engine, name, self.cfg, now)}
        else:
            self.views = {}

    @property
    def current(self) -> str | None:
        return self.names[self.selected] if self.names else None

    # ------------------------------------------------------------------ commands
    def request(self, command: str, argument: str = "") -> int:
        name = self.current
        assert name is not None
        with Session(self.engine) as s:
            row = ControlCommand(campaign=name, command=command, argument=argument, requested_by=self.by)
            s.add(row)
            s.commit()
            s.refresh(row)
            assert row.id is not None
            self.message = f"requested #{row.id}: {command} {argument}".strip() + f" on {name}"
            return row.id

    def handle_key(self, k: str) -> None:
        if self.prompt == "confirm":
            if k in ("y", "Y", "enter") and self.pending:
                self.request(*self.pending)
            else:
                self.message = "cancelled"
            self.prompt, self.pending = "", None
            return
        if self.prompt == "mode":
            if k in ("1", "2", "3", "4"):
                self._ask("mode", MODES[int(k) - 1])
            else:
                self.prompt, self.message = "", "cancelled"
            return
        if self.prompt == "target":
            if k == "esc":
                self.prompt, self.message = "", "cancelled"
            elif k == "enter":
                self._target(self.line.text.strip())
            else:
                self.line.key(k)
            return
        if not self.current:
            if k in ("q", "Q"):
                self.quit = True
            return
        if k in ("q", "Q"):
            self.quit = True
        elif k == "p":
            self._ask("pause")
        elif k == "r":
            self._ask("resume")
        elif k == "s":
            self._ask("stop")
        elif k == "m":
            self.prompt = "mode"
        elif k == "t":
            self.prompt, self.line = "target", LineField()
        elif k in ("tab", "n", "right", "down"):
            self.selected = (self.selected + 1) % len(self.names)
        elif k in ("backtab", "left", "up"):
            self.selected = (self.selected - 1) % len(self.names)

    def _ask(self, command: str, argument: str = "") -> None:
        self.prompt, self.pending = "confirm", (command, argument)

    def _target(self, text: str) -> None:
        name = self.current
        limit = self.views[name].report["abandon_limit"] if name in self.views else 0.03
        try:
            value = float(text.rstrip("%")) / 100.0
        except ValueError:
            self.message = f"not a number: {text!r} (type the target in percent, e.g. 1.5)"
            self.prompt = ""
            return
        if not 0 < value <= limit:
            self.message = f"target must be above 0% and at most the limit {limit * 100:.1f}%"
            self.prompt = ""
            return
        self._ask("target", f"{value:.4f}")

    # ------------------------------------------------------------------ drawing
    def render(self, width: int = 80, now: datetime | None = None, height: int | None = None) -> RenderableType:
        now = now or datetime.now(UTC)
        tz = self.cfg.schedules.timezone
        parts: list[RenderableType] = []
        head = Text()
        head.append("tsunagu monitor ", style="bold")
        head.append(local(now, tz, "%Y-%m-%d %H:%M:%S %Z"))
        if len(self.names) > 1:
            head.append(f"   campaign {self.selected + 1}/{len(self.names)} (tab: next)")
        parts.append(head)
        if len(self.summary) > 1:
            line = Text()
            for i, c in enumerate(self.summary):
                style = "reverse" if i == self.selected else ""
                line.append(f" {c['name']}:{c['state']}/{c['effective'] or c['mode']} ", style=style)
            parts.append(line)
        if not self.names:
            where = f" {self.store}" if self.store else ""
            parts.append(Text(f"no campaigns in the store{where} yet (the runner records a campaign on its first start)",
                              style="dim"))
        for v in self.views.values():
            parts.append(render_campaign(v, tz, width))
        parts.append(self._footer())
        return Group(*parts)

    def _footer(self) -> Text:
        t = Text()
        if self.prompt == "confirm" and self.pending:
            cmd, arg = self.pending
            t.append(f"{cmd} {arg} on {self.current}? y = yes, any other key = no".replace("  ", " "),
                     style="bold reverse")
        elif self.prompt == "mode":
            t.append("mode: 1 preview  2 progressive  3 power  4 predictive  (other key: cancel)", style="bold reverse")
        elif self.prompt == "target":
            t.append(f"abandon target in % (Enter to confirm, Esc to cancel): {self.line.text}▏",
                     style="bold reverse")
        else:
            if self.message:
                t.append(self.message + "\n", style="bold")
            t.append("p pause  r resume  s stop  m mode  t target  tab next  q quit", style="dim")
        return t


def run_live(monitor: Monitor, refresh_s: float = 0.5, max_s: float | None = None) -> None:
    """Full-screen loop: redraw at least twice a second, handle keys as they come."""
    from rich.console import Console
    from rich.live import Live

    from dialer.views.render import cbreak_keys

    console = Console()
    monitor.refresh()
    start = time.monotonic()
    with cbreak_keys() as keys, Live(monitor.render(console.width), console=console, screen=True,
                                     auto_refresh=False) as live:
        last = 0.0
        while not monitor.quit:
            if max_s is not None and time.monotonic() - start > max_s:
                break
            pressed = keys.read(0.1)
            for k in pressed:
                monitor.handle_key(k)
            if pressed or time.monotonic() - last >= refresh_s:
                monitor.refresh()
                live.update(monitor.render(console.width), refresh=True)
                last = time.monotonic()
