"""Audio measurements shared by the recording tests (independent of the code under test): DTMF pairs and
tone/other-party energy in 50 ms FFT windows of 8 kHz PCM."""

from __future__ import annotations

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0)
RATE = 8000
WIN = 400  # 50 ms


def band(spec: np.ndarray, hz: float, n: int) -> float:
    k = round(hz * n / RATE)
    return float(spec[max(k - 1, 0):k + 2].sum())


def dtmf_windows(pcm: np.ndarray) -> int:
    """50 ms windows where one DTMF row and one column frequency carry most of the energy."""
    hits = 0
    for i in range(0, len(pcm) - WIN, WIN):
        spec = np.abs(np.fft.rfft(pcm[i:i + WIN] * np.hanning(WIN))) ** 2
        total = spec.sum()
        if total <= 0 or np.sqrt(np.mean(pcm[i:i + WIN] ** 2)) < 100:
            continue
        row = max(band(spec, f, WIN) for f in ROWS)
        col = max(band(spec, f, WIN) for f in COLS)
        if row > 0.08 * total and col > 0.08 * total:  # speech + tone here peaked at 0.02; a digit 0.11-0.3
            hits += 1
    return hits


def tone_and_rest_seconds(pcm: np.ndarray, hz: float) -> tuple[float, float]:
    """Seconds where HZ is strong, and seconds with loud energy away from HZ (another party talking)."""
    tone = rest = 0
    for i in range(0, len(pcm) - WIN, WIN):
        x = pcm[i:i + WIN]
        spec = np.abs(np.fft.rfft(x * np.hanning(WIN))) ** 2
        total = spec.sum()
        if total <= 0:
            continue
        at = band(spec, hz, WIN)
        tone += at > 0.3 * total
        # energy away from the tone, as an RMS in sample units (Parseval, Hann-windowed: rough but monotone)
        rest += np.sqrt(max(total - at, 0.0) * 2 / WIN / WIN / 0.375) > 150
    return tone * WIN / RATE, rest * WIN / RATE
