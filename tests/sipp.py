"""Run SIPp on loopback as a real far end (carrier or agent softphone) and read back what it saw.

Reusable by any test:

    with Sipp("carrier_answer", port=free_udp_port(), media_port=free_udp_port(29000, 29999, step=4),
              workdir=tmp_path, duration_ms=200, rtp_echo=True) as carrier:
        ...  # dial sip:NUMBER@127.0.0.1:{carrier.port}
    carrier.invites()              # INVITEs SIPp received
    carrier.sent(486)              # responses SIPp sent with that code
    carrier.received("BYE")        # requests received by method
    carrier.stats["SuccessfulCall(C)"], carrier.stats["FailedCall(C)"]

Counts come from SIPp's own `-trace_counts` CSV (per scenario message) and `-trace_stat` CSV, written when
SIPp exits; `stop()` makes it exit cleanly (SIGUSR1 = "quit after calls in progress" is too slow, so the
scenarios are short and `stop()` sends SIGTERM only after a grace period).
"""

from __future__ import annotations

import csv
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

SCENARIOS = Path(__file__).resolve().parent.parent / "config" / "sipp"
PCAPS = Path("/usr/share/sip-tester")


def free_udp_port(lo: int = 5100, hi: int = 5999, step: int = 1, *, span: int = 1) -> int:
    """A port in [lo, hi] where `span` consecutive UDP ports are free right now (loopback)."""
    import random

    candidates = list(range(lo, hi - span + 2, step))
    random.shuffle(candidates)
    for p in candidates:
        socks = []
        try:
            for q in range(p, p + span):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no free UDP port in {lo}-{hi}")


def pcap_with_payload_type(src: Path, dst: Path, pt: int, *, ts_offset: int = 0, seq_offset: int = 0) -> Path:
    """Copy a pcap of RTP packets, rewriting the RTP payload type (SIPp's DTMF pcaps use 101; pjsua offers 120).

    SIPp's DTMF pcaps all carry the same SSRC, sequence numbers and timestamps, so a receiver drops a second
    digit as out of order or as a repeat of the first: give each further digit its own offsets."""
    data = bytearray(src.read_bytes())
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 0: 4, 101: 0}.get(linktype, 14)
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8 : off + 12])[0]
        pkt = off + 16
        ip = pkt + link_len
        ihl = (data[ip] & 0x0F) * 4
        rtp = ip + ihl + 8
        if rtp + 8 <= pkt + incl:
            data[rtp + 1] = (data[rtp + 1] & 0x80) | (pt & 0x7F)
            seq = (struct.unpack(">H", data[rtp + 2 : rtp + 4])[0] + seq_offset) & 0xFFFF
            data[rtp + 2 : rtp + 4] = struct.pack(">H", seq)
            ts = (struct.unpack(">I", data[rtp + 4 : rtp + 8])[0] + ts_offset) & 0xFFFFFFFF
            data[rtp + 4 : rtp + 8] = struct.pack(">I", ts)
        off = pkt + incl
    dst.write_bytes(bytes(data))
    return dst


class Sipp:
    def __init__(self, scenario: str | Path, *, port: int, workdir: Path, media_port: int | None = None,
                 duration_ms: int | None = None, rtp_echo: bool = False, keys: dict[str, str] | None = None,
                 max_calls: int | None = None, timeout_s: float | None = None, extra: tuple[str, ...] = (),
                 trace_msg: bool = False) -> None:
        path = Path(scenario)
        if not path.suffix:
            path = SCENARIOS / f"{scenario}.xml"
        self.scenario = path
        self.port = port
        self.media_port = media_port or free_udp_port(29000, 29990, step=4, span=4)
        self.workdir = Path(workdir) / f"sipp-{path.stem}-{port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = ["sipp", "-sf", str(path), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port),
               "-mp", str(self.media_port), "-nostdin", "-trace_stat", "-stf", "stats.csv", "-trace_counts",
               "-fd", "1", "-trace_err", "-aa", "-max_recv_loops", "10000"]
        if rtp_echo:
            cmd.append("-rtp_echo")
        if duration_ms is not None:
            cmd += ["-d", str(duration_ms)]
        if max_calls is not None:
            cmd += ["-m", str(max_calls)]
        if timeout_s is not None:
            cmd += ["-timeout", f"{timeout_s}s"]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, v]
        if trace_msg:
            cmd.append("-trace_msg")  # every message SIPp sent/received, to <scenario>_<pid>_messages.log
        cmd += list(extra)
        self.cmd = cmd
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    @property
    def uri_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def uri(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def start(self) -> Sipp:
        try:
            return self._start()
        except BaseException:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()  # never leave a SIPp behind when start-up fails
                self.proc.wait()
            raise

    def _start(self) -> Sipp:
        with (self.workdir / "stderr.txt").open("wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=err)
        # ready when its SIP port is bound (bounded wait)
        tcp = "-t" in self.cmd and self.cmd[self.cmd.index("-t") + 1] in ("t1", "tn")
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited: {(self.workdir / 'stderr.txt').read_text(errors='replace')}")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                return self
            finally:
                s.close()
            time.sleep(0.02)
        raise RuntimeError("sipp did not bind its port within 5 s")

    def stop(self, grace_s: float = 0.5) -> Sipp:
        """Let SIPp finish what it is doing, then make it exit and read its CSVs."""
        if self.proc is None:
            return self
        if self.proc.poll() is None:
            time.sleep(grace_s)
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: stop; counts and stats are dumped on exit
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self._read()
        return self

    def wait(self, timeout_s: float) -> Sipp:
        """For -m runs: wait for SIPp to exit by itself."""
        assert self.proc is not None
        self.proc.wait(timeout=timeout_s)
        self._read()
        return self

    def __enter__(self) -> Sipp:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ reading SIPp's own statistics
    def _read(self) -> None:
        st = self.workdir / "stats.csv"
        if st.exists():
            rows = list(csv.reader(st.read_text(errors="replace").splitlines(), delimiter=";"))
            if len(rows) >= 2:
                self.stats = dict(zip(rows[0], rows[-1], strict=False))
        files = sorted(self.workdir.glob("*_counts.csv"))
        self.counts = {}
        if files:
            rows = list(csv.reader(files[-1].read_text(errors="replace").splitlines(), delimiter=";"))
            if len(rows) >= 2:
                for k, v in zip(rows[0], rows[-1], strict=False):
                    if v.strip().lstrip("-").isdigit():
                        self.counts[k] = int(v)

    def messages(self) -> str:
        """SIPp's own message trace (needs trace_msg=True): what really crossed the wire."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*_messages.log")))

    def _sum(self, pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(v for k, v in self.counts.items() if rx.fullmatch(k))

    def received(self, method: str) -> int:
        """Requests of that method SIPp received (summed over scenario steps)."""
        return self._sum(rf"\d+_{method}_Recv")

    def sent(self, code: int | str) -> int:
        """Responses with that status (or requests of that method) SIPp sent."""
        return self._sum(rf"\d+_{code}_Sent")

    def invites(self) -> int:
        return self.received("INVITE")

    def stat(self, name: str) -> int:
        """A cumulative counter from -trace_stat, e.g. 'SuccessfulCall(C)', 'FailedCall(C)'."""
        v = self.stats.get(name, "0")
        return int(v) if v.strip().isdigit() else 0
