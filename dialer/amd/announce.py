"""Carrier announcements are never a person: a verdict on early media and on the first seconds after a 200 OK.

Why: Japanese carriers announce a dead, unreachable or barred number in speech (「おかけになった電話番号は現在
使われておりません」, 「電波の届かない場所にあるか…」), often without SIT tones, either in early media (183 with SDP,
then 404/480 or no final answer at all) or after answering the call themselves ("fake answer": 200 OK, then the
recording). Bridged to an agent, a fake answer costs the agent the recording, counts as a human hit and, with no
agent free, becomes an *abandoned* call (the 特商法 message played to a machine, a 72 h lock on a dead number).

What tells a network recording from a person, without recognising words:
- SIT tones (a rising sequence of two or three of 913.8/985.2, 1370.6/1428.5, 1776.7 Hz, 274-380 ms each);
- a ring-back or busy tone (a pure 350-500 Hz tone) heard *after* the 200: nobody has answered;
- speech in early media: a person cannot speak before answering, and ring-back is a tone, not speech;
- after the 200, a long recorded greeting (the AMD detector's `machine` on greeting shape) that follows a quick
  answer (no ringing, or shorter than `quick_answer_s`) or an announcement already heard in early media, and
  that ends without a beep: voicemail answers after a long ring and ends its greeting with a beep, the network
  answers at once and talks on (or pauses and repeats).
A person's short greeting followed by a pause is a person; silence is a person (the agent says hello). The
check shares the AMD detector (`dialer.amd.Detector`) so one rule decides greeting shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dialer.amd.detector import AmdParams, AmdVerdict, Decision, Detector
from dialer.amd.frames import FRAME_S, FRAME_SAMPLES, FrameAnalyzer, FrameInfo

SIT_HZ = (913.8, 985.2, 1370.6, 1428.5, 1776.7)


class AnnounceKind(StrEnum):
    """Why the audio is the network's, not a person's."""

    SIT = "sit"  # special information tones
    TONE = "tone"  # ring-back or busy tone after the 200 OK
    SPEECH = "speech"  # a recording: speech in early media, or a long greeting after a quick answer


class CheckVerdict(StrEnum):
    """The check's answer after a 200 OK."""

    PERSON = "person"  # a person (or silence, or unsure): connect
    MACHINE = "machine"  # an answering machine / voicemail (the AMD detector's machine, not the network)
    ANNOUNCEMENT = "announcement"  # the network's recording: end the call, never an agent


@dataclass(frozen=True)
class AnnounceParams:
    """Tunables (seconds). Defaults measured on `python -m bench.amd.announce` (bench/RESULTS.md)."""

    quick_answer_s: float = 6.0  # a 200 after less ringing than this is the network's when a recording follows
    silent_pass_s: float = 1.0  # no AMD asked: nobody spoke this long after the 200 -> a person, connect
    tone_s: float = 0.6  # this much ring-back/busy tone after the 200 -> nobody answered
    tone_band_hz: tuple[float, float] = (330.0, 500.0)
    sit_tol_hz: float = 30.0
    sit_min_s: float = 0.18  # one SIT segment is 274 or 380 ms
    sit_max_s: float = 0.5
    early_speech_s: float = 1.2  # this much non-tone voiced audio with ...
    early_onsets: int = 3  # ... this many onsets in early media is an announcement
    quick_pause_short_s: float = 0.3  # after a quick answer, a greeting up to quick_greeting_s long followed by
    quick_greeting_s: float = 1.3  # this much silence is a person; a longer one needs up to quick_pause_long_s
    quick_pause_long_s: float = 1.0  # (recordings pause 0.3-0.9 s between sentences, people wait for the caller)
    max_s: float = 9.0  # the check never holds a call longer than this after the 200 (a recording by then: the
    # network's, unless it beeped; otherwise a person)


