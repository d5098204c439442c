"""Manager commands: valid only for the live run that saw them given, and only for `[ui] command_ttl`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dialer.config import parse_config
from dialer.control import expiry_reason, runner_live

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_command_from_before_the_run_is_never_applied() -> None:
    started = T0
    assert expiry_reason(T0 - timedelta(hours=20), started, T0 + timedelta(seconds=1), 600) == (
        "expired: requested before this run started")
    assert expiry_reason(T0 + timedelta(seconds=5), started, T0 + timedelta(seconds=6), 600) is None
    assert "not applied within 10 min" in (expiry_reason(T0, started, T0 + timedelta(minutes=11), 600) or "")


@given(st.integers(min_value=-86400, max_value=86400), st.integers(min_value=0, max_value=86400),
       st.integers(min_value=1, max_value=7200))
def test_a_command_is_applied_only_inside_its_run_and_ttl(created_s: int, age_s: int, ttl_s: int) -> None:
    created = T0 + timedelta(seconds=created_s)
    now = created + timedelta(seconds=age_s)
    ok = expiry_reason(created, T0, now, ttl_s) is None
    assert ok == (created >= T0 and age_s <= ttl_s)


def test_runner_liveness_and_ttl_config() -> None:
    assert runner_live("h:1", T0, "running", T0 + timedelta(seconds=3))
    assert not runner_live("h:1", T0, "running", T0 + timedelta(seconds=30))
    assert not runner_live("h:1", T0, "stopped", T0 + timedelta(seconds=1))
    assert not runner_live("", T0, "running", T0)
    assert parse_config("").ui.command_ttl_s() == 600
    assert parse_config('[ui]\ncommand_ttl = "2m"\n').ui.command_ttl_s() == 120
