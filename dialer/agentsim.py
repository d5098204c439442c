"""Simulated agents: auto-answering pjsua2 softphones that talk for a random time and key a disposition.

They stand in for people on headsets in the demo and the end-to-end tests: a real SIP UA per agent on
loopback, answering the dialer's agent leg, sending RTP, keying the disposition by RFC 2833 DTMF (the
code table in `dialer.domain.dtmf`) and hanging up. One process hosts up to 4 agents (the wheel's per-process
call limit); `start_agents` spreads more over several processes.

    python -m dialer.agentsim --agent a01=127.0.0.1:5301 --agent a02=127.0.0.1:5302 --for 120
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialer.domain.dtmf import encode_disposition

DEFAULT_MIX = {"sale": 0.15, "upsell": 0.05, "callback": 0.1, "refused": 0.15, "no_interest": 0.45,
               "dnc": 0.05, "wrong_number": 0.05}


@dataclass
class AgentSpec:
    login: str
    host: str
    port: int


@dataclass
class AgentStats:
    offered: int = 0
    answered: int = 0
    rejected_busy: int = 0
    dtmf_sent: list[str] = field(default_factory=list)
    hung_up_by_agent: int = 0
    hung_up_by_peer: int = 0
    dtmf_received: list[str] = field(default_factory=list)


def parse_agent(text: str) -> AgentSpec:
    try:
        login, addr = text.split("=", 1)
        host, port = addr.rsplit(":", 1)
        return AgentSpec(login, host, int(port))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOGIN=HOST:PORT, got {text!r}") from None


def parse_mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        mix[k.strip()] = float(v)
    return mix


def run(agents: list[AgentSpec], *, talk_mean: float, talk_cv: float, mix: dict[str, float], seed: int,
        duration: float, stats_path: str | None, rtp_base: int, keys: str = "", linger: float = 0.0
        ) -> dict[str, Any]:
    import pjsua2 as pj

    rng = random.Random(seed)
    stats = {a.login: AgentStats() for a in agents}
    live: dict[int, dict[str, Any]] = {}  # call id -> {"call", "agent", "hangup_at", "dtmf_at", "digits"}

    ep = pj.Endpoint()
    ep.libCreate()
    epc = pj.EpConfig()
    epc.uaConfig.threadCnt = 0
    epc.uaConfig.mainThreadOnly = True
    epc.uaConfig.userAgent = "tsunagu-agentsim"
    epc.logConfig.level = 0
    epc.logConfig.consoleLevel = 0
    epc.medConfig.clockRate = 8000
    epc.medConfig.sndClockRate = 8000
    epc.medConfig.noVad = True  # keep RTP flowing during silence so the bridge is observable
    ep.libInit(epc)

    def lognormal(mean: float, cv: float) -> float:
        sigma = math.sqrt(math.log(1 + cv * cv))
        return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    class AgentCall(pj.Call):  # type: ignore[misc]
        def __init__(self, acc: Any, call_id: int, login: str) -> None:
            super().__init__(acc, call_id)
            self.login = login

        def onCallState(self, prm: Any) -> None:
            ci = self.getInfo()
            if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                entry = live.pop(ci.id, None)
                if entry is not None and not entry.get("ours"):
                    stats[self.login].hung_up_by_peer += 1
                entry = None

        def onCallMediaState(self, prm: Any) -> None:
            # A stream that is not connected to the bridge sends no RTP, and RFC 2833 digits ride on that
            # flow: connect the (silent) null microphone and speaker like a headset would be.
            ci = self.getInfo()
            for i, mi in enumerate(ci.media):
                if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                    am = self.getAudioMedia(i)
                    mgr = ep.audDevManager()
                    mgr.getCaptureDevMedia().startTransmit(am)
                    am.startTransmit(mgr.getPlaybackDevMedia())

        def onDtmfDigit(self, prm: Any) -> None:
            stats[self.login].dtmf_received.append(prm.digit)

    class AgentAccount(pj.Account):  # type: ignore[misc]
        def __init__(self, login: str) -> None:
            super().__init__()
            self.login = login

        def onIncomingCall(self, prm: Any) -> None:
            st = stats[self.login]
            st.offered += 1
            call = AgentCall(self, prm.callId, self.login)
            op = pj.CallOpParam()
            busy = any(e["agent"] == self.login for e in live.values())
            if busy:
                st.rejected_busy += 1
                op.statusCode = 486
                # kept until its DISCONNECTED: a Call dropped early hangs up whatever reuses its id
                live[prm.callId] = {"call": call, "agent": "", "ours": True, "digits": "",
                                    "dtmf_at": math.inf, "hangup_at": math.inf}
                call.hangup(op)
                return
            op.statusCode = 200
            call.answer(op)
            st.answered += 1
            talk = max(1.0, lognormal(talk_mean, talk_cv))
            now = time.monotonic()
            outcome = rng.choices(list(mix), weights=list(mix.values()))[0]
            digits = keys or encode_disposition(outcome, rng)
            # RFC 2833 digits go out on the media clock (~0.25 s each): hang up only once they have surely left
            live[prm.callId] = {"call": call, "agent": self.login, "dtmf_at": now + talk,
                                "hangup_at": now + talk + 1.5 + 0.4 * len(digits) + linger, "digits": digits}

    accounts = []
    for i, a in enumerate(agents):
        tc = pj.TransportConfig()
        tc.port = a.port
        tc.boundAddress = a.host
        tc.publicAddress = a.host
        tid = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{a.login}@{a.host}:{a.port}"
        acfg.sipConfig.transportId = tid
        acfg.mediaConfig.transportConfig.port = rtp_base + 20 * i
        acfg.mediaConfig.transportConfig.portRange = 16
        acfg.mediaConfig.transportConfig.boundAddress = a.host
        acfg.mediaConfig.transportConfig.publicAddress = a.host
        acc = AgentAccount(a.login)
        acc.create(acfg)
        accounts.append(acc)
    ep.libStart()
    ep.audDevManager().setNullDev()

    e: dict[str, Any] | None = None
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__("now", True))
    print(json.dumps({"ready": [a.login for a in agents]}), flush=True)
    deadline = time.monotonic() + duration
    try:
        while not stop["now"] and time.monotonic() < deadline:
            ep.libHandleEvents(20)
            now = time.monotonic()
            for cid, e in list(live.items()):
                if e["digits"] and now >= e["dtmf_at"]:
                    try:
                        e["call"].dialDtmf(e["digits"])
                        stats[e["agent"]].dtmf_sent.append(e["digits"])
                    except pj.Error:
                        pass
                    e["digits"] = ""
                if now >= e["hangup_at"] and not e.get("ours"):
                    e["ours"] = True
                    stats[e["agent"]].hung_up_by_agent += 1
                    try:
                        e["call"].hangup(pj.CallOpParam())
                    except pj.Error:
                        live.pop(cid, None)
            e = None  # no Call may outlive libDestroy through a loop variable
    finally:
        ep.hangupAllCalls()
        end = time.monotonic() + 2
        while live and time.monotonic() < end:
            ep.libHandleEvents(20)
        live.clear()
        accounts.clear()
        gc.collect()
        ep.libDestroy()
    result = {k: vars(v) for k, v in stats.items()}
    if stats_path:
        Path(stats_path).write_text(json.dumps(result), encoding="utf-8")
    return result


def start_agents(specs: list[AgentSpec], *, talk_mean: float = 20.0, talk_cv: float = 0.6,
                 mix: dict[str, float] | None = None, seed: int = 1, duration: float = 600.0,
                 stats_dir: str | None = None, per_process: int = 4, rtp_base: int = 46000,
                 ready_timeout: float = 15.0, keys: str = "", linger: float = 0.0) -> list[subprocess.Popen[str]]:
    """Start simulated agents in as many processes as the per-process call limit needs; wait until ready."""
    procs: list[subprocess.Popen[str]] = []
    mix_text = ",".join(f"{k}={v}" for k, v in (mix or DEFAULT_MIX).items())
    for n, i in enumerate(range(0, len(specs), per_process)):
        group = specs[i : i + per_process]
        cmd = [sys.executable, "-m", "dialer.agentsim", "--talk-mean", str(talk_mean), "--talk-cv", str(talk_cv),
               "--mix", mix_text, "--seed", str(seed + n), "--for", str(duration), "--rtp-base",
               str(rtp_base + 100 * n)]
        for a in group:
            cmd += ["--agent", f"{a.login}={a.host}:{a.port}"]
        if stats_dir:
            cmd += ["--stats", str(Path(stats_dir) / f"agents-{n}.json")]
        if keys:
            cmd += ["--keys", keys]
        if linger:
            cmd += ["--linger", str(linger)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    for p in procs:
        line = ""
        end = time.monotonic() + ready_timeout
        while time.monotonic() < end and p.poll() is None:
            line = p.stdout.readline() if p.stdout else ""
            if line.startswith("{"):
                break
        if not line.startswith("{"):
            stop_agents(procs)
            raise RuntimeError("simulated agents did not start (port in use?)")
    return procs


def stop_agents(procs: list[subprocess.Popen[str]], timeout: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def read_stats(stats_dir: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(Path(stats_dir).glob("agents-*.json")):
        out.update(json.loads(f.read_text(encoding="utf-8")))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dialer.agentsim", description=__doc__.splitlines()[0])
    ap.add_argument("--agent", action="append", type=parse_agent, required=True, help="LOGIN=HOST:PORT")
    ap.add_argument("--talk-mean", type=float, default=20.0)
    ap.add_argument("--talk-cv", type=float, default=0.6)
    ap.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX, help="outcome=weight,... for dispositions")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--for", dest="duration", type=float, default=600.0, help="seconds before exiting")
    ap.add_argument("--stats", help="write per-agent counts as JSON here on exit")
    ap.add_argument("--rtp-base", type=int, default=46000)
    ap.add_argument("--keys", default="", help="key exactly these digits on every call (e.g. *4*2#) instead of --mix")
    ap.add_argument("--linger", type=float, default=0.0, help="stay this many seconds longer after keying "
                                                                "(to hear the dialer's answer tones)")
    a = ap.parse_args(argv)
    if len(a.agent) > 4:
        ap.error("at most 4 agents per process (the wheel's call limit); use start_agents for more")
    run(a.agent, talk_mean=a.talk_mean, talk_cv=a.talk_cv, mix=a.mix, seed=a.seed, duration=a.duration,
        stats_path=a.stats, rtp_base=a.rtp_base, keys=a.keys, linger=a.linger)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
