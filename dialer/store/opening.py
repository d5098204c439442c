"""Opening a store that must already exist: read-only commands never create an empty one by accident.

`dialer db init` (and the campaign runner) create stores; the monitor, reports and consoles only open them,
and when the store they were pointed at is missing or empty they say which one it was.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dialer.store.db import SCHEMA_VERSION, StoreError, current_version, get_engine, init_db, resolve_url

__all__ = ["Engine", "describe", "open_existing", "sqlite_path"]


def describe(url: str) -> str:
    """The store as a person would name it: a SQLite path made absolute, or the URL without its password."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        return str(Path(path).resolve()) if path and path != ":memory:" else url
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[-1]
    return None if not path or path == ":memory:" else Path(path)


def open_existing(configured: str | None) -> tuple[Engine, str]:
    """The engine of an existing tsunagu store (migrated if older) and its description; StoreError otherwise."""
    url = resolve_url(configured)
    where = describe(url)
    hint = "create it with `dialer db init` or run the demo (`scripts/demo`), or point --config / " \
           "DIALER_DATABASE_URL at the right one"
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise StoreError(f"no store at {where}: {hint}")
    try:
        engine = get_engine(url)
        has_meta = inspect(engine).has_table("meta")
        version = current_version(engine) if has_meta else None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store {where}: {str(exc).splitlines()[0]}") from None
    if version is None:
        raise StoreError(f"{where} is not a tsunagu store (no schema version): {hint}")
    if version < SCHEMA_VERSION:
        init_db(url)
    elif version > SCHEMA_VERSION:
        init_db(url)  # raises the explanatory StoreError
    return engine, where


def campaign_names(engine: Engine) -> list[str]:
    """The campaigns a store holds (empty for a store without the table yet)."""
    from sqlmodel import Session, select

    from dialer.store.models import Campaign

    if not inspect(engine).has_table("campaigns"):
        return []
    with Session(engine) as s:
        return sorted(s.exec(select(Campaign.name)).all())
