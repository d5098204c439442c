"""Listen, whisper, barge on a real call (issue 29): which legs receive the supervisor's audio, measured.

Real peers: SIPp as the carrier (the customer speaks quietly: Japanese speech from espeak-ng), SIPp as the
agent's phone (other quiet speech), SIPp as the supervisor's phone (a loud 1 kHz tone), pjsua2 workers between
them. One call, one supervisor leg, three stretches: listen, then whisper, then barge (a mode change re-routes
the same leg). The worker reports the maximum conference level per leg over each stretch (in = heard from that
phone, out = sent to it), so the test sees where the loud supervisor went:

    listen   nobody hears the supervisor (customer and agent hear only each other, at the quiet level)
    whisper  the agent hears the supervisor; the customer still hears only the agent
    barge    both hear the supervisor
and in every mode the supervisor hears the call.

A second supervisor (sv02, its phone a loud 600 Hz tone) listens on the same call the whole time, on its own leg:
it hears sv01 while sv01 whispers or barges (what the agent hears), nobody hears it (its port is never read),
its tone is never in the recording, and its join and leave are events of their own naming it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.amd.pcap import wav_to_pcap
from dialer.config import Config
from dialer.telephony import CallEvent, Telephony
from tests.sipp import Sipp, free_udp_port
from tests.test_telephony_calls import collect, finished, make_config

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(120)]

STRETCH_S = 3.0  # each mode is measured this long (the phones talk from 1.2 s after their answer)


def _speech(tmp: Path, name: str, text: str, voice: str, vol: float) -> str:
    raw, wav = tmp / f"{name}-raw.wav", tmp / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, capture_output=True)
    # 8 kHz mono 16-bit, quiet, repeated to well past the call's length
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(wav),
                    "norm", "-1", "vol", str(vol), "repeat", "6"], check=True, capture_output=True)
    return str(wav_to_pcap(wav, tmp / f"{name}.pcap"))


def _tone(tmp: Path, name: str, hz: int = 1000) -> str:
    wav = tmp / f"{name}.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(wav),
                    "synth", "20", "sine", str(hz), "vol", "0.7"], check=True, capture_output=True)
    return str(wav_to_pcap(wav, tmp / f"{name}.pcap"))


def _tone_seconds(wav_path: Path, hz: float) -> float:
    """Seconds of WAV_PATH where a tone at HZ carries most of the energy (100 ms windows)."""
    import wave

    import numpy as np

    with wave.open(str(wav_path), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    n = rate // 10
    hits = 0
    for i in range(0, len(pcm) - n, n):
        x = pcm[i:i + n]
        spec = np.abs(np.fft.rfft(x)) ** 2
        k = round(hz * n / rate)
        if spec.sum() > 0 and spec[k - 1:k + 2].sum() / spec.sum() > 0.5:
            hits += 1
    return hits / 10


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
        assert {w.name: w.exitcode() for w in tel.workers.values()} == {w: 0 for w in tel.workers}
        assert tel.errors == []


def test_listen_whisper_barge_levels_per_leg(tmp_path: Path, telephony: Callable[[Config], Telephony]) -> None:
    customer = _speech(tmp_path, "customer", "もしもし、山田です。はい、先月の注文の件ですね。", "ja", 0.08)
    agent = _speech(tmp_path, "agent", "お電話ありがとうございます。つなぐ通販の佐藤でございます。", "ja", 0.08)
    sup = _tone(tmp_path, "supervisor")
    sup2 = _tone(tmp_path, "supervisor2", 600)
    with Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": customer}) as carrier, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": agent}) as phone, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": sup}) as boss, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path, keys={"audio_pcap": sup2}) as boss2:
        tel = telephony(make_config(carrier.port, lines=1))
        rec = tmp_path / "rec" / "1.wav"
        assert tel.originate(1, "+81312345678", "carrier", connect_limit_s=5.0, record_path=str(rec))

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.connect_agent(1, 7, phone.uri("a01"))
            elif ev.kind == "agent_connected":
                assert tel.listen(1, "listen", boss.uri("sv01"), by="sv01")
                assert tel.listen(1, "listen", boss2.uri("sv02"), by="sv02")  # a second supervisor, own leg

        evs = collect(tel, lambda e: sum(x.kind == "supervisor_joined" for x in e) == 2, 30, on=on)
        # listen -> whisper -> barge on the same leg, STRETCH_S each (a measuring window, not a synchronisation)
        for mode in ("whisper", "barge"):
            evs += collect(tel, lambda e: False, STRETCH_S, on=on)
            assert tel.listen(1, mode, boss.uri("sv01"), by="sv01")
            evs += collect(tel, lambda e, m=mode: any(x.kind == "supervisor_mode" and m in x.detail for x in e),
                           10, on=on, seen=evs)
        evs += collect(tel, lambda e: False, STRETCH_S, on=on)
        tel.hangup(1)
        evs += collect(tel, lambda e: finished(1)(e) and sum(x.kind == "supervisor_left" for x in e) == 2, 15,
                       on=on, seen=evs)
    kinds = [e.kind for e in evs if e.kind.startswith("supervisor") and e.detail.endswith(" by sv01")]
    assert kinds == ["supervisor_joined", "supervisor_mode", "supervisor_mode", "supervisor_left"], kinds
    second = [e for e in evs if e.kind.startswith("supervisor") and e.detail.endswith(" by sv02")]
    assert [(e.kind, e.detail) for e in second] == [("supervisor_joined", "listen by sv02"),
                                                    ("supervisor_left", "listen by sv02")], second
    stretches = {s["mode"]: s for s in (e.stats or {} for e in evs if e.kind in ("supervisor_mode", "supervisor_left")
                                        and e.detail.endswith(" by sv01"))}
    lv = {m: {f"{r}_{d}": stretches[m][r][d] for r in ("customer", "agent", "supervisor") for d in ("in", "out")}
          for m in ("listen", "whisper", "barge")}
    (tmp_path / "levels.txt").write_text(repr(lv))
    print(lv)
    for m, x in lv.items():
        # both parties talked in every stretch, and the supervisor hears the call in every mode
        assert x["customer_in"] > 0 and x["agent_in"] > 0, (m, x)
        assert x["supervisor_out"] >= min(x["customer_in"], x["agent_in"]), (m, x)
    for m in ("whisper", "barge"):
        # the supervisor's phone far louder than the two parties (so where it goes shows on the other legs)
        assert lv[m]["supervisor_in"] >= max(lv[m]["customer_in"], lv[m]["agent_in"]) + 20, lv[m]
    loud = min(lv["whisper"]["supervisor_in"], lv["barge"]["supervisor_in"]) - 10
    # listen: the supervisor's port feeds nobody (the bridge does not even read it: level 0), and customer and
    # agent hear each other at the parties' quiet level
    assert lv["listen"]["supervisor_in"] == 0, lv["listen"]
    assert lv["listen"]["customer_out"] < loud and lv["listen"]["agent_out"] < loud, lv["listen"]
    # whisper: the agent hears them, the customer does not
    assert lv["whisper"]["agent_out"] >= loud and lv["whisper"]["customer_out"] < loud, lv["whisper"]
    # barge: both hear them
    assert lv["barge"]["agent_out"] >= loud and lv["barge"]["customer_out"] >= loud, lv["barge"]
    # the second supervisor: heard sv01 whispering and barging (loud on its out), was heard by nobody (its port
    # never read: level 0, and the listen stretch above stayed quiet for customer and agent with its tone playing)
    lv2 = second[-1].stats or {}
    assert lv2["supervisor"]["out"] >= loud and lv2["supervisor"]["in"] == 0, lv2
    # the call itself was the customer's and the agent's: one INVITE each way, each supervisor's phone one call
    assert carrier.invites() == 1 and phone.invites() == 1 and boss.invites() == 1 and boss2.invites() == 1
    assert boss.received("BYE") == 1 and boss2.received("BYE") == 1
    # the recording: 0600 whatever the umask, and the supervisor is in it only while barging (not whispering)
    assert [e.recording_path for e in evs if e.kind == "hangup"] == [str(rec)]
    assert rec.stat().st_mode & 0o777 == 0o600
    tone_s = _tone_seconds(rec, 1000.0)
    assert STRETCH_S - 1.0 <= tone_s <= STRETCH_S + 1.5, tone_s  # the barge stretch, not whisper + barge
    assert _tone_seconds(rec, 600.0) == 0  # the listening supervisor is never in the recording
