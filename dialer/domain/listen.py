"""(issue 29) The argument of a `listen` command: which call, how, on whose phone, asked by whom.

One written form for the service that queues the command and the runner that applies it:
"MODE ATTEMPT_ID SIP_URI LOGIN" (a SIP URI has no spaces; the login has none either).
"""

from __future__ import annotations

from dataclasses import dataclass

from dialer.domain.vocabulary import ListenMode
from dialer.errors import UserError


@dataclass(frozen=True)
class ListenOrder:
    mode: ListenMode
    attempt_id: int
    uri: str
    by: str

    def argument(self) -> str:
        return f"{self.mode.value} {self.attempt_id} {self.uri} {self.by}"


def check_uri(uri: str) -> str:
    """A supervisor's phone: a sip: URI (the worker calls it from its local account), nothing else."""
    uri = uri.strip()
    if not uri.lower().startswith("sip:") or any(c.isspace() for c in uri) or len(uri) > 200 or "@" not in uri:
        raise UserError(f"not a SIP URI of a phone: {uri!r} (e.g. sip:sv01@192.0.2.10:5060)")
    return uri


def parse_listen(argument: str) -> ListenOrder:
    parts = argument.split()
    if len(parts) != 4:
        raise UserError(f"listen wants 'MODE ATTEMPT_ID SIP_URI LOGIN', got {argument!r}")
    mode, attempt, uri, by = parts
    try:
        m = ListenMode(mode)
    except ValueError:
        raise UserError(f"mode must be one of {', '.join(x.value for x in ListenMode)}") from None
    if not attempt.isdigit():
        raise UserError(f"not a call (attempt id): {attempt!r}")
    return ListenOrder(m, int(attempt), check_uri(uri), by)
