"""An AMD evaluation corpus: synthetic calls as the dialer would hear them, from answer on.

Each call = espeak-ng speech (Japanese and English voices) arranged as a person answering or as a machine
greeting, on a telephone line: sox noise bed, 300-3400 Hz band-pass, G.711 companding round trip (mu-law or
A-law, as a carrier would). Every WAV gets a sidecar JSON with its label, kind, script, voice and ring time
before answer (the prior the live path gets from call timing). Splits differ by seed AND by voices, so a
parameter set tuned on `dev` is scored on voices it never saw in `test`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt

SR = 8000

# The voices of each split never overlap (espeak-ng "voice+variant").
VOICES = {
    "dev": {"ja": ["ja", "ja+f2", "ja+m3"], "en": ["en-us", "en-us+f3", "en-gb+m2"]},
    "test": {"ja": ["ja+f4", "ja+m1", "ja+Annie"], "en": ["en-gb-x-rp", "en-us-nyc+f1", "en-029+m4", "en-gb+Alex"]},
}

# People: a short answer, then silence (waiting for the caller) or the answer again.
HUMAN = {
    "ja": ["はい", "はい、もしもし", "もしもし", "もしもし、たなかです", "はい、すずきです", "はい、さとうです",
           "もしもし?", "はい、やまだ"],
    "en": ["hello?", "hello", "yes?", "hi", "hello, this is john", "yeah, hello?", "speaking", "hello, mary here"],
}
# A stress set, not part of the splits: people who answer like a business, with a long greeting.
HUMAN_BUSINESS = {
    "ja": ["はい、やまだしょうてん、たなかでございます", "おでんわありがとうございます、すずきです",
           "はい、さとうけいりじむしょでございます"],
    "en": ["good morning, acme trading, john speaking", "thank you for calling, this is mary, how can I help?"],
}
HUMAN_AGAIN = {"ja": ["もしもし?", "もしもーし", "あの、もしもし"], "en": ["hello?", "hello? anyone there?"]}

# Machines: personal greetings (phrases with pauses) and carrier announcements (one long utterance).
PERSONAL = {
    "ja": [["もしもし、たなかです", "ただいまでかけております", "はっしんおんのあとに、メッセージをおねがいします"],
           ["はい、すずきです", "ただいま、でんわにでることができません", "のちほど、おかけなおしください"],
           ["さとうです", "ただいまるすにしております", "ごようけんを、おはなしください"],
           ["おでんわありがとうございます", "やまだしょうてんです", "ほんじつのえいぎょうはしゅうりょういたしました"]],
    "en": [["hi, this is john", "I can't come to the phone right now", "please leave a message after the beep"],
           ["hello", "you've reached mary and tom", "we're not home, leave a message"],
           ["hey, it's alex", "leave your name and number and I'll call you back"],
           ["thank you for calling", "our office is now closed", "please call again during business hours"]],
}
CARRIER = {
    "ja": ["おかけになったでんわは、でんぱのとどかないばしょにあるか、でんげんがはいっていないため、かかりません",
           "ただいまでんわにでることができません。はっしんおんのあとに、おなまえとごようけんをおはなしください",
           "おかけになったでんわをおよびしましたが、おでになりません",
           "こちらは、るすばんでんわサービスセンターです。メッセージをおあずかりします"],
    "en": ["the person you are calling is not available. please record your message after the tone",
           "the number you have dialed is not in service. please check the number and try again",
           "your call has been forwarded to an automatic voice message system"],
}
BEEP_HZ = [440.0, 850.0, 1000.0, 1400.0, 1800.0]


@dataclass(frozen=True)
class Call:
    name: str
    label: str  # human | machine
    kind: str  # human_silent | human_again | personal | carrier
    lang: str
    voice: str
    script: str
    ring_s: float
    meta: dict[str, Any]


class Tts:
    """espeak-ng with a disk cache (the same phrase, voice, speed and pitch is synthesised once)."""

    def __init__(self, cache: Path):
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def say(self, text: str, voice: str, speed: int, pitch: int) -> np.ndarray:
        key = hashlib.sha1(f"{text}|{voice}|{speed}|{pitch}".encode()).hexdigest()[:16]
        f = self.cache / f"{key}.npy"
        if f.exists():
            return np.asarray(np.load(f))
        with tempfile.TemporaryDirectory() as td:
            wav = Path(td) / "t.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                           check=True, capture_output=True, timeout=60)
            with wave.open(str(wav), "rb") as w:
                rate = w.getframerate()
                x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        y = resample_poly(x, SR, rate) if rate != SR else x
        y = _trim(y)
        np.save(f, y)
        return y


def _trim(x: np.ndarray, thresh_db: float = -45.0) -> np.ndarray:
    """Cut espeak's leading/trailing silence so our own pauses are the only ones."""
    frame = 80
    n = len(x) // frame
    if n == 0:
        return x
    e = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) / 32768**2 + 1e-12)
    idx = np.nonzero(e > thresh_db)[0]
    if len(idx) == 0:
        return x
    return x[idx[0] * frame: (idx[-1] + 1) * frame]


