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

from dialer.amd import AmdParams, Decision
from dialer.amd.announce import AnnounceKind, AnswerCheck, CheckResult, CheckVerdict, EarlyMedia
from dialer.amd.detector import AmdVerdict

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
        """A PCM sink on the conference bridge that hands each frame to its session (clock thread).

        Freed only through `free()` (drop_tap, or `__del__` for a tap the collector finds): never by letting
        the binding delete it from a dying object. Why: the clock thread may be inside `onFrameReceived`, and
        pjsua2's Python binding releases the GIL while it deletes the C++ port, so a port deleted from its
        object's deallocation ran the callback on a Python object already torn down. That killed a worker with
        SIGSEGV right after an AMD verdict (CI, site build; the fault handler showed it inside the cyclic
        collector, a session and its tap refer to each other). Deleting the C++ port while the Python object
        is whole makes a callback in flight meet a live object; pjsua2's destructor waits for it (the port's
        group lock) and clears the port's back-pointer, so none follows.
        """

        def __init__(self, session: Any) -> None:
            super().__init__()
            self.session = session
            self.freed = False

        def onFrameReceived(self, frame: Any) -> None:  # noqa: N802 - pjsua2's name
            session = getattr(self, "session", None)  # None once freed
            if session is None:
                return
            try:
                session.on_audio(vector_bytes(frame.buf))
            except Exception as exc:  # noqa: BLE001 - an exception into SWIG aborts the process
                session.error = repr(exc)

        def free(self) -> None:
            """Delete the C++ port now (once), while this object is alive; it is disowned afterwards."""
            if getattr(self, "freed", True):
                return
            self.freed = True
            self.session = None
            try:
                type(self).__swig_destroy__(self)
            except Exception:  # noqa: BLE001 - a port already gone (library stopped): nothing left to free
                pass

        def __del__(self) -> None:
            self.free()

    _TAP[id(pj)] = Tap
    return Tap


def drop_tap(owner: Any) -> None:
    """Main thread: free OWNER's tap port now (see `Tap`: never by dropping the last reference)."""
    port, owner.port = owner.port, None
    if port is not None:
        port.free()


class WorkerHooks(Protocol):
    """What a session needs from the worker (kept narrow so the worker's internals stay its own)."""

    pj: Any

    def emit(self, kind: str, att: Any = None, **kw: Any) -> None: ...

    def _end(self, att: Any, by: str) -> None: ...

    def _aud(self, leg: Any) -> Any: ...


def _attach_tap(owner: Any, pj: Any, aud: Any, name: str) -> bool:
    """Send AUD into OWNER's 8 kHz PCM tap port (made once, named NAME); on a pjsua2 error keep the reason in
    `owner.error` and say False (the listener then decides without audio)."""
    try:
        if owner.port is None:
            fmt = pj.MediaFormatAudio()
            fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
            port = _tap_class(pj)(owner)
            port.createPort(name, fmt)
            owner.port = port
        aud.startTransmit(owner.port)
        return True
    except pj.Error as exc:
        owner.error = str(getattr(exc, "reason", exc))
        return False


class EarlySession:
    """Early media (183 with SDP) before any answer: is the network announcing instead of ringing?"""

    def __init__(self) -> None:
        self.early = EarlyMedia()
        self.port: Any = None
        self.error: str | None = None

    @property
    def kind(self) -> AnnounceKind | None:
        return self.early.kind

    def on_audio(self, pcm: bytes) -> None:
        """Clock thread: feed the early-media check (never touches pjsua2)."""
        if pcm and self.early.kind is None:
            self.early.feed(pcm)

    def attach(self, pj: Any, aud: Any) -> bool:
        return _attach_tap(self, pj, aud, "early")

    def close(self) -> None:
        drop_tap(self)


