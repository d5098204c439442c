"""`python -m bench.amd`: generate the dev and held-out test corpora, classify every call with the same code
as `dialer amd classify`, and write the "AMD" section of bench/RESULTS.md plus dialer/amd/measured.json
(the false-positive share the dialer's abandon figures use).

`--tune` grid-searches the main parameters on the dev split only (the held-out split is never looked at
while tuning) and prints the best set; copy it into `AmdParams` defaults, then rerun without `--tune`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.amd.corpus import VOICES, generate

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
MEASURED = ROOT / "dialer" / "amd" / "measured.json"
SEEDS = {"dev": 1015, "test": 2015, "business": 3015, "business_dev": 3016}
HEAD = "## AMD (issue 15)"


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy with `unsure` counted as human (that is what the dialer does with it)."""
    hum = [r for r in rows if r["label"] == "human"]
    mac = [r for r in rows if r["label"] == "machine"]
    said_m = [r for r in rows if r["verdict"] == "machine"]
    correct = sum(1 for r in rows if (r["verdict"] == "machine") == (r["label"] == "machine"))

    def times(rs: list[dict[str, Any]]) -> dict[str, float | None]:
        ts = sorted(r["decided_after_s"] for r in rs)
        if not ts:
            return {"p50": None, "p90": None, "max": None}
        return {"p50": round(statistics.median(ts), 3), "p90": round(ts[int(0.9 * (len(ts) - 1))], 3),
                "max": round(ts[-1], 3)}

    fp = sum(1 for r in hum if r["verdict"] == "machine")
    return {
        "n": len(rows), "humans": len(hum), "machines": len(mac),
        "accuracy": round(correct / len(rows), 4) if rows else None,
        "machine_recall": round(sum(1 for r in mac if r["verdict"] == "machine") / len(mac), 4) if mac else None,
        "human_fp_rate": round(fp / len(hum), 4) if hum else None,
        "human_fp": fp,
        "fp_share_of_machine_verdicts": round(fp / len(said_m), 4) if said_m else 0.0,
        "unsure_humans": sum(1 for r in hum if r["verdict"] == "unsure"),
        "unsure_machines": sum(1 for r in mac if r["verdict"] == "unsure"),
        "time_human": times([r for r in hum if r["verdict"] != "machine"]),
        "time_machine": times([r for r in mac if r["verdict"] == "machine"]),
        "time_all_humans": times(hum),
        # from the end of the person's greeting (what the 2-second rule measures from) to the verdict
        "human_after_greeting": times([{"decided_after_s": r["decided_after_s"] - r["features"]["initial_silence_s"]
                                        - (r["features"]["greeting_s"] or 0.0)} for r in hum
                                       if r["verdict"] != "machine" and "features" in r
                                       and r["features"].get("greeting_s") is not None]),
    }


def _upper95(k: int, n: int) -> float:
    """Wilson score upper bound: 0 errors in 150 still leaves room for a ~2.5% true rate."""
    if n == 0:
        return 1.0
    z, p = 1.96, k / n
    return float((p + z * z / (2 * n) + z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5) / (1 + z * z / n))


def classify_all(paths: list[Path], params: Any = None, cache: dict[Path, Any] | None = None,
                 ring: str = "sidecar") -> list[dict[str, Any]]:
    from dialer.amd import classify_pcm
    from dialer.amd.wavfile import read_pcm, sidecar
    from dialer.commands.amd import classify_file

    rows = []
    for p in paths:
        side = sidecar(p)
        if ring == "ignore":
            d = classify_pcm(read_pcm(p), ring_s=None)
            r = {"file": str(p), "verdict": d.verdict, "decided_after_s": d.decided_after_s, "features": d.features}
        elif params is None:
            r = classify_file(str(p))  # exactly the CLI's path
        else:
            assert cache is not None
            if p not in cache:
                cache[p] = read_pcm(p)
            d = classify_pcm(cache[p], ring_s=float(side["ring_s"]), params=params)  # type: ignore[arg-type]
            r = {"file": str(p), "verdict": d.verdict, "decided_after_s": d.decided_after_s, "features": d.features}
        rows.append({**r, "label": side["label"], "kind": side["kind"], "lang": side["lang"]})
    return rows


def _replay(infos: list[Any], params: Any, ring_s: float) -> tuple[str, float]:
    """The detector's decision from cached frame analyses (VAD settings fixed; timings vary while tuning)."""
    from dialer.amd import Detector, FrameInfo

    det = Detector(params, ring_s=ring_s)
    for info in infos:
        det.step(info)
        if det.decision is not None:
            break
    quiet = FrameInfo(level_db=-100.0, floor_db=-100.0, voiced=False, tone_hz=None)
    while det.decision is None:
        det.step(quiet)
    return det.decision.verdict, det.decision.decided_after_s


