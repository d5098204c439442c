"""python -m bench.pacing --scenario FILE.toml [--policy NAME]... [--seeds N] [--json]
python -m bench.pacing --all [--seeds N]   (every bench/scenarios/*.toml -> bench/RESULTS.md "## Pacing")"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.pacing.run import METRICS, evaluate
from bench.pacing.scenario import Scenario, ScenarioError, load_scenario

DEFAULT_POLICIES = ["progressive", "fixed", "vicidial", "predictive", "oracle"]
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "bench" / "scenarios"
RESULTS = ROOT / "bench" / "RESULTS.md"


def table(sc: Scenario, res: dict[str, dict[str, Any]]) -> str:
    head = (f"{'policy':<14} {'abandon':>15} {'max seed':>8} {'worst 1h':>8} {'P(h>lim)':>8} {'occupancy':>15} "
            f"{'talk m/h':>8} {'wait p50/p95/p99 s':>19} {'conn/ag-h':>9} {'dials/conn':>10} {'decide ms':>9}")
    lines = [f"{sc.name}: {sc.agents} agents, limit {sc.abandon_limit:.3f}, seeds {next(iter(res.values()))['seeds']}",
             head]
    for p, m in res.items():
        name = p if p != "fixed" else f"fixed({m['ratio']:g})"
        lines.append(
            f"{name:<14} {m['abandon_rate']:.4f}±{m['abandon_rate_ci95']:.4f}  {m['abandon_rate_max_seed']:.4f} "
            f"  {m['worst_hour_abandon']:.4f}   {m['p_hour_over_limit']:.3f}  {m['occupancy']:.3f}±{m['occupancy_ci95']:.3f} "
            f"{m['talk_minutes_per_hour']:8.1f} {m['wait_p50_s']:5.2f}/{m['wait_p95_s']:5.2f}/{m['wait_p99_s']:5.2f}"
            f" {m['connects_per_agent_hour']:9.2f} {m['dials_per_connect']:10.2f} {m['decide_ms_p50']:9.3f}")
    return "\n".join(lines)


def as_json(sc: Scenario, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": sc.name, "policies": {}}
    for p, m in res.items():
        row = {k: m[k] for k in METRICS}
        row.update({k: v for k, v in m.items() if k not in METRICS})
        out["policies"][p] = row
    return out


def run_all(seeds: int | None, procs: int, policies: list[str], seeds_large: int | None = None) -> int:
    files = sorted(SCENARIOS.glob("*.toml"), key=lambda p: (int(p.stem.split("-")[0][1:]), p.stem))
    blocks, summary = [], []
    t0 = time.time()
    for f in files:
        sc = load_scenario(f)
        n = seeds if seeds is not None else sc.seeds
        if seeds_large is not None and sc.agents >= 100:
            n = seeds_large
        t = time.time()
        res = evaluate(sc, policies, n, procs)
        print(table(sc, res), f"\n({time.time() - t:.0f} s)\n", flush=True)
        blocks.append(markdown_rows(sc, res))
        summary.append(summary_row(sc, res))
    text = render(blocks, summary, seeds, time.time() - t0, seeds_large)
    write_section(text)
    print(f"wrote the Pacing section of {RESULTS}")
    return 0


def markdown_rows(sc: Scenario, res: dict[str, dict[str, Any]]) -> str:
    rows = [f"#### {sc.name} ({sc.agents} agents, seeds {next(iter(res.values()))['seeds']})", "",
            "| policy | abandon (±95%) | max seed | worst 1 h | P(hour > limit) | occupancy (±95%) | talk min/h "
            "| wait p50/p95/p99 s | connects/agent-h | dials/connect | decide ms p50 |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, m in res.items():
        name = p if p != "fixed" else f"fixed (best R={m['ratio']:g})"
        rows.append(
            f"| {name} | {m['abandon_rate']:.4f} ±{m['abandon_rate_ci95']:.4f} | {m['abandon_rate_max_seed']:.4f} "
            f"| {m['worst_hour_abandon']:.4f} | {m['p_hour_over_limit']:.3f} | {m['occupancy']:.3f} ±{m['occupancy_ci95']:.3f} "
            f"| {m['talk_minutes_per_hour']:.1f} | {m['wait_p50_s']:.2f}/{m['wait_p95_s']:.2f}/{m['wait_p99_s']:.2f} "
            f"| {m['connects_per_agent_hour']:.2f} | {m['dials_per_connect']:.2f} | {m['decide_ms_p50']:.3f} |")
    return "\n".join(rows) + "\n"


def summary_row(sc: Scenario, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    pr = res.get("predictive", {})
    def ratio(other: str) -> float:
        o = res.get(other, {}).get("occupancy", 0.0)
        return pr.get("occupancy", 0.0) / o if o else float("nan")
    return {"name": sc.name, "agents": sc.agents, "limit": sc.abandon_limit,
            "pred_occ": pr.get("occupancy", float("nan")), "vs_prog": ratio("progressive"),
            "vs_vici": ratio("vicidial"), "vs_oracle": ratio("oracle"), "vs_fixed": ratio("fixed"),
            "ab": pr.get("abandon_rate", float("nan")), "ab_max": pr.get("abandon_rate_max_seed", float("nan")),
            "vici_ab": res.get("vicidial", {}).get("abandon_rate", float("nan")),
            "p_hour": pr.get("p_hour_over_limit", float("nan")), "ms": pr.get("decide_ms_p50", float("nan")),
            "seeds": pr.get("seeds", 0)}


def render(blocks: list[str], summary: list[dict[str, Any]], seeds: int | None, secs: float,
           seeds_large: int | None = None) -> str:
    opts = (f" --seeds {seeds}" if seeds else "") + (f" --seeds-large {seeds_large}" if seeds_large else "")
    lines = ["Regenerate: `python -m bench.pacing --all" + opts + "` "
             f"(took {secs / 60:.0f} min on 2 processes). Scenarios: `bench/scenarios/*.toml`; format in "
             "`bench/README.md`. Occupancy = (talk + wrap) / logged-in, non-paused time; P(hour > limit) "
             "is over the 8 clock hours of each seed; abandon = abandoned / answered by a person (US).", "",
             "### Headline: predictive (ours) against the others", "",
             "| scenario | seeds | ours occ | ×progressive | ×best fixed | ×vicidial | ×oracle | ours abandon "
             "| ours max seed | vicidial abandon | ours P(hour>limit) | decide ms p50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['name']} | {s['seeds']} | {s['pred_occ']:.3f} | {s['vs_prog']:.3f} | {s['vs_fixed']:.3f} "
                     f"| {s['vs_vici']:.3f} | {s['vs_oracle']:.3f} | {s['ab']:.4f} | {s['ab_max']:.4f} "
                     f"| {s['vici_ab']:.4f} | {s['p_hour']:.3f} | {s['ms']:.3f} |")
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
                    help="progressive | fixed | fixed:R | vicidial | predictive | oracle | power (repeatable)")
    ap.add_argument("--seeds", type=int, help="number of seeds (default: the scenario's `seeds`)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--all", action="store_true", help="run every bench/scenarios/*.toml, update bench/RESULTS.md")
    ap.add_argument("--seeds-large", type=int, help="with --all: seeds for scenarios of 100+ agents")
    ap.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    args = ap.parse_args(argv)
    policies = args.policies or DEFAULT_POLICIES
    if args.seeds is not None and args.seeds < 1:
        print("error: --seeds must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.all:
            return run_all(args.seeds, args.procs, policies, args.seeds_large)
        if not args.scenario:
            print("error: give --scenario FILE.toml or --all", file=sys.stderr)
            return 2
        sc = load_scenario(args.scenario)
        res = evaluate(sc, policies, args.seeds or sc.seeds, args.procs)
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
