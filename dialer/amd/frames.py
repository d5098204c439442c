"""Per-frame features for AMD: level, a voice/silence call against an adaptive noise floor, and pure tones.

Why adaptive: trunks differ by 20 dB in background noise, so a fixed threshold (Asterisk's 256) either hears
hiss as words or misses quiet speakers. The floor follows the quietest recent frames: it drops at once and
rises slowly, so speech (which always has short dips between syllables) never drags it up for long.
Why a tone test per frame: a voicemail beep is one stable sinusoid; speech spreads energy over harmonics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: pjmedia's default ptime
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
_NFFT = 512
_LOBE_BINS = 7  # Hann main lobe of a 160-sample window, in 512-point bins (+-6.4)
_SILENT_DB = -100.0


@dataclass(frozen=True)
class FrameInfo:
    """What one 20 ms frame looked like."""

    level_db: float  # RMS level, dB relative to full scale
    floor_db: float  # noise floor estimate after this frame
    voiced: bool  # loud enough above the floor to be speech (or a tone)
    tone_hz: float | None  # frequency when the frame is one pure tone, else None


class FrameAnalyzer:
    """Stateful: keeps the noise floor between frames. One per call."""

    def __init__(self, *, snr_db: float = 10.0, min_level_db: float = -50.0, floor_init_db: float = -45.0,
                 floor_rise_db_s: float = 4.0, tone_purity: float = 0.9, tone_band_hz: tuple[float, float] = (300.0,
                                                                                                              2600.0)):
        self.snr_db = snr_db
        self.min_level_db = min_level_db
        self.floor_init_db = floor_init_db
        self.floor_rise_db = floor_rise_db_s * FRAME_S
        self.tone_purity = tone_purity
        self._floor: float | None = None
        self._window = np.hanning(FRAME_SAMPLES)
        freqs = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
        self._freqs = freqs
        self._band = (freqs >= 250.0) & (freqs <= 3400.0)
        self._tone_band = (freqs >= tone_band_hz[0]) & (freqs <= tone_band_hz[1])

    @property
    def floor_db(self) -> float:
        return self.floor_init_db if self._floor is None else self._floor

    def analyze(self, frame: NDArray[np.int16]) -> FrameInfo:
        """Analyze one frame of exactly FRAME_SAMPLES samples."""
        x = frame.astype(np.float64) / 32768.0
        power = float(np.mean(x * x))
        level = max(_SILENT_DB, 10.0 * float(np.log10(power)) if power > 0 else _SILENT_DB)
        if self._floor is None:
            self._floor = min(level, self.floor_init_db)
        elif level < self._floor:
            self._floor = level
        else:
            self._floor = min(level, self._floor + self.floor_rise_db)
        voiced = level > max(self._floor + self.snr_db, self.min_level_db)
        tone = self._tone(x) if voiced else None
        return FrameInfo(level_db=level, floor_db=self._floor, voiced=voiced, tone_hz=tone)

    def _tone(self, x: NDArray[np.float64]) -> float | None:
        spec = np.abs(np.fft.rfft(x * self._window, _NFFT)) ** 2
        total = float(spec[self._band].sum())
        if total <= 0.0:
            return None
        masked = np.where(self._tone_band, spec, 0.0)
        k = int(np.argmax(masked))
        lo, hi = max(0, k - _LOBE_BINS), min(len(spec), k + _LOBE_BINS + 1)
        if float(spec[lo:hi].sum()) / total < self.tone_purity:
            return None
        # parabolic interpolation on the log spectrum refines the peak to a few Hz
        if 0 < k < len(spec) - 1:
            a, b, c = (float(np.log(spec[i] + 1e-30)) for i in (k - 1, k, k + 1))
            den = a - 2 * b + c
            off = 0.5 * (a - c) / den if den != 0 else 0.0
        else:
            off = 0.0
        return float((k + off) * SAMPLE_RATE / _NFFT)


__all__ = ["FRAME_S", "FRAME_SAMPLES", "SAMPLE_RATE", "FrameAnalyzer", "FrameInfo"]
