"""The campaign report as pictures: time series and breakdowns computed from the store's rows with the
report's own definitions (dialer.reports), drawn with matplotlib and written as one self-contained HTML file
(PNG charts embedded as data: URIs — nothing fetched at view time) or one PNG sheet.

Charts: abandon rate over time against target and limit; occupancy and talk minutes per agent-hour by hour;
hit rate by hour; the funnel dialled → answered → connected → sale; list penetration by segment; refusal
reasons. The HTML lays every chart in a fixed box (CHART_BOX) so a screenshot test knows where to look.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from dialer.domain.agent_time import AgentTime, agent_time, stretch_end, team_time
from dialer.i18n import N_, _, fmt_datetime, language
from dialer.reports import (
    IN_FLIGHT,
    SALE_OUTCOMES,
    campaign_start,
    campaign_team,
    count_abandons,
    latest_dispositions,
    open_until,
    team_spans,
)
from dialer.service.reports import PeriodRows
from dialer.views.labels import label
from dialer.views.render import aware, dur, num, pct, yen
from lists.csvsafe import SafeDictWriter

CHART_W, CHART_H = 900, 340  # CSS pixels of each chart box in the HTML
CHART_TOP, CHART_GAP = 150, 30  # first box's top, gap between boxes
CHARTS = ("abandon", "occupancy", "hit", "funnel", "penetration", "outcomes", "refusals")
# list progress: disjoint parts of each segment's entries, stacked in this order (they add up to the entries)
PEN_PARTS = (("done", "#1e8449", N_("finished")), ("retry", "#2e86c1", N_("dialled, to retry")),
             ("not_dialled", "#aed6f1", N_("not dialled yet")), ("exhausted", "#95a5a6", N_("exhausted")),
             ("blocked", "#c0392b", N_("blocked / withdrawn")))
FUNNEL_COLOURS = ("#27ae60", "#2e86c1", "#5dade2", "#aed6f1")


def chart_boxes() -> dict[str, tuple[int, int, int, int]]:
    """(left, top, width, height) of each chart in the HTML page, in CSS pixels."""
    return {name: (20, CHART_TOP + i * (CHART_H + CHART_GAP), CHART_W, CHART_H) for i, name in enumerate(CHARTS)}


@dataclass
class Series:
    tz: str
    lo: datetime | None
    hi: datetime | None
    hours: list[datetime] = field(default_factory=list)
    abandon: list[float | None] = field(default_factory=list)
    hit: list[float | None] = field(default_factory=list)
    occupancy: list[float | None] = field(default_factory=list)
    talk_per_agent_hour: list[float | None] = field(default_factory=list)
    agent_hours: list[AgentTime] = field(default_factory=list)  # team time per hour (dialer.domain.agent_time)
    funnel: dict[str, int] = field(default_factory=dict)
    target: float = 0.0
    limit: float = 0.0


def build_series(rows: PeriodRows, tz: str, fp_share: float, lo: datetime | None, hi: datetime | None,
                 now: datetime | None = None) -> Series:
    """Hourly figures; agent time per hour is `dialer.domain.agent_time` over the stretches the report counts,
    so the hours of a whole run add up to the report's logged-in, talk and wrap time."""
    camp = rows.campaign
    now = now or datetime.now(UTC)
    s = Series(tz, lo, hi, target=camp.abandon_target, limit=camp.abandon_limit)
    team = campaign_team(rows.stretches, rows.attempts, camp.id)
    spans = team_spans(rows.stretches, camp.id, team)
    until = open_until(rows.status, camp.state, now)
    start = campaign_start(rows.stretches, rows.attempts, camp.id)
    times = [t for a in rows.attempts for t in (aware(a.dialed_at),) if t is not None]
    edges = times + [t for sp in spans for t in (sp.started_at, min(stretch_end(sp, until), now))
                     if start is None or t >= start]
    if lo is not None:
        edges = [t for t in edges if t >= lo]
    if hi is not None:
        edges = [t for t in edges if t < hi]
    if edges:
        zone = ZoneInfo(tz)
        first = min(edges).astimezone(zone).replace(minute=0, second=0, microsecond=0)
        last = max(edges).astimezone(zone)
        n = min(24 * 14, int((last - first).total_seconds() // 3600) + 1)
        s.hours = [first + timedelta(hours=i) for i in range(n)]
    for h in s.hours:
        h_end = h + timedelta(hours=1)
        in_hour = [a for a in rows.attempts if h <= (aware(a.dialed_at) or h) < h_end]
        c = count_abandons(rows.attempts, h, h_end)
        s.abandon.append(c.rate(camp.abandon_regime, fp_share))
        finished = [a for a in in_hour if a.state not in IN_FLIGHT]
        hit_c = count_abandons(in_hour, None)
        s.hit.append(hit_c.answered / len(finished) if finished else None)
        b_lo = max(x for x in (h, start, lo) if x is not None)
        b_hi = min(x for x in (h_end, hi, now) if x is not None)
        t = team_time(agent_time(spans, b_lo, b_hi, until)) if b_hi > b_lo else AgentTime()
        s.agent_hours.append(t)
        s.occupancy.append(t.occupancy)
        s.talk_per_agent_hour.append((t.talk_s / 60.0) / (t.logged_in_s / 3600.0) if t.logged_in_s > 0 else None)
    ids = {a.id for a in rows.attempts}
    sales = [d for d in latest_dispositions(rows.dispositions) if d.attempt_id in ids and d.outcome in SALE_OUTCOMES]
    total = count_abandons(rows.attempts, None)
    s.funnel = {"dialled": len(rows.attempts), "answered": total.answered,
                "connected": sum(1 for a in rows.attempts if a.agent_connected_at is not None), "sale": len(sales)}
    return s


def _agent_cells(t: AgentTime | None) -> dict[str, str]:
    """Agent time columns (dialer.domain.agent_time): on ALL rows only (agents are not split by segment)."""
    if t is None:
        return {"logged_in_s": "", "talk_s": "", "wrap_s": "", "occupancy": ""}
    occ = t.occupancy
    return {"logged_in_s": f"{t.logged_in_s:.0f}", "talk_s": f"{t.talk_s:.0f}", "wrap_s": f"{t.wrap_s:.0f}",
            "occupancy": "" if occ is None else f"{occ:.4f}"}


def daily_rows(rows: PeriodRows, tz: str, fp_share: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per local day × segment (and an ALL row per day, with the team's agent time that day), the
    report's definitions per row."""
    zone = ZoneInfo(tz)
    now = now or datetime.now(UTC)
    camp = rows.campaign
    spans = team_spans(rows.stretches, camp.id, campaign_team(rows.stretches, rows.attempts, camp.id))
    until = open_until(rows.status, camp.state, now)
    start = campaign_start(rows.stretches, rows.attempts, camp.id)

    def day_time(day: date) -> AgentTime:
        d_lo = datetime(day.year, day.month, day.day, tzinfo=zone)
        d_hi = d_lo + timedelta(days=1)
        return team_time(agent_time(spans, max(d_lo, start) if start else d_lo, min(d_hi, now), until))

    by: dict[tuple[date, str], list[Any]] = defaultdict(list)
    for a in rows.attempts:
        t = aware(a.dialed_at)
        if t is None:
            continue
        d = t.astimezone(zone).date()
        by[(d, a.segment or "")].append(a)
        by[(d, "ALL")].append(a)
    disps = {d.attempt_id: d for d in latest_dispositions(rows.dispositions)}
    out = []
    for (day, seg), atts in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] == "ALL", kv[0][1])):
        c = count_abandons(atts, None)
        finished = [a for a in atts if a.state not in IN_FLIGHT]
        sales = [disps[a.id] for a in atts if a.id in disps and disps[a.id].outcome in SALE_OUTCOMES]
        rate = c.rate(rows.campaign.abandon_regime, fp_share)
        out.append({"date": day.isoformat(), "segment": seg, "attempts": len(atts), "answered": c.answered,
                    "abandoned": c.abandoned, "abandon_rate": "" if rate is None else f"{rate:.4f}",
                    "hit_rate": f"{c.answered / len(finished):.4f}" if finished else "",
                    "connected_to_agent": sum(1 for a in atts if a.agent_connected_at is not None),
                    "sales": len(sales), "revenue": f"{sum(d.amount for d in sales):.0f}",
                    **_agent_cells(day_time(day) if seg == "ALL" else None)})
    return out


def write_daily_csv(rows: list[dict[str, Any]], out: IO[str]) -> None:
    fields = ["date", "segment", "attempts", "answered", "abandoned", "abandon_rate", "hit_rate",
              "connected_to_agent", "sales", "revenue", "logged_in_s", "talk_s", "wrap_s", "occupancy"]
    w = SafeDictWriter(out, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)


# ------------------------------------------------------------------------------------------- drawing

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    have = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [n for n in ("IPAGothic", "IPAexGothic", "Noto Sans CJK JP", "TakaoGothic", "VL Gothic") if n in have]
    plt.rcParams["font.family"] = [*cjk, "DejaVu Sans"]
    plt.rcParams["axes.spines.top"] = False
    plt.rcParams["axes.spines.right"] = False
    return plt


def _hour_labels(s: Series) -> list[str]:
    return [fmt_datetime(h, s.tz, "hm") if i and h.hour else fmt_datetime(h, s.tz, "md") + "\n"
            + fmt_datetime(h, s.tz, "hm") for i, h in enumerate(s.hours)]


def _none0(v: list[float | None], scale: float = 1.0) -> list[float]:
    return [float("nan") if x is None else x * scale for x in v]


def draw(name: str, ax: Any, s: Series, rep: dict[str, Any]) -> None:
    """One chart onto matplotlib axes."""
    x = list(range(len(s.hours)))
    if name == "abandon":
        ax.plot(x, _none0(s.abandon, 100), marker="o", color="#c0392b", label=_("abandon rate"))
        ax.axhline(s.target * 100, color="#e67e22", linestyle="--", label=_("target"))
        ax.axhline(s.limit * 100, color="#7f0000", linestyle="-", label=_("limit"))
        ax.set_ylabel("%")
        ax.set_title(_("Abandon rate by hour against target and limit"))
        ax.legend(loc="upper right")
    elif name == "occupancy":
        ax.bar(x, _none0(s.talk_per_agent_hour), color="#5dade2", label=_("talk minutes per agent-hour"))
        ax.set_ylabel(_("minutes"))
        ax2 = ax.twinx()
        ax2.plot(x, _none0(s.occupancy, 100), marker="o", color="#1e8449", label=_("occupancy"))
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("%")
        ax.set_title(_("Occupancy and talk minutes per agent-hour by hour"))
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left")
    elif name == "hit":
        ax.plot(x, _none0(s.hit, 100), marker="s", color="#8e44ad")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(_("Hit rate (answered by a person) by hour"))
    elif name == "funnel":
        steps = [(k, lab) for k, lab in funnel_steps()]
        vals = [s.funnel.get(k, 0) for k, _l in steps]
        bars = ax.barh([lab for _k, lab in steps][::-1], vals[::-1], color=list(FUNNEL_COLOURS)[::-1])
        for b, v in zip(bars, vals[::-1], strict=True):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v}", va="center")
        ax.set_title(_("Funnel: dialled → answered → connected → sale"))
        _integer_axis(ax.xaxis)
    elif name == "penetration":
        parts = penetration_parts(rep.get("penetration") or {})
        segs = [label("segment", k) for k in parts]
        bottom = [0] * len(parts)
        for key, colour, word in PEN_PARTS:
            vals = [p[key] for p in parts.values()]
            ax.bar(segs, vals, bottom=bottom, color=colour, label=_(word))
            bottom = [a + b for a, b in zip(bottom, vals, strict=True)]
        for i, total in enumerate(bottom):  # the bar's height is the segment's entries, said on top
            ax.text(i, total, f"{total}", ha="center", va="bottom")
        ax.set_ylabel(_("entries"))
        ax.set_ylim(0, max(bottom, default=0) * 1.15 + 1)
        ax.set_title(_("List progress by segment (entries, not calls)"))
        ax.legend(loc="upper right", fontsize=8)
        _integer_axis(ax.yaxis)
    elif name == "outcomes":
        items = sorted((rep.get("dispositions") or {}).items(), key=lambda kv: kv[1])
        names = [label("outcome", k) for k, _v in items] or [_("none")]
        vals = [v for _k, v in items] or [0]
        bars = ax.barh(names, vals, color="#7d3c98")
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v}", va="center")
        ax.set_title(_("Call outcomes recorded by agents"))
        _integer_axis(ax.xaxis)
    elif name == "refusals":
        reasons = (rep.get("refusals") or {}).get("by_reason") or {}
        items = sorted(reasons.items(), key=lambda kv: kv[1])
        names = [label("refusal", k.split(" ", 1)[-1]) for k, _v in items] or [_("none")]
        vals = [v for _k, v in items] or [0]
        bars = ax.barh(names, vals, color="#d35400")
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v}", va="center")
        ax.set_title(_("Refusal reasons"))
        _integer_axis(ax.xaxis)
    if name in ("abandon", "occupancy", "hit") and s.hours:
        step = max(1, len(x) // 12)
        ax.set_xticks(x[::step])
        ax.set_xticklabels(_hour_labels(s)[::step], fontsize=8)
    elif name in ("abandon", "occupancy", "hit"):
        ax.text(0.5, 0.5, _("no attempts in this period"), ha="center", transform=ax.transAxes)


def _integer_axis(axis: Any) -> None:
    """Counts are whole: no 0.5 calls on an axis."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def funnel_steps() -> list[tuple[str, str]]:
    return [("dialled", _("dialled")), ("answered", _("answered")), ("connected", _("connected to agent")),
            ("sale", _("sale"))]


def penetration_parts(pen: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Each segment's entries split into disjoint parts (finished, dialled and due again, not dialled yet,
    exhausted, blocked) that add up to its entries: the old chart stacked "dialled" on "left", counting a
    dialled entry still to retry twice (a 64-entry segment drew as ~92)."""
    out = {}
    for seg, p in pen.items():
        fresh = p.get("not_dialled", 0)
        out[seg] = {"done": p.get("done", 0), "retry": p.get("remaining", 0) - fresh, "not_dialled": fresh,
                    "exhausted": p.get("exhausted", 0), "blocked": p.get("blocked", 0),
                    "entries": p.get("entries", 0)}
    return out


def chart_png(name: str, s: Series, rep: dict[str, Any]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(CHART_W / 100, CHART_H / 100), dpi=100)
    draw(name, ax, s, rep)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def write_png(path: str, s: Series, rep: dict[str, Any]) -> None:
    """All charts on one sheet (4 × 2)."""
    plt = _pyplot()
    fig, axes = plt.subplots(4, 2, figsize=(18, 18), dpi=100)
    for name, ax in zip(CHARTS, axes.flat, strict=False):
        draw(name, ax, s, rep)
    for ax in list(axes.flat)[len(CHARTS):]:
        ax.set_axis_off()
    fig.suptitle(period_title(rep, s), fontsize=14)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def period_title(rep: dict[str, Any], s: Series) -> str:
    lo = s.lo or (s.hours[0] if s.hours else None)
    hi = s.hi or (s.hours[-1] + timedelta(hours=1) if s.hours else None)
    return _("campaign {name} — period {start} – {end} ({tz})").format(
        name=rep["campaign"], start=fmt_datetime(lo, s.tz, "datetime"), end=fmt_datetime(hi, s.tz, "datetime"),
        tz=s.tz)


def _table(tid: str, title: str, head: list[str], rows: list[list[Any]]) -> str:
    """A plain HTML table; the first column is a label, the rest right-aligned figures."""
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<table id="{tid}"><caption>{html.escape(title)}</caption><thead><tr>{th}</tr></thead>'
            f"<tbody>{body or '<tr><td>—</td></tr>'}</tbody></table>")


