"""python -m bench.pacing --scenario FILE.toml [--policy NAME]... [--seeds N] [--json]
python -m bench.pacing --all [--seeds N]   (every bench/scenarios/*.toml -> bench/RESULTS.md "## Pacing")"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.pacing import run as runmod
from bench.pacing.run import METRICS, evaluate
from bench.pacing.scenario import Scenario, ScenarioError, load_scenario

DEFAULT_POLICIES = ["progressive", "fixed", "fixed@safe", "vicidial", "vicidial-tuned",
                    "vicidial-tuned@safe", "predictive", "oracle"]
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "bench" / "scenarios"
RESULTS = ROOT / "bench" / "RESULTS.md"


def label(p: str, m: dict[str, Any], seeds: int | None = None) -> str:
    if seeds is not None and int(m.get("seeds", seeds)) != seeds:
        return f"{label(p, m)} [{int(m['seeds'])} seeds]"
    if p.startswith("fixed") and "ratio" in m:
        return f"{p} (R={m['ratio']:g}{'' if m.get('feasible', True) else ', none feasible'})"
    if p.startswith("vicidial-tuned") and "setting" in m:
        return f"{p} ({m['setting']}{'' if m.get('feasible', True) else ', none feasible: lowest abandon'})"
    if p == "vicidial":
        return "vicidial (defaults: ADAPT_HARD_LIMIT, intensity 0)"
    return p


def table(sc: Scenario, res: dict[str, dict[str, Any]]) -> str:
    head = (f"{'policy':<44} {'abandon':>8} {'max seed':>8} {'worst1h':>7} {'seeds h>lim':>11} {'hours>lim':>9} "
            f"{'first30':>7} {'occupancy':>9} {'talk m/h':>8} {'dials/conn':>10} {'ms p50/p99':>11}")
    lines = [f"{sc.name}: {sc.agents} agents, limit {sc.abandon_limit:.3f}, seeds {next(iter(res.values()))['seeds']}",
             head]
    for p, m in res.items():
        lines.append(
            f"{label(p, m)[:44]:<44} {m['abandon_rate']:8.4f} {m['abandon_rate_max_seed']:8.4f} "
            f"{m['worst_hour_abandon']:7.4f} {m['seeds_hour_over']:>5}/{m['seeds']:<5} {m['p_hour_over_limit']:9.3f} "
            f"{m['first30_abandon']:7.4f} {m['occupancy']:9.3f} {m['talk_minutes_per_hour']:8.1f} "
            f"{m['dials_per_connect']:10.2f} {m['decide_ms_p50']:5.2f}/{m['decide_ms_p99']:5.2f}")
    return "\n".join(lines)


def as_json(sc: Scenario, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": sc.name, "policies": {}}
    for p, m in res.items():
        row = {k: m[k] for k in METRICS}
        row.update({k: v for k, v in m.items() if k not in METRICS})
        out["policies"][p] = row
    return out


def policies_for(sc: Scenario, policies: list[str]) -> list[str]:
    return list(dict.fromkeys(policies + [p for p in sc.extra_policies if p not in policies]))


def run_all(seeds: int | None, procs: int, policies: list[str], seeds_large: int | None = None,
            only: str | None = None) -> int:
    # headline and safety scenarios first, so a run cut short still has them
    first = ["n20-hit20-talk180", "n100-hit20-talk180"]
    def order(p: Path) -> tuple[int, int, int, str]:
        safety = "safety" in load_scenario(p).tags
        return (0 if p.stem in first else 1, 0 if safety else 1, int(p.stem.split("-")[0][1:]), p.stem)
    files = sorted(SCENARIOS.glob("*.toml"), key=order)
    if only:
        files = [f for f in files if fnmatch.fnmatch(f.stem, only)]
    blocks, summary = [], []
    t0 = time.time()
    for f in files:
        sc = load_scenario(f)
        n = seeds if seeds is not None else sc.seeds
        if seeds_large is not None and sc.agents >= 100:
            n = seeds_large
        t = time.time()
        res = evaluate(sc, policies_for(sc, policies), n, procs)
        print(table(sc, res), f"\n({time.time() - t:.0f} s)\n", flush=True)
        blocks.append(markdown_rows(sc, res))
        summary.append(summary_row(sc, res))
        # written after every scenario: a run cut short still leaves what it measured
        write_section(render(blocks, summary, seeds, time.time() - t0, seeds_large, len(files)))
    print(f"wrote the Pacing section of {RESULTS}")
    return 0


def render_dir(out_dir: Path, seeds_note: str) -> int:
    """Build the RESULTS section from per-scenario JSON files (`--scenario F --json > DIR/F.json`),
    so scenarios can run as separate processes and a run cut short keeps what finished."""
    files = sorted(SCENARIOS.glob("*.toml"), key=lambda p: (int(p.stem.split("-")[0][1:]), p.stem))
    blocks, summary = [], []
    for f in files:
        j = out_dir / f"{f.stem}.json"
        if not j.exists() or j.stat().st_size == 0:
            continue
        try:
            doc = json.loads(j.read_text())
        except json.JSONDecodeError:
            continue
        sc = load_scenario(f)
        res = doc["policies"]
        blocks.append(markdown_rows(sc, res))
        summary.append(summary_row(sc, res))
    write_section(render(blocks, summary, None, 0.0, None, len(files), seeds_note))
    print(f"wrote the Pacing section of {RESULTS} from {len(summary)} of {len(files)} scenarios")
    return 0


def markdown_rows(sc: Scenario, res: dict[str, dict[str, Any]]) -> str:
    nseeds = int(res.get("predictive", next(iter(res.values())))["seeds"])
    rows = [f"#### {sc.name} ({sc.agents} agents, seeds {nseeds}"
            + (f"; {', '.join(sc.tags)}" if sc.tags else "") + ")", "",
            "| policy | abandon (±95%) | max seed | worst 1 h (mean / max) | seeds with an hour > limit "
            "| clock hours > limit | first 30 min | occupancy (±95%) | talk min/h | wait p99 s | dials/connect "
            "| decide ms p50/p99 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, m in res.items():
        rows.append(
            f"| {label(p, m, nseeds)} | {m['abandon_rate']:.4f} ±{m['abandon_rate_ci95']:.4f} | {m['abandon_rate_max_seed']:.4f} "
            f"| {m['worst_hour_abandon']:.4f} / {m['worst_hour_max_seed']:.4f} | {m['seeds_hour_over']}/{m['seeds']} "
            f"| {m['p_hour_over_limit']:.3f} | {m['first30_abandon']:.4f} "
            f"| {m['occupancy']:.3f} ±{m['occupancy_ci95']:.3f} | {m['talk_minutes_per_hour']:.1f} "
            f"| {m['wait_p99_s']:.2f} | {m['dials_per_connect']:.2f} | {m['decide_ms_p50']:.3f}/{m['decide_ms_p99']:.3f} |")
    return "\n".join(rows) + "\n"


def summary_row(sc: Scenario, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pr = res.get("predictive", {})
    nan = float("nan")

    same = pr.get("same_seeds") or {}

    def ours(other: str, key: str) -> float:
        """Our figure on the same seeds as `other` (the hindsight baselines may run fewer)."""
        o = res.get(other, {})
        if same and int(o.get("seeds", -1)) == int(same.get("seeds", -2)):
            return float(same[key])
        return float(pr.get(key, 0.0))

    def ratio(other: str) -> float:
        o = res.get(other, {}).get("occupancy", 0.0)
        return ours(other, "occupancy") / o if o else nan

    def beats(other: str) -> str:
        """yes: our occupancy is at least theirs (they were picked at abandon <= ours when they could be);
        no: theirs is higher at abandon <= ours; no*: theirs is higher, but at more abandon than ours."""
        o = res.get(other)
        if not o or not pr:
            return "-"
        if other.endswith("@safe") and o.get("feasible") is False:
            return "none is"  # no setting of theirs kept every seed's hours under the limit at our abandon
        if ours(other, "occupancy") >= o["occupancy"]:
            return "yes"
        if o["abandon_rate"] <= ours(other, "abandon_rate") + 1e-12:
            return "no"
        mine = ours(other, "abandon_rate")
        if mine <= 0.0:
            return f"no* ({o['abandon_rate']:.4f} abandon vs our 0)"
        return f"no* (x{o['abandon_rate'] / mine:.1f} abandon)"

    return {"name": sc.name, "agents": sc.agents, "pred_occ": pr.get("occupancy", nan), "ab": pr.get("abandon_rate", nan),
            "ab_max": pr.get("abandon_rate_max_seed", nan), "worst": pr.get("worst_hour_max_seed", nan),
            "hour_seeds": f"{pr.get('seeds_hour_over', 0)}/{pr.get('seeds', 0)}",
            "prog_hour_seeds": (f"{res['progressive'].get('seeds_hour_over', 0)}/{res['progressive'].get('seeds', 0)}"
                                if "progressive" in res else "-"),
            "first30": pr.get("first30_abandon", nan), "hours_over": pr.get("p_hour_over_limit", nan),
            "vs_prog": ratio("progressive"), "vs_fixed": ratio("fixed"),
            "R": res.get("fixed", {}).get("ratio", nan), "vs_vici": ratio("vicidial"),
            "vs_tuned": ratio("vicidial-tuned"), "vs_oracle": ratio("oracle"),
            "beats_fixed": f"{beats('fixed')} / {beats('fixed@safe')}",
            "beats_tuned": f"{beats('vicidial-tuned')} / {beats('vicidial-tuned@safe')}",
            "seeds": pr.get("seeds", 0)}


def render(blocks: list[str], summary: list[dict[str, Any]], seeds: int | None, secs: float,
           seeds_large: int | None = None, total: int = 0, how: str | None = None) -> str:
    opts = (f" --seeds {seeds}" if seeds else "") + (f" --seeds-large {seeds_large}" if seeds_large else "")
    done = f"{len(summary)} of {total} scenarios" if total and len(summary) < total else f"{len(summary)} scenarios"
    how = how or (f"`nice -n 10 python -m bench.pacing --all{opts}` ({done}, {secs / 60:.0f} min on 2 processes "
                  "of a shared 2-core machine)")
    lines = [f"Regenerate: {how}; this run: {done}. Scenarios: "
             "`bench/scenarios/*.toml` (held-out calibration scenarios in `bench/scenarios/holdout/` are not "
             "reported). Occupancy = (talk + wrap) / logged-in, non-paused time; abandon = abandoned people / "
             "people answered (US), AMD false positives excluded (they are the same for every policy); "
             "worst 1 h = worst rolling hour on a 1-minute grid; `seeds with an hour > limit` is the safety "
             "goal (at most 5 % of seeds); clock hours > limit = share of the 8 clock hours over the limit; "
             "first 30 min = abandon rate of the first half hour (cold start). `fixed` / `vicidial-tuned` are "
             "hindsight-best at abandon no higher than ours; `@limit` variants only keep every seed's shift "
             "under the limit. Decide ms is CPU time of `Pacer.decide`.", "",
             "### Headline: predictive (ours) against the others", "",
             "| scenario | seeds | ours occ | ours abandon | max seed | worst 1 h (max seed) | seeds with an hour > limit "
             "| (progressive: seeds with an hour > limit) | clock hours > limit | first 30 min "
             "| ×progressive | ×best fixed (R) | ×vicidial | ×tuned vicidial | ×oracle | beats best fixed (any / hour-safe) "
             "| beats tuned vicidial (any / hour-safe) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['name']} | {s['seeds']} | {s['pred_occ']:.3f} | {s['ab']:.4f} | {s['ab_max']:.4f} "
                     f"| {s['worst']:.4f} | {s['hour_seeds']} | {s['prog_hour_seeds']} | {s['hours_over']:.3f} "
                     f"| {s['first30']:.4f} | {s['vs_prog']:.3f} | {s['vs_fixed']:.3f} ({s['R']:.2f}) "
                     f"| {s['vs_vici']:.3f} | {s['vs_tuned']:.3f} | {s['vs_oracle']:.3f} | {s['beats_fixed']} "
                     f"| {s['beats_tuned']} |")
    lines += ["", "### Full tables", ""] + blocks
    return "\n".join(lines)


def write_section(body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n## Pacing\n"
    start = text.find("## Pacing")
    if start < 0:
        text = text.rstrip() + "\n\n## Pacing\n"
        start = text.find("## Pacing")
    nxt = text.find("\n## ", start + 1)
    end = len(text) if nxt < 0 else nxt + 1
    marker = "<!-- pacing-notes -->"
    notes = ""
    old = text[start:end]
    if marker in old:  # hand-written notes after the marker survive a regeneration
        notes = old[old.index(marker):].rstrip() + "\n"
    new = "## Pacing\n\n" + body.rstrip() + "\n\n" + notes + "\n"
    RESULTS.write_text(text[:start] + new + text[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pacing", description="pacing simulator")
    ap.add_argument("--scenario", help="scenario TOML file")
    ap.add_argument("--policy", action="append", dest="policies",
                    help="progressive | fixed | fixed@limit | fixed:R | vicidial | vicidial:METHOD:K:TALLY | vicidial-tuned "
                         "| vicidial-tuned@limit | fixed@safe | vicidial-tuned@safe | predictive | predictive-warm | oracle | power (repeatable)")
    ap.add_argument("--seeds", type=int, help="number of seeds (default: the scenario's `seeds`)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--all", action="store_true", help="run every bench/scenarios/*.toml, update bench/RESULTS.md")
    ap.add_argument("--seeds-large", type=int, help="with --all: seeds for scenarios of 100+ agents")
    ap.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--only", help="with --all: only scenarios whose name matches this glob")
    ap.add_argument("--render", metavar="DIR", help="write the RESULTS section from DIR/<scenario>.json files")
    ap.add_argument("--note", default="", help="with --render: how the JSON files were produced")
    ap.add_argument("--pacer-seeds", type=int,
                    help="seeds for progressive / predictive rows (default: --seeds); the hindsight searches keep --seeds")
    ap.add_argument("--cache", metavar="FILE.jsonl",
                    help="per-seed metrics cache: resume or extend a run without repeating a simulation")
    args = ap.parse_args(argv)
    policies = args.policies or DEFAULT_POLICIES
    if args.seeds is not None and args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    if args.pacer_seeds is not None:
        runmod.PACER_SEEDS = args.pacer_seeds
    if args.cache:
        runmod.use_cache(Path(args.cache))
    try:
        if args.render:
            return render_dir(Path(args.render), args.note)
        if args.all:
            return run_all(args.seeds, args.procs, policies, args.seeds_large, args.only)
        if not args.scenario:
            print("error: give --scenario FILE.toml or --all", file=sys.stderr)
            return 2
        sc = load_scenario(args.scenario)
        res = evaluate(sc, policies_for(sc, policies) if not args.policies else policies, args.seeds or sc.seeds,
                       args.procs)
    except (ScenarioError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(sc, res)))
    else:
        print(table(sc, res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
