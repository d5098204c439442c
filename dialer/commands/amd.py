"""`dialer amd classify WAV...`: the live answering-machine detector, run offline on recorded customer audio."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dialer.commands._common import group, seconds_arg
from dialer.errors import UserError


def classify_file(path: str, ring_s: float | None = None) -> dict[str, Any]:
    """One file's verdict as printed (and as bench.amd scores it)."""
    from dialer.amd import classify_pcm
    from dialer.amd.wavfile import read_pcm, sidecar_ring_s

    pcm = read_pcm(path)
    ring = ring_s if ring_s is not None else sidecar_ring_s(path)
    d = classify_pcm(pcm, ring_s=ring)
    return {"file": path, "verdict": d.verdict, "decided_after_s": round(d.decided_after_s, 3),
            "features": d.features}


def _classify(args: argparse.Namespace) -> int:
    from dialer.amd.wavfile import WavError

    bad = 0
    for path in args.wav:
        try:
            r = classify_file(path, args.ring_s)
        except WavError as exc:
            print(f"dialer: {exc}", file=sys.stderr)
            bad += 1
            continue
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            f = r["features"]
            print(f"{path}: {r['verdict']} after {r['decided_after_s']:.2f} s ({f['reason']}; "
                  f"silence {f['initial_silence_s']} s, greeting {f['greeting_s']} s, {f['words']} words"
                  + (f", beep {f['beep_hz']:.0f} Hz" if f["beep_hz"] else "") + ")")
    if bad == len(args.wav):
        raise UserError(f"no usable WAV among {len(args.wav)} file(s)")
    return 1 if bad else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "amd", "answering-machine detection")
    p = g.add_parser("classify", help="classify recorded calls as human / machine / unsure",
                     description="Run the live detector on 8 kHz mono WAV files (one call's customer audio from "
                                 "answer on) and print per file its verdict, when it was reached and the features "
                                 "behind it. Ring time before answer comes from --ring-s or a sidecar x.json "
                                 "{\"ring_s\": S} next to x.wav.")
    p.add_argument("wav", nargs="+", metavar="WAV", help="WAV file(s), 16-bit mono (8 kHz; others are resampled)")
    p.add_argument("--ring-s", type=seconds_arg, metavar="S", help="ring time before answer, seconds (all files)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_classify)
