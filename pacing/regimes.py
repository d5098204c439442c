"""Abandon regimes: which window, ceiling and denominator a campaign's abandons are measured against.

Why named regimes: "3 %" means different things under different rules, and a pacer that only knows a
rolling hour is either illegal somewhere (a window longer than an hour may be overspent in a burst) or
progressive for a small team (one abandon is already several percent of an hour). Each regime says:

* `window`: where the budget is counted (an `AbandonBook` window: "30d" rolling, "day" from local
  midnight, "1h" rolling);
* `limit`: the ceiling, abandoned / answered by a person, counted over the window;
* `target`: the highest aim the pacer takes under it (a configured target above it is lowered to it);
* `hour_cap`: a soft cap on any rolling hour (no bursts: a day's budget spent in one hour is legal under
  a day window but is exactly the experience the rule exists to prevent);
* `count_amd_fp`: the estimated share of answering-machine verdicts that were people is added to
  abandons *and* to person answers (they were answered by a person, and hung up on);
* `scope`: "campaign" or "call_centre" (all campaigns of the site share one budget);
* `source`: the rule it implements;
* `statutory`: whether the ceiling is a law (a self-imposed day budget, jp_cx, may count the next hour's answers of
  the logged team, on the low side, before they come: the cold start is then not progressive-only).

Sources (see README "Abandon regimes"):
* us_tsr: FTC Telemarketing Sales Rule 16 CFR 310.4(b)(4)(i) and FCC 47 CFR 64.1200(a)(7): <= 3 % of calls
  answered by a person, per campaign, over the campaign if shorter than 30 days or each successive
  30-day period; the FTC's 2003 Statement of Basis and Purpose (68 FR 4580, 29 Jan 2003) treats a person
  hung up on by answering-machine detection as an abandoned call, so the AMD false-positive estimate is
  counted.
* uk_ofcom: Ofcom, Revised statement of policy on the persistent misuse of an electronic communications
  network or service (2016), annex on abandoned and silent calls: abandoned calls <= 3 % of live calls per
  campaign or per call centre over 24 hours, with a reasoned estimate of AMD false positives included.
  The strict reading is taken: the call centre (every campaign of the site shares one budget).
* strict_hour: no law asks for it; the previous default of this project: 3 % in every rolling hour.
* jp_cx: Japan has no statutory abandon ceiling (特定商取引法 governs what is said and re-solicitation); the
  default is a customer-experience budget: 1 % aim, 2 % ceiling per local day, no rolling hour above 4 %.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Regime:
    name: str
    window: str
    limit: float
    target: float
    hour_cap: float
    count_amd_fp: bool
    scope: str
    source: str
    proves: str
    statutory: bool = True  # the ceiling is a law: the pacer never counts on answers still to come (day_ahead_h)
    # (issue 31) the regime's own defaults, where PacerConfig leaves them None: the model-bias prior (None: 2 + 8 /
    # sqrt(agents), calibrated on short-call worlds under a 3 % limit) and the share of the window's budget kept
    bias_prior: float | None = None
    reserve: float | None = None
    # abandons per burst the soft rolling-hour cap's rate cap assumes (pacing.guard.rate_cap); None: 1
    hour_cluster: float | None = None
    # (issue 31) the largest team (most agents logged in over the last hour) `bias_prior` is for; a larger team
    # takes the calibrated prior. None: every team
    bias_prior_team: int | None = None


REGIMES: dict[str, Regime] = {
    "us_tsr": Regime(
        "us_tsr", "30d", 0.03, 0.02, 0.05, True, "campaign",
        "16 CFR 310.4(b)(4)(i); 47 CFR 64.1200(a)(7); FTC 2003 SBP (AMD hang-ups are abandons)",
        "abandoned / answered by a person, AMD false-positive estimate added to both, per campaign over each "
        "30-day period (or the campaign if shorter) <= 3 %"),
    "uk_ofcom": Regime(
        "uk_ofcom", "day", 0.03, 0.02, 0.05, True, "call_centre",
        "Ofcom persistent misuse policy (2016): 3 % of live calls per call centre per 24 h, AMD false "
        "positives estimated and included",
        "abandoned (AMD false-positive estimate included) / live calls, over every campaign of the site, "
        "per day midnight to midnight <= 3 %"),
    "strict_hour": Regime(
        "strict_hour", "1h", 0.03, 0.02, 0.03, True, "campaign",
        "no statute: a self-imposed rolling-hour ceiling",
        "abandoned / answered by a person (AMD false-positive estimate included) in every rolling hour <= 3 %"),
    "jp_cx": Regime(
        "jp_cx", "day", 0.02, 0.01, 0.04, True, "campaign",
        "no statute in Japan (特定商取引法: disclosure, no re-solicitation): a customer-experience budget",
        "abandoned / answered by a person (AMD false-positive estimate included) per local day <= 2 %, aimed "
        "at 1 %, and no rolling hour above 4 %", statutory=False,
        # a self-imposed day, guarded hour by hour at 4 %: a 10 % reserve (20 % kept a small team at a tenth of its
        # 1 % aim all day). A team of up to 10 agents starts its bias estimate at 1.5, not 2 + 8/sqrt(agents) (4.8
        # at 8 agents: a small team abandons about once a day, so the prior, worth 4 abandons, was the estimate all
        # day and the pacer spent a tenth of its aim), with abandons counted in pairs by the hour cap (one pair is
        # what an hour of 8 agents can take). A larger team keeps the calibrated prior: 1.5 at 12 agents put one
        # seed's day at 1.24 % (over the 1 % aim), at every size an hour over 5 % in 1 of 20 seeds at 20 agents;
        # 1.0 put 2 of 20 over 5 % at 8 agents (bench/RESULTS.md issue 31, fourth and fifth passes)
        reserve=0.1, bias_prior=1.5, bias_prior_team=10, hour_cluster=2.0),
}
LEGACY = ("us", "uk")  # the window comes from abandon_window; "uk" counts AMD false positives
NAMES = (*REGIMES, *LEGACY)


def regime(name: str) -> Regime | None:
    """The named regime, None for a legacy name ("us", "uk": window and limits as configured)."""
    if name not in NAMES:
        raise ValueError(f"abandon_regime must be one of {', '.join(NAMES)}, got {name!r}")
    return REGIMES.get(name)
