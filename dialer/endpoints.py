"""Where tsunagu may send customer data and tokens: https only, optionally only to listed hosts.

Why: the CRM webhook carries outcomes (names, refusal reasons, VOC text) with a bearer token, and the SMS
gateway carries phone numbers and its token. Over plain http both leak to anyone on the path. Plain http is
allowed only to a loopback host and only when the config says so explicitly (`allow_insecure_loopback = true`,
for local test gateways); an allow-list (`allowed_hosts`) pins the hosts a config may name at all, so a typo
or a tampered config cannot send the data elsewhere. The same check runs when the config is read and again
right before each request, so a token is never put on the wire over http.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class InsecureEndpoint(ValueError):
    """The URL may not receive customer data or a token."""


def check_endpoint(url: str, *, allow_insecure_loopback: bool = False, allowed_hosts: list[str] | None = None,
                   what: str = "endpoint") -> None:
    """Raise `InsecureEndpoint` with the fix unless `url` is an https URL (or loopback http, when allowed)."""
    if not url:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise InsecureEndpoint(f"{what} {url!r} has no host")
    if allowed_hosts and host not in {h.lower() for h in allowed_hosts}:
        raise InsecureEndpoint(f"{what} host {host!r} is not in allowed_hosts ({', '.join(allowed_hosts)})")
    if parts.scheme == "https":
        return
    if parts.scheme != "http":
        raise InsecureEndpoint(f"{what} {url!r}: only https:// URLs are allowed")
    if host in LOOPBACK and allow_insecure_loopback:
        return
    if host in LOOPBACK:
        raise InsecureEndpoint(f"{what} {url!r} is plain http: use https://, or for a local test gateway set "
                               "allow_insecure_loopback = true in the same section")
    raise InsecureEndpoint(f"{what} {url!r} is plain http: customer data and tokens go over https:// only")


def is_insecure(url: str) -> bool:
    """True for a plain-http URL (what `dialer doctor` lists even when allowed)."""
    return urlsplit(url).scheme == "http"
