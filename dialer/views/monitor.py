"""The campaign manager's live view: everything read from the store, so it runs beside or far from the runner.

Figures come from `dialer.reports` (recounted from attempts); the runner's `campaign_status` row adds
only what exists nowhere else (dial level, lines dialling/ringing/waiting, the mode in effect, heartbeat).
Commands are INSERTed into `control_commands`; the runner applies them and writes the result back, and
the view shows each one as "requested" until then and "applied: <result>" after — or "expired" once the TTL
(`[ui] command_ttl`) passed. With no live runner (stopped, or silent longer than the heartbeat allows) the
view shows no lines and agents as idle since their last change, and refuses to send commands.

Given a height, the frame never exceeds it: the agent list gets the rows left over (scrolled with ↑↓ PgUp
PgDn), optional lines go first, and the key legend is always the last line. From 140×40 the extra panels
show: per-agent figures, hopper level, the time left until the list is worked through, and 15-minute rows.
"""

from __future__ import annotations

import getpass
import io
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dialer.config import Config
from dialer.control import HEARTBEAT_STALE_S
from dialer.domain.vocabulary import AgentState, CampaignState, Mode
from dialer.i18n import N_, _, command_result, command_text, fmt_datetime, language, nfkc
from dialer.service import Engine
from dialer.service import floor as floor_service
from dialer.service import monitor as monitor_service
from dialer.service.auth import Principal, local_admin
from dialer.service.monitor import (  # noqa: F401 - gather, floor_state, ...: re-exported for the screens' callers
    BUCKET,
    CampaignView,
    NodeRow,
    floor_state,
    gather,
    live_floor,
    quarter_hours,
)
from dialer.views import labels
from dialer.views.labels import label
from dialer.views.nodes import node_lines
from dialer.views.render import LineField, aware, dur, pct, row, sparkline, yen

MODES = tuple(m.value for m in Mode)
STALE_S = HEARTBEAT_STALE_S
AGENT_ORDER = ("on_call", "reserved", "wrap_up", "ready", "paused", "refusing", "unavailable", "unreachable",
               "logged_out")
STATE_STYLE = {"on_call": "bold green", "reserved": "green", "wrap_up": "yellow", "ready": "cyan",
               "paused": "magenta", "unavailable": "red", "unreachable": "red", "logged_out": "dim",
               "refusing": "bold red"}
STATE_LABEL = labels.STATES  # one table of words for codes, shared with the agent console and the browser
CAMPAIGN_STATE = labels.CAMPAIGN_STATES
MODE_LABEL = labels.MODES
# (issue 25) stops that drain or cut, agents' phones that refuse or die under a customer
ISSUE25_NOTICES = ("draining", "stop_now", "drain_timeout", "calls_cut", "agent_refusing", "agent_rerouted",
                   "agent_leg_lost")
LARGE = (140, 40)  # width, height from which the extra panels show
# (issue 27) `campaign_events.kind` in words of the UI's language; the stored kind and message stay English
EVENT_LABEL = {"mode_drop": N_("mode drop"), "mode_restore": N_("mode restored"), "trunk_down": N_("trunk down"),
               "trunk_up": N_("trunk up"), "worker_down": N_("worker down"),
               "agent_unavailable": N_("agent unavailable"), "agent_unreachable": N_("agent unreachable"),
               "agent_reachable": N_("agent reachable"), "recovered": N_("recovered"),
               "wrap_timeout": N_("wrap-up timeout"), "draining": N_("draining"), "stop_now": N_("stop now"),
               "drain_timeout": N_("drain timeout"), "calls_cut": N_("calls cut"),
               "agent_refusing": N_("agent refusing calls"), "agent_rerouted": N_("agent re-routed"),
               "agent_leg_lost": N_("agent leg lost"), "agent_back": N_("agent back"),
               "caller_id_hidden": N_("caller ID refused"), "tick_lag": N_("runner lagging"),
               "tick_lag_cleared": N_("runner on time"), "store_unreachable": N_("store unreachable"),
               "store_full": N_("store full"), "store_back": N_("store back"),
               "store_journal_failed": N_("journal failed"), "supervisor_joined": N_("supervisor joined"),
               "supervisor_left": N_("supervisor left"), "supervisor_failed": N_("supervisor join failed"),
               "started": N_("started"), "stopped": N_("stopped"), "command": N_("command")}