class ToneTracker:
    """SIT sequences, low (ring-back/busy) tone time and early-media speech, from analysed frames."""

    def __init__(self, p: AnnounceParams) -> None:
        self.p = p
        self._sit_idx: int | None = None
        self._sit_run = 0.0
        self._sit_segments: list[int] = []  # SIT frequency indexes of finished segments, in order
        self._since_segment = 0.0
        self.sit = False
        self.low_tone_s = 0.0
        self.speech_s = 0.0  # voiced, not a pure tone
        self.onsets = 0
        self._was_speech = False

    def step(self, info: FrameInfo) -> None:
        hz = info.tone_hz
        lo, hi = self.p.tone_band_hz
        if hz is not None and lo <= hz <= hi:
            self.low_tone_s += FRAME_S
        speech = info.voiced and hz is None
        if speech:
            self.speech_s += FRAME_S
            if not self._was_speech:
                self.onsets += 1
        self._was_speech = speech
        idx = self._sit_index(hz)
        if idx is not None and idx == self._sit_idx:
            self._sit_run += FRAME_S
            return
        self._close_segment()
        self._sit_idx = idx
        self._sit_run = FRAME_S if idx is not None else 0.0

    def _sit_index(self, hz: float | None) -> int | None:
        if hz is None:
            return None
        for i, f in enumerate(SIT_HZ):
            if abs(hz - f) <= self.p.sit_tol_hz:
                return i // 2 if i < 4 else 2  # band: low (913.8/985.2), mid (1370.6/1428.5), high (1776.7)
        return None

    def _close_segment(self) -> None:
        if self._sit_idx is not None and self.p.sit_min_s - 1e-9 <= self._sit_run <= self.p.sit_max_s + 1e-9:
            if self._sit_segments and self._since_segment > 0.15:
                self._sit_segments = []  # segments must follow each other
            self._sit_segments.append(self._sit_idx)
            self._since_segment = 0.0
            s = self._sit_segments
            # a rising sequence of two different bands (a beep is one band, and usually longer)
            if len(s) >= 2 and s[-1] > s[-2]:
                self.sit = True
        elif self._sit_idx is None:
            self._since_segment += FRAME_S
        else:
            self._sit_segments = []

    def early_speech(self) -> bool:
        return self.speech_s >= self.p.early_speech_s - 1e-9 and self.onsets >= self.p.early_onsets


class EarlyMedia:
    """Early media (183 with SDP) before any answer: tones are ringing, speech or SIT is an announcement."""

    def __init__(self, params: AnnounceParams | None = None) -> None:
        self.p = params or AnnounceParams()
        self._fa = FrameAnalyzer()
        self.tones = ToneTracker(self.p)
        self._pending = np.zeros(0, dtype=np.int16)
        self.frames = 0
        self.kind: AnnounceKind | None = None
        self.at_s: float | None = None  # seconds of early media heard when it was decided

    def feed(self, pcm: NDArray[np.int16] | bytes) -> AnnounceKind | None:
        for info in _frames(self, pcm):
            self.frames += 1
            self.tones.step(info)
            if self.kind is None:
                if self.tones.sit:
                    self.kind = AnnounceKind.SIT
                elif self.tones.early_speech():
                    self.kind = AnnounceKind.SPEECH
                if self.kind is not None:
                    self.at_s = self.frames * FRAME_S
        return self.kind


@dataclass
class CheckResult:
    verdict: CheckVerdict
    decided_after_s: float
    reason: str
    kind: AnnounceKind | None = None
    amd: Decision | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "kind": self.kind.value if self.kind else None,
                "decided_after_s": round(self.decided_after_s, 3), "reason": self.reason}


