"""The streaming AMD decision: words, gaps and a beep from 20 ms frames; a verdict within a bounded time.

The idea (after Asterisk's app_amd, re-derived): a person answers with a short greeting ("はい", "もしもし、
田中です", "hello?") and then waits for the caller, so a short burst of speech followed by silence is a person.
A machine talks on: a long greeting, many words, or a beep. Ring time is a prior: Japanese carrier voicemail
picks up only after a long ring and starts with an announcement, so after a long ring we need a longer pause
before believing "person" and a short greeting suffices for "machine".
`unsure` is a first-class verdict the dialer treats as a person: dropping a person is an abandon (UK), handing
an agent a machine only costs them seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dialer.amd.frames import FRAME_S, FRAME_SAMPLES, FrameAnalyzer, FrameInfo

VERDICTS = ("human", "machine", "unsure")


@dataclass(frozen=True)
class AmdParams:
    """Tunables (seconds unless named otherwise). Defaults are those tuned on the bench.amd dev split."""

    initial_silence_s: float = 2.5  # nobody speaks this long after answer -> unsure (machine after a long ring)
    greeting_max_s: float = 2.8  # speech (with short pauses) running longer than this is a recorded greeting
    # (2.8 not 2.0: a person answering like a business talks ~2 s; a machine verdict may take longer, a dropped
    # person may not)
    after_greeting_silence_s: float = 0.3  # this much silence after a short greeting -> a person waiting
    word_min_s: float = 0.08  # shorter voiced blips are clicks, not words
    word_gap_s: float = 0.06  # silence that separates two words
    max_words: int = 6  # more words than this before a pause -> machine
    total_budget_s: float = 4.0  # no verdict by then -> unsure
    beep_min_s: float = 0.12  # a stable pure tone this long is a beep
    beep_drift_hz: float = 30.0  # frame-to-frame frequency wander allowed within one beep
    ring_prior_from_s: float = 6.0  # the ring prior starts to count from this ring time ...
    long_ring_s: float = 15.0  # ... and counts fully from this one (then initial silence -> machine)
    long_ring_greeting_scale: float = 0.6  # greeting_max_s is multiplied by this after a long ring
    long_ring_extra_silence_s: float = 0.9  # and after_greeting_silence_s grows by this (graded in between)
    unknown_ring_weight: float = 0.5  # ring prior weight when the ring time is not known
    message_silence_s: float = 1.2  # after a machine verdict, this much silence = greeting over (no beep)
    snr_db: float = 10.0  # VAD: voiced if this far above the noise floor ...
    min_level_db: float = -50.0  # ... and above this absolute level
    tone_purity: float = 0.9  # share of the band's power within one tone's main lobe

    def replace(self, **kw: Any) -> AmdParams:
        d = asdict(self)
        d.update(kw)
        return AmdParams(**d)


class AmdVerdict(StrEnum):
    """What the listening concluded (stored as these strings with the attempt): `unsure` is treated as a person;
    `announcement` is the network's recording (dialer.amd.announce), never a person."""

    HUMAN = "human"
    MACHINE = "machine"
    UNSURE = "unsure"
    ANNOUNCEMENT = "announcement"
    HANGUP = "hangup"


@dataclass
class Decision:
    """A verdict, when it was reached (seconds after answer) and the features that led to it."""

    verdict: str
    decided_after_s: float
    reason: str
    features: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "decided_after_s": round(self.decided_after_s, 3), "reason": self.reason,
                "features": self.features}


