"""Roles and permissions: one table says which role may do what, and whose data an agent may touch.

Why a table rather than checks scattered in views: a browser page, the terminal console and the keypad path
all ask the same question ("may this person do X to Y?"), and a centre's auditor wants one place to read the
answer. Agents act only on their own calls, previews and callbacks; supervisors see the floor and send
commands; admins manage users, config and lists.
"""

from __future__ import annotations

from enum import StrEnum

from dialer.errors import UserError


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Permission(StrEnum):
    # an agent's own seat
    AGENT_CONSOLE = "agent.console"  # open the console of one agent login (own only, unless supervisor+)
    AGENT_STATE = "agent.state"  # log in/out, ready, pause
    PREVIEW = "agent.preview"  # take/dial/skip the next preview card
    DISPOSITION = "agent.disposition"  # key a disposition
    CALLBACK = "agent.callback"  # book a callback
    # the floor
    MONITOR_READ = "floor.read"  # the campaign monitor, wallboard
    CAMPAIGN_COMMAND = "floor.command"  # pause/resume, mode, target, stop/drain
    REPORT_READ = "report.read"
    RECORDING_PLAY = "recording.play"
    # administration
    USER_ADMIN = "admin.users"
    CONFIG_ADMIN = "admin.config"
    LIST_ADMIN = "admin.lists"


_AGENT = frozenset({Permission.AGENT_CONSOLE, Permission.AGENT_STATE, Permission.PREVIEW,
                    Permission.DISPOSITION, Permission.CALLBACK})
_SUPERVISOR = _AGENT | {Permission.MONITOR_READ, Permission.CAMPAIGN_COMMAND, Permission.REPORT_READ,
                        Permission.RECORDING_PLAY}
_ADMIN = _SUPERVISOR | {Permission.USER_ADMIN, Permission.CONFIG_ADMIN, Permission.LIST_ADMIN}

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMIN: frozenset(_ADMIN),
}

# permissions whose target is one agent's data: an agent may use them only on their own agent login
OWN_DATA = frozenset({Permission.AGENT_CONSOLE, Permission.AGENT_STATE, Permission.PREVIEW,
                      Permission.DISPOSITION, Permission.CALLBACK})


class PermissionDenied(UserError):
    """Refused by the permission table; printed as one line (exit 2) and written to the audit trail."""


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise UserError(f"unknown role {text!r}: choose one of {', '.join(r.value for r in Role)}") from None
