"""Answering-machine detection on a live customer leg: an `AudioMediaPort` tap inside the worker.

Why a tap and not a recorder: the detector must see the audio as it arrives to decide within seconds. The
tap is a conference port the customer leg transmits to; pjmedia hands it a 20 ms frame 50 times a second on
its clock thread. The frame's samples are read straight from the `std::vector` behind `frame.buf` through
ctypes (`bytes(frame.buf)` copies element by element through SWIG, ~100x slower), and fed to the same
`dialer.amd.Detector` that `dialer amd classify` runs on WAV files. The clock thread only feeds the
detector; everything that touches pjsua2 (hang up, play the message) happens on the worker's main thread in
`AmdSession.step`, called from the worker's timers.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Protocol

from dialer.amd import AmdParams, Decision, Detector

ACTIONS = ("hangup", "leave_message")


@dataclass(frozen=True)
class AmdOrder:
    """What the campaign asks of AMD for one call (sent inside `Originate`)."""

    action: str = "hangup"  # hangup | leave_message
    message_wav: str | None = None  # leave_message: played after the greeting's beep
    budget_s: float = 4.0  # a verdict by then, else `unsure` (connected as a person)
    cue_wait_s: float = 30.0  # leave_message: the longest wait for the greeting to end


def vector_bytes(vec: Any) -> bytes:
    """The bytes of a SWIG `std::vector<unsigned char>` (libstdc++ layout: begin, end, capacity pointers)."""
    addr = int(vec.this)
    begin = ctypes.c_void_p.from_address(addr).value
    end = ctypes.c_void_p.from_address(addr + ctypes.sizeof(ctypes.c_void_p)).value
    if not begin or not end or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


_TAP: dict[int, Any] = {}


def _tap_class(pj: Any) -> Any:
    cls = _TAP.get(id(pj))
    if cls is not None:
        return cls

    class Tap(pj.AudioMediaPort):  # type: ignore[misc]
        def __init__(self, session: AmdSession) -> None:
            super().__init__()
            self.session = session

        def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
            try:
                self.session.on_audio(vector_bytes(frame.buf))
            except Exception as exc:  # noqa: BLE001 - an exception into SWIG aborts the process
                self.session.error = repr(exc)

    _TAP[id(pj)] = Tap
    return Tap


class WorkerHooks(Protocol):
    """What a session needs from the worker (kept narrow so the worker's internals stay its own)."""

    pj: Any

    def emit(self, kind: str, att: Any = None, **kw: Any) -> None: ...

    def _end(self, att: Any, by: str) -> None: ...

    def _aud(self, leg: Any) -> Any: ...


class AmdSession:
    """AMD for one answered call: listening -> (human: connect) | (machine: hang up or wait, play, hang up)."""

    def __init__(self, order: AmdOrder, ring_s: float | None, answered_at: float, params: AmdParams | None = None):
        self.order = order
        self.ring_s = ring_s
        self.answered_at = answered_at
        self.detector = Detector((params or AmdParams()).replace(total_budget_s=order.budget_s), ring_s=ring_s)
        self.port: Any = None
        self.player: Any = None
        self.phase = "listening"  # listening | awaiting_cue | playing | done
        self.play_until = 0.0
        self.cue_deadline = 0.0
        self.error: str | None = None
        self.frames = 0
        self.result: Decision | None = None
        self.note = ""  # what happened after a machine verdict (shown as the attempt's detail)

    def on_audio(self, pcm: bytes) -> None:
        """Clock thread: feed the detector (never touches pjsua2)."""
        if pcm:
            self.frames += 1
            self.detector.feed(pcm)

    def attach(self, pj: Any, aud: Any) -> bool:
        """Main thread: connect the customer's audio to a new tap port (again after a media change)."""
        if self.phase == "done":
            return False
        try:
            if self.port is None:
                fmt = pj.MediaFormatAudio()
                fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
                port = _tap_class(pj)(self)
                port.createPort("amd", fmt)
                self.port = port
            aud.startTransmit(self.port)
            return True
        except pj.Error as exc:
            self.error = str(getattr(exc, "reason", exc))
            return False

    def close(self) -> None:
        self.port = None
        self.player = None

    def decision(self, now: float) -> Decision | None:
        """The detector's verdict, or `unsure` when its budget passed without audio to decide on."""
        d = self.detector.decision
        if d is None and now - self.answered_at >= self.order.budget_s + 1.0:
            d = Decision("unsure", now - self.answered_at, "no_audio" if self.frames == 0 else "budget",
                         self.detector.features("no_audio" if self.frames == 0 else "budget"))
        return d

    def summary(self) -> dict[str, Any]:
        d = self.result
        assert d is not None
        return {"verdict": d.verdict, "decided_after_s": round(d.decided_after_s, 3), "reason": d.reason,
                "features": d.features, "action": self.order.action if d.verdict == "machine" else "connect",
                "frames": self.frames}

    def step(self, w: WorkerHooks, att: Any, now: float) -> bool:
        """Main thread, from the worker's timers. True while AMD still owns the call (no agent yet)."""
        if self.phase == "listening":
            d = self.decision(now)
            if d is None:
                return True
            self.result = d
            if d.verdict != "machine":
                self.phase = "done"
                self.close()
                return False  # the worker now treats the call as a person's: "answered", agent, connect limit
            w.emit("machine", att, detail=f"AMD: machine ({d.reason}) after {d.decided_after_s:.2f} s",
                   amd=self.summary())
            if self.order.action == "leave_message" and self.order.message_wav:
                self.phase = "awaiting_cue"
                self.cue_deadline = now + self.order.cue_wait_s
                return True
            self.phase = "done"
            self.close()
            att.cause = "machine"
            self.note = f"AMD machine ({d.reason}) after {d.decided_after_s:.2f} s: hung up"
            w._end(att, "dialer")
            return True
        if self.phase == "awaiting_cue":
            if self.detector.message_cue_s is not None or now >= self.cue_deadline:
                self._play(w, att, now)
            return True
        if self.phase == "playing" and now >= self.play_until:
            self.phase = "done"
            self.close()
            w._end(att, "dialer")
        return True

    def _play(self, w: WorkerHooks, att: Any, now: float) -> None:
        from dialer.telephony.worker import wav_seconds

        pj = w.pj
        wav = self.order.message_wav or ""
        secs = wav_seconds(wav)
        det = self.detector
        cue = "beep" if det.beep_end_s is not None else "silence" if det.message_cue_s is not None else "timeout"
        self.note = (f"AMD machine ({self.result.reason if self.result else '?'}); message after the greeting's "
                     f"{cue} at {now - self.answered_at:.1f} s" + (f" (beep {det.beep_hz:.0f} Hz)" if det.beep_hz else ""))
        self.port = None  # stop listening
        self.phase = "playing"
        self.play_until = now + secs + 0.3
        att.cause = "machine_message_left" if secs else "machine"
        a = w._aud(att.cust) if att.cust is not None else None
        if not secs or a is None:
            self.play_until = now
            return
        try:
            p = pj.AudioMediaPlayer()
            p.createPlayer(wav, pj.PJMEDIA_FILE_NO_LOOP)
            p.startTransmit(a)
            if getattr(att, "recorder", None) is not None:
                p.startTransmit(att.recorder)
            self.player = p
        except pj.Error:
            att.cause = "machine"
            self.play_until = now


def ring_seconds(answered_at: float, ringing_at: float, sent_at: float) -> float:
    """Ring time before answer: from the first 18x when there was one, else from the INVITE."""
    start = ringing_at if ringing_at > 0 else sent_at
    return max(0.0, answered_at - start)


__all__ = ["ACTIONS", "AmdOrder", "AmdSession", "ring_seconds", "vector_bytes"]
