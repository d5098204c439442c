"""Recordings hold both parties and no keyed digits (issue 29), on real calls, for both agent-leg modes.

The customer (SIPp carrier) speaks (SIPp's g711a.pcap) and keys 4 then 2 as RFC 2833 events (PT 120); the agent's
phone (SIPp) plays a steady 1400 Hz tone. The worker records the call (mixed mono). Read back:
- the agent is in the recording (the 1400 Hz tone), and so is the customer (speech energy away from 1400 Hz);
- no window of the recording holds a DTMF pair (a row and a column frequency): RFC 2833 digits travel as events,
  pjmedia never turns received events into audio, so a card number keyed on the phone is not in the file. The
  detector is shown to work on the same recording with a synthetic digit mixed in (its positive control).
- the file is 0600.
In-band DTMF (tones inside G.711 audio, from trunks without RFC 2833) is NOT detected or muted: README says so.
"""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.amd.pcap import wav_to_pcap
from dialer.config import Config
from dialer.telephony import CallEvent, Telephony
from tests.audio_checks import dtmf_windows, tone_and_rest_seconds
from tests.sipp import PCAPS, Sipp, free_udp_port, pcap_with_payload_type
from tests.test_telephony_calls import collect
from tests.test_telephony_nailed import make_config

pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(120)]

RATE = 8000


def _pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def _tone_pcap(tmp: Path, hz: int) -> str:
    wav = tmp / f"tone{hz}.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(wav),
                    "synth", "20", "sine", str(hz), "vol", "0.25"], check=True, capture_output=True)
    return str(wav_to_pcap(wav, tmp / f"tone{hz}.pcap"))


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
        assert tel.errors == []


@pytest.mark.parametrize("mode", ["on_connect", "nailed"])
def test_recording_has_both_parties_and_no_keyed_digits(tmp_path: Path, mode: str,
                                                        telephony: Callable[[Config], Telephony]) -> None:
    dtmf = {"dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_4.pcap", tmp_path / "d4.pcap", 120)),
            "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_2.pcap", tmp_path / "d2.pcap", 120,
                                                     ts_offset=80000, seq_offset=500))}
    rec = tmp_path / "rec" / "7.wav"
    with Sipp("carrier_talk", port=free_udp_port(), workdir=tmp_path,
              keys={"audio_pcap": str(PCAPS / "g711a.pcap"), **dtmf}) as carrier, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path,
                 keys={"audio_pcap": _tone_pcap(tmp_path, 1400)}) as phone:
        tel = telephony(make_config(carrier.port, {"a1": phone.uri("a1")}, mode=mode))
        if mode == "nailed":
            tel.agent_login(1, phone.uri("a1"))
            collect(tel, lambda e: any(x.kind == "agent_leg_up" for x in e), 10)
        assert tel.originate(7, "+81312345678", "carrier", connect_limit_s=5.0, record_path=str(rec))

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.connect_agent(7, 1, phone.uri("a1"))

        evs = collect(tel, lambda e: any(x.kind == "agent_connected" for x in e), 20, on=on)
        # the customer talks from 1.2 s and keys 4, 2 at about 2.7 s and 3.3 s after the answer
        evs += collect(tel, lambda e: sum(x.kind == "dtmf" for x in e) >= 2, 10, on=on, seen=evs)
        evs += collect(tel, lambda e: False, 2.5, on=on)
        tel.hangup(7)
        evs += collect(tel, lambda e: any(x.kind == "hangup" for x in e), 10, on=on, seen=evs)
        if mode == "nailed":
            tel.agent_logout(1)
            collect(tel, lambda e: any(x.kind == "agent_leg_down" for x in e), 10)
    assert [e.digit for e in evs if e.kind == "dtmf"][:2] == ["4", "2"]  # the digits were keyed, and arrived
    assert [e.recording_path for e in evs if e.kind == "hangup"] == [str(rec)]
    assert rec.stat().st_mode & 0o777 == 0o600
    pcm = _pcm(rec)
    tone_s, rest_s = tone_and_rest_seconds(pcm, 1400.0)
    assert tone_s >= 1.5, tone_s  # the agent
    assert rest_s >= 0.5, rest_s  # the customer
    assert dtmf_windows(pcm) == 0
    # positive control: a 200 ms digit "4" (770 + 1209 Hz) mixed into the same recording is found
    t = np.arange(int(0.2 * RATE)) / RATE
    digit = 4000 * (np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1209 * t))
    mixed = pcm.copy()
    at = len(mixed) // 2
    mixed[at:at + len(digit)] += digit
    assert dtmf_windows(mixed) >= 2
    (tmp_path / "figures.txt").write_text(f"{mode}: agent tone {tone_s:.2f} s, customer {rest_s:.2f} s, "
                                          f"dtmf windows 0 (control {dtmf_windows(mixed)})\n")
    print((tmp_path / "figures.txt").read_text())