# the common message forms the runner writes (dialer/campaign.py), matched whole; a message of another form shows
# as stored. Groups named `mode` are shown as mode names.
EVENT_FORMS: tuple[tuple[str, str, str], ...] = (
    ("mode_drop", r"abandon budget for the (?P<window>.+?) window is spent: dialling progressive until it recovers "
                  r"\((?P<note>.*)\)",
     N_("abandon budget for the {window} window is spent: dialling progressive until it recovers ({note})")),
    ("mode_restore", r"abandon budget recovered: back to (?P<mode>\w+)", N_("abandon budget recovered: back to {mode}")),
    ("draining", r"(?P<why>.+?): no new dials; waiting for (?P<calls>\d+) call\(s\) and (?P<wraps>\d+) wrap-up\(s\) "
                 r"to end \(at most (?P<s>[\d.]+)s\)",
     N_("{why}: no new dials; waiting for {calls} call(s) and {wraps} wrap-up(s) to end (at most {s}s)")),
    ("stop_now", r"(?P<why>.+?): hanging up (?P<calls>\d+) call\(s\) \((?P<conv>\d+) in conversation\)",
     N_("{why}: hanging up {calls} call(s) ({conv} in conversation)")),
    ("drain_timeout", r"drain_s (?P<s>[\d.]+)s passed: hanging up (?P<calls>\d+) call\(s\) \((?P<conv>\d+) in "
                      r"conversation\)",
     N_("drain_s {s}s passed: hanging up {calls} call(s) ({conv} in conversation)")),
    ("calls_cut", r"runner stopping: (?P<calls>\d+) call\(s\) hung up by the dialer \((?P<conv>\d+) in conversation\)",
     N_("runner stopping: {calls} call(s) hung up by the dialer ({conv} in conversation)")),
    ("agent_refusing", r"agent (?P<login>\S+): the phone refused a call \((?P<status>.*?)\); out of routing until the "
                       r"agent is ready again on the console or the phone takes a call",
     N_("agent {login}: the phone refused a call ({status}); out of routing until the agent is ready again on the "
        "console or the phone takes a call")),
    ("agent_back", r"agent (?P<login>\S+): the phone took a call again; ready",
     N_("agent {login}: the phone took a call again; ready")),
    ("agent_leg_lost", r"attempt (?P<attempt>\d+): agent (?P<login>\S+): (?P<detail>.*); the customer is handed to "
                       r"another agent",
     N_("attempt {attempt}: agent {login}: {detail}; the customer is handed to another agent")),
    ("caller_id_hidden", r"attempt (?P<attempt>\d+): the callee refuses calls without caller ID \((?P<status>\d+)\); "
                         r"trunk (?P<trunk>\S+) is not presenting the campaign's number \(check caller_id / "
                         r"P-Asserted-Identity\)",
     N_("attempt {attempt}: the callee refuses calls without caller ID ({status}); trunk {trunk} is not presenting "
        "the campaign's number (check caller_id / P-Asserted-Identity)")),
    ("tick_lag", r"runner loop (?P<late>[\d.]+)s late \(limit (?P<limit>[\d.]+)s, \[telephony\] max_tick_lag_s\): no "
                 r"new dials until it catches up",
     N_("runner loop {late}s late (limit {limit}s, [telephony] max_tick_lag_s): no new dials until it catches up")),
    ("tick_lag_cleared", r"runner loop on time again \(worst (?P<late>[\d.]+)s\): dialling",
     N_("runner loop on time again (worst {late}s): dialling")),
    ("agent_unavailable", r"agent leg to agent (?P<agent>\S+) failed: (?P<detail>.*)",
     N_("agent leg to agent {agent} failed: {detail}")),
    ("agent_unreachable", r"agent leg to agent (?P<agent>\S+) failed: (?P<detail>.*)",
     N_("agent leg to agent {agent} failed: {detail}")),
    ("wrap_timeout", r"agent (?P<agent>\S+) wrap-up timed out without a disposition",
     N_("agent {agent} wrap-up timed out without a disposition")),
    ("recovered", r"previous run left (?P<n>\d+) call\(s\) in flight; closed as interrupted; hopper: (?P<hopper>.*)",
     N_("previous run left {n} call(s) in flight; closed as interrupted; hopper: {hopper}")),
    ("store_back", r"after (?P<s>[\d.]+)s; (?P<n>\d+) journalled write\(s\) replayed, dialling resumes",
     N_("after {s}s; {n} journalled write(s) replayed, dialling resumes")),
)
_EVENT_RE = {kind: [(re.compile(rx), text) for k, rx, text in EVENT_FORMS if k == kind] for kind, _rx, _t in EVENT_FORMS}
# (issue 27) more of what a manager must see: the runner lagging, caller ID refused, a phone back, a supervisor
NOTICES_27 = ("tick_lag", "tick_lag_cleared", "caller_id_hidden", "agent_back", "agent_unreachable", "store_unreachable",
              "store_full", "store_back", "store_journal_failed", "supervisor_joined")
_SEGMENT_TAG = re.compile(r" \[(?P<code>[a-z_]+)\]$")


