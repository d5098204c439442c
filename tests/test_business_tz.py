"""(issue 27) Business dates and schedules in the business time zone on a UTC host.

At 2026-12-06 23:30 UTC it is already 2026-12-07 08:30 in Tokyo: the list built then is dated 12-07, the
nightly job at "02:00" means 02:00 JST (17:00 UTC the day before), the campaign starts at 09:00 JST."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dialer.commands.lists import _as_of
from dialer.config import parse_config
from dialer.domain.calling_hours import business_today
from dialer.schedule import job_specs, should_run
from tests.conftest import REPO, run_env

JST = ZoneInfo("Asia/Tokyo")
CFG = """
[schedules]
timezone = "Asia/Tokyo"
nightly_list_build = "02:00"

[[campaigns]]
name = "c1"
calling_hours = ["09:00", "20:00"]
holidays = ""
"""


@pytest.fixture()
def utc_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("instant", "business", "host"), [
    (datetime(2026, 12, 6, 23, 30, tzinfo=UTC), date(2026, 12, 7), date(2026, 12, 6)),  # 08:30 JST
    (datetime(2026, 12, 31, 15, 0, tzinfo=UTC), date(2027, 1, 1), date(2026, 12, 31)),  # 元日 00:00 JST
])
def test_list_build_is_dated_with_the_business_date(utc_host: None, instant: datetime, business: date,
                                                    host: date) -> None:
    assert datetime.fromtimestamp(instant.timestamp()).date() == host  # what date.today() would have said
    assert business_today("Asia/Tokyo", instant) == business
    assert _as_of(None, "Asia/Tokyo", instant) == business
    assert _as_of("2026-11-23", "Asia/Tokyo", instant) == date(2026, 11, 23)


def test_scheduler_jobs_fire_in_the_business_zone(utc_host: None) -> None:
    cfg = parse_config(CFG, "f.toml")
    specs = {s.id: s for s in job_specs(cfg, "")}
    after = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # 21:00 JST
    nightly = specs["list_build"].trigger.get_next_fire_time(None, after)
    assert nightly == datetime(2026, 12, 7, 2, 0, tzinfo=JST) and nightly.astimezone(UTC).hour == 17
    start = specs["campaign_start:c1"].trigger.get_next_fire_time(None, after)
    assert start == datetime(2026, 12, 7, 9, 0, tzinfo=JST)  # 00:00 UTC: the UTC host's midnight


def test_should_run_reads_the_business_clock(utc_host: None) -> None:
    cc = parse_config(CFG, "f.toml").campaign("c1")
    assert should_run(cc, datetime(2026, 12, 7, 0, 30, tzinfo=UTC), "Asia/Tokyo")[0]  # 09:30 JST, 00:30 UTC
    ok, why = should_run(cc, datetime(2026, 12, 7, 11, 30, tzinfo=UTC), "Asia/Tokyo")  # 20:30 JST, 11:30 UTC
    assert not ok and "outside calling hours" in why


def test_lists_build_subprocess_on_a_far_west_host_prints_the_business_date(tmp_path: Path) -> None:
    """A host at UTC-12 is a day behind Tokyo for 21 hours of every day: the printed date is Tokyo's."""
    env = run_env() | {"TZ": "Etc/GMT+12"}
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "t.db"}"\n[schedules]\ntimezone = "Asia/Tokyo"\n',
                   encoding="utf-8")
    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "dialer", *a], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=180)
    before = datetime.now(JST).date()
    r = run("lists", "sample", "--out", str(tmp_path / "crm"), "--customers", "40")
    assert r.returncode == 0, r.stderr
    r = run("lists", "build", "--mapping", str(REPO / "config" / "mappings" / "canonical.toml"), "--input",
            str(tmp_path / "crm"), "--out", str(tmp_path / "out"), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    after = datetime.now(JST).date()
    assert any(f"lists {d.isoformat()}:" in r.stdout for d in {before, after}), r.stdout
    assert os.environ.get("TZ") != "Etc/GMT+12"  # the test process itself kept its zone
