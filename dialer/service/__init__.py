"""The service layer: the use cases every screen calls (terminal console, keypad, CLI, monitor, web), each with
its permission check, over the domain rules and the store.

Why a layer: the screens of a twenty-seat centre must not each decide who may see or do what. A use case takes
the caller's `Principal` (who is asking, with which role) first and refuses before it touches the store, so a
rule about access lives here once, not in every view.

| module | what |
|---|---|
| `roles` | roles, permissions and the table of which role may do what |
| `auth` | passwords (argon2), log-in with lock-out, sessions with expiry, the local-admin seat, audit |
"""

from dialer.store import Engine  # the one type a screen needs to hold a store handle (no ORM beyond it)

# what a screen needs to tell "the store is busy or down" (say so, change nothing) from a defect
from dialer.store.journal import DB_ERRORS as STORE_ERRORS
from dialer.store.journal import outage as store_outage

__all__ = ["STORE_ERRORS", "Engine", "store_outage"]