def test_in_band_digits_are_silenced_in_the_recording(tmp_path: Path, telephony: Callable[[Config], Telephony]
                                                      ) -> None:
    """(issue 29) Tones keyed inside the audio (no telephone-event) reach the recording through the bridge like
    speech; the worker silences them when the call ends, before the hangup names the file. The tones come from
    the agent's phone here (the bridge mixes both legs into the recording the same way): a 1400 Hz tone, the
    digits 4 9 8 0 in-band, the tone again."""
    from dialer.telephony.dtmfmute import COLS, ROWS

    t = lambda s: np.arange(int(s * RATE)) / RATE  # noqa: E731
    keys = {"4": (1, 0), "9": (2, 2), "8": (2, 1), "0": (3, 1)}
    parts = [0.25 * np.sin(2 * np.pi * 1400 * t(1.5))]
    for k in "4980":
        r, c = keys[k]
        parts += [0.3 * (np.sin(2 * np.pi * ROWS[r] * t(0.12)) + np.sin(2 * np.pi * COLS[c] * t(0.12))),
                  np.zeros(int(0.1 * RATE))]
    parts.append(0.25 * np.sin(2 * np.pi * 1400 * t(15.0)))
    wav = tmp_path / "keyed.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.concatenate(parts) * 32767).astype("<i2").tobytes())
    rec = tmp_path / "rec" / "8.wav"
    with Sipp("carrier_talk", port=free_udp_port(), workdir=tmp_path,
              keys={"audio_pcap": str(PCAPS / "g711a.pcap"),
                    "dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_4.pcap", tmp_path / "d4.pcap", 120)),
                    "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_2.pcap", tmp_path / "d2.pcap", 120,
                                                         ts_offset=80000, seq_offset=500))}) as carrier, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path,
                 keys={"audio_pcap": str(wav_to_pcap(wav, tmp_path / "keyed.pcap"))}) as phone:
        tel = telephony(make_config(carrier.port, {"a1": phone.uri("a1")}, mode="on_connect"))
        assert tel.originate(8, "+81312345678", "carrier", connect_limit_s=5.0, record_path=str(rec))

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.connect_agent(8, 1, phone.uri("a1"))

        evs = collect(tel, lambda e: any(x.kind == "agent_connected" for x in e), 20, on=on)
        # the phone talks from 1.2 s after its answer: tone 1.5 s, the digits ~0.9 s, the tone again
        evs += collect(tel, lambda e: False, 5.0, on=on)
        tel.hangup(8)
        evs += collect(tel, lambda e: any(x.kind == "hangup" for x in e), 10, on=on, seen=evs)
    hangup = [e for e in evs if e.kind == "hangup"]
    assert [e.recording_path for e in hangup] == [str(rec)]
    assert "keyed digits silenced in the recording" in hangup[0].detail, hangup[0].detail
    assert rec.stat().st_mode & 0o777 == 0o600
    pcm = _pcm(rec)
    assert dtmf_windows(pcm) == 0
    tone_s, _rest = tone_and_rest_seconds(pcm, 1400.0)
    assert tone_s >= 1.5, tone_s  # the agent's audio around the digits is kept
