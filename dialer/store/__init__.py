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

`Engine` is re-exported so the shell can type a handle without importing the ORM.
"""

from sqlalchemy.engine import Connection, Engine

from dialer.store.db import SCHEMA_VERSION, StoreError, get_engine, init_db, resolve_url, session_scope
from dialer.store.models import (
    Agent,
    Attempt,
    Block,
    CallListEntry,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    ControlCommand,
    Customer,
    Disposition,
    Meta,
    Order,
    OrderLine,
    Product,
    Subscription,
    utcnow,
)

__all__ = [
    "SCHEMA_VERSION",
    "Connection",
    "Engine",
    "Agent",
    "Attempt",
    "Block",
    "CallListEntry",
    "Campaign",
    "CampaignEvent",
    "CampaignStatus",
    "ControlCommand",
    "Customer",
    "Disposition",
    "Meta",
    "Order",
    "OrderLine",
    "Product",
    "StoreError",
    "Subscription",
    "get_engine",
    "init_db",
    "resolve_url",
    "session_scope",
    "utcnow",
]
