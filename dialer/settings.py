"""The settings step: config in, the campaign's policy and the pacer's config out, every field carried.

Why one step: values used to be lost on the way (an `abandon_target` copied only when the campaign row was
created, the day window and the machine false-positive share never reaching the pacer). Everything the
pacer and the rules need is taken from config here, once per start; config is the source of truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dialer.config import CampaignConfig, Config, ConfigError
from dialer.domain.calling_hours import local_midnight
from dialer.domain.policy import CampaignPolicy
from pacing.engine import PacerConfig
from pacing.inbound import Priority, ReturnCallModel


def day_start_s(tz_name: str, now: datetime) -> float:
    """Epoch seconds of a local midnight in TZ_NAME: the pacer's calendar-day window is anchored on it.

    The pacer counts whole days from this anchor, so it is the midnight of NOW's local day (a zone with
    daylight saving shifts by an hour at the change until the next start).
    """
    return local_midnight(now, tz_name).timestamp()


def pacer_config(policy: CampaignPolicy, *, timezone: str, now: datetime, machine_fp_share: float,
                 mode: str | None = None, target: float | None = None) -> PacerConfig:
    """The pacer's view of a campaign: every field it reads comes from the policy and [reports]."""
    return PacerConfig(
        mode=mode or policy.mode.value, abandon_target=policy.abandon_target if target is None else target,
        abandon_limit=policy.abandon_limit, abandon_window=policy.abandon_window.value,
        abandon_regime=policy.abandon_regime.value, connect_limit_s=policy.connect_limit_s,
        ring_timeout_s=policy.ring_timeout_s, max_lines_per_agent=policy.max_lines_per_agent,
        power_ratio=policy.power_ratio, prior_hit_rate=policy.prior_hit_rate, prior_talk_s=policy.prior_talk_s,
        prior_wrap_s=policy.prior_wrap_s, day_start_s=day_start_s(timezone, now),
        amd_false_positive_rate=machine_fp_share)


@dataclass(frozen=True)
class CampaignSettings:
    """One campaign, parsed: its rules, the pacer's config, the time zone its calendar day is counted in."""

    policy: CampaignPolicy
    pacer: PacerConfig
    timezone: str
    machine_fp_share: float
    retry_rules: dict[str, Any]  # the config's own words, kept on the campaign row for operators
    returns: ReturnCallModel = field(default_factory=ReturnCallModel)  # (issue 30) what the pacer keeps agents for


# every number the pacer reads, by where it sits in config (issue 31: NaN / infinity is refused here, with the
# key named, never raised deep in the engine mid-shift; TOML writes them `nan`, `inf`)
PACING_KEYS = ("abandon_target", "abandon_limit", "connect_limit_s", "ring_timeout_s", "max_lines_per_agent",
               "power_ratio", "prior_hit_rate", "prior_talk_s", "prior_wrap_s", "wrap_up_timeout_s",
               "return_call_prior_rate", "return_call_mean_s", "return_call_window_s", "return_call_answer_s")


def check_pacing_inputs(cfg: Config, name: str) -> None:
    """ConfigError naming the file, the campaign and the key when a pacing input is NaN or infinite."""
    cc = cfg.campaign(name)
    bad = [(f"[[campaigns]] {name}", k, getattr(cc, k)) for k in PACING_KEYS]
    trunk = cfg.trunk(cc.trunk) if cc.trunk else (cfg.trunks[0] if cfg.trunks else None)
    if trunk is not None:  # the free trunk lines and call setups a second the pacer is offered
        bad += [(f"[[trunks]] {trunk.name}", k, getattr(trunk, k)) for k in ("max_cps",) if hasattr(trunk, k)]
    bad += [("[telephony]", "lines", cfg.telephony.lines),
            ("[reports]", "machine_false_positive_share", cfg.reports.machine_false_positive_share)]
    for where, key, v in bad:
        if isinstance(v, int | float) and not math.isfinite(v):
            raise ConfigError(f"{cfg.source}: {where}: {key} must be a finite number (got {v})")


def campaign_settings(cfg: Config, name: str, now: datetime, *, measured_fp_share: float | None = None
                      ) -> CampaignSettings:
    """Build everything a run of campaign NAME needs from CFG (ConfigError if there is no such campaign).

    The machine false-positive share (UK abandons) is `[reports] machine_false_positive_share`, or the share
    the campaign's AMD measured (MEASURED_FP_SHARE) when that is higher: the pacer never counts fewer
    dropped people than the auditor's figure assumes.
    """
    check_pacing_inputs(cfg, name)
    cc = cfg.campaign(name)
    policy = CampaignPolicy.of(cc)
    tz = cfg.schedules.timezone
    fp = cfg.reports.machine_false_positive_share
    if measured_fp_share is not None:
        fp = max(fp, measured_fp_share)
    return CampaignSettings(policy=policy, pacer=pacer_config(policy, timezone=tz, now=now, machine_fp_share=fp),
                            timezone=tz, machine_fp_share=fp, retry_rules=cc.retry.model_dump(),
                            returns=return_call_model(cc))


def return_call_model(cc: CampaignConfig) -> ReturnCallModel:
    """(issue 30) The campaign's return-call settings for `pacing.inbound` (checked finite by check_pacing_inputs)."""
    return ReturnCallModel(priority=Priority(cc.inbound_priority), prior_rate=cc.return_call_prior_rate,
                           mean_s=cc.return_call_mean_s, window_s=cc.return_call_window_s,
                           answer_s=cc.return_call_answer_s)


__all__ = ["CampaignSettings", "campaign_settings", "check_pacing_inputs", "day_start_s", "pacer_config",
           "return_call_model"]
