"""Rich tables for `dialer report`: the same dicts `dialer.reports` returns, laid out for a terminal."""

from __future__ import annotations

from typing import IO, Any

from rich.cells import cell_len
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dialer.i18n import N_, _
from dialer.views.labels import label
from dialer.views.nodes import health_label
from dialer.views.render import dur, num, pct, row, yen
from lists.csvsafe import SafeDictWriter

CSV_FIELDS = ["segment", "attempts", "answered", "abandoned", "abandon_rate", "hit_rate", "connected_to_agent",
              "sales", "revenue", "dialled", "remaining", "exhausted", "logged_in_s", "talk_s", "wrap_s", "occupancy"]


def fitted_table(title: str, cols: list[str], rows: list[list[str]], width: int, drop: tuple[int, ...] = ()
                 ) -> Table:
    """A boxed table whose columns are chosen by WIDTH (0 = all): the columns in DROP are left out one by one,
    in that order, until every remaining header and cell fits whole (issue 27: at 80 columns a Japanese
    header squeezed to `セ …` says nothing). Column 0 (the row's name) always stays."""
    def needed(idx: list[int]) -> int:  # a boxed table: 1 border + per column 2 padding + 1 border
        return 1 + sum(max([cell_len(cols[i]), *(cell_len(r[i]) for r in rows)]) + 3 for i in idx)

    keep = list(range(len(cols)))
    for i in drop:
        if not width or needed(keep) <= width:
            break
        keep.remove(i)
    t = Table(title=title, title_justify="left", header_style="bold")
    for i in keep:
        t.add_column(cols[i], justify="left" if i == 0 else "right")
    for r in rows:
        row(t, *(r[i] for i in keep))
    return t


def render_campaign_report(r: dict[str, Any], width: int = 0) -> RenderableType:
    """The report for a terminal; WIDTH (a terminal's, 0 = piped: as wide as the data) chooses table columns."""
    head = Text()
    head.append(f"{_('campaign')} {r['campaign']}", style="bold")
    head.append(f"  {_(r['state'])}  {_('mode')} {_(r['mode'])}  {_('regime')} {str(r['abandon_regime']).upper()}  "
                f"{_('target')} {pct(r['abandon_target'])}  {_('limit')} {pct(r['abandon_limit'])}  "
                f"{_('window')} {r['abandon_window']}")
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column(style="dim")
    t.add_column(justify="right")
    t.add_column(style="dim")
    t.add_column(justify="right")
    w = r["abandon_windows"]
    rows = [
        (_("attempts"), str(r["attempts"]), _("abandon rate (all)"), pct(r["abandon_rate"], 2)),
        (_("answered (person)"), str(r["answered"]), f"{_('abandon now')} ({w['now']['span']})", pct(w["now"]["rate"], 2)),
        (_("abandoned"), str(r["abandoned"]), _("abandon 1h"), pct(w["1h"]["rate"], 2)),
        (_("answering machine"), f"{r['machine']} ({pct(r.get('machine_rate'))})", _("abandon 24h"),
         pct(w["24h"]["rate"], 2)),
        (_("connected to agent"), str(r["connected_to_agent"]), f"{_('abandon window')} ({r['abandon_window']})",
         pct(w["window"]["rate"], 2)),
        (_("hit rate"), pct(r["hit_rate"]), _("AHT"), dur(r["aht_s"])),
        (_("occupancy"), pct(r["occupancy"]), _("talk min / agent hour"), num(r["talk_minutes_per_agent_hour"])),
        (_("connects / hour"), per_hour(r["connects_per_hour"], r["connected_to_agent"], r.get("activity_span_s")),
         _("sales / hour"), per_hour(r["sales_per_hour"], r["sales"], r.get("activity_span_s"))),
        (_("sales"), str(r["sales"]), _("revenue"), yen(r["revenue"])),
        (_("do-not-call"), str(r["dnc"]), _("refusals"), str(r["refusals"]["total"])),
    ]
    for cells in rows:
        row(t, *cells)
    seg_cols = [_(c) for c in (N_("segment"), N_("attempts"), N_("answered"), N_("abandon"), N_("hit"),
                               N_("to agent"), N_("sales"), N_("revenue"), N_("dialled"), N_("left"), N_("exhausted"))]
    seg_rows = []
    for name, s in r["by_segment"].items():
        p = s.get("penetration") or {}
        seg_rows.append([label("segment", name), str(s["attempts"]), str(s["answered"]), pct(s["abandon_rate"]),
                         pct(s["hit_rate"]), str(s["connected_to_agent"]), str(s["sales"]), yen(s["revenue"]),
                         str(p.get("dialled", "—")), str(p.get("remaining", "—")), str(p.get("exhausted", "—"))])
    # (issue 27) at 80 columns: leave out list progress, then hit rate and agent connects, before squeezing
    seg = fitted_table(_("by segment"), seg_cols, seg_rows, width, drop=(10, 9, 8, 4, 5))
    out = Table(title=_("outcomes"), title_justify="left", header_style="bold", box=None)
    out.add_column(_("attempt outcome"))
    out.add_column("n", justify="right")
    out.add_column(_("disposition"))
    out.add_column("n", justify="right")
    a_items = sorted(r["outcomes"].items(), key=lambda kv: -kv[1])
    d_items = sorted(r["dispositions"].items(), key=lambda kv: -kv[1])
    for i in range(max(len(a_items), len(d_items))):
        ak, av = a_items[i] if i < len(a_items) else ("", "")
        dk, dv = d_items[i] if i < len(d_items) else ("", "")
        row(out, label("outcome", ak) if ak else "", str(av), label("outcome", dk) if dk else "", str(dv))
    legend = Text(_("occupancy = (talk + wrap-up) ÷ logged-in time (agent state log); per-hour figures only "
                    "after an hour of activity"), style="dim")
    parts: list[RenderableType] = [head, t, legend, seg, out]
    if r["refusals"]["by_reason"]:
        ref = Table(title=_("refusal reasons"), title_justify="left", header_style="bold", box=None)
        ref.add_column(_("reason"))
        ref.add_column("n", justify="right")
        for k, v in r["refusals"]["by_reason"].items():
            code, _sep, name = str(k).partition(" ")
            row(ref, f"{code} {label('refusal', name)}" if name else label("refusal", code), str(v))
        parts.append(ref)
    if r.get("holdout"):
        parts.append(holdout_table(r["holdout"]))
    if r.get("by_node"):
        parts.append(nodes_report_table(r["by_node"]))
    if r["agents"]:
        ag_cols = [_(c) for c in (N_("agent"), N_("calls"), N_("talk"), N_("wrap"), N_("AHT"), N_("logged in"),
                                  N_("occupancy"), N_("sales"), N_("revenue"))]
        ag_rows = [[login, str(a["calls"]), dur(a["talk_s"]), dur(a["wrap_s"]), dur(a.get("aht_s")),
                    dur(a["logged_in_s"]), pct(a["occupancy"]), str(a["sales"]), yen(a["revenue"])]
                   for login, a in r["agents"].items()]
        parts.append(fitted_table(_("agents"), ag_cols, ag_rows, width, drop=(3, 2, 5)))
    return Group(*parts)


