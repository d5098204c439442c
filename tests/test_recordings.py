"""(issue 29) The retention policy on a real SQLite store and real files: `[recordings] keep_days`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from dialer.config import parse_config
from dialer.schedule import job_specs
from dialer.service.recordings import purge
from dialer.store.db import dispose_engines, init_db
from dialer.store.models import Attempt
from tests.conftest import run_env


def _store(tmp_path: Path) -> tuple[object, dict[str, int], dict[str, Path]]:
    engine, _ = init_db(f"sqlite:///{tmp_path / 'r.db'}")
    now = datetime.now(UTC)
    files = {k: tmp_path / "rec" / f"{k}.wav" for k in ("old", "new", "gone")}
    files["old"].parent.mkdir()
    files["old"].write_bytes(b"RIFF old")
    files["new"].write_bytes(b"RIFF new")
    ids = {}
    with Session(engine) as s:
        for k, age in (("old", 40), ("new", 2), ("gone", 45)):
            a = Attempt(customer_id="C1", recording_path=str(files[k]), dialed_at=now - timedelta(days=age))
            s.add(a)
            s.commit()
            ids[k] = int(a.id or 0)
    return engine, ids, files


def _paths(engine: object, ids: dict[str, int]) -> dict[str, str]:
    with Session(engine) as s:  # type: ignore[call-overload]
        return {k: s.get(Attempt, i).recording_path for k, i in ids.items()}


def test_purge_deletes_older_recordings_and_clears_their_paths(tmp_path: Path) -> None:
    engine, ids, files = _store(tmp_path)
    dry = purge(engine, 30, datetime.now(UTC), dry_run=True)  # type: ignore[arg-type]
    assert (dry.deleted, dry.missing) == (1, 1) and files["old"].exists()
    res = purge(engine, 30, datetime.now(UTC))  # type: ignore[arg-type]
    assert (res.deleted, res.missing, res.failed) == (1, 1, [])
    assert not files["old"].exists() and files["new"].exists()
    assert _paths(engine, ids) == {"old": "", "new": str(files["new"]), "gone": ""}
    # keep_days 0 keeps everything
    assert purge(engine, 0, datetime.now(UTC) + timedelta(days=999)).deleted == 0  # type: ignore[arg-type]
    dispose_engines()


@pytest.mark.skipif(os.geteuid() == 0, reason="root deletes from a read-only directory")
def test_a_file_that_cannot_be_deleted_keeps_its_path_and_is_reported(tmp_path: Path) -> None:
    engine, ids, files = _store(tmp_path)
    files["old"].parent.chmod(0o500)
    try:
        res = purge(engine, 30, datetime.now(UTC))  # type: ignore[arg-type]
    finally:
        files["old"].parent.chmod(0o700)
    assert len(res.failed) == 1 and str(files["old"]) in res.failed[0]
    assert _paths(engine, ids)["old"] == str(files["old"]) and files["old"].exists()
    dispose_engines()


def test_the_command_and_the_daily_job(tmp_path: Path) -> None:
    engine, ids, files = _store(tmp_path)
    dispose_engines()
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "r.db"}"\n[recordings]\nkeep_days = 30\n',
                   encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "dialer", "recordings", "purge", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, env=run_env())
    assert r.returncode == 0, r.stderr
    assert not files["old"].exists() and files["new"].exists()
    assert _paths(engine, ids)["old"] == ""
    specs = {s.id: s for s in job_specs(parse_config(cfg.read_text(), str(cfg)), str(cfg))}
    assert specs["recordings_purge"].func == "dialer.schedule:purge_recordings"
    assert "recordings_purge" not in {s.id for s in job_specs(parse_config("", "x"), "x")}
    dispose_engines()
