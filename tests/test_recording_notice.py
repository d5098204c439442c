"""The campaign's spoken recording notice (issue 29): `recording_notice` in [[campaigns]], off by default.

Config: a missing or unreadable notice is refused at load with the key named (the rule of dialer.sounds, the same
one the abandon path's info message is played by); a notice without record_calls is a `config check` warning.
SIP: a SIPp carrier answers (the customer only a quiet 600 Hz tone, from 1.2 s) and a SIPp agent phone (a quiet
1400 Hz tone); the worker records the call with a Japanese notice made by espeak-ng at test time. The recording
holds the notice's own samples right after the bridge (cross-correlation with the WAV), the agent was bridged
within the 2 s connect limit (the notice does not delay it), nothing was abandoned, and the hangup's detail
(the attempt's detail in a campaign) says the notice was played.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.amd.pcap import wav_to_pcap
from dialer.commands.config import notice_warnings
from dialer.config import Config, ConfigError, parse_config
from dialer.telephony import CallEvent, Telephony
from tests.sipp import PCAPS, Sipp, free_udp_port, pcap_with_payload_type
from tests.test_telephony_calls import collect
from tests.test_telephony_nailed import make_config

RATE = 8000
NOTICE_TEXT = "この通話は品質向上のため録音させていただきます"


def _campaign(extra: str) -> str:
    return f'[[trunks]]\nname = "t"\nproxy = "sip:127.0.0.1:5060"\n\n[[campaigns]]\nname = "notice_c1"\n{extra}\n'


def _tone_wav(path: Path, seconds: float = 1.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        t = np.arange(int(seconds * RATE)) / RATE
        w.writeframes((3000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    return path


def test_notice_is_off_by_default() -> None:
    cfg = parse_config(_campaign("record_calls = true"), "test")
    assert cfg.campaigns[0].recording_notice == ""
    assert notice_warnings(cfg) == []


def test_missing_notice_is_refused_with_the_key_named(tmp_path: Path) -> None:
    missing = tmp_path / "告知.wav"
    with pytest.raises(ConfigError) as e:
        parse_config(_campaign(f'record_calls = true\nrecording_notice = "{missing}"'), "test")
    assert "recording_notice" in str(e.value) and "does not exist" in str(e.value)


@pytest.mark.parametrize("content", [b"", b"RIFF not really a wave file", "告知です".encode()])
def test_unreadable_notice_is_refused(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "notice.wav"
    bad.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        parse_config(_campaign(f'record_calls = true\nrecording_notice = "{bad}"'), "test")
    assert "recording_notice" in str(e.value) and "not a readable WAV" in str(e.value)


def test_stereo_notice_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "stereo.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\0\0\0\0" * 800)
    with pytest.raises(ConfigError) as e:
        parse_config(_campaign(f'record_calls = true\nrecording_notice = "{p}"'), "test")
    assert "recording_notice" in str(e.value) and "mono" in str(e.value)


def test_notice_without_recording_is_a_warning(tmp_path: Path) -> None:
    wav = _tone_wav(tmp_path / "notice.wav")
    cfg = parse_config(_campaign(f'recording_notice = "{wav}"'), "test")
    assert cfg.campaigns[0].recording_notice == str(wav)
    [w] = notice_warnings(cfg)
    assert "notice_c1" in w and "record_calls" in w
    ok = parse_config(_campaign(f'record_calls = true\nrecording_notice = "{wav}"'), "test")
    assert notice_warnings(ok) == []


# ----------------------------------------------------------------------------------------------- SIP


def _pcm(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def _tone_pcap(tmp: Path, hz: int) -> str:
    wav = tmp / f"tone{hz}.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(wav),
                    "synth", "20", "sine", str(hz), "vol", "0.03"], check=True, capture_output=True)
    return str(wav_to_pcap(wav, tmp / f"tone{hz}.pcap"))


def _notice(tmp: Path) -> Path:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox make the Japanese notice")
    out = tmp / "notice.wav"
    speech = subprocess.run(["espeak-ng", "-v", "ja", NOTICE_TEXT, "--stdout"], check=True, capture_output=True,
                            timeout=30).stdout
    subprocess.run(["sox", "-", "-r", "8000", "-c", "1", "-b", "16", str(out)], input=speech, check=True,
                   capture_output=True, timeout=30)
    return out


def best_match(rec: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(normalised correlation, lag in s) of REF's best alignment inside REC (REF shorter than REC)."""
    n = len(rec) + len(ref)
    f = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)[:len(rec) - len(ref) + 1]
    c = np.cumsum(np.concatenate([[0.0], rec ** 2]))
    energy = np.sqrt(np.maximum(c[len(ref):] - c[:-len(ref)], 1e-9)) * np.sqrt(float(np.sum(ref ** 2)))
    norm = f / energy
    k = int(np.argmax(norm))
    return float(norm[k]), k / RATE


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


