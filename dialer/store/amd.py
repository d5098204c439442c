"""Answering-machine detection in the store: the attempts' AMD columns (migration) and the figures read back.

Why here: SQL lives in `dialer/store/`; the campaign and reports ask these functions, not the tables.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

AMD_COLUMNS = {
    "amd_verdict": "VARCHAR NOT NULL DEFAULT ''",
    "amd_decided_s": "FLOAT",
    "amd_features": "TEXT NOT NULL DEFAULT ''",
}


def migrate_add_amd_columns(engine: Engine) -> None:
    """Schema 2: the attempt's AMD verdict, decision time and features (SQLite and PostgreSQL alike)."""
    insp = inspect(engine)
    if "attempts" not in insp.get_table_names():
        return  # a fresh database: create_all makes the table with the columns
    have = {c["name"] for c in insp.get_columns("attempts")}
    with engine.begin() as conn:
        for name, ddl in AMD_COLUMNS.items():
            if name not in have:
                conn.execute(text(f"ALTER TABLE attempts ADD COLUMN {name} {ddl}"))


def amd_counts(engine: Engine, campaign_id: int | None = None) -> dict[str, int]:
    """Attempts by AMD verdict, and agent corrections: connected calls an agent marked as a machine."""
    where = "WHERE amd_verdict <> ''" + (" AND campaign_id = :c" if campaign_id is not None else "")
    params = {"c": campaign_id} if campaign_id is not None else {}
    out = {"human": 0, "machine": 0, "unsure": 0, "hangup": 0}
    with engine.connect() as conn:
        for verdict, n in conn.execute(text(f"SELECT amd_verdict, COUNT(*) FROM attempts {where} "
                                            "GROUP BY amd_verdict"), params):
            out[str(verdict)] = int(n)
        q = ("SELECT COUNT(DISTINCT a.id) FROM attempts a JOIN dispositions d ON d.attempt_id = a.id "
             "WHERE a.amd_verdict IN ('human', 'unsure') AND d.outcome = 'machine'"
             + (" AND a.campaign_id = :c" if campaign_id is not None else ""))
        out["agent_marked_machine"] = int(conn.execute(text(q), params).scalar() or 0)
        q = ("SELECT COUNT(DISTINCT a.id) FROM attempts a JOIN dispositions d ON d.attempt_id = a.id "
             "WHERE a.amd_verdict = 'machine' AND d.outcome <> 'machine'"
             + (" AND a.campaign_id = :c" if campaign_id is not None else ""))
        out["agent_marked_person"] = int(conn.execute(text(q), params).scalar() or 0)
        q = ("SELECT COUNT(DISTINCT a.id) FROM attempts a JOIN dispositions d ON d.attempt_id = a.id "
             "WHERE a.amd_verdict = 'machine'" + (" AND a.campaign_id = :c" if campaign_id is not None else ""))
        out["machine_reviewed"] = int(conn.execute(text(q), params).scalar() or 0)
    return out


__all__ = ["AMD_COLUMNS", "amd_counts", "migrate_add_amd_columns"]
