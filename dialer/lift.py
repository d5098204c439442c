"""The lift report: did the calls *cause* extra revenue? Treatment vs the hold-out control, per segment.

Customers were assigned at random (lists.holdout), so the difference between the groups' outcomes in a later
CRM export estimates what calling earned. Purchase rate: difference of two proportions with a 95% Wald
interval and the pooled two-proportion z-test; revenue per customer: Welch's t interval (unequal variances,
no normality needed at these sizes). Incremental revenue = the revenue-per-customer difference × treated
customers; cost = agent hours × `[costs] agent_hour_yen` + carrier minutes × `telephony_per_minute_yen`;
media ratio = incremental revenue ÷ cost (the practitioners' 売上 ÷ 費用). With fewer than MIN_GROUP customers
in a group or MIN_BUYERS buyers the report says so instead of printing a confident number.

The ALL row is *stratified* by segment (issue 26): hold-out shares differ per segment, so pooling the groups
mixes segments with different base rates in different proportions and invents a lift (Simpson's paradox).
It is Σ w_s × (per-segment difference), w_s = the segment's share of the treated customers (so × treated
customers it is the incremental revenue), with the stratified variance Σ w_s² var_s; the test uses each
segment's pooled rate (Cochran–Mantel–Haenszel's null). A segment without both groups cannot contribute and is
named. A campaign (or segment) that made no calls gets no verdict: there is nothing to attribute to calling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from dialer.config import Config
from dialer.store import Engine
from dialer.store.holdout import HoldoutGroup, assignments
from dialer.store.lift import call_totals, contacted_since, recorded_sales, sms_contacted
from lists.mapping import Mapping
from lists.readback import read_outcomes

MIN_GROUP = 30
MIN_BUYERS = 10
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    diff: float
    lo: float
    hi: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def as_dict(self) -> dict[str, Any]:
        return {"diff": _r(self.diff), "ci95": [_r(self.lo), _r(self.hi)], "p_value": _r(self.p_value),
                "significant": self.significant}


def _r(x: float, nd: int = 6) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), nd)


def two_proportions(x_t: int, n_t: int, x_c: int, n_c: int) -> Interval:
    """p_t − p_c with a 95% Wald interval and the pooled two-sided z-test p-value."""
    if n_t == 0 or n_c == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    p_t, p_c = x_t / n_t, x_c / n_c
    d = p_t - p_c
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    pool = (x_t + x_c) / (n_t + n_c)
    se0 = math.sqrt(pool * (1 - pool) * (1 / n_t + 1 / n_c))
    p = 1.0 if se0 == 0 else float(2 * stats.norm.sf(abs(d) / se0))
    return Interval(d, d - z * se, d + z * se, p)


def stratified_proportions(strata: Sequence[tuple[int, int, int, int]]) -> Interval:
    """Σ w_s (p_ts − p_cs) over strata (x_t, n_t, x_c, n_c), w_s = n_ts / Σ n_t, with a 95% interval from the
    stratified variance and the z-test under each stratum's pooled rate."""
    use = [(xt, nt, xc, nc) for xt, nt, xc, nc in strata if nt > 0 and nc > 0]
    if not use:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    total = sum(nt for _xt, nt, _xc, _nc in use)
    d = var = var0 = 0.0
    for xt, nt, xc, nc in use:
        w = nt / total
        pt, pc = xt / nt, xc / nc
        pool = (xt + xc) / (nt + nc)
        d += w * (pt - pc)
        var += w * w * (pt * (1 - pt) / nt + pc * (1 - pc) / nc)
        var0 += w * w * pool * (1 - pool) * (1 / nt + 1 / nc)
    z = float(stats.norm.ppf(1 - ALPHA / 2))
    se = math.sqrt(var)
    p = 1.0 if var0 == 0 else float(2 * stats.norm.sf(abs(d) / math.sqrt(var0)))
    return Interval(d, d - z * se, d + z * se, p)


