"""Real SIP through pjsua2 worker processes against SIPp (carrier and agents) on loopback.

Every count is checked against what the far end itself recorded (SIPp -trace_counts / -trace_stat).
Ports: SIP 5100-5999, RTP 20000-29999 (this area's range).
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dialer.config import Config, parse_config
from dialer.telephony import CallEvent, Telephony
from tests.sipp import PCAPS, Sipp, free_udp_port, pcap_with_payload_type

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parent.parent
Events = list[CallEvent]


def make_config(carrier_port: int, *, lines: int = 2, max_cps: float = 50, extra_tel: str = "",
                extra_trunk: str = "") -> Config:
    sip = free_udp_port(5100, 5899, span=24)
    rtp = 20000 + 1000 * (sip % 9)
    return parse_config(f"""
[telephony]
sip_port_base = {sip}
rtp_port_base = {rtp}
rtp_ports_per_worker = 40
lines = {lines}
{extra_tel}
[[trunks]]
name = "carrier"
proxy = "sip:127.0.0.1:{carrier_port}"
caller_id = "0312345678"
max_cps = {max_cps}
number_format = "national"
{extra_trunk}
""", "test")


@pytest.fixture
def telephony() -> Iterator[Callable[[Config], Telephony]]:
    made: list[Telephony] = []

    def start(cfg: Config) -> Telephony:
        tel = Telephony(cfg)
        made.append(tel)
        tel.start()
        return tel

    yield start
    for tel in made:
        tel.stop()
        # clean shutdown: every worker destroyed its endpoint and exited 0 (an abort would be -6)
        assert {w.name: w.exitcode() for w in tel.workers.values()} == {w: 0 for w in tel.workers}
        assert tel.errors == []


def collect(tel: Telephony, until: Callable[[Events], bool], timeout: float,
            on: Callable[[CallEvent], None] | None = None, seen: Events | None = None) -> Events:
    """Events until `until(seen + new)` holds (bounded wait); returns only the new ones."""
    out: Events = []
    before = list(seen or [])
    end = time.monotonic() + timeout
    while time.monotonic() < end and not until(before + out):
        for ev in tel.events(0.05):
            out.append(ev)
            if on is not None:
                on(ev)
    return out


def finished(n: int) -> Callable[[Events], bool]:
    return lambda evs: sum(e.kind in ("failed", "hangup") for e in evs) >= n


def originate_all(tel: Telephony, ids: list[int], number: str = "+81312345678", **kw: object) -> Events:
    """Place every attempt, honouring free_lines/cps (False = not now, try again); returns events seen."""
    seen: Events = []
    pending = list(ids)
    end = time.monotonic() + 60
    while pending and time.monotonic() < end:
        if tel.free_lines("carrier") > 0 and tel.cps_headroom("carrier") > 0 and \
                tel.originate(pending[0], number, "carrier", **kw):  # type: ignore[arg-type]
            pending.pop(0)
            continue
        seen += tel.events(0.02)
    assert not pending
    return seen


@pytest.mark.parametrize(("scenario", "outcome", "status", "sipp_code"), [
    ("carrier_busy", "busy", 486, 486),
    ("carrier_503", "congestion", 503, 503),
])
def test_failed_outcomes_match_carrier(tmp_path: Path, telephony: Callable[[Config], Telephony], scenario: str,
                                       outcome: str, status: int, sipp_code: int) -> None:
    with Sipp(scenario, port=free_udp_port(), workdir=tmp_path) as carrier:
        tel = telephony(make_config(carrier.port, extra_tel="trunk_503_limit = 10"))
        evs = originate_all(tel, [1, 2, 3])
        evs += collect(tel, finished(3), 10, seen=evs)
    failed = [e for e in evs if e.kind == "failed"]
    assert sorted(e.attempt_id for e in failed) == [1, 2, 3]
    assert {(e.outcome, e.sip_status) for e in failed} == {(outcome, status)}
    assert carrier.invites() == 3 and carrier.sent(sipp_code) == 3 and carrier.received("ACK") == 3
    assert not [e for e in evs if e.kind == "answered"]


def test_answer_then_dialer_or_callee_hangs_up(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=100) as a, \
            Sipp("carrier_callee_bye", port=free_udp_port(), workdir=tmp_path, duration_ms=300) as b:
        cfg = make_config(a.port)
        cfg.trunks.append(cfg.trunks[0].model_copy(update={"name": "callee", "proxy": f"sip:127.0.0.1:{b.port}"}))
        tel = telephony(cfg)
        assert tel.originate(1, "+81312345678", "carrier")
        assert tel.originate(2, "+81312345679", "callee")

        def hang_up_1(ev: CallEvent) -> None:
            if ev.kind == "answered" and ev.attempt_id == 1:
                tel.hangup(1)

        evs = collect(tel, finished(2), 15, on=hang_up_1)
    kinds = {i: [e.kind for e in evs if e.attempt_id == i] for i in (1, 2)}
    assert kinds[1] == ["trying", "ringing", "answered", "hangup"]
    assert kinds[2][-2:] == ["answered", "hangup"]
    by = {e.attempt_id: e.by for e in evs if e.kind == "hangup"}
    assert by == {1: "dialer", 2: "customer"}
    assert a.received("BYE") == 1 and b.sent("BYE") == 1 and b.stat("SuccessfulCall(C)") == 1
    assert a.stat("SuccessfulCall(C)") == 1


def test_ring_timeout_cancels_after_at_least_15s(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_noanswer", port=free_udp_port(), workdir=tmp_path) as carrier:
        cfg = make_config(carrier.port, lines=3)
        silent = free_udp_port()  # nothing listens there: a trunk that never answers at all
        cfg.trunks.append(cfg.trunks[0].model_copy(update={"name": "silent", "proxy": f"sip:127.0.0.1:{silent}"}))
        tel = telephony(cfg)
        t0 = time.monotonic()
        assert tel.originate(1, "+81312345678", "carrier", ring_timeout_s=2)  # raised to the 15 s minimum
        assert tel.originate(2, "+81312345679", "carrier", ring_timeout_s=2)
        assert tel.originate(3, "+81312345670", "silent", ring_timeout_s=2)

        def cancel_2(ev: CallEvent) -> None:
            if ev.kind == "ringing" and ev.attempt_id == 2:
                tel.hangup(2)  # the campaign hangs up before the ring timeout: cancelled, not no_answer

        evs = collect(tel, finished(3), 30, on=cancel_2)
        elapsed = time.monotonic() - t0
        # the silent trunk's slot stays busy until pjsip gives up on the INVITE (Timer B), and the worker's
        # free customer slots say so (pjsua's own count, reported by the worker)
        busy = next(e.worker for e in evs if e.attempt_id == 3)
        w = tel.workers[busy]
        collect(tel, lambda _: w.lingering() > 0, 2)
        assert w.lingering() >= 1 and w.free() <= w.customer_slots - 1
    out = {e.attempt_id: (e.outcome, e.sip_status) for e in evs if e.kind == "failed"}
    assert out == {1: ("no_answer", 487), 2: ("cancelled", 487), 3: ("congestion", None)}
    assert "no response" in next(e.detail for e in evs if e.attempt_id == 3 and e.kind == "failed")
    assert elapsed >= 15.0
    assert carrier.received("CANCEL") == 2 and carrier.sent(487) == 2


def test_random_mix_scales_out_and_counts_match_carrier(tmp_path: Path,
                                                        telephony: Callable[[Config], Telephony]) -> None:
    n = 30
    with Sipp("carrier_mix", port=free_udp_port(), workdir=tmp_path) as carrier:
        tel = telephony(make_config(carrier.port, lines=10, max_cps=40, extra_tel="trunk_503_limit = 1000"))
        # capacity is read from the worker, never assumed: lines / customer slots per worker
        assert tel.workers and len(tel.workers) == math.ceil(10 / tel.customer_slots_per_worker)
        assert tel.capacity == min(10, len(tel.workers) * tel.customer_slots_per_worker)
        live: set[int] = set()
        peak = 0
        workers_used: set[str] = set()

        def track(ev: CallEvent) -> None:
            nonlocal peak
            if ev.kind == "trying":
                live.add(ev.attempt_id or 0)
                workers_used.add(ev.worker)
                peak = max(peak, len(live))
            elif ev.kind == "answered":
                tel.hangup(ev.attempt_id or 0)
            elif ev.kind in ("failed", "hangup"):
                live.discard(ev.attempt_id or 0)

        evs: Events = []
        pending = list(range(1, n + 1))
        end = time.monotonic() + 60
        while pending and time.monotonic() < end:
            while pending and tel.originate(pending[0], f"+8131234{pending[0]:04d}", "carrier"):
                pending.pop(0)
            for ev in tel.events(0.02):
                evs.append(ev)
                track(ev)
        evs += collect(tel, finished(n), 30, on=track, seen=evs)
    assert not pending
    outcomes = Counter(e.outcome if e.kind == "failed" else "answered" for e in evs if e.kind in ("failed", "hangup"))
    assert sum(outcomes.values()) == n == carrier.invites()
    assert outcomes["busy"] == carrier.sent(486)
    assert outcomes["no_answer"] == carrier.sent(480)
    assert outcomes["invalid"] == carrier.sent(404)
    assert outcomes["congestion"] == carrier.sent(503)
    assert outcomes["answered"] == carrier.received("BYE")
    assert carrier.stat("SuccessfulCall(C)") + carrier.stat("FailedCall(C)") == n
    # scale-out: more than 4 calls at once, spread over as many workers as the read capacity needs
    assert peak > 4
    if tel.customer_slots_per_worker < 10:
        assert len(workers_used) > 1 and len(workers_used) >= math.ceil(peak / tel.customer_slots_per_worker)


def _agent_round(tel: Telephony, ids: list[int], agent_uri: str, hold_s: float) -> tuple[Events, list[float]]:
    answered_at: dict[int, float] = {}
    latency: list[float] = []
    hang_at: dict[int, float] = {}

    def on(ev: CallEvent) -> None:
        if ev.kind == "answered" and ev.attempt_id is not None:
            answered_at[ev.attempt_id] = ev.at
            tel.connect_agent(ev.attempt_id, 100 + ev.attempt_id, agent_uri)
        elif ev.kind == "agent_connected" and ev.attempt_id is not None:
            latency.append(ev.at - answered_at[ev.attempt_id])
            hang_at[ev.attempt_id] = time.monotonic() + hold_s

    evs: Events = []
    end = time.monotonic() + 40
    pending = list(ids)
    while time.monotonic() < end and not finished(len(ids))(evs):
        while pending and tel.originate(pending[0], "+81312345678", "carrier", connect_limit_s=2.0):
            pending.pop(0)
        for ev in tel.events(0.02):
            evs.append(ev)
            on(ev)
        now = time.monotonic()
        for a, t in list(hang_at.items()):
            if now >= t:
                tel.hangup(a)
                del hang_at[a]
    return evs, latency


def test_agent_bridge_audio_both_ways(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    audio = str(PCAPS / "g711a.pcap")
    dtmf = {"dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_4.pcap", tmp_path / "d4.pcap", 120)),
            "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_2.pcap", tmp_path / "d2.pcap", 120,
                                                     ts_offset=80000, seq_offset=500))}
    n = 6
    with Sipp("carrier_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": audio, **dtmf}) as carrier, \
            Sipp("agent_uas", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as agent:
        tel = telephony(make_config(carrier.port, lines=n))
        evs, latency = _agent_round(tel, list(range(1, n + 1)), agent.uri("agent"), hold_s=3.5)
    connected = [e for e in evs if e.kind == "agent_connected"]
    assert len(connected) == n == agent.invites() == agent.received("BYE")
    # agent legs placed by whichever worker holds the customer: as many workers as the read capacity needs
    # (3 on the wheel's 2 customer lines per worker, 1 on a site build)
    assert len(tel.workers) == math.ceil(n / tel.customer_slots_per_worker)
    assert len({e.worker for e in connected}) == len(tel.workers)  # n lines fill every worker
    hangups = [e for e in evs if e.kind == "hangup"]
    assert len(hangups) == n and {e.by for e in hangups} == {"dialer"}
    for e in hangups:
        st = e.stats or {}
        c, a = st["customer"], st["agent"]
        assert c["rx"] > 20 and c["tx"] > 20 and a["rx"] > 20 and a["tx"] > 20  # RTP both ways on both legs
        # customer speech crosses the bridge to the agent, the agent's (echoed) audio crosses back
        assert c["level_in"] > 0 and a["level_out"] > 0 and a["level_in"] > 0 and c["level_out"] > 0
        assert a["loss"] == 0  # (the customer side's pcaps jump sequence numbers on purpose, see sipp.py)
    # customer DTMF (RFC 2833, PT 120) arrives as events on the customer leg
    digits = Counter((e.attempt_id, e.digit, e.leg) for e in evs if e.kind == "dtmf")
    assert all(digits[(i, "4", "customer")] >= 1 and digits[(i, "2", "customer")] >= 1 for i in range(1, n + 1))
    assert not [e for e in evs if e.kind in ("abandoned", "agent_failed")]
    latency.sort()
    (tmp_path / "latency.txt").write_text(" ".join(f"{x * 1000:.1f}" for x in latency))


def test_agent_dtmf_and_agent_hangs_up_first(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    dtmf = {"dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_7.pcap", tmp_path / "d7.pcap", 120)),
            "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_9.pcap", tmp_path / "d9.pcap", 120,
                                                     ts_offset=80000, seq_offset=500))}
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50) as carrier, \
            Sipp("agent_dtmf", port=free_udp_port(), workdir=tmp_path, keys=dtmf) as agent, \
            Sipp("agent_bye", port=free_udp_port(), workdir=tmp_path, duration_ms=400) as agent2:
        tel = telephony(make_config(carrier.port, lines=2))
        evs, _ = _agent_round(tel, [1], agent.uri("a1"), hold_s=2.0)
        evs2, _ = _agent_round(tel, [2], agent2.uri("a2"), hold_s=30)
    dig = [(e.digit, e.leg, e.agent_id) for e in evs if e.kind == "dtmf"]
    assert ("7", "agent", 101) in dig and ("9", "agent", 101) in dig
    assert [e.by for e in evs2 if e.kind == "hangup"] == ["agent"]
    assert carrier.received("BYE") == 2 and agent2.sent("BYE") == 1


def _short_wav(tmp_path: Path) -> str:
    out = tmp_path / "info.wav"
    subprocess.run([str(ROOT / "config/sounds/make_info_wav.sh"), "Sorry, nobody is free.", str(out)], check=True,
                   capture_output=True)
    return str(out)


def test_abandon_plays_message_and_agent_reject(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    wav = _short_wav(tmp_path)
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50, rtp_echo=True) as carrier, \
            Sipp("agent_reject", port=free_udp_port(), workdir=tmp_path) as agent, \
            Sipp("agent_noanswer", port=free_udp_port(), workdir=tmp_path) as ringer:
        tel = telephony(make_config(carrier.port, lines=4))
        rec = tmp_path / "rec" / "1.wav"
        assert tel.originate(1, "+81312345678", "carrier", connect_limit_s=1.0, info_wav=wav, record_path=str(rec))
        assert tel.originate(2, "+81312345679", "carrier", connect_limit_s=1.0, info_wav=wav)
        # control: abandoned without a message, the carrier hears (and echoes) only silence
        assert tel.originate(3, "+81312345670", "carrier", connect_limit_s=1.0, info_wav=None)
        # an agent softphone that rings and nobody picks up
        assert tel.originate(4, "+81312345671", "carrier", connect_limit_s=1.0, info_wav=wav)

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered" and ev.attempt_id == 2:
                tel.connect_agent(2, 7, agent.uri("agent"))
            if ev.kind == "answered" and ev.attempt_id == 4:
                tel.connect_agent(4, 8, ringer.uri("agent"))

        evs = collect(tel, finished(4), 20, on=on)
    kinds = {i: [e.kind for e in evs if e.attempt_id == i] for i in (1, 2, 3, 4)}
    assert kinds[4] == ["trying", "ringing", "answered", "agent_failed", "abandoned", "hangup"]
    assert ringer.received("CANCEL") == 1 and [e.agent_id for e in evs if e.kind == "agent_failed"] == [7, 8]
    assert kinds[1] == ["trying", "ringing", "answered", "abandoned", "hangup"]
    assert kinds[2] == ["trying", "ringing", "answered", "agent_failed", "abandoned", "hangup"]
    failed = next(e for e in evs if e.kind == "agent_failed")
    assert failed.agent_id == 7 and failed.sip_status == 486 and agent.sent(486) == 1
    hang = {e.attempt_id: e for e in evs if e.kind == "hangup"}
    assert hang[1].by == "dialer" and hang[1].recording_path == str(rec)
    # the message went out to the customer (level_out), unlike the silent control; on the recorded call its echo
    # came back (level_in: pjmedia only reads a port's incoming audio while something listens to it)
    assert (hang[1].stats or {})["customer"]["level_out"] > 0
    assert (hang[1].stats or {})["customer"]["level_in"] > 0
    assert (hang[2].stats or {})["customer"]["level_out"] > 0
    assert (hang[3].stats or {})["customer"]["level_out"] == 0
    # and the per-call recording holds it
    with wave.open(str(rec)) as w:
        frames = w.readframes(w.getnframes())
        assert w.getframerate() == 8000 and w.getnframes() > 8000
    import array
    samples = array.array("h", frames)
    assert max(abs(s) for s in samples) > 1000
    assert carrier.received("BYE") == 4


def test_killed_worker_is_recovered_and_its_calls_interrupted(tmp_path: Path,
                                                              telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_noanswer", port=free_udp_port(), workdir=tmp_path) as carrier:
        tel = telephony(make_config(carrier.port, lines=4))
        # any worker count: on the wheel the victim holds 2 of the 4 calls, on a site build all 4
        evs = originate_all(tel, [1, 2, 3, 4])
        evs += collect(tel, lambda es: sum(e.kind == "ringing" for e in es) >= 4, 10, seen=evs)
        victim = next(e.worker for e in evs if e.kind == "ringing")
        held = {e.attempt_id for e in evs if e.kind == "ringing" and e.worker == victim}
        old_pid = tel.worker_pids()[victim]
        os.kill(old_pid, signal.SIGKILL)
        evs2 = collect(tel, lambda es: sum(e.kind == "failed" for e in es) >= len(held), 10)
        down = [e for e in evs2 if e.kind == "worker_down"]
        assert len(down) == 1 and down[0].worker == victim
        interrupted = {e.attempt_id for e in evs2 if e.kind == "failed" and e.outcome == "interrupted"}
        assert interrupted == held
        # restarted: ready again under a new pid, and it takes calls
        end = time.monotonic() + 15
        while time.monotonic() < end and tel.worker_pids().get(victim) in (None, old_pid):
            tel.events(0.1)
        assert tel.worker_pids()[victim] != old_pid
        for a in {1, 2, 3, 4} - held:
            tel.hangup(a)
        collect(tel, lambda es: tel.free_lines("carrier") == tel.capacity, 10)
        assert tel.free_lines("carrier") == tel.capacity
    assert carrier.invites() == 4  # the interrupted calls were not re-dialled


def test_503_storm_marks_trunk_down_then_retries(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_503", port=free_udp_port(), workdir=tmp_path) as carrier:
        tel = telephony(make_config(carrier.port, extra_tel="trunk_503_limit = 3\ntrunk_retry_s = 1.5"))
        evs = originate_all(tel, [1, 2, 3])
        evs += collect(tel, lambda es: any(e.kind == "trunk_down" for e in es), 10, seen=evs)
        down = [e for e in evs if e.kind == "trunk_down"]
        assert len(down) == 1 and down[0].trunk == "carrier" and "503" in down[0].detail
        assert tel.free_lines("carrier") == 0
        assert not tel.originate(4, "+81312345678", "carrier")  # refused, not sent
        up = collect(tel, lambda es: any(e.kind == "trunk_up" for e in es), 10)
        assert [e.kind for e in up if e.kind.startswith("trunk")] == ["trunk_up"]
        assert tel.free_lines("carrier") > 0
        # half-open: one more 503 marks it down again at once
        evs3 = originate_all(tel, [5])
        evs3 += collect(tel, lambda es: any(e.kind == "trunk_down" for e in es), 10, seen=evs3)
        assert any(e.kind == "trunk_down" for e in evs3)
    assert carrier.invites() == 4 and carrier.sent(503) == 4


def test_stop_with_calls_in_progress_is_clean(tmp_path: Path) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50) as carrier:
        tel = Telephony(make_config(carrier.port, lines=4))
        tel.start()
        originate_all(tel, [1, 2, 3, 4])
        collect(tel, lambda es: sum(e.kind == "answered" for e in es) >= 4, 10)
        tel.stop()
        evs = tel.events(0)
    assert {e.attempt_id for e in evs if e.kind == "hangup"} == {1, 2, 3, 4}
    assert all(w.exitcode() == 0 for w in tel.workers.values())
    assert carrier.received("BYE") == 4


def _baresip(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    """baresip as an agent's softphone: auto-answer, a 440 Hz tone as its microphone, no sound card."""
    d = tmp_path / "baresip"
    d.mkdir()
    tone = d / "tone.wav"  # long: baresip hangs up when its aufile source ends
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(tone), "synth", "60", "sine", "440",
                    "vol", "0.5"], check=True)
    rtp = free_udp_port(28000, 28900, step=20, span=20)
    (d / "config").write_text(f"""poll_method poll
sip_listen 127.0.0.1:{port}
audio_player aubridge,x
audio_source aufile,{tone}
audio_alert aubridge,x
rtp_ports {rtp}-{rtp + 19}
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module_app account.so
module_app menu.so
""")
    (d / "accounts").write_text("<sip:agent@127.0.0.1>;regint=0;answermode=auto\n")
    out = (d / "out.txt").open("wb")
    proc = subprocess.Popen(["baresip", "-f", str(d), "-t", "60"], stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while time.monotonic() < end and b"baresip is ready" not in (d / "out.txt").read_bytes():
        assert proc.poll() is None, (d / "out.txt").read_text(errors="replace")
        time.sleep(0.05)
    return proc


def test_baresip_agent_softphone_auto_answers_and_audio_crosses(tmp_path: Path,
                                                               telephony: Callable[[Config], Telephony]) -> None:
    port = free_udp_port()
    softphone = _baresip(tmp_path, port)
    try:
        with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50, rtp_echo=True) as carrier:
            tel = telephony(make_config(carrier.port))
            evs, latency = _agent_round(tel, [1], f"sip:agent@127.0.0.1:{port}", hold_s=2.0)
    finally:
        softphone.terminate()
        softphone.wait(timeout=10)
    kinds = [e.kind for e in evs if e.attempt_id == 1]
    assert kinds == ["trying", "ringing", "answered", "agent_connected", "hangup"]
    st = next(e for e in evs if e.kind == "hangup").stats or {}
    # the softphone's tone reaches the customer, the customer's (echoed) audio reaches the softphone
    assert st["agent"]["level_in"] > 0 and st["customer"]["level_out"] > 0
    assert st["customer"]["level_in"] > 0 and st["agent"]["level_out"] > 0
    assert st["agent"]["rx"] > 20 and carrier.received("BYE") == 1


