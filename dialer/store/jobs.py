"""The scheduler's job store: APScheduler's SQLAlchemy job store on the dialer's own database."""

from __future__ import annotations

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

from dialer.store.db import get_engine

JOBS_TABLE = "apscheduler_jobs"


def job_store(url: str) -> SQLAlchemyJobStore:
    """Jobs and their next run times in table `apscheduler_jobs`, so a restart loses nothing."""
    return SQLAlchemyJobStore(engine=get_engine(url), tablename=JOBS_TABLE)


__all__ = ["JOBS_TABLE", "job_store"]
