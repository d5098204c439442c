"""Preview mode's vocabulary: who an entry is reserved for, and why an agent may pass on one.

In preview the runner reserves (leases) one entry per ready agent; the lease owner names the campaign and
the agent so the console can find its reservation and the runner can check a command against it.
"""

from __future__ import annotations

OWNER_PREFIX = "preview:"
DIAL = "preview_dial"
SKIP = "preview_skip"

# key -> reason code an agent gives for passing on a reserved entry ("next" passes with no code)
SKIP_REASONS: dict[str, str] = {"1": "not_now", "2": "bad_data", "3": "contacted_recently", "4": "other"}


def owner(campaign: str, login: str) -> str:
    """The lease owner of an entry reserved for LOGIN in CAMPAIGN."""
    return f"{OWNER_PREFIX}{campaign}:{login}"


def parse_owner(value: str) -> tuple[str, str] | None:
    """(campaign, login) of a preview lease owner, None for any other owner (a predictive runner's)."""
    if not value.startswith(OWNER_PREFIX):
        return None
    campaign, sep, login = value[len(OWNER_PREFIX):].rpartition(":")
    return (campaign, login) if sep and login else None


def command_argument(entry_id: int, login: str, reason: str = "") -> str:
    return f"{entry_id} {login} {reason}".strip()


def parse_argument(arg: str) -> tuple[int, str, str]:
    """(entry id, agent login, reason) of a preview command; ValueError when malformed."""
    parts = arg.split(" ", 2)
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1]:
        raise ValueError(f"preview command needs 'ENTRY LOGIN [REASON]', got {arg!r}")
    return int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""


__all__ = ["DIAL", "OWNER_PREFIX", "SKIP", "SKIP_REASONS", "command_argument", "owner", "parse_argument",
           "parse_owner"]