def chart_figures(s: Series, rep: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The numbers each chart draws, per chart (the HTML prints them under the charts; the Chromium test reads
    them back and compares them with the text report)."""
    hours = [fmt_datetime(h, s.tz, "hm") for h in s.hours]
    out: dict[str, tuple[list[str], list[list[Any]]]] = {
        "abandon": ([_("hour"), _("abandon rate")], [[h, pct(v, 2)] for h, v in zip(hours, s.abandon, strict=True)]),
        "occupancy": ([_("hour"), _("logged in"), _("talk"), _("wrap"), _("occupancy"), _("talk min / agent hour")],
                      [[h, dur(t.logged_in_s), dur(t.talk_s), dur(t.wrap_s), pct(t.occupancy, 1),
                        num(v)] for h, t, v in zip(hours, s.agent_hours, s.talk_per_agent_hour, strict=True)]),
        "hit": ([_("hour"), _("hit rate")], [[h, pct(v)] for h, v in zip(hours, s.hit, strict=True)]),
        "funnel": ([_("step"), "n"], [[lab, s.funnel.get(k, 0)] for k, lab in funnel_steps()]),
        "penetration": ([_("segment"), *[_(w) for _k, _c, w in PEN_PARTS], _("entries")],
                        [[label("segment", seg), *[p[k] for k, _c, _w in PEN_PARTS], p["entries"]]
                         for seg, p in penetration_parts(rep.get("penetration") or {}).items()]),
        "outcomes": ([_("disposition"), "n"], [[label("outcome", k), v] for k, v in
                                               sorted((rep.get("dispositions") or {}).items(), key=lambda kv: -kv[1])]),
        "refusals": ([_("reason"), "n"], [[label("refusal", k.split(" ", 1)[-1]), v] for k, v in
                                          ((rep.get("refusals") or {}).get("by_reason") or {}).items()]),
    }
    return out


def manager_tables(rep: dict[str, Any]) -> str:
    """What a manager looks for beside the charts: agents, outcomes, refusal reasons, abandon by window."""
    agents = [[login, a["calls"], dur(a["talk_s"]), dur(a.get("aht_s")), dur(a["logged_in_s"]), pct(a["occupancy"]),
               a["sales"], yen(a["revenue"])] for login, a in (rep.get("agents") or {}).items()]
    agents.append([_("all"), rep["connected_to_agent"], dur(rep["talk_s"]), dur(rep["aht_s"]), dur(rep["logged_in_s"]),
                   pct(rep["occupancy"]), rep["sales"], yen(rep["revenue"])])
    attempt_outcomes = [[label("outcome", k) if k != "in_flight" else _("in flight"), v]
                        for k, v in sorted(rep["outcomes"].items(), key=lambda kv: -kv[1])]
    disps = [[label("outcome", k), v] for k, v in sorted(rep["dispositions"].items(), key=lambda kv: -kv[1])]
    refusals = [[label("refusal", k.split(" ", 1)[-1]), v] for k, v in rep["refusals"]["by_reason"].items()]
    w = rep["abandon_windows"]
    windows = [[f"{_('abandon now')} ({w['now']['span']})", w["now"]["answered"], w["now"]["abandoned"],
                pct(w["now"]["rate"], 2)],
               [_("abandon 1h"), w["1h"]["answered"], w["1h"]["abandoned"], pct(w["1h"]["rate"], 2)],
               [_("abandon 24h"), w["24h"]["answered"], w["24h"]["abandoned"], pct(w["24h"]["rate"], 2)],
               [f"{_('abandon window')} ({rep['abandon_window']})", w["window"]["answered"], w["window"]["abandoned"],
                pct(w["window"]["rate"], 2)],
               [_("abandon rate (all)"), rep["answered"], rep["abandoned"], pct(rep["abandon_rate"], 2)]]
    return "\n".join([
        _table("table-agents", _("agents"), [_("agent"), _("calls"), _("talk"), _("AHT"), _("logged in"),
                                             _("occupancy"), _("sales"), _("revenue")], agents),
        _table("table-outcomes", _("attempt outcome"), [_("attempt outcome"), "n"], attempt_outcomes),
        _table("table-dispositions", _("disposition"), [_("disposition"), "n"], disps),
        _table("table-refusals", _("refusal reasons"), [_("reason"), "n"], refusals),
        _table("table-abandon", _("abandon by window"), [_("window"), _("answered"), _("abandoned"), _("abandon")],
               windows),
    ])


def write_html(path: str, s: Series, rep: dict[str, Any]) -> None:
    """One self-contained page: every chart a PNG embedded as a data: URI in a fixed box."""
    boxes = chart_boxes()
    parts = []
    for name in CHARTS:
        left, top, w, h = boxes[name]
        data = base64.b64encode(chart_png(name, s, rep)).decode("ascii")
        parts.append(f'<div class="chart" id="chart-{name}" style="left:{left}px;top:{top}px;width:{w}px;'
                     f'height:{h}px"><img alt="{html.escape(name)}" width="{w}" height="{h}" '
                     f'src="data:image/png;base64,{data}"></div>')
    f = s.funnel
    summary = (f"{_('attempts')} {f.get('dialled', 0)} · {_('answered')} {f.get('answered', 0)} · "
               f"{_('connected to agent')} {f.get('connected', 0)} · {_('sales')} {f.get('sale', 0)} · "
               f"{_('abandon')} target {s.target * 100:.1f}% / limit {s.limit * 100:.1f}%")
    total_h = CHART_TOP + len(CHARTS) * (CHART_H + CHART_GAP)
    legend = _("occupancy = (talk + wrap-up) ÷ logged-in time (agent state log); per-hour figures only "
               "after an hour of activity")
    figures = "\n".join(_table(f"data-{name}", name, head, rows) for name, (head, rows) in chart_figures(s, rep).items())
    page = f"""<!doctype html>
<html lang="{language()}"><head><meta charset="utf-8">
<title>{html.escape(period_title(rep, s))}</title>
<style>
body {{ margin: 0; font-family: sans-serif; background: #fff; color: #222; }}
header {{ position: absolute; left: 20px; top: 10px; width: {CHART_W}px; }}
h1 {{ font-size: 20px; margin: 8px 0; }}
p {{ margin: 4px 0; font-size: 14px; }}
.chart {{ position: absolute; }}
.chart img {{ display: block; }}
main {{ height: {total_h}px; position: relative; }}
section {{ margin: 0 20px 20px 20px; width: {CHART_W}px; }}
table {{ border-collapse: collapse; margin: 12px 0; font-size: 13px; }}
caption {{ text-align: left; font-weight: bold; padding: 4px 0; }}
th, td {{ border: 1px solid #ccc; padding: 2px 8px; }}
td:not(:first-child) {{ text-align: right; }}
</style></head><body><main>
<header><h1>{html.escape(period_title(rep, s))}</h1><p>{html.escape(summary)}</p>
<p>{html.escape(legend)}</p>
<p>{html.escape(_('generated'))} {html.escape(fmt_datetime(datetime.now(ZoneInfo(s.tz)), s.tz, 'full'))}</p></header>
{chr(10).join(parts)}
</main>
<section id="tables">
{manager_tables(rep)}
</section>
<section id="figures"><h2>{html.escape(_('the figures drawn in each chart'))}</h2>
{figures}
</section></body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
