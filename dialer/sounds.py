"""The one rule for a WAV the dialer plays into calls (the abandon path's info message, a campaign's spoken
recording notice): a file pjmedia's player can open, i.e. readable RIFF/WAVE with 16-bit PCM mono samples
(8 kHz like config/sounds/info.wav; the conference bridge resamples other rates). Kept free of heavy imports:
`dialer config check` and every worker process use it."""

from __future__ import annotations

import wave


def wav_problem(path: str) -> str | None:
    """Why PATH cannot be played into a call, or None when it can (and holds some audio)."""
    try:
        with wave.open(path, "rb") as w:
            channels, width, frames = w.getnchannels(), w.getsampwidth(), w.getnframes()
    except FileNotFoundError:
        return f"{path} does not exist"
    except (OSError, wave.Error, EOFError) as exc:
        return f"{path} is not a readable WAV file ({exc})"
    if channels != 1 or width != 2:
        return f"{path} is {channels}-channel {8 * width}-bit; expected 16-bit PCM mono (8 kHz)"
    if frames == 0:
        return f"{path} holds no audio"
    return None


def wav_seconds(path: str) -> float:
    """PATH's length in seconds, 0.0 when it cannot be played (`wav_problem` says why)."""
    if wav_problem(path) is not None:
        return 0.0
    with wave.open(path, "rb") as w:
        return w.getnframes() / float(w.getframerate())


__all__ = ["wav_problem", "wav_seconds"]