def test_worker_that_cannot_start_is_a_clear_error() -> None:
    import socket

    from dialer.telephony import TelephonyError

    port = free_udp_port()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    try:
        cfg = make_config(5999, extra_tel="worker_start_timeout_s = 2.5")
        cfg.telephony.sip_port_base = port
        tel = Telephony(cfg)
        with pytest.raises(TelephonyError, match=f"SIP port {port}.*[Aa]ddress already in use"):
            tel.start()
    finally:
        s.close()
    assert not any(w.alive() for w in tel.workers.values())


def test_registration_failure_marks_trunk_down(tmp_path: Path, telephony: Callable[[Config], Telephony],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSUNAGU_TEST_TRUNK_PW", "not-the-right-one")
    with Sipp("registrar_reject", port=free_udp_port(), workdir=tmp_path) as registrar:
        cfg = make_config(registrar.port, lines=2, extra_trunk='registration = true\nusername = "dialer"\n'
                                                             'password_env = "TSUNAGU_TEST_TRUNK_PW"')
        tel = telephony(cfg)
        evs = collect(tel, lambda es: any(e.kind == "trunk_down" for e in es), 10)
        down = [e for e in evs if e.kind == "trunk_down"]
        assert len(down) == 1 and "registration failed: 403" in down[0].detail
        assert tel.free_lines("carrier") == 0 and not tel.originate(1, "+81312345678", "carrier")
    assert registrar.received("REGISTER") >= 1 and registrar.sent(403) >= 1 and registrar.invites() == 0


def test_registration_retried_brings_trunk_up(tmp_path: Path, telephony: Callable[[Config], Telephony],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSUNAGU_TEST_TRUNK_PW", "secret")
    with Sipp("registrar_flaky", port=free_udp_port(), workdir=tmp_path) as registrar:
        cfg = make_config(registrar.port, lines=2, extra_tel="trunk_retry_s = 1.0",
                          extra_trunk='registration = true\nusername = "dialer"\npassword_env = "TSUNAGU_TEST_TRUNK_PW"')
        tel = telephony(cfg)
        evs = collect(tel, lambda es: any(e.kind == "trunk_up" for e in es), 15)
        assert [e.kind for e in evs if e.kind.startswith("trunk")] == ["trunk_down", "trunk_up"]
        assert "registered" in evs[-1].detail and tel.free_lines("carrier") > 0
    assert registrar.received("REGISTER") >= 2 and registrar.sent(403) >= 1 and registrar.sent(200) >= 1


def test_tcp_trunk(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50, extra=("-t", "t1"),
              trace_msg=True) as carrier:
        tel = telephony(make_config(carrier.port, extra_trunk='transport = "tcp"'))
        assert tel.originate(1, "+81312345678", "carrier")
        evs = collect(tel, finished(1), 10, on=lambda ev: tel.hangup(1) if ev.kind == "answered" else None)
        ports = {w.spec.sip_port for w in tel.workers.values()}
    assert [e.kind for e in evs] == ["trying", "ringing", "answered", "hangup"]
    assert carrier.invites() == 1 and carrier.received("BYE") == 1
    # (issue 24) Via and Contact carry the worker's configured SIP port (where its TCP listener is), not the
    # connection's ephemeral source port: the carrier's requests and responses come back to it
    log = carrier.messages()
    vias = re.findall(r"(?im)^Via: SIP/2.0/TCP 127\.0\.0\.1:(\d+)", log)
    contacts = re.findall(r"(?im)^Contact: <sip:[^@>]*@?127\.0\.0\.1:(\d+);transport=tcp", log)
    assert vias and contacts, log[:2000]
    assert {int(p) for p in vias} <= ports and {int(p) for p in contacts if int(p) != carrier.port} <= ports, \
        (vias, contacts, ports)


def test_second_agent_after_first_rejects_and_call_is_recorded(tmp_path: Path,
                                                                 telephony: Callable[[Config], Telephony]) -> None:
    with Sipp("carrier_answer", port=free_udp_port(), workdir=tmp_path, duration_ms=50, rtp_echo=True) as carrier, \
            Sipp("agent_reject", port=free_udp_port(), workdir=tmp_path) as busy_agent, \
            Sipp("agent_uas", port=free_udp_port(), workdir=tmp_path, rtp_echo=True) as agent:
        tel = telephony(make_config(carrier.port))
        rec = tmp_path / "rec" / "9.wav"
        assert tel.originate(9, "+81312345678", "carrier", connect_limit_s=2.0, record_path=str(rec),
                             info_wav=_short_wav(tmp_path))

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.connect_agent(9, 1, busy_agent.uri("a1"))
            elif ev.kind == "agent_failed":
                tel.connect_agent(9, 2, agent.uri("a2"))  # the loop tries another agent while time remains
            elif ev.kind == "agent_connected":
                connected_at.append(time.monotonic())

        connected_at: list[float] = []

        def until(es: Events) -> bool:
            if connected_at and time.monotonic() - connected_at[0] >= 1.0:
                connected_at.clear()
                tel.hangup(9)  # after a second of conversation
            return finished(1)(es)

        evs = collect(tel, until, 15, on=on)
    assert [e.kind for e in evs] == ["trying", "ringing", "answered", "agent_failed", "agent_connected", "hangup"]
    assert [(e.kind, e.agent_id) for e in evs if e.kind.startswith("agent")] == [("agent_failed", 1),
                                                                                 ("agent_connected", 2)]
    end = evs[-1]
    assert end.by == "dialer" and end.agent_id == 2 and end.recording_path == str(rec)
    with wave.open(str(rec)) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 4000
    assert busy_agent.sent(486) == 1 and agent.received("BYE") == 1 and carrier.received("BYE") == 1