class AmdSession:
    """The check after every 200 OK, and AMD when the campaign asked for it.

    listening -> (person: connect) | (the network's announcement: hang up, never an agent) |
    (machine, AMD asked: hang up or wait, play, hang up). Without an AMD order the session only screens for
    announcements (`amd_wanted` False): a machine that is not the network's is connected as before.
    """

    def __init__(self, order: AmdOrder, ring_s: float | None, answered_at: float, params: AmdParams | None = None,
                 *, amd_wanted: bool = True, early: AnnounceKind | None = None):
        self.order = order
        self.ring_s = ring_s
        self.answered_at = answered_at
        self.amd_wanted = amd_wanted
        self.check = AnswerCheck(ring_s=ring_s, early=early, amd_wanted=amd_wanted,
                                 amd_params=(params or AmdParams()).replace(total_budget_s=order.budget_s))
        self.detector = self.check.det
        self.announcement: CheckResult | None = None
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
            self.check.feed(pcm)

    def attach(self, pj: Any, aud: Any) -> bool:
        """Main thread: connect the customer's audio to a new tap port (again after a media change)."""
        if self.phase == "done":
            return False
        return _attach_tap(self, pj, aud, "amd")

    def close(self) -> None:
        drop_tap(self)
        self.player = None

    def decision(self, now: float) -> Decision | None:
        """The check's verdict as an AMD decision (`announcement` for the network's recording), or `unsure`
        when its budget passed without audio to decide on."""
        r = self.check.result
        if r is not None:
            if r.verdict is CheckVerdict.ANNOUNCEMENT:
                self.announcement = r
                return Decision(AmdVerdict.ANNOUNCEMENT, r.decided_after_s, r.reason,
                                {**self.detector.features(r.reason), "announcement": r.kind})
            d = r.amd
            if r.verdict is CheckVerdict.MACHINE and d is not None:
                return d
            verdict = d.verdict if d is not None and d.verdict != AmdVerdict.MACHINE else AmdVerdict.UNSURE
            return Decision(verdict, r.decided_after_s, r.reason, self.detector.features(r.reason))
        # no audio at all: nothing to wait for beyond the AMD budget (or the silent pass); audio: the check decides
        # by itself within its own cap
        budget = self.order.budget_s if self.amd_wanted else self.check.p.silent_pass_s
        limit = budget if self.frames == 0 else max(budget, self.check.p.max_s)
        if now - self.answered_at >= limit + 1.0:
            why = "no_audio" if self.frames == 0 else "budget"
            return Decision(AmdVerdict.UNSURE, now - self.answered_at, why, self.detector.features(why))
        return None

    def summary(self) -> dict[str, Any]:
        d = self.result
        assert d is not None
        return {"verdict": d.verdict, "decided_after_s": round(d.decided_after_s, 3), "reason": d.reason,
                "features": d.features, "action": self.order.action if d.verdict == AmdVerdict.MACHINE else
                "hangup" if d.verdict == AmdVerdict.ANNOUNCEMENT else "connect",
                "frames": self.frames}

    def step(self, w: WorkerHooks, att: Any, now: float) -> bool:
        """Main thread, from the worker's timers. True while AMD still owns the call (no agent yet)."""
        if self.phase == "listening":
            d = self.decision(now)
            if d is None:
                ad = self.detector.decision
                if self.amd_wanted and ad is not None and ad.verdict == AmdVerdict.MACHINE:
                    # AMD heard a machine; whether it is voicemail or the network's recording is told by how the
                    # greeting ends (beep or not). The campaign learns "machine" now (no agent, pacer), the
                    # action waits for the check.
                    self.result = ad
                    w.emit("machine", att, detail=f"AMD: machine ({ad.reason}) after {ad.decided_after_s:.2f} s",
                           amd=self.summary())
                    self.phase = "confirming"
                return True
            self.result = d
            if d.verdict == AmdVerdict.ANNOUNCEMENT:
                return self._announced(w, att, d)
            if d.verdict != AmdVerdict.MACHINE:
                self.phase = "done"
                self.close()
                return False  # the worker now treats the call as a person's: "answered", agent, connect limit
            w.emit("machine", att, detail=f"AMD: machine ({d.reason}) after {d.decided_after_s:.2f} s",
                   amd=self.summary())
            return self._machine(w, att, now, d)
        if self.phase == "confirming":
            d = self.decision(now)
            if d is None:
                return True
            if d.verdict == AmdVerdict.ANNOUNCEMENT:
                self.result = d
                return self._announced(w, att, d)
            return self._machine(w, att, now, self.result or d)
        if self.phase == "awaiting_cue":
            if self.detector.message_cue_s is not None or now >= self.cue_deadline:
                self._play(w, att, now)
            return True
        if self.phase == "playing" and now >= self.play_until:
            self.phase = "done"
            self.close()
            w._end(att, "dialer")
        return True

    def _announced(self, w: WorkerHooks, att: Any, d: Decision) -> bool:
        self.phase = "done"
        self.close()
        att.cause = AmdVerdict.ANNOUNCEMENT
        self.note = f"carrier announcement ({d.reason}) after {d.decided_after_s:.2f} s: hung up"
        w._end(att, "dialer")
        return True

    def _machine(self, w: WorkerHooks, att: Any, now: float, d: Decision) -> bool:
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

    def _play(self, w: WorkerHooks, att: Any, now: float) -> None:
        from dialer.sounds import wav_seconds

        pj = w.pj
        wav = self.order.message_wav or ""
        secs = wav_seconds(wav)
        det = self.detector
        cue = "beep" if det.beep_end_s is not None else "silence" if det.message_cue_s is not None else "timeout"
        self.note = (f"AMD machine ({self.result.reason if self.result else '?'}); message after the greeting's "
                     f"{cue} at {now - self.answered_at:.1f} s" + (f" (beep {det.beep_hz:.0f} Hz)" if det.beep_hz else ""))
        drop_tap(self)  # stop listening
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


__all__ = ["ACTIONS", "AmdOrder", "AmdSession", "EarlySession", "ring_seconds", "vector_bytes"]