def event_text(kind: str, message: str) -> str:
    """An event line's "kind: message" in the UI's language (issue 27: the monitor showed the runner's English).
    The store keeps what the runner wrote; a message of a form not listed here shows as stored. In English the
    kind stays the stored code (what `campaign run` prints and scripts look for)."""
    word = _(EVENT_LABEL[kind]) if kind in EVENT_LABEL and language() != "en" else kind
    for rx, text in _EVENT_RE.get(kind, []):
        m = rx.fullmatch(message)
        if m:
            groups = {k: (_(MODE_LABEL[v]) if k == "mode" and v in MODE_LABEL else v) for k, v in m.groupdict().items()}
            message = _(text).format(**groups)
            break
    return f"{word}: {message}"


def customer_text(who: str) -> str:
    """The customer column: the name and its segment code (`松本 陽菜 [upsell]`) with the segment in words."""
    m = _SEGMENT_TAG.search(who)
    return who[:m.start()] + f" [{label('segment', m['code'])}]" if m else who


def requester() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "?"
    return f"monitor:{user}@{socket.gethostname()}"





def _status_line(v: CampaignView, tz: str) -> Text:
    r, st = v.report, v.status
    t = Text()
    state = r["state"]
    if not v.live and state != CampaignState.STOPPED:
        t.append(_("NO RUNNER"), style="bold red")
        t.append(f" ({_(CAMPAIGN_STATE.get(state, state))})", style="dim")
    else:
        t.append(_(CAMPAIGN_STATE.get(state, state)).upper(),
                 style={"running": "bold green", "paused": "bold yellow"}.get(state, "bold red"))
        if state == CampaignState.DRAINING and st is not None:
            _drain_figures(t, (st.get("stats") or {}).get("drain") or {})
        if st is not None and v.live:
            _store_and_lag(t, st.get("stats") or {})
    t.append(f"  {_('mode')} {_(MODE_LABEL.get(r['mode'], r['mode']))}")
    eff = st["mode"] if v.live and st and st["mode"] else r["mode"]
    if eff != r["mode"]:
        t.append(f" → {_('in effect')} {_(MODE_LABEL.get(eff, eff))}", style="bold yellow")
    if st is None:
        t.append(f"  {_('runner: never seen')}", style="dim")
    elif not v.live:
        t.append(f"  {_('last heartbeat')} {fmt_datetime(st['heartbeat_at'], tz, 'datetime')}", style="dim")
    return t


def _store_and_lag(t: Text, stats: dict[str, Any]) -> None:
    """(issue 25) A runner whose loop runs late dials nothing until it catches up; store outages it lived through."""
    lag = stats.get("lag") or {}
    if lag.get("lagging"):
        t.append("  " + _("LOOP LATE {worst:.1f}s (limit {limit:g}s): no new dials").format(
            worst=float(lag.get("worst_s", 0.0)), limit=float(lag.get("limit_s", 0.0))), style="bold red")
    elif float(lag.get("now_s", 0.0)) >= 0.5:
        t.append("  " + _("loop {lag:.1f}s late").format(lag=float(lag["now_s"])), style="yellow")
    store = stats.get("store") or {}
    if store.get("outages"):
        t.append("  " + _("store away {n}x, {replayed} write(s) replayed").format(
            n=store["outages"], replayed=store.get("replayed", 0)), style="dim")


def _drain_figures(t: Text, drain: dict[str, Any]) -> None:
    """(issue 25) A stopping campaign dials no more: how many calls and wrap-ups it still waits for, and when
    whatever is left would be hung up (`[telephony] drain_s`)."""
    if not drain:
        return
    t.append("  " + _("{calls} call(s) left ({talking} talking), {wraps} wrap-up(s); hang-up in {left}").format(
        calls=drain.get("calls", 0), talking=drain.get("conversations", 0), wraps=drain.get("wraps", 0),
        left=dur(drain.get("hard_stop_in_s"))), style="bold yellow")


def _lines_line(v: CampaignView) -> Text:
    st = v.status
    if v.live and st is not None:
        t = Text(f"{_('dial level')} {st['dial_level']:.2f}   {_('dialling')} {st['lines_dialing']}   "
                 f"{_('ringing')} {st['lines_ringing']}   {_('waiting for agent')} {st['waiting']}")
        _telephony_figures(t, (st.get("stats") or {}).get("telephony") or {})
        return t
    return Text(_("no lines: no runner is live for this campaign"), style="dim")


