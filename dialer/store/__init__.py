"""The store: all SQL lives here. Schema (models), how to open it (db), and one repository per aggregate.

| module | aggregate |
|---|---|
| `entries` | call-list entries: the hopper (selection, leasing, results, dispositions, callbacks, recovery) |
| `campaigns` | campaign rows, live status, manager commands, campaign events |
| `attempts` | one row per dial |
| `agents` | agents and their state history |
| `dispositions` | agents' verdicts (written with their outbox row) |
| `outbox` | outcomes waiting for the CRM |
| `screen_pop` | the read model the agent console shows on connect |
| `monitor` | the read model of the campaign monitor |
| `reports` | the rows reports recount from |
| `jobs` | the scheduler's job store |

Only what the shell needs is exported here (`Engine`/`Connection` to type a handle, opening the store, its
errors); repositories are imported as modules (`from dialer.store import attempts`). Table classes and
sessions are NOT exported: they stay inside dialer/store (tests/test_layout.py checks it).
"""

from sqlalchemy.engine import Connection, Engine

from dialer.store.db import SCHEMA_VERSION, StoreError, get_engine, init_db, resolve_url

__all__ = [
    "SCHEMA_VERSION",
    "Connection",
    "Engine",
    "StoreError",
    "get_engine",
    "init_db",
    "resolve_url",
]
