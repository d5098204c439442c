"""The supervisor's use cases: commands to a running campaign, with who sent them.

A command is a row the campaign's runner (or every node's) applies; writing it here, behind the permission
check, is what makes "every command a user sends is recorded with who sent it" true for the monitor, the CLI
and the browser alike: `requested_by` carries the user's login and the audit trail the decision.
"""

from __future__ import annotations

from enum import StrEnum

from dialer.errors import UserError
from dialer.service.auth import Principal, record, require
from dialer.service.roles import Permission
from dialer.store import Engine
from dialer.store.dashboard import add_command


class FloorCommand(StrEnum):
    """What a supervisor may ask of a running campaign (the runner's command names)."""

    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"  # drain: no new dials, conversations end by themselves
    STOP_NOW = "stop_now"  # hard stop (a second request, or an explicit --now)
    MODE = "mode"
    TARGET = "target"


def send_command(engine: Engine, who: Principal, campaign: str, command: str, argument: str = "",
                 *, origin: str = "monitor", requested_by: str | None = None) -> int:
    """Queue COMMAND for CAMPAIGN on behalf of WHO; refused (and audited) for agents. REQUESTED_BY names the
    seat when the caller knows it better (the local admin's terminal: user@host)."""
    require(engine, who, Permission.CAMPAIGN_COMMAND, target=campaign)
    try:
        FloorCommand(command)
    except ValueError:
        raise UserError(f"unknown command {command!r}: {', '.join(c.value for c in FloorCommand)}") from None
    by = requested_by if requested_by and who.local else f"{origin}:{who.login}"
    row = add_command(engine, campaign, command, argument, by)
    record(engine, who, Permission.CAMPAIGN_COMMAND, campaign, f"{command} {argument}".strip())
    return row


def console_signatures(engine: Engine) -> dict[str, tuple[object, ...]]:
    """(server side, no user's data leaves it) Per agent login, what its console shows from the store's agent row
    and preview reservation: the browser's push loop re-renders a live page only when this changes, so fifty
    open consoles cost one read per interval, not fifty renderings."""
    from dialer.store.agents import console_signatures as rows

    return rows(engine)
