"""Just enough SIP, without pjsua, to end a dialog whose worker died and to ask a peer if it is there.

Why outside pjsua: after `kill -9` of a worker its pjsua endpoint is gone with it, yet the carrier and the
agent still hold the call (dead air). The supervisor never loads pjsua2 (one process per endpoint), so it
sends the BYE itself from a plain UDP socket, with the dialog the worker reported when the call was
confirmed, and answers a digest challenge with the trunk's credentials (RFC 3261 12.2.1.1, 17.1.2, 22;
RFC 2617 / 7616 MD5). The same transaction sends OPTIONS to check that an agent's phone is reachable.
UDP only: a TCP/TLS dialog is left to the carrier's session timer.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass

_COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via", "l": "content-length",
            "c": "content-type", "k": "supported"}


@dataclass
class SipMessage:
    """A parsed SIP message head: start line and headers (lower-case names, in order, repeats kept)."""

    start: str
    headers: list[tuple[str, str]]

    @property
    def status(self) -> int:
        parts = self.start.split()
        return int(parts[1]) if self.start.startswith("SIP/2.0") and len(parts) > 1 and parts[1].isdigit() else 0

    def get(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        """Every value of a header, comma-separated values split (Record-Route: <a>, <b>)."""
        name = name.lower()
        out: list[str] = []
        for k, v in self.headers:
            if k == name:
                out += [p.strip() for p in re.split(r",(?=\s*<)", v) if p.strip()]
        return out


def parse(text: str) -> SipMessage:
    head = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded continuation line
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        headers.append((_COMPACT.get(key, key), value.strip()))
    return SipMessage(lines[0].strip() if lines else "", headers)


def uri_of(value: str) -> str:
    """The URI inside a name-addr (`"x" <sip:a@b>;tag=1` -> `sip:a@b`) or an addr-spec (`sip:a@b;tag=1`)."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";", 1)[0].strip()


def cseq_number(value: str | None) -> int:
    m = re.match(r"\s*(\d+)", value or "")
    return int(m.group(1)) if m else 0


