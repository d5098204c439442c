"""Real SIP calls through pjsua2, scaled across worker processes (see README.md in this package).

`Telephony` is imported lazily so a worker process (which imports only `worker` and `events`) does not pay
for pydantic, phonenumbers and the rest of the supervisor's imports in every one of its copies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dialer.telephony.events import CallEvent, outcome_for_status

if TYPE_CHECKING:
    from dialer.telephony.supervisor import Telephony, TelephonyError

__all__ = ["CallEvent", "Telephony", "TelephonyError", "outcome_for_status"]


def __getattr__(name: str) -> Any:
    if name in ("Telephony", "TelephonyError"):
        from dialer.telephony import supervisor

        return getattr(supervisor, name)
    raise AttributeError(f"module 'dialer.telephony' has no attribute {name!r}")
