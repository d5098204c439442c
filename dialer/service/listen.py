"""(issue 29) A supervisor joins a live call on their own phone: listen, whisper or barge.

The join is a `listen` command row (the campaign's runner applies it: the worker that holds the call calls the
supervisor's phone and routes the bridge, dialer.telephony.listen), so it reaches every node the way the
monitor's commands do. Hearing a customer's conversation is the same right as playing its recording, and
speaking into it is a floor command: a supervisor (or admin) needs both; an agent is refused and the refusal
is in the audit trail. Every join is audited with who, when (the audit row's time), which call and how.
"""

from __future__ import annotations

from dialer.domain.listen import ListenOrder, check_uri
from dialer.domain.vocabulary import Command, ListenMode
from dialer.errors import UserError
from dialer.service.auth import Principal, record, require
from dialer.service.roles import Permission
from dialer.store import Engine
from dialer.store.dashboard import add_command
from dialer.store.listen import connected_call


def join_call(engine: Engine, who: Principal, attempt_id: int, mode: str, uri: str, *, origin: str = "web") -> int:
    """Queue the join of WHO's phone URI to call ATTEMPT_ID in MODE; returns the command's id. The campaign
    (whose runner holds the call) is the store's, never the caller's word."""
    call = connected_call(engine, attempt_id)
    target = f"{call.campaign if call else '?'}:call {attempt_id}"
    require(engine, who, Permission.RECORDING_PLAY, target=target)
    require(engine, who, Permission.CAMPAIGN_COMMAND, target=target)
    if call is None:
        raise UserError(f"call {attempt_id} is not in progress with an agent (nothing to join)")
    try:
        m = ListenMode(mode)
    except ValueError:
        raise UserError(f"mode must be one of {', '.join(x.value for x in ListenMode)}") from None
    order = ListenOrder(m, attempt_id, check_uri(uri), who.login)
    row = add_command(engine, call.campaign, Command.LISTEN.value, order.argument(), f"{origin}:{who.login}")
    record(engine, who, Permission.RECORDING_PLAY, target, f"{m.value} on {order.uri} (command {row})")
    return row