def tune(paths: list[Path], business: list[Path]) -> None:
    from dialer.amd import AmdParams, FrameAnalyzer
    from dialer.amd.detector import iter_frames
    from dialer.amd.wavfile import read_pcm, sidecar

    base = AmdParams()
    data = []
    for p in paths + business:
        side = sidecar(p)
        fa = FrameAnalyzer(snr_db=base.snr_db, min_level_db=base.min_level_db, tone_purity=base.tone_purity)
        infos = [fa.analyze(f) for f in itertools.islice(iter_frames(read_pcm(p)), int(base.total_budget_s / 0.02))]
        data.append((infos, float(side["ring_s"]), side["label"], side["kind"]))  # type: ignore[arg-type]
    grid = {"greeting_max_s": [2.0, 2.4, 2.8, 3.2], "after_greeting_silence_s": [0.25, 0.3, 0.35],
            "long_ring_greeting_scale": [0.6], "long_ring_extra_silence_s": [0.6, 0.9, 1.2],
            "ring_prior_from_s": [3.0, 4.0, 6.0], "long_ring_s": [12.0, 15.0]}
    best: tuple[float, dict[str, Any], dict[str, Any]] | None = None
    for combo in itertools.product(*grid.values()):
        kw = dict(zip(grid, combo, strict=True))
        params = base.replace(**kw)
        rows, brows = [], []
        for infos, ring, label, kind in data:
            v, t = _replay(infos, params, ring)
            (brows if kind == "human_business" else rows).append({"label": label, "verdict": v,
                                                                  "decided_after_s": t})
        s = score(rows)
        kw["business_dev_fp"] = score(brows)["human_fp_rate"]
        ok = s["human_fp_rate"] <= 0.015 and (s["time_all_humans"]["p50"] or 9) <= 1.5
        obj = s["machine_recall"] + (1.0 if ok else 0.0) - 0.02 * (s["time_all_humans"]["p50"] or 9)
        print(json.dumps({**kw, "recall": s["machine_recall"], "fp": s["human_fp_rate"],
                          "h_p50": s["time_all_humans"]["p50"], "ok": ok}), flush=True)
        if best is None or obj > best[0]:
            best = (obj, kw, s)
    assert best is not None
    print("BEST", json.dumps(best[1]), json.dumps(best[2]))


def breakdown(rows: list[dict[str, Any]], key: str) -> list[str]:
    out = []
    for v in sorted({r[key] for r in rows}):
        rs = [r for r in rows if r[key] == v]
        right = sum(1 for r in rs if (r["verdict"] == "machine") == (r["label"] == "machine"))
        ts = sorted(r["decided_after_s"] for r in rs)
        out.append(f"| {v} | {len(rs)} | {right / len(rs):.3f} | {statistics.median(ts):.2f} | "
                   f"{sum(1 for r in rs if r['verdict'] == 'unsure')} |")
    return out


