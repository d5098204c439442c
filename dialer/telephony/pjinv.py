"""The few pjsip INVITE-session calls pjsua2 does not wrap, reached through ctypes (issue 24).

Why: `Call.hangup()` (pjsua_call_hangup) marks the call as hanging up and reports it DISCONNECTED at once. From
then on pjsua hides everything the far end says: a 200 OK that crosses our ring-timeout CANCEL is ACKed and
ended with BYE in 1 ms (an answered customer hung up), and the final response to our BYE (a 481) never reaches
the application. Sending the CANCEL or the BYE through the INVITE session itself (pjsip_inv_end_session, the
call pjsua makes underneath) keeps pjsua's view open: the 487 or the 200 comes back as a state change, the
BYE's final response as a transaction state. The session is found from the dialog's identifiers (Call-ID,
From tag, To tag) as the far end's messages carry them. Every function returns False when the session cannot
be found or pjsip refuses: callers then fall back to `Call.hangup()`, the old behaviour.

The functions are exported by the linked pjsua (the wheel's and the site build's `_pjsua2` extension alike)
and run on the worker's one pjsip thread, as every other pjsua2 call does.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

from dialer.telephony import rawsip


class _PjStr(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_long)]


_LIB: dict[str, Any] = {}
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.I)


def _lib(pj: Any) -> Any:
    lib = _LIB.get("lib")
    if lib is None:
        lib = ctypes.CDLL(pj._pjsua2.__file__)
        vp, pvp, ps = ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(_PjStr)
        for name, res, args in (
            ("pjsip_ua_find_dialog", vp, [ps, ps, ps, ctypes.c_int]),
            ("pjsip_dlg_get_inv_session", vp, [vp]),
            ("pjsip_dlg_dec_lock", None, [vp]),
            ("pjsip_inv_end_session", ctypes.c_int, [vp, ctypes.c_int, ps, pvp]),
            ("pjsip_inv_send_msg", ctypes.c_int, [vp, vp]),
            ("pjsip_inv_create_ack", ctypes.c_int, [vp, ctypes.c_int, pvp]),
            ("pjsip_dlg_send_request", ctypes.c_int, [vp, vp, ctypes.c_int, vp]),
        ):
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        _LIB["lib"] = lib
    return lib


def dialog_ids(msg: str) -> tuple[str, str, str] | None:
    """(Call-ID, local tag, remote tag) of our dialog from a response the far end sent to our INVITE."""
    m = rawsip.parse(msg)
    call_id = m.get("call-id") or ""
    local = _TAG.search(m.get("from") or "")
    remote = _TAG.search(m.get("to") or "")
    if not call_id or local is None:
        return None
    return call_id, local.group(1), remote.group(1) if remote else ""


def _pjstr(text: str) -> tuple[_PjStr, bytes]:
    raw = text.encode()
    return _PjStr(raw, len(raw)), raw


def _with_inv(pj: Any, ids: tuple[str, str, str], act: Any) -> bool:
    lib = _lib(pj)
    (cid, _a), (lt, _b), (rt, _c) = _pjstr(ids[0]), _pjstr(ids[1]), _pjstr(ids[2])
    dlg = lib.pjsip_ua_find_dialog(ctypes.byref(cid), ctypes.byref(lt), ctypes.byref(rt), 1)
    if not dlg:
        return False
    try:
        inv = lib.pjsip_dlg_get_inv_session(dlg)
        return bool(inv) and bool(act(lib, dlg, inv))
    finally:
        lib.pjsip_dlg_dec_lock(dlg)


def _end_session(lib: Any, inv: int, code: int) -> bool:
    tdata = ctypes.c_void_p()
    if lib.pjsip_inv_end_session(inv, code, None, ctypes.byref(tdata)) != 0 or not tdata.value:
        return False
    return bool(lib.pjsip_inv_send_msg(inv, tdata) == 0)


def cancel(pj: Any, ids: tuple[str, str, str]) -> bool:
    """CANCEL the ringing INVITE, pjsua left unaware: the far end's 487 or crossing 200 is reported as usual
    (pjsip itself gives the INVITE up 64*T1 after the CANCEL if neither comes)."""
    return _with_inv(pj, ids, lambda lib, dlg, inv: _end_session(lib, inv, 487))


def bye(pj: Any, ids: tuple[str, str, str]) -> bool:
    """BYE on a confirmed session, pjsua left unaware: the BYE's final response reaches onCallTsxState, and the
    call is DISCONNECTED when it arrives (or when the BYE transaction times out)."""
    return _with_inv(pj, ids, lambda lib, dlg, inv: _end_session(lib, inv, 200))


def ack(pj: Any, ids: tuple[str, str, str], cseq: int) -> bool:
    """ACK a 2xx now (before pjsua's own BYE for an answer it cannot use: RFC 3261 wants the ACK first)."""
    def act(lib: Any, dlg: int, inv: int) -> bool:
        tdata = ctypes.c_void_p()
        if lib.pjsip_inv_create_ack(inv, cseq, ctypes.byref(tdata)) != 0 or not tdata.value:
            return False
        return bool(lib.pjsip_dlg_send_request(dlg, tdata, -1, None) == 0)

    return _with_inv(pj, ids, act)


_STATIC_PT = {0: "pcmu/8000", 3: "gsm/8000", 4: "g723/8000", 8: "pcma/8000", 9: "g722/8000", 18: "g729/8000"}


def sdp_has_codec(msg: str, offered: list[str]) -> bool | None:
    """Whether the SDP in this message answers with an audio codec we offered; None when it carries no SDP.

    `offered` are the trunks' codec names ("PCMU/8000"); a name without a rate matches any rate."""
    body = msg.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in msg else msg.split("\n\n", 1)[-1] if "\n\n" in msg else ""
    m_line = re.search(r"(?m)^m=audio\s+(\d+)\s+\S+\s+([\d ]+)", body)
    if "v=0" not in body:
        return None
    if m_line is None or m_line.group(1) == "0":
        return False
    maps = {int(pt): name.lower() for pt, name in re.findall(r"(?m)^a=rtpmap:(\d+)\s+([^\s/]+/\d+)", body)}
    want = [w.lower() for w in offered]
    for pt in (int(x) for x in m_line.group(2).split()):
        name = maps.get(pt) or _STATIC_PT.get(pt, "")
        if name and any(name == w or name.split("/")[0] == w for w in want):
            return True
    return False