class AnswerCheck:
    """The first seconds after a 200 OK: person, machine or the network's announcement.

    `amd_wanted` is whether the campaign asked for answering-machine detection: without it, nobody speaking
    for `silent_pass_s` passes the call at once (a person waiting for the caller), and a machine verdict that is
    not the network's is passed as a person (the campaign did not ask to screen machines).
    """

    def __init__(self, *, ring_s: float | None, early: AnnounceKind | None = None, amd_wanted: bool = False,
                 amd_params: AmdParams | None = None, params: AnnounceParams | None = None) -> None:
        self.p = params or AnnounceParams()
        self.ring_s = ring_s
        self.early = early
        self.amd_wanted = amd_wanted
        self.quick = early is not None or (ring_s is not None and ring_s < self.p.quick_answer_s)
        ap = amd_params or AmdParams()
        if self.quick:  # the person rule below decides pauses; the detector keeps listening for a recording
            ap = ap.replace(after_greeting_silence_s=max(ap.after_greeting_silence_s, self.p.quick_pause_long_s))
        self.det = Detector(ap, ring_s=ring_s)
        self._fa = FrameAnalyzer(snr_db=ap.snr_db, min_level_db=ap.min_level_db, tone_purity=ap.tone_purity)
        self.tones = ToneTracker(self.p)
        self._pending = np.zeros(0, dtype=np.int16)
        self.result: CheckResult | None = None

    @property
    def t(self) -> float:
        return self.det.t

    def _maybe_sit(self, t: float) -> bool:
        at = self.det.beep_at_s
        return _near_sit(self.det.beep_hz, self.p.sit_tol_hz) and at is not None and t - at < 1.0

    def feed(self, pcm: NDArray[np.int16] | bytes) -> CheckResult | None:
        for info in _frames(self, pcm):
            self.step(info)
        return self.result

    def step(self, info: FrameInfo) -> None:
        self.det.step(info)
        self.tones.step(info)
        if self.result is None:
            self._decide()

    def finish(self) -> CheckResult:
        quiet = FrameInfo(level_db=-100.0, floor_db=-100.0, voiced=False, tone_hz=None)
        while self.result is None:
            self.step(quiet)
        return self.result

    def _set(self, verdict: CheckVerdict, reason: str, kind: AnnounceKind | None = None) -> None:
        self.result = CheckResult(verdict, self.t, reason, kind, self.det.decision)

    def _decide(self) -> None:
        t, d = self.t, self.det.decision
        if self.tones.sit:
            return self._set(CheckVerdict.ANNOUNCEMENT, "SIT tones after the answer", AnnounceKind.SIT)
        if self.tones.low_tone_s >= self.p.tone_s - 1e-9:
            return self._set(CheckVerdict.ANNOUNCEMENT, "ring-back/busy tone after the answer", AnnounceKind.TONE)
        if d is not None and d.reason == "beep" and self._maybe_sit(t):
            return None  # a SIT segment looks like a beep: wait for the next one
        if d is not None and d.verdict == AmdVerdict.MACHINE:
            if d.reason != "beep" and self.quick and self.det.beep_at_s is None and self.det.message_cue_s is None \
                    and t < self.p.max_s - 1e-9:
                return None  # a voicemail greeting ends in a beep; the network's recording does not: wait for the end
            if d.reason != "beep" and self.quick and self.det.beep_at_s is None:
                why = "after an early-media announcement" if self.early is not None else \
                    f"after {self.ring_s:.1f} s of ringing" if self.ring_s is not None else "after a quick answer"
                return self._set(CheckVerdict.ANNOUNCEMENT, f"recorded speech ({d.reason}) {why}",
                                 AnnounceKind.SPEECH)
            if self.amd_wanted:
                return self._set(CheckVerdict.MACHINE, f"AMD machine ({d.reason})")
            return self._set(CheckVerdict.PERSON, f"machine-like ({d.reason}), not the network's: connected")
        if d is not None:
            return self._set(CheckVerdict.PERSON, f"AMD {d.verdict} ({d.reason})")
        det = self.det
        if self.quick and det.greeting_start is not None and not det._in_word:
            g = t - det._silence_run - det.greeting_start
            need = self.p.quick_pause_short_s if g <= self.p.quick_greeting_s else self.p.quick_pause_long_s
            if det._silence_run >= need - 1e-9:
                return self._set(CheckVerdict.PERSON, f"a {g:.1f} s greeting, then {det._silence_run:.1f} s of silence")
        if not self.amd_wanted and self.det.greeting_start is None and t >= self.p.silent_pass_s - 1e-9:
            return self._set(CheckVerdict.PERSON, f"nobody spoke for {self.p.silent_pass_s:g} s")
        if t >= self.p.max_s - 1e-9:
            return self._set(CheckVerdict.PERSON, "check budget")
        return None


def _near_sit(hz: float | None, tol: float) -> bool:
    return hz is not None and any(abs(hz - f) <= tol for f in SIT_HZ)


def _frames(obj: Any, pcm: NDArray[np.int16] | bytes) -> list[FrameInfo]:
    a = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes | bytearray | memoryview) else pcm
    buf = np.concatenate([obj._pending, a]) if len(obj._pending) else a
    n = len(buf) // FRAME_SAMPLES
    out = [obj._fa.analyze(buf[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]) for i in range(n)]
    obj._pending = np.array(buf[n * FRAME_SAMPLES:], dtype=np.int16)
    return out


def check_pcm(pcm: NDArray[np.int16], *, ring_s: float | None, early: NDArray[np.int16] | None = None,
              amd_wanted: bool = False) -> tuple[CheckResult, AnnounceKind | None]:
    """Offline: the early-media verdict (if early audio is given) and the after-200 check, frame by frame."""
    kind = None
    if early is not None and len(early):
        em = EarlyMedia()
        kind = em.feed(early)
    chk = AnswerCheck(ring_s=ring_s, early=kind, amd_wanted=amd_wanted)
    for i in range(len(pcm) // FRAME_SAMPLES):
        if chk.feed(pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES]) is not None:
            break
    return (chk.result if chk.result is not None else chk.finish()), kind


__all__ = ["SIT_HZ", "AnnounceKind", "AnnounceParams", "AnswerCheck", "CheckResult", "CheckVerdict", "EarlyMedia",
           "ToneTracker", "check_pcm"]
