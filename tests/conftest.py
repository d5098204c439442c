"""Shared fixtures: a fresh SQLite store per test, and a working directory that is thrown away."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.store.db import dispose_engines, init_db

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _language_restored() -> Iterator[None]:
    """A test that switches the UI language (dialer.i18n is process-wide) leaves it as it found it, so no later
    test depends on the order it runs in (a `ja` left behind failed English render checks run after it)."""
    from dialer.i18n import language, set_language

    before = language()
    yield
    if language() != before:
        set_language(before)


@pytest.fixture()
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv("DIALER_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'test.db'}"
    init_db(url)
    yield url
    dispose_engines()


@pytest.fixture()
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIALER_DATABASE_URL", raising=False)
    monkeypatch.delenv("TSUNAGU_CONFIG", raising=False)
    return tmp_path


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DIALER_DATABASE_URL", None)
    env.pop("TSUNAGU_CONFIG", None)
    return env