def _telephony_figures(t: Text, tel: dict[str, Any]) -> None:
    """(issue 13) A trunk that is down says why; the lines this host carries against its measured limit."""
    trunk = tel.get("trunk") or {}
    if trunk.get("down"):
        t.append(f"   {_('TRUNK DOWN')}: {trunk.get('reason', '')}", style="bold red")
    cap = tel.get("capacity") or {}
    if cap.get("max_lines_per_host"):
        over = cap.get("configured_lines", 0) > cap["max_lines_per_host"]
        t.append(f"   {_('lines')} {cap.get('lines')}/{cap['max_lines_per_host']} {_('per host')}"
                 + (f" ({_('clamped')})" if over else ""), style="yellow" if over else "dim")


def _budget_left(t: Text, b: dict[str, Any] | None) -> None:
    """(issue 31) What is left of the regime's window budget, in abandons (limit x answers - abandons, AMD false
    positives counted where the regime counts them): red when less than one is left (the pacer is progressive)."""
    if not b:
        return
    left, allowed = float(b.get("left", 0.0)), float(b.get("allowed", 0.0))
    t.append(f"{_('budget left')} {left:.1f}/{allowed:.1f} ({b.get('window', '')}) ",
             style="bold red" if left < 1.0 else "dim")


def _figures(v: CampaignView) -> list[Text]:
    r = v.report
    w = r["abandon_windows"]
    ab = Text(f"{_('abandon')} ")
    for key, name in (("now", f"{_('now')}({w['now']['span']})"), ("1h", "1h"), ("24h", "24h"),
                      ("window", f"{_('window')}({r['abandon_window']})")):
        rate = w[key]["rate"]
        style = "bold red" if rate is not None and rate > r["abandon_limit"] else (
            "yellow" if rate is not None and rate > r["abandon_target"] else "")
        ab.append(f"{name} ", style="dim")
        ab.append(pct(rate), style=style)
        ab.append("  ")
    ab.append(f"{_('target')} {pct(r['abandon_target'])} {_('limit')} {pct(r['abandon_limit'])} "
              f"[{_('regime')} {str(r['abandon_regime']).upper()}] ")
    _budget_left(ab, ((v.status or {}).get("stats") or {}).get("budget") if v.live else None)
    ab.append(sparkline(v.trend, r["abandon_limit"]), style="cyan")
    figs = Text(f"{_('hit rate')} {pct(r['hit_rate'])}  {_('AHT')} {dur(r['aht_s'])}  "
                f"{_('occupancy')} {pct(r['occupancy'], 0)}")
    counts = Text(f"{_('attempts')} {r['attempts']}  {_('answered')} {r['answered']}  {_('abandoned')} "
                  f"{r['abandoned']}  {_('to agent')} {r['connected_to_agent']}  {_('sales')} {r['sales']} "
                  f"{yen(r['revenue'])}  "
                  f"{_('DNC')} {r['dnc']}  {_('refused')} {r['refusals']['total']}", style="dim")
    figs.append("   " + last_hour_text(r.get("last_hour") or {}))
    return [ab, figs, counts]