def per_hour(rate: float | None, count: int, span_s: float | None) -> str:
    """A per-hour rate over at least an hour of activity; before that the count and the minutes it took."""
    if rate is not None:
        return num(rate)
    if not span_s:
        return "—"
    return _("{n} in {minutes} min").format(n=count, minutes=int(span_s // 60))


def nodes_report_table(by_node: dict[str, dict[str, Any]]) -> Table:
    """Issue 18: one row per node that dialled for the campaign."""
    t = Table(title=_("nodes"), title_justify="left", header_style="bold")
    for i, col in enumerate((N_("node"), N_("attempts"), N_("answered"), N_("abandon"), N_("to agent"),
                             N_("interrupted"), N_("lines"), N_("agents"), N_("health"), N_("last heartbeat"))):
        t.add_column(_(col), justify="left" if i in (0, 8) else "right")
    for nid, n in by_node.items():
        age = n.get("heartbeat_age_s")
        row(t, nid, str(n["attempts"]), str(n["answered"]), pct(n["abandon_rate"]), str(n["connected_to_agent"]),
            str(n["interrupted"]), str(n["lines"] if n["lines"] is not None else "—"),
            str(n["agents"] if n["agents"] is not None else "—"), health_label(str(n["health"])),
            f"{age:.1f}s" if age is not None else "—")
    return t


def holdout_table(h: dict[str, Any]) -> Table:
    """Issue 19: the control group's size per segment and, once `dialer report lift` ran, the lift."""
    lift = (h.get("lift") or {}).get("segments", {})
    title = "hold-out (control group never called)"
    if h.get("lift"):
        title += f"; lift from {h['lift'].get('after', '')} ({h['lift'].get('computed_at', '')[:10]})"
    t = Table(title=title, title_justify="left", header_style="bold")
    for col in ("segment", "treatment", "control", "purchase-rate lift (95% CI)", "incremental revenue",
                "media ratio"):
        t.add_column(col, justify="left" if col == "segment" else "right")
    for seg in sorted(set(h.get("groups", {})) | set(lift)):
        g = h.get("groups", {}).get(seg, {})
        e = lift.get(seg, {})
        if e.get("enough_data"):
            lo, hi = e["ci95"]
            lifted = f"{e['purchase_rate_lift']:+.2%} ({lo:+.2%}..{hi:+.2%})"
            inc, ratio = yen(e["incremental_revenue"]), num(e["media_ratio"])
        else:
            lifted, inc, ratio = ("too few customers" if e else "— (no export after the campaign yet)"), "—", "—"
        row(t, seg, str(g.get("treatment", e.get("treatment", "—"))), str(g.get("control", e.get("control", "—"))),
            lifted, inc, ratio)
    return t


def write_report_csv(r: dict[str, Any], out: IO[str]) -> None:
    """One row per segment plus an ALL row; rates as fractions (0.0123), empty when undefined."""
    w = SafeDictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()

    def csv_row(name: str, s: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        return {"segment": name, "attempts": s["attempts"], "answered": s["answered"], "abandoned": s["abandoned"],
                "abandon_rate": "" if s["abandon_rate"] is None else f"{s['abandon_rate']:.4f}",
                "hit_rate": "" if s["hit_rate"] is None else f"{s['hit_rate']:.4f}",
                "connected_to_agent": s["connected_to_agent"], "sales": s["sales"], "revenue": f"{s['revenue']:.0f}",
                "dialled": p.get("dialled", ""), "remaining": p.get("remaining", ""), "exhausted": p.get("exhausted", "")}

    for name, s in r["by_segment"].items():
        w.writerow(csv_row(name, s, s.get("penetration") or {}))
    pen = r["penetration"]
    tot = {k: sum(p[k] for p in pen.values()) for k in ("dialled", "remaining", "exhausted")} if pen else {}
    occ = r.get("occupancy")
    w.writerow({**csv_row("ALL", r, tot), "logged_in_s": f"{r['logged_in_s']:.0f}", "talk_s": f"{r['talk_s']:.0f}",
                "wrap_s": f"{r['wrap_s']:.0f}", "occupancy": "" if occ is None else f"{occ:.4f}"})


def render_compliance(c: dict[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [Text(f"compliance report  {c['generated_at']}  (local time {c['timezone']}, "
                                        f"UK machine share {c['machine_false_positive_share']:.2f})", style="bold")]
    t = Table(title="abandon rate per window (US | UK)", title_justify="left", header_style="bold")
    t.add_column("campaign")
    t.add_column("regime")
    for w in ("1h", "24h", "30d", "day", "campaign"):
        t.add_column(w, justify="right")
    t.add_column("limit", justify="right")
    t.add_column("ok", justify="center")
    t.add_column("outside hours", justify="right")
    for name, cc in c["campaigns"].items():
        cells = [f"{pct(cc['windows'][w]['us'], 2)} | {pct(cc['windows'][w]['uk'], 2)}" for w in
                 ("1h", "24h", "30d", "day", "campaign")]
        ok = Text("yes", style="green") if cc["within_limit"] else Text("NO", style="bold red")
        outside = str(cc["calls_outside_hours"]) + (f" (+{cc['calls_outside_hours_sandbox']} sandbox)"
                                                    if cc["calls_outside_hours_sandbox"] else "")
        row(t, name, f"{cc['regime']} ({cc['window']})", *cells, pct(cc["limit"]), ok, outside)
    parts.append(t)
    parts.append(Text(f"calls outside calling hours: {c['calls_outside_hours']} (must be 0)",
                      style="green" if c["calls_outside_hours"] == 0 else "bold red"))
    for key, title in (("dnc", "do-not-call requests"), ("refusals", "refusals (no re-solicitation)")):
        d = c[key]
        parts.append(Text(f"{title}: {d['requests']} requested, {d['blocked']} blocked, {d['honoured']} honoured, "
                          f"{d['violations']} called again", style="green" if d["violations"] == 0 else "bold red"))
        if d["items"]:
            tt = Table(header_style="bold", box=None)
            for col in ("customer", "phone", "requested", "blocked since", "delay s", "calls after", "reason"):
                tt.add_column(col)
            for i in d["items"][:20]:
                row(tt, i["customer_id"], i["phone"], i["requested_at"][:19], (i["blocked_since"] or "NOT BLOCKED")[:19],
                           "—" if i["block_delay_s"] is None else f"{i['block_delay_s']:.1f}", str(i["attempts_after"]),
                           i["reason"])
            parts.append(tt)
    return Group(*parts)
