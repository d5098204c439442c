"""The browser's locks: session cookie, CSRF, same-origin, log-in rate limit and response headers.

- The session cookie holds the service layer's session token (only its SHA-256 is stored); it is HttpOnly,
  SameSite=Strict, and Secure unless the app is told it is served over plain http on loopback.
- CSRF: every form carries a token derived from the session token (HMAC with a per-process key), checked on
  every POST together with the Origin header (same-origin only). The log-in form, before any session, uses a
  double-submit cookie.
- Failed log-ins are limited per client address in memory (on top of the store's per-user lock-out), so a
  password sprayer is slowed without locking every user out.
- Responses carry a strict Content-Security-Policy (scripts and styles from this origin only), no framing,
  no sniffing, no referrer to other sites, and no caching of pages that hold customer data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "tsunagu_session"
LOGIN_CSRF_COOKIE = "tsunagu_login_csrf"
_KEY = secrets.token_bytes(32)

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def csrf_for(session_token: str) -> str:
    return hmac.new(_KEY, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(csrf_for(session_token), given)


def same_origin(request: Request) -> bool:
    """A state-changing request must come from our own pages: Origin (or Referer) names this host."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin") or ""
    if origin and origin != "null":
        return origin.split("://", 1)[-1] == host
    referer = request.headers.get("referer") or ""
    if referer:
        return referer.split("://", 1)[-1].split("/", 1)[0] == host
    return False


class LoginLimiter:
    """At most `limit` failed log-ins per client address in `window_s` (sliding window, in memory); a
    successful log-in costs nothing, so a centre behind one NAT address is not locked out by its own staff."""

    def __init__(self, limit: int = 10, window_s: float = 300.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        q = self._seen.setdefault(client, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._recent(client, now)) < self.limit

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(client, now).append(now)


class SecurityHeaders:
    """ASGI middleware adding `HEADERS` to every HTTP response (SSE included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                for k, v in HEADERS.items():
                    if k.lower().encode() not in have:
                        headers.append((k.lower().encode(), v.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def set_session_cookie(resp: Response, token: str, *, secure: bool) -> None:
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


Handler = Callable[[Request], Awaitable[Response]]
