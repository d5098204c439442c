"""`python -m bench.amd.announce`: carrier announcements vs people vs answering machines (issue 24).

Corpus (generated at run time, deterministic per seed, kept out of git): Japanese carrier announcements from
espeak-ng (「おかけになった電話番号は現在使われておりません」, 「電波の届かない場所にあるか…」, barred, 186 request,
congestion), read slowly and evenly, repeated, with pauses between sentences, 30% preceded by SIT tones, played
either as a *fake answer* (200 OK after 0-4 s, the recording from the start) or as *early media* (183, then the
same recording); Japanese ring-back (400 Hz x 16 Hz, 1 s on / 2 s off) as early media that is NOT an
announcement; people answering (「はい、もしもし」, after a normal ring and after a quick pick-up, plus a
business-style stress set); answering machines and carrier voicemail after a long ring. All on a telephone
line: noise bed, 300-3400 Hz band-pass, G.711 mu-law round trip.

Measured: announcement recall (fake answers judged `announcement`), early-media announcement recall and
ring-back mistaken for an announcement, people judged anything but a person (the figure that must stay 0),
machines judged an announcement (mislabelled as a dead line instead of a machine), decision time after the 200.
`--write` replaces the "Carrier announcements" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import sosfilt

from bench.amd import corpus as C

ROOT = Path(__file__).resolve().parents[2]
HEAD = "## Carrier announcements (issue 24)"
SEED = 2424

ANNOUNCEMENTS = [
    ["おかけになったでんわばんごうは、げんざいつかわれておりません", "ばんごうをおたしかめになって、おかけなおしください"],
    ["おかけになったでんわは、でんぱのとどかないばしょにあるか、でんげんがはいっていないため、かかりません"],
    ["おきゃくさまのごつごうにより、おつなぎできません"],
    ["このでんわは、げんざいおつなぎできません", "しばらくたってから、おかけなおしください"],
    ["おそれいりますが、ばんごうのまえに、いちはちろくをつけて、おかけなおしください"],
    ["ただいまでんわがたいへんこみあっております", "しばらくたってから、おかけなおしください"],
]
VOICES = ["ja", "ja+f2", "ja+m3", "ja+f4", "ja+m1", "ja+Annie"]
SIT = [(913.8, 0.274), (1370.6, 0.274), (1776.7, 0.380)]


def sit_tones() -> np.ndarray:
    """The three SIT segments at about the level of espeak's speech (its samples are int16-scaled)."""
    return np.concatenate([6000 * np.sin(2 * np.pi * hz * np.arange(int(d * C.SR)) / C.SR) for hz, d in SIT]
                          + [np.zeros(int(0.3 * C.SR))])


def ringback(seconds: float) -> np.ndarray:
    """Japanese ring-back: 400 Hz modulated by 16 Hz, 1 s on, 2 s off."""
    t = np.arange(int(seconds * C.SR)) / C.SR
    on = (t % 3.0) < 1.0
    return np.sin(2 * np.pi * 400 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 16 * t)) * on