def section(res: dict[str, Any], took: float, n: int) -> str:
    lines = [HEAD, "",
             f"Regenerate: `nice -n 10 python -m bench.amd --n {n}` (took {took:.0f} s). Corpus: `bench/amd/corpus.py`"
             " — espeak-ng Japanese/English voices, sox noise beds at 15-40 dB SNR, 300-3400 Hz band-pass, G.711"
             " mu-law/A-law round trip, beeps at " "440/850/1000/1400/1800 Hz in 70% of machines, ring time before"
             " answer as a prior. Each split has its own seed and voices:",
             f"dev {VOICES['dev']}, test {VOICES['test']}. Parameters were tuned on dev only"
             " (`--tune`); the test split is held out. `unsure` counts as human (the dialer connects it).", "",
             "| split | calls | accuracy | machine recall | humans judged machine | FP share of machine verdicts |"
             " human verdict p50 / p90 s | after the person's greeting p50 / p90 s | machine verdict p50 / p90 s |"
             " unsure (humans / machines) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    def f(x: float | None, nd: int) -> str:
        return "-" if x is None else f"{x:.{nd}f}"

    def pair(d: dict[str, float | None]) -> str:
        return f"{f(d['p50'], 2)} / {f(d['p90'], 2)}"

    for split, s in res.items():
        lines.append(f"| {split} | {s['n']} | {f(s['accuracy'], 3)} | {f(s['machine_recall'], 3)} | "
                     f"{s['human_fp']}/{s['humans']} = {f(s['human_fp_rate'], 3)} | "
                     f"{f(s['fp_share_of_machine_verdicts'], 3)} | {pair(s['time_all_humans'])} | "
                     f"{pair(s['human_after_greeting'])} | {pair(s['time_machine'])} | "
                     f"{s['unsure_humans']} / {s['unsure_machines']} |")
    t = res["test"]
    lines += ["", f"Humans judged machine on the held-out split, 95% upper bound (Wilson): "
              f"{_upper95(t['human_fp'], t['humans']):.3f}. Decision times are from answer; the people in the corpus"
              " start speaking 0.1-1.2 s after answer (uniform), so about 0.7 s of every human verdict is their own"
              " initial silence. The stress row is people answering like a business with a ~2 s greeting"
              " (「はい、やまだしょうてん、たなかでございます」), test voices: the classic AMD false positive (a long"
              " greeting looks recorded). `greeting_max_s` was raised from 2.0 to 2.8 s on the dev split plus a"
              " dev-voiced business set (`business_dev`: people judged machine 0.40 -> 0.04; dev machine"
              " recall unchanged at 0.98): machine verdicts take ~0.5 s longer, which costs line time, not agents or compliance."]
    goals = [("machine recall >= 0.90", t["machine_recall"] >= 0.90),
             ("humans judged machine <= 0.02", t["human_fp_rate"] <= 0.02),
             ("human verdict median <= 1.5 s", (t["time_all_humans"]["p50"] or 9) <= 1.5)]
    lines += ["", "Goals on the held-out split: " + "; ".join(f"{g}: {'met' if ok else 'NOT met'}" for g, ok in goals)
              + ".", ""]
    return "\n".join(lines)


def write_results(text: str, rows_test: list[dict[str, Any]]) -> None:
    text += "\n### Held-out split by kind and language\n\n| group | calls | accuracy | verdict p50 s | unsure |\n" \
            "|---|---|---|---|---|\n" + "\n".join(breakdown(rows_test, "kind") + breakdown(rows_test, "lang")) + "\n"
    cur = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if HEAD in cur:
        start = cur.index(HEAD)
        nxt = cur.find("\n## ", start + len(HEAD))
        cur = cur[:start] + text + ("" if nxt < 0 else cur[nxt:])
    else:
        cur = cur.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(cur, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.amd", description=__doc__)
    ap.add_argument("--n", type=int, default=150, help="calls per class per split (default 150)")
    ap.add_argument("--out", type=Path, default=ROOT / "var" / "amd-corpus", help="corpus directory")
    ap.add_argument("--tune", action="store_true", help="grid-search on dev and print the best parameters")
    ap.add_argument("--no-write", action="store_true", help="print, do not touch bench/RESULTS.md")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    cache = args.out / "_cache"
    paths = {s: generate(args.out, s, args.n, SEEDS[s], cache) for s in ("dev", "test")}
    if args.tune:
        tune(paths["dev"], generate(args.out, "business_dev", max(10, args.n // 6), SEEDS["business_dev"], cache))
        return 0
    rows = {s: classify_all(p) for s, p in paths.items()}
    res = {s: score(r) for s, r in rows.items()}
    res["test, ring time unknown"] = score(classify_all(paths["test"], ring="ignore"))
    # stress: people answering like a business (long greeting), test voices; not part of the goals
    res["stress: business-style people"] = score(classify_all(generate(args.out, "business", max(10, args.n // 6),
                                                                       SEEDS["business"], cache)))
    print(json.dumps(res, indent=1))
    for r in rows["test"]:
        if (r["verdict"] == "machine") != (r["label"] == "machine"):
            print("WRONG", Path(r["file"]).name, r["verdict"], r["decided_after_s"], json.dumps(r["features"]))
    if not args.no_write:
        write_results(section(res, time.monotonic() - t0, args.n), rows["test"])
        t = res["test"]
        said_machine = t["human_fp"] + round(t["machine_recall"] * t["machines"])
        MEASURED.write_text(json.dumps({"corpus_fp_share": res["test"]["fp_share_of_machine_verdicts"],
                                        "corpus_fp_share_upper95": round(_upper95(t["human_fp"], said_machine), 4),
                                        "human_fp_rate": res["test"]["human_fp_rate"],
                                        "human_fp_rate_upper95": round(_upper95(res["test"]["human_fp"],
                                                                                 res["test"]["humans"]), 4),
                                        "machine_recall": res["test"]["machine_recall"],
                                        "calls": res["test"]["n"]}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
