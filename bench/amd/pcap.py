"""A WAV as a pcap of G.711 RTP packets, for SIPp's `play_pcap_audio` (the carrier plays a recorded greeting).

SIPp replays the packets' RTP payloads at their capture times, re-addressed to the negotiated media port, so
the pcap only needs plausible Ethernet/IPv4/UDP framing around RTP with 20 ms spacing.
"""

from __future__ import annotations

import struct
import warnings
import wave
from pathlib import Path

SR = 8000
PTIME = 160  # samples per packet (20 ms)


def _g711(pcm: bytes, law: str) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    return audioop.lin2alaw(pcm, 2) if law == "alaw" else audioop.lin2ulaw(pcm, 2)


def wav_to_pcap(wav: Path, out: Path, *, law: str = "alaw", ssrc: int = 0x15AD15AD) -> Path:
    """Encode an 8 kHz 16-bit mono WAV as PCMA (PT 8) or PCMU (PT 0) RTP in a pcap file."""
    with wave.open(str(wav), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SR):
            raise ValueError(f"{wav}: expected 8 kHz 16-bit mono")
        pcm = w.readframes(w.getnframes())
    payload = _g711(pcm, law)
    pt = 8 if law == "alaw" else 0
    chunks = [payload[i:i + PTIME] for i in range(0, len(payload), PTIME)]
    buf = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet link type
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for n, chunk in enumerate(chunks):
        chunk = chunk.ljust(PTIME, b"\xd5" if law == "alaw" else b"\xff")
        rtp = struct.pack(">BBHII", 0x80, pt | (0x80 if n == 0 else 0), n & 0xFFFF, (n * PTIME) & 0xFFFFFFFF,
                          ssrc) + chunk
        udp = struct.pack(">HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip_hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0, src, dst)
        csum = sum(struct.unpack(">10H", ip_hdr))
        while csum >> 16:
            csum = (csum & 0xFFFF) + (csum >> 16)
        ip_hdr = ip_hdr[:10] + struct.pack(">H", ~csum & 0xFFFF) + ip_hdr[12:]
        frame = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00" + ip_hdr + udp
        t_us = n * 20000
        buf += struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)) + frame
    out.write_bytes(bytes(buf))
    return out


__all__ = ["wav_to_pcap"]