def window_words(h: dict[str, Any]) -> str:
    """'last 60 min', or 'first 12 min' while the campaign is younger than an hour."""
    if h.get("full_hour", True):
        return _("last 60 min")
    return _("first {minutes} min").format(minutes=int(float(h.get("window_s", 0)) // 60))


def last_hour_text(h: dict[str, Any]) -> str:
    """Counts in the last 60 minutes — per-hour figures — or, while the campaign is younger than an hour, the
    counts since it began and for how long (never a rate scaled up from a few minutes; issue 27)."""
    if h.get("full_hour", True):
        head = _("last 60 min")
    else:
        head = _("first {minutes} min (per-hour figures after an hour)").format(
            minutes=int(float(h.get("window_s", 0)) // 60))
    nb = "\u00a0"
    return (f"{head}: {_('dials')}{nb}{h.get('dials', 0)}  {_('connects')}{nb}{h.get('connects', 0)}  "
            f"{_('sales')}{nb}{h.get('sales', 0)}{nb}({yen(h.get('revenue', 0))})")


def _agent_sort(a: dict[str, Any]) -> tuple[int, str]:
    order = AGENT_ORDER + ("idle",)
    return (order.index(a["state"]) if a["state"] in order else 99, a["login"])


def agents_head(v: CampaignView, first: int, shown: int) -> Text:
    counts: dict[str, int] = {}
    for a in v.agents:
        counts[a["state"]] = counts.get(a["state"], 0) + 1
    head = Text(f"{_('agents')} ", style="bold")
    head.append("  ".join(f"{_(STATE_LABEL.get(s, s))} {counts[s]}" for s in AGENT_ORDER + ("idle",)
                          if counts.get(s)) or _("none logged in"))
    if shown < len(v.agents):
        head.append(f"   {first + 1}–{first + shown}/{len(v.agents)} ↑↓", style="bold cyan")
    return head


def agents_table(v: CampaignView, tz: str, first: int, rows: int, stats: bool, width: int) -> Table:
    t = Table(box=None, padding=(0, 1), show_header=stats, header_style="bold", expand=False)
    t.add_column(_("agent"), no_wrap=True, overflow="ellipsis", max_width=16)
    t.add_column(_("state"), no_wrap=True)
    t.add_column(_("for"), justify="right", no_wrap=True)
    if stats:
        for col in (_("calls"), _("talk"), _("occupancy"), _("sales")):
            t.add_column(col, justify="right", no_wrap=True)
    t.add_column(_("customer"), no_wrap=True, overflow="ellipsis", max_width=max(12, min(40, width - 40)))
    per_agent = v.report.get("agents") or {}
    for a in sorted(v.agents, key=_agent_sort)[first:first + rows]:
        extra = customer_text(a["customer"]) or (label("pause", a["pause_reason"]) if a["state"] == AgentState.PAUSED else "")
        if a["pending"]:
            extra = (extra + f" → {_(STATE_LABEL.get(a['pending'], a['pending']))}").strip()
        when = dur(a["for_s"]) if a["for_s"] is not None else (
            f"{_('since')} {fmt_datetime(a['since'], tz, 'hm')}" if a["since"] else "—")
        cells: list[str | Text] = [f"{a['login']} {a['name']}",
                                   Text(_(STATE_LABEL.get(a["state"], a["state"])),
                                        style=STATE_STYLE.get(a["state"], "")), when]
        if stats:
            s = per_agent.get(a["login"]) or {}
            cells += [str(s.get("calls", 0)), dur(s.get("talk_s")), pct(s.get("occupancy"), 0),
                      str(s.get("sales", 0))]
        row(t, *cells, extra)
    return t


def segments_table(v: CampaignView, width: int = 0) -> Table:
    """List progress per segment. With WIDTH (the cells available), columns are chosen to fit (issue 27: at
    80x24 in Japanese a squeezed table read `セ … 発 …`): lift, then control, then exhausted are left out
    before any column is cut."""
    held = v.report.get("holdout") or {}  # issue 19: control-group size and lift, only when there is a hold-out
    groups, lift = held.get("groups", {}), (held.get("lift") or {}).get("segments", {})
    cols = [_("segment"), _("dialled"), _("left"), _("exhausted"), _("entries")]
    cols += [_("control")] if groups else []
    cols += [_("lift")] if lift else []
    rows: list[list[str]] = []
    for name, p in v.report["penetration"].items():
        cells = [label("segment", name), str(p["dialled"]), str(p["remaining"]), str(p["exhausted"]),
                 str(p["entries"])]
        if groups:
            cells.append(str(groups.get(name, {}).get("control", "—")))
        if lift:
            e = lift.get(name, {})
            cells.append(f"{e['purchase_rate_lift']:+.1%}" if e.get("enough_data") else "—")
        rows.append(cells)
    keep = list(range(len(cols)))
    if width:
        def needed(idx: list[int]) -> int:
            return sum(max([cell_len(cols[i]), *(cell_len(r[i]) for r in rows)]) + 2 for i in idx)

        for drop in (_("lift"), _("control"), _("exhausted")):
            if needed(keep) <= width:
                break
            if drop in cols:
                keep.remove(cols.index(drop))
    seg = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    for i in keep:
        seg.add_column(cols[i], justify="left" if i == 0 else "right", no_wrap=True)
    for r in rows:
        row(seg, *(r[i] for i in keep))
    return seg


def hopper_line(v: CampaignView) -> Text:
    h = v.hopper
    t = Text(f"{_('hopper')} ", style="bold")
    t.append(f"{_('held by runner')} {h.get('held', 0)}  {_('due now')} {h.get('due', 0)}  "
             f"{_('later')} {h.get('later', 0)}   ")
    t.append(f"{_('list exhausted in')} ", style="bold")
    if v.eta_h is None:
        t.append(_("— (no dials in the last hour)") if v.live else _("— (not dialling)"), style="dim")
    else:
        hours, minutes = divmod(int(v.eta_h * 60 + 0.5), 60)
        t.append("≥ " + _("{h} h {m} min").format(h=hours, m=minutes)
                 + f" ({_('at the pace of')} {window_words(v.report.get('last_hour') or {})}: "
                 + f"{v.last_hour['dials']:.0f} {_('dials')})")
    return t


def quarters_table(v: CampaignView, tz: str) -> Table:
    t = Table(title=_("by 15 minutes"), title_justify="left", title_style="bold", box=None, padding=(0, 1),
              header_style="bold")
    for col in (_("from"), _("attempts"), _("abandon"), _("connects"), _("occupancy")):
        t.add_column(col, justify="left" if col == _("from") else "right", no_wrap=True)
    limit, target = v.report["abandon_limit"], v.report["abandon_target"]
    for q in v.quarters:
        rate = q["abandon"]
        style = "bold red" if rate is not None and rate > limit else ("yellow" if rate is not None and rate > target
                                                                      else "")
        row(t, fmt_datetime(q["at"], tz, "hm"), str(q["attempts"]), Text(pct(rate), style=style), str(q["connects"]),
            pct(q["occupancy"], 0))
    return t


def notices(v: CampaignView, tz: str, width: int, n_events: int, n_commands: int, ttl_s: float,
            now: datetime) -> list[Text]:
    out: list[Text] = []
    for e in v.events[:n_events]:
        if e["kind"] in ("mode_drop", "mode_restore", "trunk_down", "agent_unavailable", "recovered", "wrap_timeout",
                         *ISSUE25_NOTICES, *NOTICES_27):
            out.append(Text(f"{fmt_datetime(e['at'], tz, 'time')} {event_text(e['kind'], e['message'])}"[: width - 4],
                            style="yellow" if e["level"] != "info" else "dim"))
    for c in v.commands[:n_commands]:
        created = aware(c["created_at"]) or now
        if c["applied_at"]:
            state = f"{_('applied')}: {command_result(c['result'])}"
            style = "dim" if c["result"].startswith("expired") else "green"
        elif (now - created).total_seconds() > ttl_s or not v.live:
            state, style = _("expired: no runner applied it"), "dim"
        else:
            state, style = _("requested"), "bold yellow"
        out.append(Text(f"{_('cmd')} #{c['id']} {command_text(c['command'], c['argument'])} {fmt_datetime(created, tz, 'time')}"
                        f" — {state}"[: width - 4], style=style))
    return out


class _Tier(TypedDict):
    """How much of the campaign panel to show: fewer events and commands first, then no segments."""

    n_events: int
    n_commands: int
    show_segments: bool


def render_campaign(v: CampaignView, tz: str, width: int, *, agent_first: int = 0, agent_rows: int = 12,
                    large: bool = False, n_events: int = 2, n_commands: int = 2, show_segments: bool = True,
                    ttl_s: float = 600.0, now: datetime | None = None) -> RenderableType:
    now = now or datetime.now(UTC)
    lines: list[RenderableType] = [_status_line(v, tz), _lines_line(v), *_figures(v)]
    shown = min(agent_rows, max(0, len(v.agents) - agent_first))
    head = agents_head(v, agent_first, shown)
    agents = agents_table(v, tz, agent_first, agent_rows, large, width)
    if large:
        right = Group(segments_table(v), Text(""), hopper_line(v), Text(""), quarters_table(v, tz),
                      Text(_("occupancy = (talk + wrap-up) ÷ logged-in time (agent state log); per-hour figures only "
                             "after an hour of activity"), style="dim"))  # issue 27: the term, defined
        grid = Table.grid(padding=(0, 3), expand=True)
        grid.add_column(ratio=11)
        grid.add_column(ratio=9)
        row(grid, Group(head, agents), right)
        lines.append(grid)
    elif width >= 110:
        grid = Table.grid(padding=(0, 3))
        grid.add_column()
        grid.add_column()
        row(grid, Group(head, agents), segments_table(v) if show_segments else Text(""))
        lines.append(grid)
        if show_segments:
            lines.append(hopper_line(v))
    else:
        lines += [head, agents]
        if show_segments:
            lines.append(segments_table(v, width - 4))
    lines += notices(v, tz, width, n_events, n_commands, ttl_s, now)
    return Panel(Group(*lines), title=Text(v.name, style="bold"), title_align="left", padding=(0, 1))


def frame_height(renderable: RenderableType, width: int) -> int:
    """How many terminal lines a renderable takes at this width."""
    con = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    return len(con.render_lines(renderable, con.options.update(width=width), pad=False))


@dataclass
class Monitor:
    """State of one monitor session: which campaign is selected, where the agent list is scrolled, which
    prompt is open."""

    engine: Engine
    cfg: Config
    campaign: str | None = None
    store: str = ""  # which store this is, shown when it holds nothing
    by: str = field(default_factory=requester)
    # (issue 28) who sends the commands: the service layer checks and records it
    who: Principal = field(default_factory=local_admin)
    selected: int = 0
    agent_first: int = 0
    agent_page: int = 4
    prompt: str = ""  # "" | "confirm" | "mode" | "target"
    pending: tuple[str, str] | None = None
    line: LineField = field(default_factory=LineField)
    message: str = ""
    quit: bool = False
    names: list[str] = field(default_factory=list)
    views: dict[str, CampaignView] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)
    seen_at: datetime | None = None  # the time of the last refresh: what "live" was judged against
    nodes: list[NodeRow] = field(default_factory=list)  # issue 18: the dialer nodes (multi-node on PostgreSQL)
    store_error: str = ""  # (issue 25) the store could not be read: the last view stays, marked stale
    store_error_since: datetime | None = None

    def refresh(self, now: datetime | None = None) -> None:
        """(issue 25) A store that is down or full must not end the monitor: keep the last view and say why."""
        from dialer.journal import describe_outage

        try:
            self._refresh(now)
        except Exception as error:
            why = describe_outage(error)
            if why is None:
                raise
            if not self.store_error:
                self.store_error_since = now or datetime.now(UTC)
            self.store_error = why
            return
        self.store_error, self.store_error_since = "", None

    def _refresh(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.seen_at = now
        self.summary = monitor_service.summaries(self.engine, self.campaign, now)
        self.names = [c["name"] for c in self.summary]
        self.nodes = monitor_service.nodes(self.engine)
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
    def request(self, command: str, argument: str = "", now: datetime | None = None) -> int | None:
        """Record a command for the live runner; with none live, say so and record nothing."""
        name = self.current
        assert name is not None
        now = now or self.seen_at or datetime.now(UTC)
        live, beat = monitor_service.runner_alive(self.engine, name, now)
        if not live:
            when = fmt_datetime(beat, self.cfg.schedules.timezone, "datetime") if beat else _("never")
            self.message = _("{name}: no live runner (last heartbeat {when}); {command} not sent").format(
                name=name, when=when, command=command_text(command))
            return None
        cid = floor_service.send_command(self.engine, self.who, name, command, argument, requested_by=self.by)
        self.message = _("requested #{id}: {command} on {name}").format(
            id=cid, command=command_text(command, argument), name=name)
        return cid

    def handle_key(self, raw: str) -> None:
        k = nfkc(raw) if len(raw) == 1 else raw
        if self.prompt == "confirm":
            if k in ("y", "Y", "enter") and self.pending:
                self.request(*self.pending)
            else:
                self.message = _("cancelled")
            self.prompt, self.pending = "", None
            return
        if self.prompt == "mode":
            if k in ("1", "2", "3", "4"):
                self._ask("mode", MODES[int(k) - 1])
            else:
                self.prompt, self.message = "", _("cancelled")
            return
        if self.prompt == "target":
            if k == "esc":
                self.prompt, self.message = "", _("cancelled")
            elif k == "enter":
                self._target(self.line.text.strip())
            else:
                self.line.key(k)
            return
        if k in ("q", "Q"):
            self.quit = True
            return
        if not self.current:
            return
        total = len(self.views[self.current].agents) if self.current in self.views else 0
        if k == "p":
            self._ask("pause")
        elif k == "r":
            self._ask("resume")
        elif k == "s":
            self._ask("stop")
        elif k == "S":  # (issue 25) hard stop: hang up the calls a drain waits for
            self._ask("stop_now")
        elif k == "m":
            self.prompt = "mode"
        elif k == "t":
            self.prompt, self.line = "target", LineField()
        elif k in ("tab", "n", "right"):
            self.selected, self.agent_first = (self.selected + 1) % len(self.names), 0
        elif k in ("backtab", "left"):
            self.selected, self.agent_first = (self.selected - 1) % len(self.names), 0
        elif k in ("down", "j"):
            self.agent_first = min(max(0, total - self.agent_page), self.agent_first + 1)
        elif k in ("up", "k"):
            self.agent_first = max(0, self.agent_first - 1)
        elif k in ("pgdn", " "):
            self.agent_first = min(max(0, total - self.agent_page), self.agent_first + self.agent_page)
        elif k == "pgup":
            self.agent_first = max(0, self.agent_first - self.agent_page)
        elif k == "home":
            self.agent_first = 0

    def _ask(self, command: str, argument: str = "") -> None:
        self.prompt, self.pending = "confirm", (command, argument)

    def _target(self, text: str) -> None:
        name = self.current
        limit = self.views[name].report["abandon_limit"] if name in self.views else 0.03
        try:
            value = float(nfkc(text).rstrip("%")) / 100.0
        except ValueError:
            self.message = _("not a number: {text!r} (type the target in percent, e.g. 1.5)").format(text=text)
            self.prompt = ""
            return
        if not 0 < value <= limit:
            self.message = _("target must be above 0% and at most the limit {limit}").format(
                limit=f"{limit * 100:.1f}%")
            self.prompt = ""
            return
        self._ask("target", f"{value:.4f}")

    # ------------------------------------------------------------------ drawing
    def render(self, width: int = 80, now: datetime | None = None, height: int | None = None) -> RenderableType:
        """One frame; with a height, the agent list takes the rows left over and the legend always shows."""
        now = now or datetime.now(UTC)
        tz = self.cfg.schedules.timezone
        top: list[RenderableType] = []
        head = Text()
        head.append(f"{_('tsunagu monitor')} ", style="bold")
        head.append(fmt_datetime(now, tz, "full"))
        if len(self.names) > 1:
            head.append(f"   {_('campaign')} {self.selected + 1}/{len(self.names)} (tab)")
        top.append(head)
        if self.store_error:  # (issue 25)
            since = fmt_datetime(self.store_error_since, tz, "time") if self.store_error_since else ""
            top.append(Text(_("STORE UNREACHABLE since {since} ({why}): showing the last view; runners keep their "
                              "calls, dial nothing and journal outcomes until it is back").format(
                since=since, why=self.store_error), style="bold red"))
        if self.nodes:  # issue 18: one line per node (lines, agents, health, last heartbeat)
            top.append(Text("\n".join(node_lines(self.nodes)), style="dim"))
        if len(self.summary) > 1:
            line = Text()
            for i, c in enumerate(self.summary):
                style = "reverse" if i == self.selected else ""
                state = _("no runner") if c["state"] == "no_runner" else _(CAMPAIGN_STATE.get(c["state"], c["state"]))
                line.append(f" {c['name']}:{state}/{_(MODE_LABEL.get(c['effective'] or c['mode'], c['mode']))} ",
                            style=style)
            top.append(line)
        footer = self._footer()
        if not self.names:
            where = f" {self.store}" if self.store else ""
            top.append(Text(_("no campaigns in the store{where} yet (the runner records a campaign on its first "
                              "start)").format(where=where), style="dim"))
            return Group(*top, footer)
        v = self.views[self.names[self.selected]]
        ttl = self.cfg.ui.command_ttl_s()
        large = width >= LARGE[0] and (height is None or height >= LARGE[1])
        tiers: list[_Tier] = [
            {"n_events": 2, "n_commands": 4 if large or width >= 110 else 2, "show_segments": True},
            {"n_events": 1, "n_commands": 1, "show_segments": True},
            {"n_events": 0, "n_commands": 0, "show_segments": True},
            {"n_events": 0, "n_commands": 0, "show_segments": False}]
        total = len(v.agents)
        if height is None:
            rows = max(total, 1)
            whole = render_campaign(v, tz, width, agent_first=0, agent_rows=rows, large=large, ttl_s=ttl, now=now,
                                    **tiers[0])
            self.agent_page = rows
            return Group(*top, whole, footer)
        fixed = frame_height(Group(*top, footer), width)
        body: RenderableType = Text("")
        for tier in tiers:
            base = frame_height(render_campaign(v, tz, width, agent_first=0, agent_rows=0, large=large,
                                                ttl_s=ttl, now=now, **tier), width)
            rows = height - fixed - base
            if rows >= min(total, 1) or tier is tiers[-1]:
                rows = max(1, rows)
                self.agent_page = rows
                self.agent_first = max(0, min(self.agent_first, total - rows))
                body = render_campaign(v, tz, width, agent_first=self.agent_first, agent_rows=rows, large=large,
                                       ttl_s=ttl, now=now, **tier)
                break
        return Group(*top, body, footer)

    def _footer(self) -> Text:
        t = Text()
        if self.prompt == "confirm" and self.pending:
            cmd, arg = self.pending
            t.append(_("{command} on {name}? y = yes, any other key = no").format(
                command=command_text(cmd, arg), name=self.current), style="bold reverse")
        elif self.prompt == "mode":
            t.append(_("mode: 1 preview  2 progressive  3 power  4 predictive  (other key: cancel)"),
                     style="bold reverse")
        elif self.prompt == "target":
            t.append(_("abandon target in % (Enter to confirm, Esc to cancel): ") + self.line.text + "▏",
                     style="bold reverse")
        else:
            if self.message:
                t.append(self.message + "\n", style="bold")
            t.append(LEGEND(), style="dim")
        return t


def LEGEND() -> str:  # noqa: N802 - a translated constant
    return _("p pause  r resume  s stop  m mode  t target  tab next  ↑↓ agents  q quit")


def run_live(monitor: Monitor, refresh_s: float = 0.5, max_s: float | None = None) -> None:
    """Full-screen loop: redraw at least twice a second, handle keys as they come."""
    from rich.console import Console
    from rich.live import Live

    from dialer.views.render import cbreak_keys

    console = Console()
    monitor.refresh()
    start = time.monotonic()
    with cbreak_keys() as keys, Live(monitor.render(console.width, height=console.height), console=console, screen=True,
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
                live.update(monitor.render(console.width, height=console.height), refresh=True)
                last = time.monotonic()
