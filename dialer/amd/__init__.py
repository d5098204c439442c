"""Answering-machine detection: tell a person from a machine on the first seconds of a call's audio.

Pure signal processing (numpy): fed 8 kHz 16-bit mono PCM in any chunk size, it answers `human`,
`machine` or `unsure` within a bounded time. The live tap (`dialer.telephony.amdtap`), the offline
`dialer amd classify` and `bench.amd` all drive the same `Detector`, so a file and a call give the same verdict.
"""

from dialer.amd.detector import VERDICTS, AmdParams, Decision, Detector, classify_pcm
from dialer.amd.frames import FRAME_SAMPLES, SAMPLE_RATE, FrameAnalyzer, FrameInfo

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "VERDICTS", "AmdParams", "Decision", "Detector", "FrameAnalyzer",
           "FrameInfo", "classify_pcm"]
