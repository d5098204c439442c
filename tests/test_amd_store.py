"""Schema 2 (AMD columns on attempts) upgrades an existing schema-1 database, SQLite and PostgreSQL alike,
keeping its rows; the AMD counts read back what was stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from dialer.store.amd import AMD_COLUMNS, amd_counts
from dialer.store.db import current_version, dispose_engines, get_engine, init_db
from tests.pgserver import pg_server, pg_url  # noqa: F401


def _downgrade_to_v1(url: str) -> None:
    eng = get_engine(url)
    with eng.begin() as conn:
        for name in AMD_COLUMNS:
            conn.execute(text(f"ALTER TABLE attempts DROP COLUMN {name}"))
        conn.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
        conn.execute(text("INSERT INTO attempts (campaign_id, customer_id, segment, phone_e164, trunk, worker, state, "
                          "dialed_at, outcome, abandoned, machine, hangup_by, recording_path, detail) VALUES "
                          "(1, 'C1', 'dormant', '+81312345678', 't', 'w', 'ended', CURRENT_TIMESTAMP, 'answered', "
                          "false, false, '', '', '顧客が応答')"))


def _check_upgrade(url: str) -> None:
    init_db(url)
    _downgrade_to_v1(url)
    eng = get_engine(url)
    assert current_version(eng) == 1
    _, action = init_db(url)
    assert action == "migrated from 1"
    cols = {c["name"] for c in inspect(eng).get_columns("attempts")}
    assert set(AMD_COLUMNS) <= cols
    with eng.begin() as conn:
        row = conn.execute(text("SELECT amd_verdict, amd_decided_s, detail FROM attempts")).one()
        assert tuple(row) == ("", None, "顧客が応答")
        conn.execute(text("INSERT INTO attempts (campaign_id, customer_id, segment, phone_e164, trunk, worker, "
                          "state, dialed_at, outcome, abandoned, machine, hangup_by, recording_path, detail, "
                          "amd_verdict, amd_decided_s, amd_features) VALUES (1, 'C2', 'dormant', '+81312345679', "
                          "'t', 'w', 'ended', CURRENT_TIMESTAMP, 'machine', false, true, 'dialer', '', '', "
                          "'machine', 1.9, '{}')"))
    c = amd_counts(eng, campaign_id=1)
    assert c["machine"] == 1 and c["human"] == 0 and c["agent_marked_machine"] == 0
    _, again = init_db(url)
    assert again == "already up to date"


def test_sqlite_schema_1_upgrades(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIALER_DATABASE_URL", raising=False)
    try:
        _check_upgrade(f"sqlite:///{tmp_path / 'old.db'}")
    finally:
        dispose_engines()


def test_postgres_schema_1_upgrades(pg_url: str) -> None:  # noqa: F811
    try:
        _check_upgrade(pg_url)
    finally:
        dispose_engines()