class NoiseBeds:
    """A few minutes of sox-synthesised line noise of each colour; calls take random slices."""

    def __init__(self, cache: Path):
        self.beds: dict[str, np.ndarray] = {}
        cache.mkdir(parents=True, exist_ok=True)
        for colour in ("whitenoise", "pinknoise", "brownnoise"):
            f = cache / f"{colour}.wav"
            if not f.exists():
                subprocess.run(["sox", "-n", "-r", str(SR), "-b", "16", "-c", "1", str(f), "synth", "60", colour,
                                "vol", "0.5"], check=True, capture_output=True, timeout=60)
            with wave.open(str(f), "rb") as w:
                x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
            self.beds[colour] = x / np.sqrt(np.mean(x * x))

    def take(self, rng: np.random.Generator, n: int) -> np.ndarray:
        bed = self.beds[str(rng.choice(sorted(self.beds)))]
        start = int(rng.integers(0, len(bed) - n)) if len(bed) > n else 0
        out = bed[start:start + n]
        return np.resize(out, n)


_BAND = butter(4, [300, 3400], btype="band", fs=SR, output="sos")


def g711_round_trip(x: np.ndarray, law: str) -> np.ndarray:
    """Encode to G.711 and back, as a trunk does (stdlib audioop is the reference codec)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop as ao

    raw = np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()
    enc, dec = (ao.lin2ulaw, ao.ulaw2lin) if law == "ulaw" else (ao.lin2alaw, ao.alaw2lin)
    return np.frombuffer(dec(enc(raw, 2), 2), dtype="<i2").astype(np.float64)


def _sil(s: float) -> np.ndarray:
    return np.zeros(int(round(s * SR)))


def _level(x: np.ndarray, db: float) -> np.ndarray:
    rms = np.sqrt(np.mean(x * x)) if len(x) else 0.0
    return x if rms == 0 else x / rms * 32768 * 10 ** (db / 20)


def make_call(i: int, label: str, split: str, rng: np.random.Generator, tts: Tts) -> tuple[Call, np.ndarray]:
    lang = "ja" if rng.random() < 0.6 else "en"
    voice = str(rng.choice(VOICES[{"business": "test", "business_dev": "dev"}.get(split, split)][lang]))
    pitch = int(rng.integers(25, 75))
    parts: list[np.ndarray] = [_sil(rng.uniform(0.1, 1.2) if label == "human" else rng.uniform(0.05, 1.0))]
    meta: dict[str, Any] = {}
    if label == "human":
        speed = int(rng.integers(230, 300))  # people answer briskly
        text = str(rng.choice((HUMAN_BUSINESS if split.startswith("business") else HUMAN)[lang]))
        parts.append(tts.say(text, voice, speed, pitch))
        if rng.random() < 0.4:
            kind = "human_again"
            again = str(rng.choice(HUMAN_AGAIN[lang]))
            parts += [_sil(rng.uniform(1.2, 2.5)), tts.say(again, voice, speed, pitch), _sil(rng.uniform(1.0, 2.0)),
                      tts.say(again, voice, speed, pitch)]
            text = f"{text} / {again} x2"
        else:
            kind = "human_silent"
        if split.startswith("business"):
            kind = "human_business"
        parts.append(_sil(rng.uniform(2.0, 4.0)))
        ring = float(np.clip(rng.lognormal(np.log(7.0), 0.5), 1.5, 30.0))
    else:
        speed = int(rng.integers(150, 230))
        if rng.random() < 0.45:
            kind = "carrier"
            text = str(rng.choice(CARRIER[lang]))
            parts.append(tts.say(text, voice, speed, pitch))
            ring = float(rng.uniform(14.0, 26.0)) if "でんぱ" not in text and "not in service" not in text \
                else float(rng.uniform(0.5, 4.0))
        else:
            kind = "personal"
            phrases = PERSONAL[lang][int(rng.integers(len(PERSONAL[lang])))]
            for j, ph in enumerate(phrases):
                if j:
                    parts.append(_sil(rng.uniform(0.15, 0.8)))
                parts.append(tts.say(ph, voice, speed, pitch))
            text = " / ".join(phrases)
            ring = float(rng.uniform(8.0, 30.0))
        if rng.random() < 0.7:
            hz = float(rng.choice(BEEP_HZ))
            dur = float(rng.uniform(0.2, 1.0))
            t = np.arange(int(dur * SR)) / SR
            beep = np.sin(2 * np.pi * hz * t) * 32768 * 10 ** (rng.uniform(-20, -8) / 20)
            parts += [_sil(rng.uniform(0.2, 0.8)), beep]
            meta["beep_hz"] = hz
        parts.append(_sil(1.0))
    # speech level, line noise, band-pass, companding
    speech_db = float(rng.uniform(-28, -14))
    x = np.concatenate([p if p is parts[0] else p for p in parts])
    active = np.concatenate([p for p in parts if np.any(p)])
    x = x / (np.sqrt(np.mean(active**2)) or 1.0) * 32768 * 10 ** (speech_db / 20)
    snr = float(rng.uniform(15, 40))
    x = x + tts_noise(rng, len(x), speech_db - snr)
    x = sosfilt(_BAND, x)
    law = "ulaw" if rng.random() < 0.5 else "alaw"
    x = g711_round_trip(x, law)
    meta.update({"speech_db": round(speech_db, 1), "snr_db": round(snr, 1), "law": law, "speed": speed,
                 "pitch": pitch})
    name = f"{split}-{i:04d}-{label}-{kind}-{lang}"
    return Call(name, label, kind, lang, voice, text, round(ring, 2), meta), x


_NOISE: NoiseBeds | None = None


def tts_noise(rng: np.random.Generator, n: int, db: float) -> np.ndarray:
    assert _NOISE is not None
    return _NOISE.take(rng, n) * 32768 * 10 ** (db / 20)


def generate(out: Path, split: str, n_per_class: int, seed: int, cache: Path) -> list[Path]:
    """Write `n_per_class` people and machines for a split; returns the WAV paths (skips existing ones)."""
    global _NOISE
    _NOISE = NoiseBeds(cache / "noise")
    tts = Tts(cache / "tts")
    d = out / split
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for i in range(2 * n_per_class):
        label = "human" if i % 2 == 0 or split.startswith("business") else "machine"
        call, x = make_call(i, label, split, rng, tts)
        wav = d / f"{call.name}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SR)
            w.writeframes(np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes())
        side = {"label": call.label, "kind": call.kind, "lang": call.lang, "voice": call.voice,
                "script": call.script, "ring_s": call.ring_s, **call.meta}
        wav.with_suffix(".json").write_text(json.dumps(side, ensure_ascii=False), encoding="utf-8")
        paths.append(wav)
    return paths


__all__ = ["BEEP_HZ", "VOICES", "Call", "generate", "g711_round_trip", "make_call"]
