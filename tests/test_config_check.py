"""What `dialer config check` accepts, the programs accept (issue 27): each bad input named in the issue is
refused by the check with the fix in the message, and the commands that read the same file agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.config import ConfigError, parse_config, secret_problems
from tests.conftest import run_env

REAL = """
[database]
url = "sqlite:///{db}"

[business]
name = "つなぐ通販"
phone = "0120-000-000"

[[trunks]]
name = "carrier"
proxy = "sip:192.0.2.10:5060"
username = "acct01"
password_env = "H27B_TRUNK_PW"
caller_id = "0312345678"

[[agents]]
login = "a01"
name = "佐藤"
sip_uri = "sip:a01@127.0.0.1:5301"

[[campaigns]]
name = "c1"
trunk = "carrier"
"""


def _dialer(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = run_env()
    e.pop("H27B_TRUNK_PW", None)
    return subprocess.run([sys.executable, "-m", "dialer", *args], cwd=cwd, env=e | (env or {}),
                          capture_output=True, text=True, timeout=120)


def _write(tmp_path: Path, extra: str = "", *, base: str = REAL) -> Path:
    p = tmp_path / "tsunagu.toml"
    p.write_text(base.format(db=tmp_path / "t.db") + extra, encoding="utf-8")
    return p


def test_schedule_as_a_time_means_daily_and_schedule_show_agrees(tmp_path: Path) -> None:
    cfg_path = _write(tmp_path, '\n[schedules]\ntimezone = "Asia/Tokyo"\nnightly_list_build = "02:00"\n')
    r = _dialer("config", "check", str(cfg_path), cwd=tmp_path, env={"H27B_TRUNK_PW": "pw"})
    assert r.returncode == 0, r.stderr
    r = _dialer("schedule", "show", "--json", "--config", str(cfg_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    jobs = {j["id"]: j for j in json.loads(r.stdout)["jobs"]}
    assert "hour='2'" in jobs["list_build"]["trigger"] and "minute='0'" in jobs["list_build"]["trigger"]
    assert jobs["list_build"]["next_run"].endswith("T02:00:00+09:00")


@pytest.mark.parametrize("bad", ["2am", "0 2 * *", "25:00", "0 26 * * *"])
def test_unreadable_schedule_refused_with_the_forms_that_work(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f'[schedules]\nnightly_list_build = "{bad}"\n', "f.toml")
    msg = str(e.value)
    assert "schedules.nightly_list_build" in msg and '"HH:MM"' in msg and '"0 2 * * *"' in msg


def test_unknown_time_zone_and_weekday_set_refused() -> None:
    with pytest.raises(ConfigError, match="unknown time zone 'Tokyo'"):
        parse_config('[schedules]\ntimezone = "Tokyo"\n', "f.toml")
    with pytest.raises(ConfigError, match="active_days: 'weekdays' is not a cron day_of_week"):
        parse_config('[[campaigns]]\nname = "c"\nactive_days = "weekdays"\n', "f.toml")
    with pytest.raises(ConfigError, match="unknown holiday calendar 'XX'"):
        parse_config('[[campaigns]]\nname = "c"\nholidays = "XX"\n', "f.toml")


def test_unset_trunk_password_fails_the_check_and_campaign_run_says_one_line(tmp_path: Path) -> None:
    cfg_path = _write(tmp_path)
    r = _dialer("config", "check", str(cfg_path), cwd=tmp_path)
    assert r.returncode == 3
    assert "H27B_TRUNK_PW" in r.stderr and "export H27B_TRUNK_PW=" in r.stderr and "Traceback" not in r.stderr
    r = _dialer("campaign", "run", "c1", "--headless", "--for", "1s", "--config", str(cfg_path), cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "H27B_TRUNK_PW" in r.stderr and "Traceback" not in r.stderr
    # set, the same file passes the check
    r = _dialer("config", "check", str(cfg_path), cwd=tmp_path, env={"H27B_TRUNK_PW": "pw"})
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


def test_password_env_of_a_trunk_without_username_is_only_a_note() -> None:
    cfg = parse_config('[[trunks]]\nname = "t"\nproxy = "sip:127.0.0.1:5060"\npassword_env = "H27B_NOPE"\n', "f")
    errors, notes = secret_problems(cfg)
    assert errors == [] and len(notes) == 1 and "H27B_NOPE" in notes[0]


def test_username_without_password_env_is_an_error() -> None:
    cfg = parse_config('[[trunks]]\nname = "t"\nproxy = "sip:127.0.0.1:5060"\nusername = "u"\n', "f")
    errors, _ = secret_problems(cfg)
    assert len(errors) == 1 and "no password_env" in errors[0]


@pytest.mark.parametrize(("text", "where", "near"), [
    ('[[campaigns]]\nname = "c"\nabandon_traget = 0.02\n', "abandon_traget", "abandon_target"),
    ('[[campaigns]]\nname = "c"\n[campaigns.retry]\nbusyy = "1h"\n', "retry.busyy", "busy"),
    ('[schedule]\ntimezone = "Asia/Tokyo"\n', "schedule", "schedules"),
    ('[schedules]\nnightly_list_biuld = "02:00"\n', "nightly_list_biuld", "nightly_list_build"),
])
def test_typo_suggests_the_nearest_key(text: str, where: str, near: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "f.toml")
    assert f"{where}: unknown key; did you mean {near!r}?" in str(e.value)


def test_unknown_key_far_from_any_key_says_so() -> None:
    with pytest.raises(ConfigError, match="unknown key \\(check the spelling"):
        parse_config('[[campaigns]]\nname = "c"\nzzzzqqq = 1\n', "f.toml")


@pytest.mark.parametrize(("value", "meant"), [("2", "0.02 (2 %)"), ("3", "0.03 (3 %)"), ("1.5", "0.015 (1.5 %)")])
def test_abandon_target_as_percent_is_explained(value: str, meant: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(f'[[campaigns]]\nname = "c"\nabandon_target = {value}\n', "f.toml")
    assert "is read as a fraction" in str(e.value) and f"did you mean {meant}?" in str(e.value)


def test_abandon_target_above_ceiling_says_percent() -> None:
    with pytest.raises(ConfigError, match=r"0.05 \(5 %\) is above the legal ceiling 0.03 \(3 %\)"):
        parse_config('[[campaigns]]\nname = "c"\nabandon_target = 0.05\n', "f.toml")


def test_auth_username_alone_also_needs_its_password() -> None:
    cfg = parse_config('[[trunks]]\nname = "t"\nproxy = "sip:192.0.2.1:5060"\nauth_username = "u"\n'
                       'password_env = "H27B_NOPE"\n', "f")
    errors, _ = secret_problems(cfg)
    assert len(errors) == 1 and "H27B_NOPE" in errors[0] and "export H27B_NOPE=" in errors[0]