class Detector:
    """Feed PCM (int16, 8 kHz mono, any chunk size); `decision` is set once, within `total_budget_s`.

    It keeps listening after the verdict so `message_cue_s` can tell when a machine's greeting has ended
    (a beep, or a long silence) for the leave-a-message action.
    """

    def __init__(self, params: AmdParams | None = None, *, ring_s: float | None = None):
        self.p = params or AmdParams()
        self.ring_s = ring_s
        self.long_ring = ring_s is not None and ring_s >= self.p.long_ring_s
        span = max(1e-6, self.p.long_ring_s - self.p.ring_prior_from_s)
        # unknown ring time (a WAV without sidecar): halfway, neither a quick pick-up nor a voicemail ring
        w = self.p.unknown_ring_weight if ring_s is None else min(1.0, max(0.0, (ring_s - self.p.ring_prior_from_s)
                                                                               / span))
        self.ring_weight = w  # 0 = no evidence from the ring, 1 = rang as long as voicemail does
        self.greeting_max = self.p.greeting_max_s * (1.0 - (1.0 - self.p.long_ring_greeting_scale) * w)
        self.after_silence = self.p.after_greeting_silence_s + self.p.long_ring_extra_silence_s * w
        self._fa = FrameAnalyzer(snr_db=self.p.snr_db, min_level_db=self.p.min_level_db, tone_purity=self.p.tone_purity)
        self._pending = np.zeros(0, dtype=np.int16)
        self.frames = 0
        self.decision: Decision | None = None
        # word tracking
        self._voiced_run = 0.0
        self._silence_run = 0.0
        self._in_word = False
        self.words = 0
        self.word_lengths: list[float] = []
        self.gaps: list[float] = []
        self._word_start = 0.0
        self._last_word_end: float | None = None
        self.greeting_start: float | None = None
        # energy cadence
        self._voiced_frames = 0
        self._voiced_levels: list[float] = []
        self._onsets = 0
        # tones
        self._tone_hz: float | None = None
        self._tone_run = 0.0
        self.beep_hz: float | None = None
        self.beep_at_s: float | None = None
        self.beep_end_s: float | None = None
        self.message_cue_s: float | None = None

    @property
    def t(self) -> float:
        """Seconds of audio consumed since answer."""
        return self.frames * FRAME_S

    def feed(self, pcm: NDArray[np.int16] | bytes) -> Decision | None:
        """Consume audio; returns the decision as soon as there is one (and keeps returning it)."""
        a = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray | memoryview) else pcm
        buf = np.concatenate([self._pending, a]) if len(self._pending) else a
        n = len(buf) // FRAME_SAMPLES
        for i in range(n):
            self._frame(buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
        self._pending = np.array(buf[n * FRAME_SAMPLES:], dtype=np.int16)
        return self.decision

    def finish(self) -> Decision:
        """End of audio: play silence until a verdict (a person who said "はい" and hung up is still a person)."""
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        while self.decision is None:
            self._frame(silence)
        return self.decision

    # -- per frame -----------------------------------------------------------------------------------------
    def _frame(self, frame: NDArray[np.int16]) -> None:
        self.step(self._fa.analyze(frame))

    def step(self, info: FrameInfo) -> None:
        """One analysed frame (public so the bench can replay cached frame analyses while tuning timings)."""
        self.frames += 1
        self._track_words(info)
        self._track_tone(info)
        if self.decision is None:
            self._decide()
        elif self.decision.verdict == AmdVerdict.MACHINE and self.message_cue_s is None:
            if self.beep_end_s is not None:
                self.message_cue_s = self.beep_end_s
            elif self._silence_run >= self.p.message_silence_s and self.words > 0:
                self.message_cue_s = self.t

    def _track_words(self, info: FrameInfo) -> None:
        t = self.t
        if info.voiced:
            if self._voiced_run == 0.0:
                self._onsets += 1
            self._voiced_run += FRAME_S
            self._silence_run = 0.0
            if self.decision is None:
                self._voiced_frames += 1
                self._voiced_levels.append(info.level_db)
            if not self._in_word and self._voiced_run >= self.p.word_min_s - 1e-9:
                self._in_word = True
                self._word_start = t - self._voiced_run
                if self.greeting_start is None:
                    self.greeting_start = self._word_start
                if self.decision is None:
                    self.words += 1
                    if self._last_word_end is not None:
                        self.gaps.append(self._word_start - self._last_word_end)
        else:
            self._silence_run += FRAME_S
            if self._silence_run >= self.p.word_gap_s - 1e-9:
                if self._in_word:
                    self._in_word = False
                    end = t - self._silence_run
                    if self.decision is None:
                        self.word_lengths.append(end - self._word_start)
                    self._last_word_end = end
                self._voiced_run = 0.0

    def _track_tone(self, info: FrameInfo) -> None:
        hz = info.tone_hz
        if hz is not None and self._tone_hz is not None and abs(hz - self._tone_hz) <= self.p.beep_drift_hz:
            self._tone_run += FRAME_S
        elif hz is not None:
            self._tone_run = FRAME_S
        else:
            if self.beep_at_s is not None and self.beep_end_s is None:
                self.beep_end_s = self.t - FRAME_S
            self._tone_run = 0.0
        self._tone_hz = hz
        if self._tone_run >= self.p.beep_min_s - 1e-9 and self.beep_at_s is None:
            self.beep_hz = hz
            self.beep_at_s = self.t - self._tone_run

    def _decide(self) -> None:
        t = self.t
        if self.beep_at_s is not None:
            self._set(AmdVerdict.MACHINE, "beep")
        elif self.greeting_start is None:
            if t >= self.p.initial_silence_s - 1e-9:
                self._set(AmdVerdict.MACHINE if self.long_ring else AmdVerdict.UNSURE, "initial_silence")
        elif self._in_word and t - self.greeting_start > self.greeting_max:
            self._set(AmdVerdict.MACHINE, "long_greeting")
        elif self.words > self.p.max_words:
            self._set(AmdVerdict.MACHINE, "max_words")
        elif not self._in_word and self._silence_run >= self.after_silence - 1e-9:
            self._set(AmdVerdict.HUMAN, "after_greeting_silence")
        if self.decision is None and t >= self.p.total_budget_s - 1e-9:
            self._set(AmdVerdict.UNSURE, "budget")

    def _set(self, verdict: str, reason: str) -> None:
        self.decision = Decision(verdict, self.t, reason, self.features(reason))

    def features(self, reason: str | None = None) -> dict[str, Any]:
        """The numbers behind a verdict, JSON-ready (stored with the attempt, printed by `dialer amd classify`)."""
        t = self.t
        lv = np.array(self._voiced_levels) if self._voiced_levels else np.zeros(0)
        lin = 10 ** (lv / 10) if len(lv) else lv
        greeting = None
        if self.greeting_start is not None:
            end = t - self._silence_run if not self._in_word else t
            greeting = max(0.0, end - self.greeting_start)
        return {
            "reason": reason,
            "ring_s": self.ring_s,
            "long_ring": self.long_ring,
            "ring_weight": _r(self.ring_weight),
            "initial_silence_s": _r(self.greeting_start if self.greeting_start is not None else t),
            "greeting_s": _r(greeting),
            "words": self.words,
            "word_lengths_s": [_r(x) for x in self.word_lengths],
            "gaps_s": [_r(x) for x in self.gaps],
            "trailing_silence_s": _r(self._silence_run),
            "voiced_ratio": _r(self._voiced_frames / self.frames if self.frames else 0.0),
            "onsets_per_s": _r(self._onsets / t if t else 0.0),
            "energy_cv": _r(float(lin.std() / lin.mean()) if len(lin) > 1 else 0.0),
            "speech_level_db": _r(float(np.median(lv)) if len(lv) else None),
            "noise_floor_db": _r(self._fa.floor_db),
            "beep_hz": _r(self.beep_hz, 0),
            "beep_at_s": _r(self.beep_at_s),
        }


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def iter_frames(pcm: NDArray[np.int16]) -> Iterator[NDArray[np.int16]]:
    """Whole 20 ms frames of a buffer (the tail shorter than a frame is dropped)."""
    for i in range(len(pcm) // FRAME_SAMPLES):
        yield pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]


def classify_pcm(pcm: NDArray[np.int16], *, ring_s: float | None = None, params: AmdParams | None = None) -> Decision:
    """Offline verdict for one call's audio from answer on, frame by frame exactly as the live tap feeds it."""
    det = Detector(params, ring_s=ring_s)
    for frame in iter_frames(pcm):
        if det.feed(frame) is not None:
            break
    return det.decision if det.decision is not None else det.finish()


__all__ = ["VERDICTS", "AmdParams", "Decision", "Detector", "classify_pcm", "iter_frames"]