def stratified_means(strata: Sequence[tuple[Sequence[float], Sequence[float]]]) -> Interval:
    """Σ w_s (mean_ts − mean_cs), w_s = n_ts / Σ n_t, with a Welch–Satterthwaite t interval and test."""
    use = [(np.asarray(t, dtype=float), np.asarray(c, dtype=float)) for t, c in strata if len(t) >= 2 and len(c) >= 2]
    if not use:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    if len(use) == 1:
        return welch(use[0][0].tolist(), use[0][1].tolist())
    total = sum(len(a) for a, _b in use)
    d = var = dof_den = 0.0
    for a, b in use:
        w = len(a) / total
        d += w * float(a.mean() - b.mean())
        vt, vc = w * w * float(a.var(ddof=1)) / len(a), w * w * float(b.var(ddof=1)) / len(b)
        var += vt + vc
        dof_den += vt * vt / (len(a) - 1) + vc * vc / (len(b) - 1)
    if var == 0:
        return Interval(d, d, d, 1.0 if d == 0 else 0.0)
    dof = var * var / dof_den if dof_den > 0 else float(total)
    se = math.sqrt(var)
    q = float(stats.t.ppf(1 - ALPHA / 2, dof))
    return Interval(d, d - q * se, d + q * se, float(2 * stats.t.sf(abs(d) / se, dof)))


