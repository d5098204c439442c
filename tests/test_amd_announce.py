"""The carrier-announcement check (issue 24), offline: SIT tones, ring-back vs speech in early media, and a
small generated corpus (the same generator as `python -m bench.amd.announce`) where every fake answer must be
judged the network's and no person anything but a person. Retry rules for the new outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.amd import announce as bench
from dialer.amd.announce import AnnounceKind, AnswerCheck, CheckVerdict, EarlyMedia, check_pcm


def _pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def test_sit_tones_after_the_answer_are_the_network_and_a_beep_is_not() -> None:
    sit = _pcm(np.concatenate([bench.sit_tones(), np.zeros(16000)]))
    r, _ = check_pcm(sit, ring_s=0.0)
    assert (r.verdict, r.kind) == (CheckVerdict.ANNOUNCEMENT, AnnounceKind.SIT)
    assert r.decided_after_s < 1.2
    t = np.arange(int(0.5 * 8000)) / 8000
    beep = _pcm(np.concatenate([np.zeros(4000), 6000 * np.sin(2 * np.pi * 1000 * t), np.zeros(16000)]))
    chk = AnswerCheck(ring_s=20.0, amd_wanted=True)
    chk.feed(beep)
    res = chk.result or chk.finish()
    assert res.verdict is CheckVerdict.MACHINE and res.kind is None  # a voicemail beep, not SIT


def test_early_media_ringback_is_ringing_speech_is_an_announcement(tmp_path: Path) -> None:
    rb = EarlyMedia()
    rb.feed(_pcm(6000 * bench.ringback(9.0)))
    assert rb.kind is None
    bench.C._NOISE = bench.C.NoiseBeds(tmp_path / "noise")
    parts, _, _ = bench.announcement(np.random.default_rng(3), bench.C.Tts(tmp_path / "tts"))
    em = EarlyMedia()
    em.feed(_pcm(bench.on_line(parts, np.random.default_rng(4))))
    assert em.kind in (AnnounceKind.SPEECH, AnnounceKind.SIT) and em.at_s is not None and em.at_s < 4.0


def test_silence_after_the_answer_passes_at_once_without_amd() -> None:
    r, _ = check_pcm(np.zeros(4 * 8000, dtype=np.int16), ring_s=1.0)
    assert r.verdict is CheckVerdict.PERSON and r.decided_after_s == pytest.approx(1.0, abs=0.05)


def test_small_corpus_announcements_caught_people_kept(tmp_path: Path) -> None:
    rows = bench.evaluate(bench.corpus(0.06, tmp_path))
    s = bench.summarise(rows)
    assert s["people"] >= 10 and s["people_misjudged"] == 0, [r for r in rows if r["label"] == "person"]
    assert s["announcement_recall"] >= 0.9, [r for r in rows if r["label"] == "announcement"]
    assert s["ringback_as_announcement"] == 0 and s["early_recall"] == 1.0
    assert s["machines_as_announcement"] == 0


def test_new_outcomes_are_not_redialled_soon() -> None:
    from dialer.config import parse_config
    from dialer.domain.policy import CampaignPolicy
    from dialer.domain.retry import retry_at

    cfg = parse_config('[[campaigns]]\nname = "c"\n', "t")
    pol = CampaignPolicy.of(cfg.campaigns[0])
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert retry_at("unreachable", at, pol) - at >= timedelta(hours=20)
    for o in ("anonymous_rejected", "failed_codec"):
        assert retry_at(o, at, pol) - at > timedelta(minutes=10)
    assert retry_at("no_answer", at, pol) - at == timedelta(hours=4)
