"""Manager commands (pause, resume, stop, stop_now, mode, target, listen, preview dial/skip) applied by the runner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dialer.control import expiry_reason
from dialer.domain import preview
from dialer.domain.vocabulary import CampaignState, Command, Mode
from dialer.runner.state import MODES
from dialer.store import campaigns as campaigns_store

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class Commands:
    """Why: commands arrive through the store from other processes (monitor, web, CLI); an expired or
    pre-run command is never applied, and each result is written back for whoever sent it."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def apply_commands(self) -> None:
        rows = campaigns_store.apply_commands(self.r.engine, self.r.policy.name, self.r.campaign_id, self.r._apply_command,
                                              lambda: (self.r.state, self.r.mode, self.r.pacer_target()))
        for cmd in rows:
            self.r._event("command", f"{cmd.command} {cmd.argument}: {cmd.result}".strip())

    def apply_command(self, command: str, arg: str, created_at: datetime, now: datetime) -> str:
        """A command not applied within `[ui] command_ttl`, or given before this run, is expired, never applied."""
        stale = expiry_reason(created_at, self.r.started_at, now, self.r.cfg.ui.command_ttl_s())
        if stale is None and command in (preview.DIAL, preview.SKIP):
            self.r.preview_orders.append((command, arg))  # applied once the command transaction is closed
            return "accepted"
        return stale or self.command(command, arg)

    def command(self, command: str, arg: str) -> str:
        if command == Command.LISTEN:
            return self.listen(arg)  # (issue 29) also while draining: the conversations go on
        if command == Command.STOP_NOW:
            return self.r.stopping.request_stop("stop_now command", now=True)
        if self.r.state == CampaignState.DRAINING:
            if command == Command.STOP:
                return self.r.stopping.request_stop("stop command")
            if command in (Command.PAUSE, Command.RESUME):
                return f"refused: the campaign is stopping (draining); {command} does not apply"
        if command == Command.PAUSE:
            self.r.state = "paused"
            return "paused: no new dials; calls in progress continue"
        if command == Command.RESUME:
            self.r.state = "running"
            return "running"
        if command == Command.STOP:
            return self.r.stopping.request_stop("stop command")
        if command == Command.MODE:
            if arg not in MODES:
                return f"refused: mode must be one of {', '.join(MODES)}"
            self.r.mode = arg
            self.r.pacer.set_mode(arg)
            if arg != Mode.PREVIEW.value:
                self.r.previews.release_all(datetime.now(UTC))
            return f"mode {arg}"
        if command == Command.TARGET:
            try:
                value = float(arg)
            except ValueError:
                return f"refused: {arg!r} is not a number"
            if not 0 < value <= self.r.policy.abandon_limit:
                return f"refused: target must be in (0, {self.r.policy.abandon_limit}]"
            self.r.pacer.set_target(value)
            return f"abandon target {value:.3f}"
        return f"refused: unknown command {command!r}"

    def listen(self, arg: str) -> str:
        """(issue 29) A supervisor's phone joins a live call on the worker that holds it."""
        from dialer.domain.listen import parse_listen
        from dialer.errors import UserError

        try:
            order = parse_listen(arg)
        except UserError as exc:
            return f"refused: {exc}"
        join = getattr(self.r.tel, "listen", None)
        if join is None or not join(order.attempt_id, order.mode.value, order.uri, order.by):
            return f"refused: call {order.attempt_id} is not in progress here"
        return f"{order.mode.value}: call {order.attempt_id} by {order.by}"
