"""lists: turn CRM exports into ranked, compliant call lists (dormant, pre_churn, upsell, cross_sell).

Pure of SIP and of the dialer: the store is touched only by `dialer/commands/lists.py`, which passes the
dialer's own suppressions in and writes the built entries out.

The public names load on first use (PEP 562): the dialer imports `lists.phones` on every command that opens
the store, and must not pay for DuckDB and the whole builder each time (issue 28: CLI start-up).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lists.build import BlockRow, BuildResult, Suppressions, build_lists
    from lists.errors import ListsError
    from lists.mapping import Mapping, load_mapping
    from lists.phones import PhoneResult, parse_phone_cell
    from lists.settings import ListSettings

_WHERE = {
    "BlockRow": "lists.build", "BuildResult": "lists.build", "Suppressions": "lists.build",
    "build_lists": "lists.build", "ListsError": "lists.errors", "Mapping": "lists.mapping",
    "load_mapping": "lists.mapping", "PhoneResult": "lists.phones", "parse_phone_cell": "lists.phones",
    "ListSettings": "lists.settings",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'lists' has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value
    return value


__all__ = [
    "BlockRow",
    "BuildResult",
    "ListSettings",
    "ListsError",
    "Mapping",
    "PhoneResult",
    "Suppressions",
    "build_lists",
    "load_mapping",
    "parse_phone_cell",
]