def welch(t: Sequence[float], c: Sequence[float]) -> Interval:
    """mean(t) − mean(c) with Welch's 95% t interval (both groups constant: a zero-width interval)."""
    a, b = np.asarray(t, dtype=float), np.asarray(c, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return Interval(math.nan, math.nan, math.nan, math.nan)
    d = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:
        return Interval(d, d, d, 1.0 if d == 0 else 0.0)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(1 - ALPHA)
    return Interval(d, float(ci.low), float(ci.high), float(res.pvalue))


@dataclass(frozen=True)
class Group:
    customers: int
    buyers: int
    revenue: float
    kept: int

    def as_dict(self) -> dict[str, Any]:
        n = self.customers
        return {"customers": n, "buyers": self.buyers, "purchase_rate": _r(self.buyers / n) if n else None,
                "revenue": round(self.revenue), "revenue_per_customer": _r(self.revenue / n, 2) if n else None,
                "subscriptions_kept": self.kept, "kept_rate": _r(self.kept / n) if n else None}


def lift_report(engine: Engine, cfg: Config, campaign: str, mapping: Mapping, after: Path, days: int = 30,
                period: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Everything `dialer report lift` prints, as one dict (JSON-ready)."""
    camp = cfg.campaign(campaign)
    rows = assignments(engine, camp.segments)
    periods = sorted({r[3] for r in rows})
    chosen = period or (max(periods, key=lambda p: max(r[5] for r in rows if r[3] == p)) if periods else None)
    rows = [r for r in rows if r[3] == chosen]
    out: dict[str, Any] = {"campaign": campaign, "period": chosen, "periods_recorded": periods, "after": str(after),
                           "days": days, "segments": {}, "notes": []}
    if not rows:
        out["notes"].append(f"no hold-out assignments recorded for the segments {', '.join(camp.segments)}: "
                            "set [lists.holdout] share and rebuild the lists before the campaign")
        return out
    windows = [(cid, first, first + timedelta(days=days)) for cid, _s, _g, _p, first, _l in rows]
    rb = read_outcomes(mapping, after, {(c, a, b) for c, a, b in windows})
    out["export"] = {"rows_read": rb.rows_read, "rejected_rows": rb.rejected, "notes": rb.notes}
    totals = call_totals(engine, campaign, now or datetime.now(UTC))
    sales = recorded_sales(engine, campaign)
    texted = sms_contacted(engine, campaign)
    # any campaign's call or SMS to a control customer after their assignment breaks the hold-out
    first: dict[str, date] = {}
    for cid, _s, g, _p, f, _l in rows:
        if g == HoldoutGroup.CONTROL:
            first[cid] = min(f, first.get(cid, f))
    contacted_controls = contacted_since(engine, first)
    out["control_contacted"] = len(contacted_controls)
    if contacted_controls:
        how = sorted({v for v in contacted_controls.values()})
        out["notes"].insert(0, f"warning: {len(contacted_controls)} control customer(s) were contacted ({', '.join(how)}) "
                               "after their assignment: the hold-out was broken, the lift below is biased toward zero")
    c = cfg.costs
    agent_talk_all = sum(totals.agent_talk_seconds.values())
    by_seg: dict[str, dict[str, list[tuple[str, Any]]]] = {}
    for cid, seg, grp, _p, _f, _l in rows:
        by_seg.setdefault(seg, {"treatment": [], "control": []})[grp].append((cid, rb.outcomes.get(cid)))
    segs = sorted(by_seg)
    stratum: dict[str, tuple[Group, Group, tuple[list[float], list[float]]]] = {}
    for seg in [*segs, "ALL"]:
        groups = by_seg[seg] if seg != "ALL" else {
            g: [x for s in segs for x in by_seg[s][g]] for g in ("treatment", "control")}
        vals: dict[str, tuple[Group, list[float]]] = {}
        for g in ("treatment", "control"):
            members = groups[g]
            rev = [o.revenue if o else 0.0 for _c, o in members]
            vals[g] = (Group(len(members), sum(1 for _c, o in members if o and o.orders > 0), float(sum(rev)),
                             sum(1 for _c, o in members if o and o.active_subscription)), rev)
        t, ctl = vals["treatment"][0], vals["control"][0]
        seg_list = segs if seg == "ALL" else [seg]
        attempts = sum(totals.attempts.get(s, 0) for s in seg_list)
        treated_ids = {x for x, _o in groups["treatment"]}
        texts = len(texted & treated_ids)
        line_s = sum(totals.line_seconds.get(s, 0.0) for s in seg_list)
        talk_s = sum(totals.agent_talk_seconds.get(s, 0.0) for s in seg_list)
        # the campaign's logged agent time, shared by segments in proportion to their talk time
        agent_s = (totals.agent_seconds * talk_s / agent_talk_all if totals.agent_seconds and agent_talk_all
                   else talk_s)
        cost = agent_s / 3600 * c.agent_hour_yen + line_s / 60 * c.telephony_per_minute_yen
        if seg == "ALL" and len(segs) > 1:  # stratified by segment, never pooled (Simpson's paradox)
            per = [stratum[s] for s in segs]
            rate = stratified_proportions([(a.buyers, a.customers, b.buyers, b.customers) for a, b, _r in per])
            kept = stratified_proportions([(a.kept, a.customers, b.kept, b.customers) for a, b, _r in per])
            rpc = stratified_means([r for _a, _b, r in per])
            left_out = [s for s in segs if not (stratum[s][0].customers and stratum[s][1].customers)]
        else:
            rate = two_proportions(t.buyers, t.customers, ctl.buyers, ctl.customers)
            rpc = welch(vals["treatment"][1], vals["control"][1])
            kept = two_proportions(t.kept, t.customers, ctl.kept, ctl.customers)
            left_out = []
            stratum[seg] = (t, ctl, (vals["treatment"][1], vals["control"][1]))
        enough = min(t.customers, ctl.customers) >= MIN_GROUP and t.buyers + ctl.buyers >= MIN_BUYERS
        inc = rpc.diff * t.customers
        extra_buyers = rate.diff * t.customers
        entry: dict[str, Any] = {
            "treatment": t.as_dict(), "control": ctl.as_dict(),
            "calls": {"attempts": attempts, "customers_called": len(set().union(
                *[totals.called_customers.get(s, set()) for s in seg_list])),
                "agent_hours": _r(agent_s / 3600, 3), "telephony_minutes": _r(line_s / 60, 1),
                "cost_yen": round(cost), "sales_recorded_by_agents": round(sum(
                    v for k, v in sales.items() if k in {x for x, _o in groups["treatment"]}))},
            "enough_data": enough,
        }
        entry["calls"]["sms_sent"] = texts
        if seg == "ALL" and len(segs) > 1:
            entry["combined"] = ("stratified by segment (weights: each segment's share of treated customers); "
                                 "the pooled rates above are not comparable across groups")
            if left_out:
                entry["combined"] += f"; left out (a group is empty): {', '.join(left_out)}"
        if enough and attempts + texts == 0:
            entry.update({"purchase_rate_lift": rate.as_dict(), "revenue_per_customer_lift": rpc.as_dict(),
                          "kept_rate_lift": kept.as_dict(), "no_contacts": True,
                          "verdict": "no calls were made: nothing to attribute to calling"})
        elif enough:
            entry.update({
                "purchase_rate_lift": rate.as_dict(), "revenue_per_customer_lift": rpc.as_dict(),
                "kept_rate_lift": kept.as_dict(),
                "incremental_revenue": {"yen": round(inc), "ci95": [round(rpc.lo * t.customers),
                                                                    round(rpc.hi * t.customers)]},
                "extra_buyers": _r(extra_buyers, 1),
                "media_ratio": _r(inc / cost, 2) if cost > 0 else None,
                "calls_per_extra_sale": _r(attempts / extra_buyers, 1) if extra_buyers > 0 and attempts else None,
                "verdict": ("calls raised the purchase rate" if rate.significant and rate.diff > 0 else
                            "calls lowered the purchase rate" if rate.significant else
                            "no significant difference in purchase rate"),
            })
        else:
            entry["verdict"] = (f"too few customers to say: {t.customers} treatment, {ctl.customers} control, "
                                f"{t.buyers + ctl.buyers} buyers (need ≥ {MIN_GROUP} per group and ≥ {MIN_BUYERS} "
                                "buyers)")
        out["segments"][seg] = entry
    return out


def render_lift(rep: dict[str, Any]) -> str:
    """Plain text (Japanese numbers formatted with separators) for the terminal."""
    lines = [f"lift: campaign {rep['campaign']}, period {rep['period']}, purchases within {rep['days']} days "
             f"of assignment, from {rep['after']}"]
    for n in rep.get("notes", []):
        lines.append(f"  note: {n}")
    for seg, e in rep["segments"].items():
        t, c = e["treatment"], e["control"]
        lines.append(f"\n[{seg}]  {e['verdict']}")
        lines.append(f"  {'':10} {'customers':>9} {'buyers':>7} {'rate':>7} {'¥/customer':>11} {'kept':>6}")
        for name, g in (("treatment", t), ("control", c)):
            rate = f"{g['purchase_rate']:.2%}" if g["purchase_rate"] is not None else "-"
            rpc = f"{g['revenue_per_customer']:,.0f}" if g["revenue_per_customer"] is not None else "-"
            lines.append(f"  {name:10} {g['customers']:>9,} {g['buyers']:>7,} {rate:>7} {rpc:>11} "
                         f"{g['subscriptions_kept']:>6,}")
        calls = e["calls"]
        lines.append(f"  calls {calls['attempts']:,} ({calls['customers_called']:,} customers), agent "
                     f"{calls['agent_hours']} h, carrier {calls['telephony_minutes']} min, cost ¥{calls['cost_yen']:,}")
        if calls.get("sms_sent"):
            lines.append(f"  SMS sent to {calls['sms_sent']:,} treated customers")
        if e.get("combined"):
            lines.append(f"  combined: {e['combined']}")
        if e["enough_data"]:
            r, v, k = e["purchase_rate_lift"], e["revenue_per_customer_lift"], e["kept_rate_lift"]
            lines.append(f"  purchase rate lift {r['diff']:+.2%} (95% CI {r['ci95'][0]:+.2%} .. {r['ci95'][1]:+.2%}, "
                         f"p = {r['p_value']:.3f})")
            lines.append(f"  revenue per customer {v['diff']:+,.0f} yen (95% CI {v['ci95'][0]:+,.0f} .. "
                         f"{v['ci95'][1]:+,.0f}, p = {v['p_value']:.3f})")
            if k["diff"] is not None and (t["subscriptions_kept"] or c["subscriptions_kept"] or seg == "pre_churn"):
                lines.append(f"  subscriptions kept lift {k['diff']:+.2%} (95% CI {k['ci95'][0]:+.2%} .. "
                             f"{k['ci95'][1]:+.2%}, p = {k['p_value']:.3f})")
            if e.get("no_contacts"):
                continue
            inc = e["incremental_revenue"]
            lines.append(f"  incremental revenue ¥{inc['yen']:,} (95% CI ¥{inc['ci95'][0]:,} .. ¥{inc['ci95'][1]:,}); "
                         f"media ratio {e['media_ratio']}; calls per extra sale {e['calls_per_extra_sale']}")
    return "\n".join(lines)



def lift_summary(rep: dict[str, Any]) -> dict[str, Any]:
    """The few figures kept in the store for the campaign report and the monitor."""
    segs: dict[str, Any] = {}
    for seg, e in rep["segments"].items():
        d: dict[str, Any] = {"verdict": e["verdict"], "enough_data": e["enough_data"],
                             "treatment": e["treatment"]["customers"], "control": e["control"]["customers"]}
        if e["enough_data"]:
            inc = e.get("incremental_revenue")
            d.update({"purchase_rate_lift": e["purchase_rate_lift"]["diff"],
                      "ci95": e["purchase_rate_lift"]["ci95"], "significant": e["purchase_rate_lift"]["significant"],
                      "incremental_revenue": inc["yen"] if inc else None, "media_ratio": e.get("media_ratio")})
        segs[seg] = d
    return {"after": rep["after"], "days": rep["days"], "segments": segs}

