"""Issue 31: a pacing input that is NaN or infinite is refused in the settings step, with the key named
(TOML writes them `nan`, `inf`), before any pacer is built; never an exception deep in the engine mid-shift."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialer.config import ConfigError, parse_config
from dialer.settings import campaign_settings

BASE = """
[[trunks]]
name = "lab"
proxy = "sip:127.0.0.1:5999"
sandbox = true
{trunk}
[[campaigns]]
name = "tsuhan-c"
trunk = "lab"
mode = "predictive"
{campaign}
"""
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)

# every numeric pacing input a config can hold; ranges that already refuse a value pass through pydantic
CAMPAIGN_KEYS = ["prior_talk_s", "prior_wrap_s", "max_lines_per_agent", "ring_timeout_s", "power_ratio",
                 "prior_hit_rate", "abandon_target", "abandon_limit", "connect_limit_s", "wrap_up_timeout_s"]


def _cfg(campaign: str = "", trunk: str = ""):  # type: ignore[no-untyped-def]
    return parse_config(BASE.replace("{campaign}", campaign).replace("{trunk}", trunk), "pacing.toml")


@pytest.mark.parametrize("key", CAMPAIGN_KEYS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_campaign_pacing_input_is_refused_with_its_key(key: str, value: str) -> None:
    try:
        cfg = _cfg(f"{key} = {value}")
    except ConfigError as e:   # refused at parse time by its range: the key is named there
        assert key in str(e) and "pacing.toml" in str(e)
        return
    with pytest.raises(ConfigError) as e:
        campaign_settings(cfg, "tsuhan-c", NOW)
    msg = str(e.value)
    assert key in msg and "pacing.toml" in msg and "tsuhan-c" in msg and "finite" in msg


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_non_finite_trunk_rate_is_refused_with_its_key(value: str) -> None:
    try:
        cfg = _cfg(trunk=f"max_cps = {value}")
    except ConfigError as e:
        assert "max_cps" in str(e)
        return
    with pytest.raises(ConfigError, match="max_cps"):
        campaign_settings(cfg, "tsuhan-c", NOW)


def test_finite_inputs_pass_and_reach_the_pacer() -> None:
    s = campaign_settings(_cfg("prior_talk_s = 420.0\npower_ratio = 1.2"), "tsuhan-c", NOW)
    assert s.pacer.prior_talk_s == 420.0 and s.pacer.power_ratio == 1.2


@pytest.mark.parametrize("name,window", [("us_tsr", "30d"), ("uk_ofcom", "day"), ("strict_hour", "1h"),
                                         ("jp_cx", "day")])
def test_a_named_regime_reaches_the_pacer(name: str, window: str) -> None:
    from pacing.engine import Pacer

    s = campaign_settings(_cfg(f'abandon_regime = "{name}"'), "tsuhan-c", NOW)
    assert s.pacer.abandon_regime == name and Pacer(s.pacer).window == window
    with pytest.raises(ConfigError, match="abandon_regime"):
        _cfg('abandon_regime = "jp"')
