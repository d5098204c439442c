"""The shapes of the rows repositories hand out, as read-only Protocols: code outside dialer/store types the rows it
reads (reports, the monitor, the runner) without importing a table class, and cannot write through them.

The table classes in `models` satisfy them structurally (mypy checks it where a repository's result is passed on).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class AttemptRow(Protocol):
    """One dial (`attempts`)."""

    @property
    def id(self) -> int | None: ...

    @property
    def campaign_id(self) -> int | None: ...

    @property
    def entry_id(self) -> int | None: ...

    @property
    def customer_id(self) -> str: ...

    @property
    def segment(self) -> str: ...

    @property
    def phone_e164(self) -> str: ...

    @property
    def trunk(self) -> str: ...

    @property
    def worker(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def dialed_at(self) -> datetime: ...

    @property
    def ringing_at(self) -> datetime | None: ...

    @property
    def answered_at(self) -> datetime | None: ...

    @property
    def agent_connected_at(self) -> datetime | None: ...

    @property
    def ended_at(self) -> datetime | None: ...

    @property
    def sip_status(self) -> int | None: ...

    @property
    def outcome(self) -> str: ...

    @property
    def abandoned(self) -> bool: ...

    @property
    def machine(self) -> bool: ...

    @property
    def amd_verdict(self) -> str: ...

    @property
    def amd_decided_s(self) -> float | None: ...

    @property
    def amd_features(self) -> str: ...

    @property
    def agent_id(self) -> int | None: ...

    @property
    def hangup_by(self) -> str: ...

    @property
    def recording_path(self) -> str: ...

    @property
    def detail(self) -> str: ...

    @property
    def node_id(self) -> str: ...

    @property
    def node_epoch(self) -> int: ...


class StretchRow(Protocol):
    """One stretch of an agent's state (`agent_state_log`)."""

    @property
    def id(self) -> int | None: ...

    @property
    def agent_id(self) -> int: ...

    @property
    def state(self) -> str: ...

    @property
    def campaign_id(self) -> int | None: ...

    @property
    def started_at(self) -> datetime: ...

    @property
    def ended_at(self) -> datetime | None: ...

    @property
    def detail(self) -> str: ...


class StatusRow(Protocol):
    """The runner's live status of a campaign (`campaign_status`)."""

    @property
    def campaign_id(self) -> int: ...

    @property
    def runner(self) -> str: ...

    @property
    def heartbeat_at(self) -> datetime: ...

    @property
    def mode(self) -> str: ...

    @property
    def dial_level(self) -> float: ...

    @property
    def lines_dialing(self) -> int: ...

    @property
    def lines_ringing(self) -> int: ...

    @property
    def waiting_for_agent(self) -> int: ...

    @property
    def hit_rate(self) -> float: ...

    @property
    def aht_s(self) -> float: ...

    @property
    def stats(self) -> dict[str, Any]: ...


class DispositionRow(Protocol):
    """An agent's verdict (`dispositions`)."""

    @property
    def id(self) -> int | None: ...

    @property
    def attempt_id(self) -> int | None: ...

    @property
    def agent_id(self) -> int | None: ...

    @property
    def customer_id(self) -> str: ...

    @property
    def campaign_id(self) -> int | None: ...

    @property
    def outcome(self) -> str: ...

    @property
    def amount(self) -> float: ...

    @property
    def sku(self) -> str: ...

    @property
    def reason_code(self) -> str: ...

    @property
    def voc_text(self) -> str: ...

    @property
    def callback_at(self) -> datetime | None: ...

    @property
    def source(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


__all__ = ["AttemptRow", "DispositionRow", "StatusRow", "StretchRow"]
