"""lists: turn CRM exports into ranked, compliant call lists (dormant, pre_churn, upsell, cross_sell).

Pure of SIP and of the dialer: the store is touched only by `dialer/commands/lists.py`, which passes the
dialer's own suppressions in and writes the built entries out.
"""

from lists.build import BlockRow, BuildResult, Suppressions, build_lists
from lists.errors import ListsError
from lists.mapping import Mapping, load_mapping
from lists.phones import PhoneResult, parse_phone_cell
from lists.settings import ListSettings

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