def on_line(parts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    x = np.concatenate(parts)
    active = np.concatenate([p for p in parts if np.any(p)]) if any(np.any(p) for p in parts) else x
    db = float(rng.uniform(-26, -14))
    x = x / (np.sqrt(np.mean(active ** 2)) or 1.0) * 32768 * 10 ** (db / 20)
    x = x + C.tts_noise(rng, len(x), db - float(rng.uniform(20, 40)))
    return C.g711_round_trip(sosfilt(C._BAND, x), "ulaw")


def announcement(rng: np.random.Generator, tts: C.Tts) -> tuple[list[np.ndarray], str, bool]:
    voice = str(rng.choice(VOICES))
    speed, pitch = int(rng.integers(140, 190)), int(rng.integers(35, 60))
    sents = ANNOUNCEMENTS[int(rng.integers(len(ANNOUNCEMENTS)))]
    parts: list[np.ndarray] = []
    sit = bool(rng.random() < 0.3)
    if sit:
        parts.append(sit_tones())
    for _rep in range(2):
        for s in sents:
            parts += [tts.say(s, voice, speed, pitch), C._sil(rng.uniform(0.3, 0.9))]
        parts.append(C._sil(rng.uniform(0.8, 1.5)))
    return parts, " / ".join(sents), sit


def make(i: int, kind: str, rng: np.random.Generator, tts: C.Tts) -> dict[str, Any]:
    """One call: `early` audio (before the 200) and `answered` audio (from the 200 on), its label and ring time."""
    early: np.ndarray | None = None
    if kind in ("fake_answer", "early_then_answer"):
        parts, text, sit = announcement(rng, tts)
        lead = C._sil(rng.uniform(0.0, 0.4))
        if kind == "early_then_answer":
            early = on_line([C._sil(0.2)] + parts, rng)
            parts2, _, _ = announcement(rng, tts)
            audio = on_line([lead] + parts2, rng)
            ring = 0.0
        else:
            audio = on_line([lead] + parts, rng)
            ring = float(rng.choice([0.0, rng.uniform(0.5, 4.0)]))
        return {"kind": kind, "label": "announcement", "text": text, "sit": sit, "ring_s": ring, "early": early,
                "audio": audio}
    if kind == "early_ringback":
        early = on_line([ringback(float(rng.uniform(6, 12)))], rng)
        return {"kind": kind, "label": "ringback", "text": "", "sit": False, "ring_s": 0.0, "early": early,
                "audio": np.zeros(0)}
    if kind == "early_announcement":
        parts, text, sit = announcement(rng, tts)
        early = on_line([C._sil(rng.uniform(0.1, 0.5))] + parts, rng)
        return {"kind": kind, "label": "announcement", "text": text, "sit": sit, "ring_s": 0.0, "early": early,
                "audio": np.zeros(0)}
    voice = str(rng.choice(VOICES))
    pitch = int(rng.integers(25, 75))
    if kind in ("person", "person_quick", "person_business"):
        speed = int(rng.integers(230, 300))
        pool = C.HUMAN_BUSINESS["ja"] if kind == "person_business" else C.HUMAN["ja"]
        text = str(rng.choice(pool))
        parts = [C._sil(rng.uniform(0.1, 1.2)), tts.say(text, voice, speed, pitch), C._sil(rng.uniform(1.2, 2.5))]
        if rng.random() < 0.4:
            again = str(rng.choice(C.HUMAN_AGAIN["ja"]))
            parts += [tts.say(again, voice, speed, pitch), C._sil(rng.uniform(1.0, 2.0))]
        ring = float(rng.uniform(0.3, 4.0)) if kind != "person" else \
            float(np.clip(rng.lognormal(np.log(7.0), 0.5), 1.5, 30.0))
        return {"kind": kind, "label": "person", "text": text, "sit": False, "ring_s": ring, "early": None,
                "audio": on_line(parts, rng)}
    # machine: a personal answering machine or the carrier's voicemail, after a long ring
    speed = int(rng.integers(150, 230))
    if rng.random() < 0.5:
        phrases = C.PERSONAL["ja"][int(rng.integers(len(C.PERSONAL["ja"])))]
    else:
        phrases = [C.CARRIER["ja"][1], C.CARRIER["ja"][3]][int(rng.integers(2)):][:1]
    parts = [C._sil(rng.uniform(0.05, 1.0))]
    for j, ph in enumerate(phrases):
        if j:
            parts.append(C._sil(rng.uniform(0.15, 0.8)))
        parts.append(tts.say(ph, voice, speed, pitch))
    beep = kind == "machine_quick" or rng.random() < 0.7
    if beep:  # voicemail ends its greeting with a beep
        hz = float(rng.choice(C.BEEP_HZ))
        t = np.arange(int(rng.uniform(0.2, 1.0) * C.SR)) / C.SR
        parts += [C._sil(rng.uniform(0.2, 0.8)), 6000 * np.sin(2 * np.pi * hz * t)]
    parts.append(C._sil(2.0))
    ring = float(rng.uniform(0.3, 4.0)) if kind == "machine_quick" else float(rng.uniform(8.0, 30.0))
    return {"kind": kind, "label": "machine", "text": " / ".join(phrases), "sit": False, "beep": beep,
            "ring_s": ring, "early": None, "audio": on_line(parts, rng)}


MIX = {"fake_answer": 80, "early_then_answer": 20, "early_announcement": 40, "early_ringback": 30, "person": 80,
       "person_quick": 60, "person_business": 20, "machine": 60,
       "machine_quick": 30}


def corpus(scale: float, cache: Path) -> list[dict[str, Any]]:
    C._NOISE = C.NoiseBeds(cache / "noise")
    tts = C.Tts(cache / "tts")
    rng = np.random.default_rng(SEED)
    calls = []
    for kind, n in MIX.items():
        for i in range(max(2, int(round(n * scale)))):
            calls.append(make(i, kind, rng, tts))
    return calls


def evaluate(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from dialer.amd.announce import AnswerCheck, EarlyMedia

    rows = []
    for c in calls:
        kind_early = None
        if c["early"] is not None:
            em = EarlyMedia()
            for k in range(0, len(c["early"]), 160):
                em.feed(np.clip(np.round(c["early"][k:k + 160]), -32768, 32767).astype(np.int16))
            kind_early = em.kind
            early_at = em.at_s
        else:
            early_at = None
        row: dict[str, Any] = {"kind": c["kind"], "label": c["label"], "early": kind_early, "early_at": early_at,
                               "sit": c["sit"]}
        if len(c["audio"]):
            chk = AnswerCheck(ring_s=c["ring_s"], early=kind_early, amd_wanted=False)
            pcm = np.clip(np.round(c["audio"]), -32768, 32767).astype(np.int16)
            for k in range(0, len(pcm), 160):
                if chk.feed(pcm[k:k + 160]) is not None:
                    break
            r = chk.result or chk.finish()
            row.update(verdict=r.verdict.value, at=r.decided_after_s, reason=r.reason)
        rows.append(row)
    return rows


def _pct(ts: list[float]) -> str:
    if not ts:
        return "- / -"
    ts = sorted(ts)
    return f"{statistics.median(ts):.2f} / {ts[int(0.9 * (len(ts) - 1))]:.2f}"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ann = [r for r in rows if r["kind"] in ("fake_answer", "early_then_answer")]
    people = [r for r in rows if r["label"] == "person"]
    mach = [r for r in rows if r["label"] == "machine"]
    early_a = [r for r in rows if r["kind"] == "early_announcement"]
    rb = [r for r in rows if r["kind"] == "early_ringback"]
    return {
        "announcements": len(ann),
        "announcement_recall": sum(r["verdict"] == "announcement" for r in ann) / len(ann),
        "announcement_time": _pct([r["at"] for r in ann if r["verdict"] == "announcement"]),
        "sit_recall": (sum(r["verdict"] == "announcement" and "SIT" in r["reason"] for r in ann if r["sit"]),
                       sum(1 for r in ann if r["sit"])),
        "early": len(early_a), "early_recall": sum(r["early"] is not None for r in early_a) / len(early_a),
        "early_time": _pct([r["early_at"] for r in early_a if r["early_at"] is not None]),
        "ringback": len(rb), "ringback_as_announcement": sum(r["early"] is not None for r in rb),
        "people": len(people), "people_misjudged": sum(r["verdict"] != "person" for r in people),
        "people_by_kind": {k: (sum(r["verdict"] != "person" for r in people if r["kind"] == k),
                               sum(1 for r in people if r["kind"] == k))
                           for k in ("person", "person_quick", "person_business")},
        "people_time": _pct([r["at"] for r in people if r["verdict"] == "person"]),
        "machines": len(mach), "machines_as_announcement": sum(r["verdict"] == "announcement" for r in mach),
        "quick_voicemail": (sum(r["verdict"] == "announcement" for r in mach if r["kind"] == "machine_quick"),
                            sum(1 for r in mach if r["kind"] == "machine_quick")),
    }


def section(s: dict[str, Any], took: float, scale: float) -> str:
    pk = s["people_by_kind"]
    return "\n".join([
        HEAD, "",
        f"Regenerate: `nice -n 10 python -m bench.amd.announce --write` (scale {scale:g}, took {took:.0f} s; "
        "corpus generated at run time, seed 2424, nothing in git). What `dialer.amd.announce` decides (the live "
        "worker runs the same `AnswerCheck` on every answered call and `EarlyMedia` on every 183 with SDP), "
        "campaign without AMD (the strictest case: only the announcement check stands between a 200 and an agent).",
        "",
        "| measure | result |", "|---|---|",
        f"| fake answers (200 OK + Japanese announcement) judged announcement | "
        f"{s['announcement_recall']:.3f} of {s['announcements']} |",
        f"| of them preceded by SIT tones, judged on the SIT | {s['sit_recall'][0]} of {s['sit_recall'][1]} |",
        f"| announcement verdict after the 200, p50 / p90 s | {s['announcement_time']} |",
        f"| early-media (183) announcements recognised | {s['early_recall']:.3f} of {s['early']} |",
        f"| early-media verdict, seconds of early media p50 / p90 | {s['early_time']} |",
        f"| Japanese ring-back taken for an announcement | {s['ringback_as_announcement']} of {s['ringback']} |",
        f"| **people judged anything but a person** | **{s['people_misjudged']} of {s['people']}** "
        f"(normal ring {pk['person'][0]}/{pk['person'][1]}, quick pick-up {pk['person_quick'][0]}/"
        f"{pk['person_quick'][1]}, business-style greeting after a quick pick-up {pk['person_business'][0]}/"
        f"{pk['person_business'][1]}) |",
        f"| person verdict after the 200, p50 / p90 s (the connect limit runs from it) | {s['people_time']} |",
        f"| answering machines / voicemail judged an announcement (would be stored `unreachable`) | "
        f"{s['machines_as_announcement']} of {s['machines']} (of them voicemail with a beep answering within 4 s: "
        f"{s['quick_voicemail'][0]} of {s['quick_voicemail'][1]}) |",
        "",
        "How it decides: SIT (a rising pair of SIT-band tones of 0.18-0.5 s), ring-back/busy tone after the 200 "
        "(>= 0.6 s of a 330-500 Hz pure tone), or the AMD detector's greeting-shape `machine` after a "
        "quick answer (< 6 s of ringing) or after an early-media announcement, when the greeting ends without a "
        "beep (voicemail beeps; the network talks on or repeats) — hence the announcement verdict waits for the "
        "end of the recording's first round (capped at 9 s). People: the AMD person rule "
        "(a short greeting, then a pause) or nobody speaking for 1 s. Known weak: a person who answers within 6 s "
        "with a greeting longer than ~2.8 s and no pause is judged the network's, and an answering machine "
        "that picks up within 6 s and never beeps is stored `unreachable`, not `machine`; music on hold in early media (メロディ"
        "コール) has not been measured and would label an unanswered call `unreachable`, not `no_answer`.", ""])


def write(text: str) -> None:
    res = ROOT / "bench" / "RESULTS.md"
    cur = res.read_text(encoding="utf-8")
    if HEAD in cur:
        start = cur.index(HEAD)
        nxt = cur.find("\n## ", start + len(HEAD))
        cur = cur[:start] + text + ("" if nxt < 0 else cur[nxt:])
    else:
        cur = cur.rstrip("\n") + "\n\n" + text
    res.write_text(cur, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.amd.announce", description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1.0 = 420 calls)")
    ap.add_argument("--cache", type=Path, default=ROOT / "var" / "amd-corpus" / "_cache")
    ap.add_argument("--write", action="store_true", help="replace the section in bench/RESULTS.md")
    ap.add_argument("--wrong", action="store_true", help="print every wrong verdict")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    rows = evaluate(corpus(args.scale, args.cache))
    s = summarise(rows)
    print(json.dumps(s, indent=1, ensure_ascii=False))
    if args.wrong:
        for r in rows:
            bad = (r["label"] == "person" and r.get("verdict") != "person") or \
                  (r["label"] == "announcement" and r.get("verdict", "announcement") != "announcement") or \
                  (r["kind"] == "early_announcement" and r["early"] is None) or \
                  (r["kind"] == "early_ringback" and r["early"] is not None) or \
                  (r["label"] == "machine" and r.get("verdict") == "announcement")
            if bad:
                print("WRONG", json.dumps(r, ensure_ascii=False, default=str))
    if args.write:
        write(section(s, time.monotonic() - t0, args.scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