@pytest.mark.sip
@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["on_connect", "nailed"])
def test_notice_is_played_into_the_recording_after_the_bridge(tmp_path: Path, mode: str,
                                                              telephony: Callable[[Config], Telephony]) -> None:
    notice = _notice(tmp_path)
    ref = _pcm(notice)
    ref = ref[:3 * RATE]  # its first 3 s: the call is hung up after 4 s
    limit = 2.0
    dtmf = {"dtmf_a": str(pcap_with_payload_type(PCAPS / "dtmf_2833_4.pcap", tmp_path / "d4.pcap", 120)),
            "dtmf_b": str(pcap_with_payload_type(PCAPS / "dtmf_2833_2.pcap", tmp_path / "d2.pcap", 120,
                                                     ts_offset=80000, seq_offset=500))}
    rec = tmp_path / "rec" / "9.wav"
    with Sipp("carrier_talk", port=free_udp_port(), workdir=tmp_path,
              keys={"audio_pcap": _tone_pcap(tmp_path, 600), **dtmf}) as carrier, \
            Sipp("phone_talk", port=free_udp_port(), workdir=tmp_path,
                 keys={"audio_pcap": _tone_pcap(tmp_path, 1400)}) as phone:
        tel = telephony(make_config(carrier.port, {"a1": phone.uri("a1")}, mode=mode))
        if mode == "nailed":
            tel.agent_login(1, phone.uri("a1"))
            collect(tel, lambda e: any(x.kind == "agent_leg_up" for x in e), 10)
        assert tel.originate(9, "+81312345678", "carrier", connect_limit_s=limit, record_path=str(rec),
                             notice_wav=str(notice))

        def on(ev: CallEvent) -> None:
            if ev.kind == "answered":
                tel.connect_agent(9, 1, phone.uri("a1"))

        evs = collect(tel, lambda e: any(x.kind in ("agent_connected", "abandoned", "hangup") for x in e), 15, on=on)
        evs += collect(tel, lambda e: False, 4.0, on=on)
        tel.hangup(9)
        evs += collect(tel, lambda e: any(x.kind == "hangup" for x in e), 10, on=on, seen=evs)
        if mode == "nailed":
            tel.agent_logout(1)
            collect(tel, lambda e: any(x.kind == "agent_leg_down" for x in e), 10)
    kinds = [e.kind for e in evs]
    assert "abandoned" not in kinds and "agent_failed" not in kinds, kinds
    answered = next(e for e in evs if e.kind == "answered")
    connected = next(e for e in evs if e.kind == "agent_connected")
    bridge_s = connected.at - answered.at
    assert 0 <= bridge_s < limit, bridge_s  # the notice plays after the bridge: the connect limit is untouched
    [hangup] = [e for e in evs if e.kind == "hangup"]
    assert hangup.recording_path == str(rec)
    assert "recording notice played" in hangup.detail, hangup.detail
    pcm = _pcm(rec)
    corr, lag = best_match(pcm, ref)
    # the notice's own samples are in the recording, at its start: the recorder starts at the 200 OK, the
    # "answered" event follows the carrier-announcement check (about 1 s), then the bridge and the notice; the
    # quiet tones of both parties keep the correlation below 1
    assert corr > 0.7, (corr, lag)
    assert lag < 2.0 + bridge_s, (lag, bridge_s)
    # control: the same notice does not match the recording before the bridge or another part of itself
    other, _lag = best_match(pcm, _pcm(notice)[6 * RATE:9 * RATE])
    assert other < 0.5, other
    print(f"{mode}: bridged {bridge_s * 1000:.0f} ms after the answer; notice at {lag:.2f} s in the recording, "
          f"correlation {corr:.2f} (control {other:.2f}); {hangup.detail}")
