"""The AMD corpus generator makes what it says (8 kHz mono telephone audio, labelled), and the detector hears
its beeps through noise, band-pass and G.711; the report scores with unsure counted as human."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from bench.amd.__main__ import score
from bench.amd.corpus import g711_round_trip, generate
from dialer.amd import Detector
from dialer.amd.wavfile import read_pcm


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("amd")
    return generate(d, "test", 6, seed=7, cache=d / "_cache")


def test_corpus_files_are_labelled_telephone_audio(corpus: list[Path]) -> None:
    labels = []
    for p in corpus:
        with wave.open(str(p), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
            assert w.getnframes() > 8000
        side = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))
        assert side["label"] in ("human", "machine") and side["ring_s"] >= 0
        assert side["law"] in ("ulaw", "alaw") and side["voice"]
        labels.append(side["label"])
    assert labels.count("human") == labels.count("machine") == 6


def test_beeps_survive_the_line_and_are_heard(corpus: list[Path]) -> None:
    beeped = [p for p in corpus if "beep_hz" in json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))]
    assert beeped, "seed 7 should give at least one beep"
    for p in beeped:
        hz = json.loads(p.with_suffix(".json").read_text(encoding="utf-8"))["beep_hz"]
        det = Detector()
        det.feed(read_pcm(p))
        assert det.beep_hz is not None and abs(det.beep_hz - hz) < 20, (p.name, det.beep_hz, hz)


def test_g711_round_trip_is_lossy_but_close() -> None:
    x = np.sin(np.arange(800) / 5) * 10000
    for law in ("ulaw", "alaw"):
        y = g711_round_trip(x, law)
        assert not np.array_equal(np.round(x), y)
        assert np.max(np.abs(y - x)) < 400


def test_score_counts_unsure_as_human() -> None:
    rows = [{"label": "human", "verdict": "unsure", "decided_after_s": 4.0},
            {"label": "human", "verdict": "machine", "decided_after_s": 2.0},
            {"label": "machine", "verdict": "machine", "decided_after_s": 2.0},
            {"label": "machine", "verdict": "unsure", "decided_after_s": 4.0}]
    s = score(rows)
    assert s["accuracy"] == 0.5 and s["machine_recall"] == 0.5 and s["human_fp_rate"] == 0.5
    assert s["unsure_humans"] == 1 and s["fp_share_of_machine_verdicts"] == 0.5
