"""The store: schema (models) and how to open it (db)."""

from dialer.store.db import SCHEMA_VERSION, StoreError, get_engine, init_db, resolve_url, session_scope
from dialer.store.models import (
    Agent,
    Attempt,
    Block,
    CallListEntry,
    Campaign,
    CampaignEvent,
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
    "Agent",
    "Attempt",
    "Block",
    "CallListEntry",
    "Campaign",
    "CampaignEvent",
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