def host_port(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """Where a SIP URI points (no DNS SRV: carriers' trunks and agents here are addressed by IP:port)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    rest = rest.split("@", 1)[-1].split(";", 1)[0].split("?", 1)[0]
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.partition(":")
    return host, int(port) if port.isdigit() else default_port


def retry_after_s(msg: SipMessage) -> float | None:
    v = msg.get("retry-after")
    m = re.match(r"\s*(\d+)", v or "")
    return float(m.group(1)) if m else None


# ---------------------------------------------------------------------------------------------- digest
def _h(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - RFC 2617 digest is MD5 by definition


def _params(challenge: str) -> dict[str, str]:
    body = challenge.split(None, 1)[1] if " " in challenge.strip() else ""
    return {k.lower(): (v1 if v1 else v2) for k, v1, v2 in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', body)}


def digest_authorization(challenge: str, method: str, uri: str, username: str, password: str) -> str:
    """The Authorization value answering a Digest challenge (MD5, qop=auth when offered)."""
    p = _params(challenge)
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    ha1 = _h(f"{username}:{realm}:{password}")
    ha2 = _h(f"{method}:{uri}")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', "algorithm=MD5"]
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        resp = _h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += [f'response="{resp}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{_h(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Request:
    """An out-of-process request: where it goes and what it says (Route / Request-URI already chosen)."""

    method: str
    request_uri: str
    from_value: str  # with our tag
    to_value: str  # with the peer's tag in a dialog
    call_id: str
    cseq: int
    route: tuple[str, ...] = ()


def _build(req: Request, local: tuple[str, int], branch: str, cseq: int, auth: tuple[str, str] | None) -> bytes:
    lines = [f"{req.method} {req.request_uri} SIP/2.0",
             f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{branch};rport",
             "Max-Forwards: 70", f"From: {req.from_value}", f"To: {req.to_value}", f"Call-ID: {req.call_id}",
             f"CSeq: {cseq} {req.method}"]
    lines += [f"Route: {r}" for r in req.route]
    if auth is not None:
        lines.append(f"{auth[0]}: {auth[1]}")
    lines += ["User-Agent: tsunagu", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


@dataclass
class _Job:
    req: Request
    dest: tuple[str, int]
    credentials: tuple[str, str] | None
    cseq: int = 0
    auth: tuple[str, str] | None = None
    branch: str = ""
    data: bytes = b""
    next_tx: float = 0.0
    interval: float = 0.5
    status: int | None = None


def transact_all(jobs: list[tuple[Request, tuple[str, int], tuple[str, str] | None]], *, bind: str = "127.0.0.1",
                 port: int = 0, timeout_s: float = 4.0) -> list[int]:
    """Send non-INVITE requests over one UDP socket (retransmitted at 0.5/1/2 s, RFC 3261 17.1.2) and return
    each final status (0 = no answer). A 401/407 is answered once with that job's (username, password).

    `port`: send from this local port when it is free, e.g. the dead worker's own SIP port: some far ends
    (SIPp among them) answer a dialog's requests at the address they know for it, not at the Via."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        bind_end = time.monotonic() + 0.5
        while True:
            try:
                sock.bind((bind, port))
                break
            except OSError:
                if time.monotonic() >= bind_end:  # still taken: any port will do for a Via-honouring peer
                    sock.bind((bind, 0))
                    break
                time.sleep(0.02)
        local = sock.getsockname()
        work = [_Job(r, d, c, cseq=r.cseq) for r, d, c in jobs]

        def arm(j: _Job) -> None:
            j.branch = os.urandom(8).hex()
            j.data = _build(j.req, local, j.branch, j.cseq, j.auth)
            j.next_tx, j.interval = 0.0, 0.5

        for j in work:
            arm(j)
        end = time.monotonic() + timeout_s
        while any(j.status is None for j in work) and time.monotonic() < end:
            now = time.monotonic()
            for j in work:
                if j.status is None and now >= j.next_tx:
                    sock.sendto(j.data, j.dest)
                    j.next_tx, j.interval = now + j.interval, min(j.interval * 2, 4.0)
            due = min([j.next_tx for j in work if j.status is None] + [end])
            sock.settimeout(max(0.01, due - time.monotonic()))
            try:
                raw, _ = sock.recvfrom(65535)
            except OSError:  # timeout, or ICMP port unreachable (Linux reports it on the next recv)
                continue
            msg = parse(raw.decode("utf-8", "replace"))
            via = msg.get("via") or ""
            for j in work:
                if j.status is not None or msg.status < 200 or f"z9hG4bK{j.branch}" not in via:
                    continue
                if msg.status in (401, 407) and j.credentials is not None and j.auth is None:
                    hdr = "www-authenticate" if msg.status == 401 else "proxy-authenticate"
                    name = "Authorization" if msg.status == 401 else "Proxy-Authorization"
                    j.auth = (name, digest_authorization(msg.get(hdr) or "", j.req.method, j.req.request_uri,
                                                         *j.credentials))
                    j.cseq += 1
                    arm(j)
                else:
                    j.status = msg.status
        return [j.status or 0 for j in work]
    finally:
        sock.close()


def transact(req: Request, dest: tuple[str, int], *, bind: str = "127.0.0.1",
             credentials: tuple[str, str] | None = None, timeout_s: float = 4.0) -> int:
    """One request; see `transact_all`."""
    return transact_all([(req, dest, credentials)], bind=bind, timeout_s=timeout_s)[0]


def options(uri: str, *, bind: str, outbound_proxy: str = "", credentials: tuple[str, str] | None = None,
            timeout_s: float = 2.0) -> int:
    """OPTIONS to a URI (through an outbound proxy if given): the final status, 0 = nobody answered."""
    tag = secrets.token_hex(4)
    req = Request("OPTIONS", uri, f"<sip:tsunagu@{bind}>;tag={tag}", f"<{uri}>", f"{secrets.token_hex(12)}@tsunagu",
                  1, route=(f"<{outbound_proxy};lr>",) if outbound_proxy else ())
    dest = host_port(outbound_proxy or uri)
    return transact(req, dest, bind=bind, credentials=credentials, timeout_s=timeout_s)


# ---------------------------------------------------------------------------------------------- dead worker: ringing
@dataclass(frozen=True)
class Early:
    """An INVITE still ringing (a provisional answer seen), as sent: enough to CANCEL it from outside the worker
    (RFC 3261 9.1: the CANCEL copies the INVITE's Request-URI, top Via with its branch, Call-ID, From, To, CSeq
    number and Route) and to answer whatever final response it still gets."""

    attempt_id: int
    request_uri: str
    via: str  # the INVITE's top Via, branch included
    from_value: str
    to_value: str  # without the far end's tag (the INVITE had none)
    call_id: str
    cseq: int
    dest: tuple[str, int]
    route: tuple[str, ...] = ()


@dataclass
class _Ringing:
    e: Early
    cancel: bytes = b""
    cancel_status: int | None = None
    final: int | None = None  # the INVITE's final status (487 = cancelled, 2xx = answered late)
    bye_status: int | None = None
    next_tx: float = 0.0
    interval: float = 0.5


def _head(lines: list[str]) -> bytes:
    return "\r\n".join(lines + ["User-Agent: tsunagu", "Content-Length: 0", "", ""]).encode()


def cancel_all(ringing: list[Early], *, bind: str = "127.0.0.1", port: int = 0,
               timeout_s: float = 10.0) -> dict[int, tuple[int, int, int]]:
    """CANCEL every ringing INVITE of a dead worker from its own SIP port, ACK each final response, and end a
    2xx that crossed the CANCEL (the callee picked up) with ACK + BYE, so nobody is left in dead air.

    Returns attempt_id -> (CANCEL status, INVITE final status, BYE status); 0 = no answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        bind_end = time.monotonic() + 0.5
        while True:
            try:
                sock.bind((bind, port))
                break
            except OSError:
                if time.monotonic() >= bind_end:
                    sock.bind((bind, 0))
                    break
                time.sleep(0.02)
        local = sock.getsockname()
        work: list[_Ringing] = []
        for e in ringing:
            lines = [f"CANCEL {e.request_uri} SIP/2.0", f"Via: {e.via}", "Max-Forwards: 70", f"From: {e.from_value}",
                     f"To: {e.to_value}", f"Call-ID: {e.call_id}", f"CSeq: {e.cseq} CANCEL"]
            lines += [f"Route: {r}" for r in e.route]
            work.append(_Ringing(e, cancel=_head(lines)))
        byes: dict[str, _Ringing] = {}  # BYE branch -> call
        bye_data: dict[str, tuple[bytes, tuple[str, int]]] = {}
        end = time.monotonic() + timeout_s

        def pending() -> bool:
            return any(r.final is None or (r.final >= 200 and r.final < 300 and r.bye_status is None) for r in work)

        while pending() and time.monotonic() < end:
            now = time.monotonic()
            for r in work:
                if r.cancel_status is None and r.final is None and now >= r.next_tx:
                    sock.sendto(r.cancel, r.e.dest)
                    r.next_tx, r.interval = now + r.interval, min(r.interval * 2, 4.0)
            for br, (data, dest) in bye_data.items():
                if byes[br].bye_status is None:
                    sock.sendto(data, dest)
            sock.settimeout(0.25)
            try:
                raw, _ = sock.recvfrom(65535)
            except OSError:
                continue
            msg = parse(raw.decode("utf-8", "replace"))
            cseq = msg.get("cseq") or ""
            call_id = msg.get("call-id") or ""
            via = msg.get("via") or ""
            for br, r in byes.items():
                if f"z9hG4bK{br}" in via and msg.status >= 200:
                    r.bye_status = msg.status
            for r in work:
                if call_id != r.e.call_id or msg.status < 200:
                    continue
                if cseq.upper().endswith("CANCEL"):
                    r.cancel_status = msg.status
                elif cseq.upper().endswith("INVITE"):
                    r.final = msg.status
                    to = msg.get("to") or r.e.to_value
                    if msg.status >= 300:  # ACK for a non-2xx: same branch, hop by hop
                        lines = [f"ACK {r.e.request_uri} SIP/2.0", f"Via: {r.e.via}", "Max-Forwards: 70",
                                 f"From: {r.e.from_value}", f"To: {to}", f"Call-ID: {r.e.call_id}",
                                 f"CSeq: {r.e.cseq} ACK"] + [f"Route: {x}" for x in r.e.route]
                        sock.sendto(_head(lines), r.e.dest)
                    else:  # answered as the CANCEL crossed: ACK it (a new transaction), then BYE
                        target = uri_of(msg.get("contact") or "") or r.e.request_uri
                        rr = tuple(reversed(msg.all("record-route"))) or r.e.route
                        dest = host_port(uri_of(rr[0])) if rr else host_port(target)
                        for method, n in (("ACK", r.e.cseq), ("BYE", r.e.cseq + 1)):
                            br = os.urandom(8).hex()
                            lines = [f"{method} {target} SIP/2.0",
                                     f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{br};rport",
                                     "Max-Forwards: 70", f"From: {r.e.from_value}", f"To: {to}",
                                     f"Call-ID: {r.e.call_id}", f"CSeq: {n} {method}"] + [f"Route: {x}" for x in rr]
                            data = _head(lines)
                            sock.sendto(data, dest)
                            if method == "BYE" and r.bye_status is None and not any(b is r for b in byes.values()):
                                byes[br] = r
                                bye_data[br] = (data, dest)
        return {r.e.attempt_id: (r.cancel_status or 0, r.final or 0, r.bye_status or 0) for r in work}
    finally:
        sock.close()
