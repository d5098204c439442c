"""The campaign loop's view of telephony: one object, never blocking, over a pool of worker processes.

Why processes: the pjsua2 wheel holds at most 4 calls per process (a site build may allow hundreds), so the
supervisor reads a worker's real capacity at start-up and starts as many workers as the configured line
count needs. Each worker keeps slots free for the agent legs of its own answered customers, because audio
can only be bridged between calls of one process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from dialer.config import Config, TrunkConfig
from dialer.privacy import mask_text
from dialer.telephony.amdtap import AmdOrder
from dialer.telephony.events import CallEvent
from dialer.telephony.numbers import request_uri
from dialer.telephony.protocol import (
    Command,
    ConnectAgent,
    Dialog,
    DialogGone,
    Event,
    Fatal,
    Hangup,
    Originate,
    Ready,
    Register,
    RegState,
    Report,
    Slots,
    Stop,
    Stopped,
    TrunkSpec,
    WorkerError,
    WorkerSpec,
)

log = logging.getLogger("dialer.telephony")

MIN_RING_S = 15.0
MAX_RESTARTS_PER_MIN = 5
EADDRINUSE = 120098  # PJ_STATUS_FROM_OS(EADDRINUSE)


class TelephonyError(RuntimeError):
    """Telephony could not start (no worker came up); the message says why."""


@dataclass
class _Worker:
    index: int
    name: str
    spec: WorkerSpec
    proc: Any = None
    conn: Connection | None = None
    ready: bool = False
    capacity: int = 0
    customer_slots: int = 0
    attempts: set[int] = field(default_factory=set)
    used: int = 0  # pjsua's own count of busy call slots (includes finishing transactions)
    live: int = 0  # legs the worker still holds
    restarts: int = 0
    restart_times: list[float] = field(default_factory=list)
    fatal_status: int | None = None
    stopped: bool = False
    pid: int = 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exitcode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def lingering(self) -> int:
        return max(0, self.used - self.live)

    def free(self) -> int:
        if not self.ready or self.stopped:
            return 0
        return max(0, self.customer_slots - len(self.attempts) - self.lingering())


@dataclass
class _Trunk:
    cfg: TrunkConfig
    active: set[int] = field(default_factory=set)
    down: bool = False
    reason: str = ""
    retry_at: float = 0.0
    by_registration: bool = False
    consecutive_503: int = 0
    tokens: float = 0.0
    tokens_at: float = 0.0

    @property
    def burst(self) -> float:
        # at most ~200 ms worth of setups at once: a burst of INVITEs overflows UDP buffers (brief, gotcha 5)
        return max(1.0, math.ceil(self.cfg.max_cps / 5))

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.tokens_at) * self.cfg.max_cps)
        self.tokens_at = now


@dataclass
class _Call:
    attempt_id: int
    worker: str
    trunk: str
    placed: float
    answered: bool = False


class Telephony:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.tc = cfg.telephony
        self.trunks = {t.name: _Trunk(t) for t in cfg.trunks}
        self.workers: dict[str, _Worker] = {}
        self.calls: dict[int, _Call] = {}
        self.pending: deque[CallEvent] = deque()
        self.capacity = 0
        self.worker_capacity = 0
        self.customer_slots_per_worker = 0
        self.started = False
        self.errors: list[str] = []
        self.dialogs: dict[tuple[int, str], Dialog] = {}  # confirmed dialogs, by (attempt, leg)
        self._reports = self._report_table()

    # ------------------------------------------------------------------ lifecycle
    def _spec(self, i: int, rtp_stride: int) -> WorkerSpec:
        tc = self.tc
        log_dir = os.environ.get("TSUNAGU_PJ_LOG_DIR", "")
        return WorkerSpec(
            name=f"w{i}", sip_port=tc.sip_port_base + i, rtp_port=tc.rtp_port_base + i * rtp_stride,
            rtp_range=rtp_stride, bind=tc.bind, public=tc.public_address, clock_rate=tc.clock_rate,
            trunk_retry_s=tc.trunk_retry_s, log_level=int(os.environ.get("TSUNAGU_PJ_LOG_LEVEL", "0")),
            log_file=str(Path(log_dir) / f"pjsua-w{i}.log") if log_dir else "",
            trunks=tuple(TrunkSpec(name=t.name, proxy=t.proxy, transport=t.transport, username=t.username,
                                   password=t.password(), registration=t.registration, registrar=t.registrar,
                                   caller_id=t.caller_id, codecs=tuple(t.codecs)) for t in self.cfg.trunks),
        )

    def _spawn(self, w: _Worker) -> None:
        """A fresh interpreter running only the worker module (not a fork, not multiprocessing's spawn, which
        would re-import the caller's __main__ and everything it imports into every worker)."""
        parent, child = socket.socketpair()
        err: Any = subprocess.DEVNULL
        if os.environ.get("TSUNAGU_PJ_LOG_DIR"):
            err = open(Path(os.environ["TSUNAGU_PJ_LOG_DIR"]) / f"worker-{w.name}.stderr", "ab")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "dialer.telephony.worker", str(child.fileno())],
                                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=os.getcwd())
        child.close()
        if err is not subprocess.DEVNULL:
            err.close()
        conn = Connection(parent.detach())
        conn.send(w.spec)
        w.proc, w.conn, w.ready, w.stopped = proc, conn, False, False
        w.attempts, w.used, w.live = set(), 0, 0

    def _await_ready(self, ws: list[_Worker], timeout: float) -> None:
        """Wait for the workers' ready messages. A port still held by the workers of a process that was just
        killed (they hang up their calls before exiting) is retried until the timeout."""
        end = time.monotonic() + timeout
        while any(not w.ready and not w.stopped for w in ws) and time.monotonic() < end:
            self._pump(min(0.2, max(0.0, end - time.monotonic())))
            for w in ws:
                if not w.ready and w.proc is not None and not w.alive() and not w.stopped:
                    self._pump(0.0, restart=False)  # read its last words (why it failed)
                    w.stopped = True
                if w.stopped and not w.ready and w.fatal_status == EADDRINUSE and time.monotonic() < end - 1:
                    w.fatal_status = None
                    self.errors = [e for e in self.errors if not e.startswith(f"{w.name}:")]
                    time.sleep(0.3)
                    self._spawn(w)
        dead = [w.name for w in ws if not w.ready]
        if dead:
            self.stop()
            why = "; ".join(self.errors) or "no ready message within the start timeout"
            raise TelephonyError(f"telephony worker(s) {', '.join(dead)} did not start: {why}")

    def start(self) -> None:
        """Start worker 0, read its call capacity, then start as many workers as the configured lines need."""
        if self.started:
            return
        stride = self.tc.rtp_ports_per_worker
        w0 = _Worker(0, "w0", self._spec(0, stride))
        self.workers[w0.name] = w0
        self._spawn(w0)
        self._await_ready([w0], self.tc.worker_start_timeout_s)
        cap = w0.capacity
        self.worker_capacity = cap
        per = max(1, math.floor(cap / (1.0 + self.tc.agent_leg_ratio)))
        self.customer_slots_per_worker = per
        n = self.tc.workers if isinstance(self.tc.workers, int) else math.ceil(self.tc.lines / per)
        n = max(1, n)
        stride = max(stride, 2 * cap + 16)
        if w0.spec.rtp_range != stride:
            w0.spec = dataclasses.replace(w0.spec, rtp_range=stride)
        w0.customer_slots = per
        rest = []
        for i in range(1, n):
            w = _Worker(i, f"w{i}", self._spec(i, stride))
            self.workers[w.name] = w
            self._spawn(w)
            rest.append(w)
        self._await_ready(rest, self.tc.worker_start_timeout_s + 2 * len(rest))
        for w in rest:
            w.customer_slots = per
        self.capacity = min(self.tc.lines, n * per) if self.tc.workers == "auto" else n * per
        now = time.monotonic()
        for t in self.trunks.values():
            t.tokens, t.tokens_at = t.burst, now
        self.started = True
        log.info("telephony: %d worker(s), %d calls each (%d customer lines), capacity %d", n, cap, per,
                 self.capacity)

    def stop(self) -> None:
        """Hang up everything, let every worker destroy its endpoint, join the processes."""
        for w in self.workers.values():
            if w.conn is not None and not w.stopped and w.alive():
                try:
                    w.conn.send(Stop())
                except OSError:
                    pass
        end = time.monotonic() + 12.0
        while time.monotonic() < end and any(not w.stopped and w.alive() for w in self.workers.values()):
            self._pump(0.2, restart=False)
        for w in self.workers.values():
            if w.proc is not None:
                try:
                    w.proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    self.errors.append(f"{w.name} did not exit; terminated")
                    w.proc.terminate()
                    try:
                        w.proc.wait(timeout=3.0)
                    except subprocess.TimeoutExpired:
                        w.proc.kill()
                        w.proc.wait()
            if w.conn is not None:
                try:
                    w.conn.close()
                except OSError:
                    pass
            w.stopped = True
        for attempt_id in list(self.calls):
            c = self.calls[attempt_id]
            self._release(attempt_id)
            self.pending.append(CallEvent(kind="hangup" if c.answered else "failed", attempt_id=attempt_id,
                                          outcome="interrupted", by="dialer", worker=c.worker, trunk=c.trunk,
                                          detail="telephony stopped"))
        self.started = False

    # ------------------------------------------------------------------ capacity
    def _trunk(self, name: str) -> _Trunk:
        try:
            return self.trunks[name]
        except KeyError:
            raise ValueError(f"unknown trunk {name!r} (configured: {', '.join(self.trunks) or 'none'})") from None

    def free_lines(self, trunk: str) -> int:
        t = self._trunk(trunk)
        self._check_trunks(time.monotonic())
        if t.down or not self.started:
            return 0
        workers_free = sum(w.free() for w in self.workers.values())
        total_free = self.capacity - len(self.calls)
        return max(0, min(t.cfg.max_channels - len(t.active), workers_free, total_free))

    def cps_headroom(self, trunk: str) -> int:
        t = self._trunk(trunk)
        if t.down:
            return 0
        t.refill(time.monotonic())
        return int(t.tokens)

    # ------------------------------------------------------------------ calls
    def originate(self, attempt_id: int, number: str, trunk: str, *, ring_timeout_s: float = 24.0,
                  connect_limit_s: float = 2.0, info_wav: str | None = None, record_path: str | None = None,
                  amd: AmdOrder | None = None) -> bool:
        """Send the INVITE from the least loaded worker. False = no free slot or setup budget right now."""
        if attempt_id in self.calls:
            raise ValueError(f"attempt {attempt_id} is already in progress")
        t = self._trunk(trunk)
        if self.free_lines(trunk) <= 0:
            return False
        now = time.monotonic()
        t.refill(now)
        if t.tokens < 1.0:
            return False
        w = max((w for w in self.workers.values() if w.free() > 0), key=lambda w: (w.free(), -w.index))
        msg = Originate(attempt_id=attempt_id, uri=request_uri(number, t.cfg), trunk=trunk,
                        ring_timeout_s=max(MIN_RING_S, float(ring_timeout_s)), connect_limit_s=float(connect_limit_s),
                        info_wav=str(Path(info_wav).resolve()) if info_wav else None,
                        record_path=str(Path(record_path).resolve()) if record_path else None, amd=amd)
        if not self._send(w, msg):
            return False
        t.tokens -= 1.0
        t.active.add(attempt_id)
        w.attempts.add(attempt_id)
        self.calls[attempt_id] = _Call(attempt_id, w.name, trunk, now)
        return True

    def connect_agent(self, attempt_id: int, agent_id: int, agent_uri: str) -> None:
        c = self.calls.get(attempt_id)
        if c is None:
            return
        self._send(self.workers[c.worker], ConnectAgent(attempt_id=attempt_id, agent_id=agent_id, uri=agent_uri))

    def hangup(self, attempt_id: int) -> None:
        c = self.calls.get(attempt_id)
        if c is None:
            return
        self._send(self.workers[c.worker], Hangup(attempt_id=attempt_id))

    def _send(self, w: _Worker, msg: Command) -> bool:
        if w.conn is None or w.stopped:
            return False
        try:
            w.conn.send(msg)
            return True
        except OSError:
            return False

    # ------------------------------------------------------------------ events
    def events(self, timeout_s: float = 0.0) -> list[CallEvent]:
        """Everything the workers reported, waiting at most timeout_s for the first report."""
        if not self.pending:
            self._pump(timeout_s)
        else:
            self._pump(0.0)
        self._check_trunks(time.monotonic())
        out = list(self.pending)
        self.pending.clear()
        return out

    def _pump(self, timeout: float, *, restart: bool = True) -> None:
        conns: dict[Any, _Worker] = {}
        for w in self.workers.values():
            if w.conn is not None and not w.stopped:
                conns[w.conn] = w  # a dead worker's socket reads as EOF
        if not conns:
            if timeout > 0:
                time.sleep(timeout)
            return
        ready = wait(list(conns), timeout=timeout)
        dead: set[str] = set()
        for r in ready:
            w = conns[r]
            if r is not w.conn:
                continue
            try:
                while w.conn is not None and w.conn.poll():
                    self._message(w, w.conn.recv())
            except (EOFError, OSError):
                dead.add(w.name)
        for name in dead:
            w = self.workers[name]
            if not w.stopped:
                self._worker_down(w, restart=restart)

    def _message(self, w: _Worker, msg: Report) -> None:
        self._reports[type(msg)](w, msg)

    def _report_table(self) -> dict[type[Any], Callable[[_Worker, Any], None]]:
        return {Event: lambda w, m: self._event(m.event), Slots: self._on_slots, Ready: self._on_ready,
                RegState: lambda w, m: self._registration(m), Stopped: self._on_stopped, Fatal: self._on_fatal,
                WorkerError: self._on_error, Dialog: self._on_dialog, DialogGone: self._on_dialog_gone}

    def _on_slots(self, w: _Worker, m: Slots) -> None:
        w.used, w.live = m.used, m.live

    def _on_ready(self, w: _Worker, m: Ready) -> None:
        w.ready = True
        w.capacity = m.capacity
        w.pid = m.pid
        if self.customer_slots_per_worker:
            w.customer_slots = self.customer_slots_per_worker
        else:
            w.customer_slots = max(1, math.floor(w.capacity / (1.0 + self.tc.agent_leg_ratio)))

    def _on_stopped(self, w: _Worker, m: Stopped) -> None:
        w.stopped = True

    def _on_fatal(self, w: _Worker, m: Fatal) -> None:
        w.fatal_status = m.status
        self._worker_error(w, f"start (SIP port {w.spec.sip_port}, RTP {w.spec.rtp_port}+)", m.error)

    def _on_error(self, w: _Worker, m: WorkerError) -> None:
        self._worker_error(w, m.where, m.error)

    def _worker_error(self, w: _Worker, where: str, error: str) -> None:
        text = f"{w.name}: {where}: {error}"
        self.errors.append(text)
        log.error("telephony %s", mask_text(text))

    def _on_dialog(self, w: _Worker, m: Dialog) -> None:
        self.dialogs[(m.attempt_id, m.leg)] = m

    def _on_dialog_gone(self, w: _Worker, m: DialogGone) -> None:
        self.dialogs.pop((m.attempt_id, m.leg), None)

    def _event(self, ev: CallEvent) -> None:
        if ev.kind in ("failed", "hangup") and ev.attempt_id is not None:
            c = self._release(ev.attempt_id)
            if c is None:
                return  # already reported (e.g. interrupted when its worker died)
        if ev.kind in ("answered", "machine") and ev.attempt_id in self.calls:
            self.calls[ev.attempt_id].answered = True
        if ev.trunk in self.trunks:
            t = self.trunks[ev.trunk]
            if ev.kind == "failed" and ev.sip_status == 503 or ev.kind == "failed" and ev.outcome == "congestion":
                t.consecutive_503 += 1
                if t.consecutive_503 >= self.tc.trunk_503_limit and not t.down:
                    self._trunk_down(t, f"{t.consecutive_503} consecutive congestion failures "
                                        f"(last: {ev.sip_status or 'no response'})")
            elif ev.kind in ("ringing", "answered", "machine") or ev.kind == "failed" and ev.outcome in (
                    "busy", "no_answer", "invalid", "rejected"):
                t.consecutive_503 = 0
        self.pending.append(ev)

    def _release(self, attempt_id: int) -> _Call | None:
        c = self.calls.pop(attempt_id, None)
        if c is None:
            return None
        self.trunks[c.trunk].active.discard(attempt_id)
        w = self.workers.get(c.worker)
        if w is not None:
            w.attempts.discard(attempt_id)
        return c

    def _worker_down(self, w: _Worker, *, restart: bool) -> None:
        w.stopped = True
        code = None
        if w.proc is not None:
            try:
                code = w.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                w.proc.kill()  # it closed its pipe but lingers: it can no longer be told anything
                code = w.proc.wait()
        lost = sorted(w.attempts)
        if not w.ready and not self.started:
            if w.conn is not None:
                w.conn.close()
            w.conn = None
            return  # failed to start: reported by start() itself
        self.pending.append(CallEvent(kind="worker_down", worker=w.name,
                                      detail=f"worker {w.name} (pid {w.pid}) exited with {code}; "
                                             f"{len(lost)} call(s) interrupted"
                                             + ("; restarting" if restart else "")))
        for attempt_id in lost:
            c = self._release(attempt_id)
            if c is not None:
                self.pending.append(CallEvent(kind="failed", attempt_id=attempt_id, outcome="interrupted",
                                              worker=w.name, trunk=c.trunk,
                                              detail=f"worker {w.name} died; not re-dialled"))
        if w.conn is not None:
            try:
                w.conn.close()
            except OSError:
                pass
            w.conn = None
        if restart and self.started:
            now = time.monotonic()
            w.restart_times = [t for t in w.restart_times if now - t < 60.0] + [now]
            if len(w.restart_times) > MAX_RESTARTS_PER_MIN:
                self.pending.append(CallEvent(kind="worker_down", worker=w.name,
                                              detail=f"worker {w.name} died {len(w.restart_times)} times in a "
                                                     f"minute; not restarted (capacity reduced)"))
                return
            w.restarts += 1
            self._spawn(w)

    # ------------------------------------------------------------------ trunks
    def _trunk_down(self, t: _Trunk, reason: str, *, registration: bool = False) -> None:
        t.down = True
        t.reason = reason
        t.by_registration = registration
        t.retry_at = time.monotonic() + self.tc.trunk_retry_s
        self.pending.append(CallEvent(kind="trunk_down", trunk=t.cfg.name,
                                      detail=mask_text(f"trunk {t.cfg.name} down: {reason}; "
                                                       f"retry in {self.tc.trunk_retry_s:g} s")))

    def _trunk_up(self, t: _Trunk, why: str) -> None:
        t.down = False
        t.reason = ""
        self.pending.append(CallEvent(kind="trunk_up", trunk=t.cfg.name, detail=f"trunk {t.cfg.name} up: {why}"))

    def _check_trunks(self, now: float) -> None:
        for t in self.trunks.values():
            if t.down and t.by_registration and now >= t.retry_at:
                # ask every worker to REGISTER again (pjsua does not retry every kind of refusal by itself)
                t.retry_at = now + self.tc.trunk_retry_s
                for w in self.workers.values():
                    if w.ready and not w.stopped:
                        self._send(w, Register(trunk=t.cfg.name))
            elif t.down and not t.by_registration and now >= t.retry_at:
                # half-open: one more congestion failure marks it down again
                t.consecutive_503 = max(0, self.tc.trunk_503_limit - 1)
                self._trunk_up(t, f"retrying after {self.tc.trunk_retry_s:g} s")

    def _registration(self, m: RegState) -> None:
        t = self.trunks.get(m.trunk)
        if t is None:
            return
        if m.ok and m.expiration and t.down and t.by_registration:
            self._trunk_up(t, "registered")
        elif not m.ok and not t.down:
            self._trunk_down(t, f"registration failed: {m.code} {m.reason}", registration=True)

    def trunk_status(self, trunk: str) -> dict[str, Any]:
        t = self._trunk(trunk)
        return {"down": t.down, "reason": t.reason, "active": len(t.active), "consecutive_503": t.consecutive_503}

    def worker_pids(self) -> dict[str, int]:
        return {w.name: w.pid for w in self.workers.values() if w.ready and not w.stopped}
