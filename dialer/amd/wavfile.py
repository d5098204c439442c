"""Reading a call's customer audio from a WAV file for offline AMD, with a clear error for what we can't use.

A sidecar `<name>.json` next to the WAV may carry `{"ring_s": 18.2}` (ring time before answer), the prior
the live path gets from the call's timing.
"""

from __future__ import annotations

import json
import wave
from math import gcd
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from dialer.amd.frames import SAMPLE_RATE


class WavError(ValueError):
    """The file is not audio the detector can use; the message names the file and the problem."""


def read_pcm(path: str | Path) -> NDArray[np.int16]:
    """16-bit mono PCM at 8 kHz (other rates are resampled; stereo and other sample widths are refused)."""
    p = Path(path)
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except FileNotFoundError:
        raise WavError(f"{p}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{p}: not a PCM WAV file ({exc})") from None
    if channels != 1:
        raise WavError(f"{p}: {channels} channels; expected mono (one call leg)")
    if width != 2:
        raise WavError(f"{p}: {8 * width}-bit samples; expected 16-bit PCM")
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = gcd(rate, SAMPLE_RATE)
        y = resample_poly(pcm.astype(np.float64), SAMPLE_RATE // g, rate // g)
        pcm = np.clip(np.round(y), -32768, 32767).astype(np.int16)
    return pcm


def sidecar(path: str | Path) -> dict[str, object]:
    """The JSON sidecar of a WAV (`x.wav` -> `x.json`), or {} when there is none."""
    side = Path(path).with_suffix(".json")
    if not side.exists():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WavError(f"{side}: unreadable sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise WavError(f"{side}: sidecar must be a JSON object")
    return data


def sidecar_ring_s(path: str | Path) -> float | None:
    v = sidecar(path).get("ring_s")
    if v is None:
        return None
    if not isinstance(v, int | float) or v < 0:
        raise WavError(f"{Path(path).with_suffix('.json')}: ring_s must be a non-negative number, got {v!r}")
    return float(v)


def write_pcm(path: str | Path, pcm: NDArray[np.int16], rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


__all__ = ["WavError", "read_pcm", "sidecar", "sidecar_ring_s", "write_pcm"]
