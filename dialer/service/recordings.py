"""(issue 29) Recordings for supervisors: search, playback, and the retention policy.

- Hearing a recording is RECORDING_PLAY (supervisor, admin): an agent is refused, and the refusal is audited;
  every playback is audited with who, when and which call.
- A file is handed out only from under `[telephony] recordings_dir` (the store names it; a path elsewhere —
  a hand-edited row, a moved directory — is refused, never served).
- `[recordings] keep_days` (0 = keep): a recording of a call dialled longer ago is deleted and its attempt no
  longer names it. A file already gone counts as deleted; a file that cannot be deleted (permissions) keeps
  its path, is reported, and is tried again next time — never silently kept forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dialer.errors import UserError
from dialer.service.auth import Principal, record, require
from dialer.service.roles import Permission
from dialer.store import Engine
from dialer.store import recordings as store
from dialer.store.recordings import RecordingRow


def find(engine: Engine, who: Principal, *, customer: str = "", agent: str = "", since: datetime | None = None,
         until: datetime | None = None, outcome: str = "", limit: int = 200) -> list[RecordingRow]:
    require(engine, who, Permission.RECORDING_PLAY, target="recordings")
    return store.search(engine, customer=customer, agent=agent, since=since, until=until, outcome=outcome,
                        limit=limit)


def playback_path(engine: Engine, who: Principal, attempt_id: int, recordings_dir: str) -> Path:
    """The WAV of call ATTEMPT_ID for WHO to hear (audited), or a UserError naming why not."""
    target = f"call {attempt_id}"
    require(engine, who, Permission.RECORDING_PLAY, target=target)
    row = store.recording_of(engine, attempt_id)
    if row is None:
        raise UserError(f"call {attempt_id} has no recording")
    path = Path(row.path).resolve()
    root = Path(recordings_dir).resolve()
    if not path.is_relative_to(root):
        raise UserError(f"call {attempt_id}: its recording is not under [telephony] recordings_dir; not served")
    if not path.is_file():
        raise UserError(f"call {attempt_id}: the recording file is missing")
    record(engine, who, Permission.RECORDING_PLAY, target, "playback")
    return path


@dataclass
class PurgeResult:
    deleted: int = 0
    missing: int = 0  # already gone: the path is cleared all the same
    failed: list[str] = field(default_factory=list)  # "path: reason", kept for the next run


def purge(engine: Engine, keep_days: int, now: datetime, *, dry_run: bool = False) -> PurgeResult:
    """Delete recordings of calls dialled more than KEEP_DAYS ago (0 = keep everything)."""
    res = PurgeResult()
    if keep_days <= 0:
        return res
    cleared: list[int] = []
    for attempt_id, p in store.expired(engine, now - timedelta(days=keep_days)):
        path = Path(p)
        if dry_run:
            res.deleted += path.exists()
            res.missing += not path.exists()
            continue
        try:
            path.unlink()
            res.deleted += 1
        except FileNotFoundError:
            res.missing += 1
        except OSError as exc:
            res.failed.append(f"{p}: {exc.strerror or exc}")
            continue
        cleared.append(attempt_id)
    if not dry_run:
        store.clear_paths(engine, cleared)
    return res
