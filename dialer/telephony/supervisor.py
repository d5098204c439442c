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
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from dialer.config import Config, TrunkConfig
from dialer.privacy import mask_text
from dialer.telephony import rawsip
from dialer.telephony.amdtap import AmdOrder
from dialer.telephony.capacity import HostCapacity, host_capacity
from dialer.telephony.events import CallEvent, CallOutcome, EventKind
from dialer.telephony.nailed import AgentLegs, NailedAgents, choose_agent_legs, nailed_capacity_error
from dialer.telephony.numbers import request_uri
from dialer.telephony.protocol import (
    AgentLegSpec,
    AgentTone,
    Command,
    ConnectAgent,
    Dialog,
    DialogGone,
    EarlyDialog,
    Event,
    Fatal,
    Hangup,
    Listen,
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


def pj_log_dir() -> str:
    """`TSUNAGU_PJ_LOG_DIR` (debug logs), created (mode 0700) when missing; one clear error when it cannot be."""
    d = os.environ.get("TSUNAGU_PJ_LOG_DIR", "")
    if not d:
        return ""
    try:
        Path(d).mkdir(mode=0o700, parents=True, exist_ok=True)
        if not os.access(d, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise TelephonyError(f"TSUNAGU_PJ_LOG_DIR={d}: cannot use it for the debug logs ({exc.strerror or exc})") \
            from None
    return d


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
    respawn_after: threading.Thread | None = None

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
    consecutive_403: int = 0
    reg_pending: bool = False  # registers, and no 200 to a REGISTER yet: the first INVITE waits for it
    probing: bool = False  # half-open after a rest: exactly one call may probe the trunk
    probe_attempt: int | None = None
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
        # a registering trunk takes no INVITE before its one registration (from worker 0) is accepted
        self.trunks = {t.name: _Trunk(t, reg_pending=t.registration) for t in cfg.trunks}
        self.workers: dict[str, _Worker] = {}
        self.calls: dict[int, _Call] = {}
        self.pending: deque[CallEvent] = deque()
        self.capacity = 0
        self.worker_capacity = 0
        self.customer_slots_per_worker = 0
        self.started = False
        self.errors: list[str] = []
        self.host: HostCapacity | None = None
        self.capacity_note = ""
        self.lines = cfg.telephony.lines
        self.bye_threads: list[threading.Thread] = []
        self.byes_sent: list[tuple[int, str, int]] = []
        self.bye_sent_at: list[float] = []
        self.probe_results: list[CallEvent] = []  # agent OPTIONS results from the probe thread  # when each dead worker's BYEs first left (monotonic)  # (attempt, leg, final status) of BYEs sent for dead workers
        self.dialogs: dict[tuple[int, str], Dialog] = {}  # confirmed dialogs, by (attempt, leg)
        self.early: dict[int, rawsip.Early] = {}  # (issue 24) ringing customer INVITEs, by attempt
        self.cancels: list[tuple[int, tuple[int, int, int]]] = []  # dead workers' CANCELs: (attempt, statuses)
        self.cancelled_ringing: set[int] = set()  # the last dead worker's ringing attempts (CANCEL sent)
        self.agent_legs: AgentLegs = "on_connect"  # decided at start() from the capacity read
        self.nailed = NailedAgents()
        self._reports = self._report_table()

    # ------------------------------------------------------------------ lifecycle
    def _spec(self, i: int, rtp_stride: int) -> WorkerSpec:
        tc = self.tc
        log_dir = pj_log_dir()
        return WorkerSpec(
            name=f"w{i}", sip_port=tc.sip_port_base + i, rtp_port=tc.rtp_port_base + i * rtp_stride,
            rtp_range=rtp_stride, bind=tc.bind, public=tc.public_address, clock_rate=tc.clock_rate,
            trunk_retry_s=tc.trunk_retry_s, log_level=int(os.environ.get("TSUNAGU_PJ_LOG_LEVEL", "0")),
            log_file=str(Path(log_dir) / f"pjsua-w{i}.log") if log_dir else "",
            trunks=tuple(TrunkSpec(name=t.name, proxy=t.proxy, transport=t.transport, username=t.username,
                                   auth_username=t.auth_username, password=t.password(),
                                   registration=t.registration, register_here=i == 0, registrar=t.registrar,
                                   caller_id=t.caller_id, from_user=t.from_user, from_domain=t.from_domain,
                                   outbound_proxy=t.outbound_proxy, codecs=tuple(t.codecs),
                                   session_expires_s=t.session_expires_s, identity_header=t.identity_header,
                                   display_name=t.display_name) for t in self.cfg.trunks),
            agent_leg=AgentLegSpec(username=tc.agent_username, password=tc.agent_password(),
                                   outbound_proxy=tc.agent_outbound_proxy),
            rtp_timeout_s=tc.rtp_timeout_s,
        )

    def _spawn(self, w: _Worker) -> None:
        """A fresh interpreter running only the worker module (not a fork, not multiprocessing's spawn, which
        would re-import the caller's __main__ and everything it imports into every worker)."""
        parent, child = socket.socketpair()
        err: Any = subprocess.DEVNULL
        if pj_log_dir():
            path = Path(pj_log_dir()) / f"worker-{w.name}.stderr"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            err = os.fdopen(fd, "ab")
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
        self._check_secrets()
        stride = self.tc.rtp_ports_per_worker
        w0 = _Worker(0, "w0", self._spec(0, stride))
        self.workers[w0.name] = w0
        self._spawn(w0)
        self._await_ready([w0], self.tc.worker_start_timeout_s)
        cap = w0.capacity
        self.worker_capacity = cap
        per = max(1, math.floor(cap / (1.0 + self.tc.agent_leg_ratio)))
        self.host = host_capacity(cap, self.tc.agent_leg_ratio, configured=self.tc.max_lines_per_host)
        lines = self.tc.lines
        if lines > self.host.max_lines:
            self.capacity_note = (f"lines = {lines} is more than this host can carry: clamped to "
                                  f"{self.host.max_lines} ({self.host.describe()}); set max_lines_per_host "
                                  f"after measuring the real host to change it")
            log.warning("telephony: %s", self.capacity_note)
            lines = self.host.max_lines
        self.lines = lines
        n = self.tc.workers if isinstance(self.tc.workers, int) else math.ceil(lines / per)
        agents = len(self.cfg.agents)
        self.agent_legs = choose_agent_legs(self.tc.agent_legs, cap, agents, lines)
        if self.agent_legs == "nailed":
            # one process holds every agent's session leg and every customer line (bridging is per process)
            why = nailed_capacity_error(cap, agents, lines)
            if why is not None:
                self.stop()
                raise TelephonyError(why)
            per, n = cap - agents, 1
        self.customer_slots_per_worker = per
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
        self.capacity = min(lines, n * per)
        now = time.monotonic()
        for t in self.trunks.values():
            t.tokens, t.tokens_at = t.burst, now
        self.started = True
        log.info("telephony: %d worker(s), %d calls each (%d customer lines), capacity %d, agent legs %s", n, cap,
                 per, self.capacity, self.agent_legs)

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
        for th in self.bye_threads:
            th.join(timeout=5.0)
        self.bye_threads.clear()
        for attempt_id in list(self.calls):
            c = self.calls[attempt_id]
            self._release(attempt_id)
            self.pending.append(CallEvent(kind=EventKind.HANGUP if c.answered else EventKind.FAILED, attempt_id=attempt_id,
                                          outcome=CallOutcome.INTERRUPTED, by="dialer", worker=c.worker, trunk=c.trunk,
                                          detail="telephony stopped"))
        self.started = False

    def _check_secrets(self) -> None:
        """A trunk that authenticates without its password would fail every call: refuse to start instead."""
        for t in self.cfg.trunks:
            if t.username and not t.password_env:
                raise TelephonyError(f"trunk {t.name!r} has username {t.username!r} but no password_env: set "
                                     f"password_env to the name of the environment variable holding its password")
            if t.username and not t.password():
                raise TelephonyError(f"trunk {t.name!r}: environment variable {t.password_env} (password_env) is "
                                     f"not set or empty")
        if self.tc.agent_username and not self.tc.agent_password():
            raise TelephonyError(f"[telephony] agent_username is set but agent_password_env "
                                 f"({self.tc.agent_password_env or 'unset'}) names no set environment variable")

    # ------------------------------------------------------------------ capacity
    def _trunk(self, name: str) -> _Trunk:
        try:
            return self.trunks[name]
        except KeyError:
            raise ValueError(f"unknown trunk {name!r} (configured: {', '.join(self.trunks) or 'none'})") from None

    def free_lines(self, trunk: str) -> int:
        t = self._trunk(trunk)
        self._check_trunks(time.monotonic())
        if t.down or t.reg_pending or not self.started:
            return 0
        if t.probing:
            return 0 if t.probe_attempt is not None else 1  # one probe, not a burst
        workers_free = sum(w.free() for w in self.workers.values())
        total_free = self.capacity - len(self.calls)
        return max(0, min(t.cfg.max_channels - len(t.active), workers_free, total_free))

    def cps_headroom(self, trunk: str) -> int:
        t = self._trunk(trunk)
        if t.down or t.reg_pending:
            return 0
        t.refill(time.monotonic())
        return int(t.tokens)

    # ------------------------------------------------------------------ calls
    def originate(self, attempt_id: int, number: str, trunk: str, *, ring_timeout_s: float = 24.0,
                  connect_limit_s: float = 2.0, info_wav: str | None = None, record_path: str | None = None,
                  amd: AmdOrder | None = None, caller_id: str = "", caller_name: str = "",
                  notice_wav: str | None = None) -> bool:
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
                        record_path=str(Path(record_path).resolve()) if record_path else None, amd=amd,
                        from_user=caller_id, display_name=caller_name,
                        notice_wav=str(Path(notice_wav).resolve()) if notice_wav else None)
        if not self._send(w, msg):
            return False
        t.tokens -= 1.0
        if t.probing:
            t.probe_attempt = attempt_id
        t.active.add(attempt_id)
        w.attempts.add(attempt_id)
        self.calls[attempt_id] = _Call(attempt_id, w.name, trunk, now)
        return True

    def connect_agent(self, attempt_id: int, agent_id: int, agent_uri: str, *, rescue_s: float = 0.0,
                      silence_s: float = 0.0) -> None:
        c = self.calls.get(attempt_id)
        if c is None:
            return
        self._send(self.workers[c.worker], ConnectAgent(attempt_id=attempt_id, agent_id=agent_id, uri=agent_uri,
                                                        rescue_s=rescue_s, silence_s=silence_s))

    def agent_login(self, agent_id: int, uri: str) -> None:
        """Nailed mode: call the agent now and keep the leg up (`agent_leg_up` / `agent_leg_down` events)."""
        w = self.workers.get("w0")
        if w is not None:
            self._send(w, self.nailed.login(agent_id, uri))

    def agent_logout(self, agent_id: int) -> None:
        w = self.workers.get("w0")
        if w is not None:
            self._send(w, self.nailed.logout(agent_id))

    def agent_leg_up(self, agent_id: int) -> bool:
        return agent_id in self.nailed.up

    def hangup(self, attempt_id: int) -> None:
        c = self.calls.get(attempt_id)
        if c is None:
            return
        self._send(self.workers[c.worker], Hangup(attempt_id=attempt_id))

    def agent_tone(self, attempt_id: int, digits: str) -> None:
        """Tones to the agent of a live call (the keypad's only way to answer the agent); nothing if it is gone."""
        c = self.calls.get(attempt_id)
        if c is not None and c.worker in self.workers:
            self._send(self.workers[c.worker], AgentTone(attempt_id=attempt_id, digits=digits))

    def listen(self, attempt_id: int, mode: str, uri: str, by: str = "") -> bool:
        """(issue 29) A supervisor's phone joins a live call on the worker that holds it (listen/whisper/barge);
        False when the call is not up here (the worker reports supervisor_joined / _failed / _left)."""
        c = self.calls.get(attempt_id)
        if c is None or c.worker not in self.workers:
            return False
        return self._send(self.workers[c.worker], Listen(attempt_id=attempt_id, uri=uri, mode=mode, by=by))

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
        self._collect_probes()
        out = list(self.pending)
        self.pending.clear()
        return out

    def _pump(self, timeout: float, *, restart: bool = True) -> None:
        for w in self.workers.values():
            if w.respawn_after is not None and not w.respawn_after.is_alive():
                w.respawn_after = None
                if restart and self.started:
                    self._spawn(w)
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
                WorkerError: self._on_error, Dialog: self._on_dialog, DialogGone: self._on_dialog_gone,
                EarlyDialog: lambda w, m: self.early.__setitem__(m.early.attempt_id, m.early)}

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
        if self.started and self.agent_legs == "nailed":
            for msg in self.nailed.relogin():  # a restarted worker: call the logged-in agents again
                self._send(w, msg)

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
        if m.leg == "customer":
            self.early.pop(m.attempt_id, None)  # answered: no longer ringing

    def _on_dialog_gone(self, w: _Worker, m: DialogGone) -> None:
        self.dialogs.pop((m.attempt_id, m.leg), None)

    def _event(self, ev: CallEvent) -> None:
        self.nailed.on_event(ev)
        if ev.kind in (EventKind.FAILED, EventKind.HANGUP) and ev.attempt_id is not None:
            c = self._release(ev.attempt_id)
            if c is None:
                return  # already reported (e.g. interrupted when its worker died)
        if ev.kind in (EventKind.ANSWERED, EventKind.MACHINE) and ev.attempt_id in self.calls:
            self.calls[ev.attempt_id].answered = True
        if ev.trunk in self.trunks and ev.kind in (EventKind.RINGING, EventKind.ANSWERED, EventKind.MACHINE,
                                                   EventKind.FAILED):
            self._trunk_health(self.trunks[ev.trunk], ev)
        self.pending.append(ev)

    def _trunk_health(self, t: _Trunk, ev: CallEvent) -> None:
        """What a call's progress says about its trunk: credentials refused or a Retry-After take it down at
        once; runs of 403s or congestion take it down; a probe that fails takes it down again."""
        probe = t.probing and ev.attempt_id == t.probe_attempt
        failed = ev.kind == EventKind.FAILED
        if failed and ev.outcome == CallOutcome.TRUNK_ERROR:
            self._trunk_down(t, f"authentication failed ({ev.detail})")
        elif failed and ev.sip_status == 503 and ev.retry_after_s:
            self._trunk_down(t, f"503 with Retry-After: {ev.retry_after_s:g} s", rest_s=ev.retry_after_s)
        elif failed and ev.sip_status == 403 and ev.outcome != CallOutcome.ANONYMOUS_REJECTED:
            t.consecutive_403 += 1
            if t.consecutive_403 >= self.tc.trunk_403_limit or probe:
                self._trunk_down(t, f"{t.consecutive_403} consecutive 403 Forbidden (account or caller ID "
                                    f"refused by the carrier?)")
        elif failed and (ev.sip_status == 503 or ev.outcome == CallOutcome.CONGESTION):
            t.consecutive_503 += 1
            if t.consecutive_503 >= self.tc.trunk_503_limit or probe:
                self._trunk_down(t, f"{t.consecutive_503} consecutive congestion failures "
                                    f"(last: {ev.sip_status or 'no response'})")
        elif ev.kind in (EventKind.RINGING, EventKind.ANSWERED, EventKind.MACHINE) or failed and ev.outcome in (
                CallOutcome.BUSY, CallOutcome.NO_ANSWER, CallOutcome.INVALID, CallOutcome.REJECTED,
                CallOutcome.REDIRECTED):
            t.consecutive_503 = t.consecutive_403 = 0
            if probe:
                t.probing, t.probe_attempt = False, None  # the probe got through: the trunk is fully up
        elif probe and failed:
            t.probe_attempt = None  # inconclusive (cancelled, interrupted): another single probe may go

    def _release(self, attempt_id: int) -> _Call | None:
        c = self.calls.pop(attempt_id, None)
        if c is None:
            return None
        self.trunks[c.trunk].active.discard(attempt_id)
        self.early.pop(attempt_id, None)
        for leg in ("customer", "agent"):
            self.dialogs.pop((attempt_id, leg), None)
        w = self.workers.get(c.worker)
        if w is not None:
            w.attempts.discard(attempt_id)
        return c

    def _worker_down(self, w: _Worker, *, restart: bool) -> None:
        w.stopped = True
        code = None
        if w.proc is not None:
            try:
                code = w.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                w.proc.kill()  # it closed its pipe but lingers: it can no longer be told anything
                code = w.proc.wait()
        # now that its SIP port is free: the far ends of its calls are in dead air right now
        byes = self._bye_dialogs_of(w)
        lost = sorted(w.attempts)
        if not w.ready and not self.started:
            if w.conn is not None:
                w.conn.close()
            w.conn = None
            return  # failed to start: reported by start() itself
        self.pending.append(CallEvent(kind=EventKind.WORKER_DOWN, worker=w.name,
                                      detail=f"worker {w.name} (pid {w.pid}) exited with {code}; "
                                             f"{len(lost)} call(s) interrupted"
                                             + ("; restarting" if restart else "")))
        if self.agent_legs == "nailed":
            self.pending.extend(self.nailed.worker_lost(w.name))
        for attempt_id in lost:
            c = self._release(attempt_id)
            if c is not None:
                self.pending.append(CallEvent(kind=EventKind.FAILED, attempt_id=attempt_id, outcome=CallOutcome.INTERRUPTED,
                                              worker=w.name, trunk=c.trunk,
                                              detail=f"worker {w.name} died" + (
                                                  " while it rang: CANCEL sent from its port" if attempt_id in
                                                  self.cancelled_ringing else "") + "; not re-dialled"))
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
                self.pending.append(CallEvent(kind=EventKind.WORKER_DOWN, worker=w.name,
                                              detail=f"worker {w.name} died {len(w.restart_times)} times in a "
                                                     f"minute; not restarted (capacity reduced)"))
                return
            w.restarts += 1
            if byes is not None:
                w.respawn_after = byes  # its SIP port sends the BYEs first; restarted when they are done
            else:
                self._spawn(w)

    def _bye_dialogs_of(self, w: _Worker) -> threading.Thread | None:
        """A dead worker cannot hang up: send each of its confirmed dialogs a BYE ourselves (both legs), from
        the worker's own SIP port, in the background so the campaign loop never waits on a far end."""
        jobs: list[tuple[rawsip.Request, tuple[str, int], tuple[str, str] | None]] = []
        keys: list[tuple[int, str]] = []
        for key in [k for k in self.dialogs if k[0] in w.attempts]:
            d = self.dialogs.pop(key)
            if d.transport != "udp":
                continue  # a TCP dialog died with its connection; the session timer ends it at the carrier
            creds: tuple[str, str] | None = None
            if d.trunk is not None and d.trunk in self.trunks:
                tcfg = self.trunks[d.trunk].cfg
                if tcfg.username:
                    creds = (tcfg.auth_username or tcfg.username, tcfg.password())
            elif d.trunk is None and self.tc.agent_username:
                creds = (self.tc.agent_username, self.tc.agent_password())
            req = rawsip.Request("BYE", d.remote_target, d.local_uri, d.remote_uri, d.call_id, d.cseq + 100,
                                 route=d.route_set)
            dest = rawsip.host_port(rawsip.uri_of(d.route_set[0]) if d.route_set else d.remote_target)
            jobs.append((req, dest, creds))
            keys.append(key)
        ringing = [self.early.pop(a) for a in sorted(w.attempts) if a in self.early]
        self.cancelled_ringing = {e.attempt_id for e in ringing}
        if not jobs and not ringing:
            return None
        th = threading.Thread(target=self._send_byes, args=(jobs, keys, w.spec.sip_port, ringing),
                              name=f"bye-{w.name}", daemon=True)
        th.start()
        self.bye_threads.append(th)
        return th

    def _send_byes(self, jobs: list[tuple[rawsip.Request, tuple[str, int], tuple[str, str] | None]],
                   keys: list[tuple[int, str]], port: int, ringing: list[rawsip.Early] | None = None) -> None:
        self.bye_sent_at.append(time.monotonic())
        if ringing:  # (issue 24) calls still ringing: CANCEL them; a 200 that crosses gets ACK + BYE
            try:
                got = rawsip.cancel_all(ringing, bind=self.tc.bind, port=port, timeout_s=10.0)
            except OSError as exc:
                log.warning("telephony: CANCELs for a dead worker's ringing calls failed: %s", exc)
                got = {e.attempt_id: (0, 0, 0) for e in ringing}
            self.cancels.extend(sorted(got.items()))
        if not jobs:
            return
        try:
            statuses = rawsip.transact_all(jobs, bind=self.tc.bind, port=port, timeout_s=8.0)
        except OSError as exc:
            log.warning("telephony: BYEs for a dead worker's calls failed: %s", exc)
            statuses = [0] * len(jobs)
        for (attempt_id, leg), status in zip(keys, statuses, strict=True):
            self.byes_sent.append((attempt_id, leg, status))

    # ------------------------------------------------------------------ trunks
    def _trunk_down(self, t: _Trunk, reason: str, *, registration: bool = False, rest_s: float | None = None) -> None:
        if t.down:
            return
        rest = rest_s if rest_s is not None else self.tc.trunk_retry_s
        t.down = True
        t.reason = reason
        t.by_registration = registration
        t.reg_pending = t.probing = False
        t.probe_attempt = None
        t.retry_at = time.monotonic() + rest
        self.pending.append(CallEvent(kind=EventKind.TRUNK_DOWN, trunk=t.cfg.name,
                                      detail=mask_text(f"trunk {t.cfg.name} down: {reason}; retry in {rest:g} s")))

    def _trunk_up(self, t: _Trunk, why: str) -> None:
        t.down = False
        t.consecutive_503 = t.consecutive_403 = 0
        t.reason = ""
        self.pending.append(CallEvent(kind=EventKind.TRUNK_UP, trunk=t.cfg.name,
                                      detail=f"trunk {t.cfg.name} up: {why}"))

    def _check_trunks(self, now: float) -> None:
        for t in self.trunks.values():
            if t.down and t.by_registration and now >= t.retry_at:
                # ask every worker to REGISTER again (pjsua does not retry every kind of refusal by itself)
                t.retry_at = now + self.tc.trunk_retry_s
                for w in self.workers.values():
                    if w.ready and not w.stopped and any(ts.register_here and ts.name == t.cfg.name
                                                         for ts in w.spec.trunks):
                        self._send(w, Register(trunk=t.cfg.name))
            elif t.down and not t.by_registration and now >= t.retry_at:
                # half-open: ONE call probes the trunk; its failure marks it down again, its ringing brings it up
                self._trunk_up(t, "probing with one call")
                t.probing, t.probe_attempt = True, None

    def _registration(self, m: RegState) -> None:
        t = self.trunks.get(m.trunk)
        if t is None:
            return
        if m.ok and m.expiration and t.down and t.by_registration:
            self._trunk_up(t, "registered")
        elif m.ok and m.expiration:
            t.reg_pending = False
        elif not m.ok and not t.down:
            why = " (our credentials were refused)" if m.code in (401, 407, 403) else ""
            self._trunk_down(t, f"registration failed: {m.code} {m.reason}{why}", registration=True)

    def trunk_status(self, trunk: str) -> dict[str, Any]:
        t = self._trunk(trunk)
        return {"down": t.down, "reason": t.reason, "active": len(t.active), "consecutive_503": t.consecutive_503,
                "consecutive_403": t.consecutive_403, "waiting_for_registration": t.reg_pending,
                "probing": t.probing}

    def capacity_info(self) -> dict[str, Any]:
        """For the monitor: what this host carries and whether the config asked for more."""
        h = self.host
        return {"lines": self.lines, "configured_lines": self.tc.lines, "capacity": self.capacity,
                "workers": len(self.workers), "calls_per_process": self.worker_capacity,
                "max_lines_per_host": h.max_lines if h else None, "source": h.source if h else None,
                "note": self.capacity_note}

    def check_agents(self, uris: dict[int, str], *, wait: bool = False) -> None:
        """OPTIONS to each agent's softphone (through the agent outbound proxy, answering a challenge with the
        agent-leg credentials). Results arrive as `agent_reachable` / `agent_unreachable` events (agent_id,
        sip_status): no answer, 404, 410, 480 or 604 = unreachable; any other answer = someone is there.
        `wait`: block until every probe is done (at start-up, so no agent counts as ready before its check)."""
        if not uris:
            return
        tc = self.tc
        creds = (tc.agent_username, tc.agent_password()) if tc.agent_username else None

        def probe() -> None:
            results: list[CallEvent] = []
            jobs = []
            ids = []
            for agent_id, uri in uris.items():
                req = rawsip.Request("OPTIONS", uri, f"<sip:tsunagu@{tc.public_address}>;tag={os.urandom(4).hex()}",
                                     f"<{uri}>", f"{os.urandom(12).hex()}@tsunagu", 1,
                                     route=(f"<{tc.agent_outbound_proxy};lr>",) if tc.agent_outbound_proxy else ())
                dest = rawsip.host_port(tc.agent_outbound_proxy or uri)
                jobs.append((req, dest, creds))
                ids.append(agent_id)
            try:
                statuses = rawsip.transact_all(jobs, bind=tc.bind, timeout_s=2.0)
            except OSError as exc:
                log.warning("telephony: agent reachability check failed: %s", exc)
                return
            for agent_id, status in zip(ids, statuses, strict=True):
                ok = status not in (0, 404, 410, 480, 604)
                results.append(CallEvent(kind=EventKind.AGENT_REACHABLE if ok else EventKind.AGENT_UNREACHABLE, agent_id=agent_id,
                                         sip_status=status or None,
                                         detail=mask_text(f"OPTIONS {uris[agent_id]}: "
                                                          f"{status or 'no answer within 2 s'}")))
            self.probe_results.extend(results)

        th = threading.Thread(target=probe, name="agent-options", daemon=True)
        th.start()
        if wait:
            th.join(timeout=5.0)
            self._collect_probes()
        else:
            self.bye_threads.append(th)

    def _collect_probes(self) -> None:
        while self.probe_results:
            self.pending.append(self.probe_results.pop(0))

    def worker_pids(self) -> dict[str, int]:
        return {w.name: w.pid for w in self.workers.values() if w.ready and not w.stopped}
