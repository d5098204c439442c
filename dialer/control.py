"""Manager commands to a running campaign: when one is still valid, and whether anyone is there to apply it.

A command belongs to the run that was live when it was given. One the runner did not apply within the TTL
(`[ui] command_ttl`, 10 min) or that predates the run is closed as expired — yesterday's `stop` never hits
today's run — and a monitor refuses to send one when no runner is live, saying so at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dialer.domain.vocabulary import CampaignState

HEARTBEAT_STALE_S = 10.0  # a runner silent for longer is not live (the runner beats every second)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def expiry_reason(created_at: datetime, run_started_at: datetime, now: datetime, ttl_s: float) -> str | None:
    """Why a not-yet-applied command must not be applied now, or None when it still may be."""
    created = _aware(created_at)
    if created < _aware(run_started_at):
        return "expired: requested before this run started"
    age = (_aware(now) - created).total_seconds()
    if age > ttl_s:
        return f"expired: not applied within {ttl_s / 60:.0f} min"
    return None


def runner_live(runner: str | None, heartbeat_at: datetime | None, campaign_state: str, now: datetime,
                stale_s: float = HEARTBEAT_STALE_S) -> bool:
    """A runner holds the campaign and beat recently; a stopped campaign has none whatever its last beat."""
    if not runner or heartbeat_at is None or campaign_state == CampaignState.STOPPED:
        return False
    return (_aware(now) - _aware(heartbeat_at)).total_seconds() <= stale_s
