"""In-band DTMF out of recordings (issue 29): keyed digits (card numbers) are never kept in the clear.

RFC 2833/4733 digits travel as RTP events that pjmedia never turns into audio, so they never reach a recording.
A trunk without telephone-events sends the tones inside the audio instead, and those would be mixed into the
WAV like speech. `mute_file` finds them and writes silence over them before the recording is handed on.

Detection is the textbook Goertzel receiver, vectorised with numpy: ~25.6 ms frames (205 samples at 8 kHz)
every half frame, the power at the four row and four column frequencies, and a frame holds a digit only when
- the strongest row and the strongest column carry most of the frame's energy (`PURITY`: speech spreads its
  energy over harmonics and formants, a DTMF pair is two pure tones),
- the twist (column against row level) is within `TWIST_DB` (a real keypad's pair is near-balanced),
- the other rows and columns are at least `PEAK_DB` below the strongest (one key, not a chord of harmonics),
- the frame is above `FLOOR_DBFS` (silence and line noise are never "tones"),
and a digit is at least `MIN_FRAMES` consecutive frames (~38 ms; keypads send 40 ms and longer). The span is
silenced with `PAD_S` either side (the tone's ramps), on every channel of the file.
"""

from __future__ import annotations

import os
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
FRAME_AT_8K = 205  # the classic Goertzel block: the eight frequencies fall near its bins
PURITY = 0.7  # share of the frame's energy in the row and column tones
TWIST_DB = 8.0
PEAK_DB = 6.0
FLOOR_DBFS = -45.0
MIN_FRAMES = 3  # half-frame hops: three flagged frames span ~51 ms of which ~38 ms are certain
PAD_S = 0.03


@dataclass(frozen=True)
class Muted:
    """What `mute_file` did: the spans silenced (seconds) and the share of the file they are."""

    spans: list[tuple[float, float]]
    seconds: float
    total_seconds: float


def dtmf_frames(x: NDArray[np.float64], rate: int) -> tuple[NDArray[np.bool_], int, int]:
    """Per analysis frame of mono samples X (full scale 1.0), whether it holds a DTMF pair; with the frame
    length and hop in samples."""
    n = max(32, round(FRAME_AT_8K * rate / 8000))
    hop = n // 2
    if len(x) < n:
        return np.zeros(0, dtype=bool), n, hop
    frames = np.ascontiguousarray(sliding_window_view(x, n)[::hop])
    phase = 2 * np.pi * np.array(ROWS + COLS)[None, :] * (np.arange(n) / rate)[:, None]  # (n, 8)
    proj = frames @ np.hstack([np.cos(phase), np.sin(phase)])  # one real matrix product (BLAS)
    # power of each frequency as the energy of a sinusoid at it (|X|^2 * 2 / n), comparable to sum(x^2)
    power = (proj[:, :8] ** 2 + proj[:, 8:] ** 2) * (2.0 / n)
    energy = np.einsum("ij,ij->i", frames, frames)
    rows, cols = power[:, :4], power[:, 4:]
    r_i, c_i = rows.argmax(axis=1), cols.argmax(axis=1)
    idx = np.arange(len(frames))
    r_p, c_p = rows[idx, r_i], cols[idx, c_i]
    loud = energy / n > 10 ** (FLOOR_DBFS / 10)
    pure = (r_p + c_p) >= PURITY * np.maximum(energy, 1e-20)
    twist = np.abs(10 * np.log10(np.maximum(c_p, 1e-20) / np.maximum(r_p, 1e-20))) <= TWIST_DB
    peak = 10 ** (-PEAK_DB / 10)
    rows_other = rows.copy()
    rows_other[idx, r_i] = 0.0
    cols_other = cols.copy()
    cols_other[idx, c_i] = 0.0
    alone = (rows_other.max(axis=1) <= peak * r_p) & (cols_other.max(axis=1) <= peak * c_p)
    return loud & pure & twist & alone, n, hop


def dtmf_spans(x: NDArray[np.float64], rate: int) -> list[tuple[int, int]]:
    """Sample spans [start, end) of the DTMF digits in mono X, padded by PAD_S and merged."""
    hits, n, hop = dtmf_frames(x, rate)
    spans: list[tuple[int, int]] = []
    pad = round(PAD_S * rate)
    run_start = None
    for i, hit in enumerate([*hits.tolist(), False]):
        if hit and run_start is None:
            run_start = i
        elif not hit and run_start is not None:
            if i - run_start >= MIN_FRAMES:
                a, b = max(0, run_start * hop - pad), min(len(x), (i - 1) * hop + n + pad)
                if spans and a <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], b)
                else:
                    spans.append((a, b))
            run_start = None
    return spans


def mute_samples(pcm: NDArray[np.int16], channels: int, rate: int) -> tuple[NDArray[np.int16], list[tuple[int, int]]]:
    """PCM (interleaved int16) with every DTMF span of any channel, or of their mix, silenced on all channels."""
    frames = pcm.reshape(-1, channels).astype(np.float64) / 32768.0
    spans: list[tuple[int, int]] = []
    for ch in range(channels):
        spans += dtmf_spans(frames[:, ch], rate)
    if channels > 1:
        spans += dtmf_spans(frames.mean(axis=1), rate)
    out = pcm.reshape(-1, channels).copy()
    for a, b in spans:
        out[a:b, :] = 0
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return out.reshape(-1), merged


def mute_file(path: str | Path) -> Muted:
    """Silence the in-band DTMF of the 16-bit PCM WAV at PATH in place (a new file of the same mode renamed
    over it, so a reader never sees half a file). Other sample formats are left untouched (pjsua2 writes 16-bit
    PCM); a file with no digits is not rewritten."""
    path = Path(path)
    with wave.open(str(path), "rb") as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    total = len(raw) / max(1, width * channels) / max(1, rate)
    if width != 2 or not raw:
        return Muted([], 0.0, total)
    pcm = np.frombuffer(raw, dtype="<i2")[: len(raw) // (2 * channels) * channels]
    out, spans = mute_samples(pcm, channels, rate)
    if not spans:
        return Muted([], 0.0, total)
    mode = path.stat().st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".dtmf-", suffix=".wav", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(channels)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(out.astype("<i2").tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    secs = [(a / rate, b / rate) for a, b in spans]
    return Muted(secs, sum(b - a for a, b in secs), total)


__all__ = ["COLS", "ROWS", "Muted", "dtmf_frames", "dtmf_spans", "mute_file", "mute_samples"]
