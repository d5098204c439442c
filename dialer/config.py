"""The main config file (`config/tsunagu.toml`): load, validate, and explain what is wrong in plain words.

Validation is declarative (pydantic models with unknown keys forbidden) so every section documents itself;
errors are rewritten as `FILE: [section].key: what was expected` lines, never a traceback.
Secrets are never in the file: a trunk names the environment variable that holds its password.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dialer.domain.durations import parse_duration as parse_duration
from dialer.domain.legal import ABANDON_LIMIT, EARLIEST_CALL, LATEST_CALL, MAX_CONNECT_LIMIT_S, MIN_RING_S
from dialer.endpoints import check_endpoint

DEFAULT_CONFIG = Path("config/tsunagu.toml")
ENV_CONFIG = "TSUNAGU_CONFIG"

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def cron_expression(text: str) -> str:
    """A schedule as a 5-field crontab line: "HH:MM" (daily at that time) or crontab itself; ValueError otherwise.

    Why here: `config check` and the scheduler must agree on what a schedule means, so both read it through
    this one function (APScheduler's own parser is the judge of a crontab line).
    """
    t = text.strip()
    if _HHMM.match(t):
        h, m = t.split(":")
        return f"{int(m)} {int(h)} * * *"
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(t)
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither a time \"HH:MM\" (daily) nor a crontab line "
                         f"\"MIN HOUR DAY MONTH WEEKDAY\" such as \"0 2 * * *\" ({exc})") from None
    return t


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, the key or line, and the fix."""


class UnknownNameError(ConfigError):
    """A name given on the command line (campaign, trunk) that the config does not define: a usage error."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseConfig(_Section):
    url: str = "sqlite:///tsunagu.db"
    # (issue 25) where a runner journals the writes the store could not take (down or full); put it on another
    # filesystem than a SQLite store so a full disk does not take the journal with it
    journal_dir: str = "var/journal"


class TelephonyConfig(_Section):
    bind: str = "127.0.0.1"
    public_address: str = "127.0.0.1"
    sip_port_base: Annotated[int, Field(ge=1024, le=65000)] = 5070
    rtp_port_base: Annotated[int, Field(ge=1024, le=65000)] = 40000
    lines: Annotated[int, Field(ge=1, le=10000)] = 16  # concurrent customer lines the campaign may hold
    workers: int | Literal["auto"] = "auto"
    clock_rate: Literal[8000, 16000] = 8000
    recordings_dir: str = "var/recordings"
    # Telephony workers (dialer.telephony): each worker process holds customer AND agent legs (bridging needs
    # both in one process), so a worker keeps agent_leg_ratio x its customer calls free for agent legs.
    agent_leg_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    # "nailed": call each agent once at log-in and keep the leg up; answered customers are bridged into it at
    # once (needs one process holding every agent leg plus the lines: the site build). "on_connect": place the
    # agent leg when the customer answers. "auto": nailed when the worker's capacity allows it.
    agent_legs: Literal["auto", "nailed", "on_connect"] = "auto"
    rtp_ports_per_worker: Annotated[int, Field(ge=8, le=20000)] = 200  # >= 2 x calls per worker (+ slack)
    trunk_retry_s: Annotated[float, Field(gt=0)] = 30.0  # a trunk marked down is tried again after this
    trunk_503_limit: Annotated[int, Field(ge=1)] = 5  # consecutive 503s that mark a trunk down
    worker_start_timeout_s: Annotated[float, Field(gt=0)] = 20.0
    # (issue 13) dead calls: no RTP either way on a confirmed leg for this long hangs up (0 = off; hold suspends)
    rtp_timeout_s: Annotated[float, Field(ge=0)] = 20.0
    trunk_403_limit: Annotated[int, Field(ge=1)] = 3  # consecutive 403s that take a trunk down
    # lines this host can carry; 0 = derived from cores and the build's calls per process (dialer telephony capacity)
    max_lines_per_host: Annotated[int, Field(ge=0)] = 0
    # the account agent legs are placed from (agents behind a PBX): optional credentials and outbound proxy
    agent_username: str = ""
    agent_password_env: str = ""
    agent_outbound_proxy: str = ""
    agent_check_s: Annotated[float, Field(ge=0)] = 30.0  # OPTIONS to every agent's phone this often (0 = off)

    # (issue 25) a stop (--for, SIGTERM, the monitor's stop, a node leaving) dials no more and waits this long at
    # most for calls and wrap-ups to end by themselves; what is left then is hung up (0 = hang up at once)
    drain_s: Annotated[float, Field(ge=0)] = 1200.0
    # (issue 25) an agent leg that dies under a customer hands them to another agent inside a fresh connect limit:
    # a BYE this soon after the bridge (a phone that answers and drops), or no RTP from the agent this long while
    # bridged (a dead PBX or NAT binding: no BYE ever comes). 0 = off
    agent_rescue_s: Annotated[float, Field(ge=0, le=10)] = 1.0
    agent_silence_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    # (issue 25) a refusing agent's phone (DND) gets one real call this often: answered = the agent is back (their
    # phone rings; picking it up says so), refused = still out of routing. 0 = only the console brings them back
    refusing_probe_s: Annotated[float, Field(ge=0)] = 60.0
    # (issue 25) the runner's loop running later than this (a starved host) stops new dials until it catches up
    max_tick_lag_s: Annotated[float, Field(ge=0)] = 1.0

    @field_validator("agent_password_env")
    @classmethod
    def _agent_env_name(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be the NAME of an environment variable, not the secret itself")
        return v

    def agent_password(self) -> str:
        return os.environ.get(self.agent_password_env, "") if self.agent_password_env else ""


class TrunkConfig(_Section):
    name: Annotated[str, Field(min_length=1)]
    proxy: Annotated[str, Field(pattern=r"^sips?:")]
    transport: Literal["udp", "tcp"] = "udp"
    username: str = ""
    password_env: str = ""  # name of the environment variable holding the password
    registration: bool = False  # REGISTER with the registrar before dialing
    registrar: str = ""
    caller_id: str = ""
    # (issue 13) what real carriers need: From user@domain (caller ID), a separate auth user, an outbound proxy
    from_user: str = ""
    from_domain: str = ""
    auth_username: str = ""
    outbound_proxy: str = ""
    session_expires_s: Annotated[int, Field(ge=90)] = 600  # session timer offered on every call
    # (issue 24) the presented number also in P-Asserted-Identity (pai), P-Preferred-Identity (ppi) or neither,
    # with `Privacy: none`; an optional display name in From
    identity_header: Literal["pai", "ppi", "none"] = "pai"
    display_name: str = ""
    max_channels: Annotated[int, Field(ge=1)] = 30
    max_cps: Annotated[float, Field(gt=0)] = 10.0
    codecs: list[str] = Field(default_factory=lambda: ["PCMU/8000", "PCMA/8000"])
    dial_prefix: str = ""
    number_format: Literal["e164", "national", "digits"] = "e164"
    # A loopback test carrier that reaches no real person (the demo's SIPp). Only such a trunk may be
    # dialled outside calling hours; the check below makes it impossible to flag a real carrier this way.
    sandbox: bool = False

    @model_validator(mode="after")
    def _sandbox_is_loopback(self) -> TrunkConfig:
        if self.sandbox:
            host = self.proxy.split(":", 1)[1].split("@")[-1].split(":")[0].split(";")[0]
            if not (host.startswith("127.") or host in ("localhost", "[::1]")):
                raise ValueError(f"sandbox = true is only allowed for a loopback proxy, not {host!r}")
        return self

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be the NAME of an environment variable, not the secret itself")
        return v

    def password(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


class AgentConfig(_Section):
    login: Annotated[str, Field(min_length=1)]
    name: str = ""
    sip_uri: Annotated[str, Field(pattern=r"^sips?:")]
    segments: list[str] = Field(default_factory=list)


class RetryConfig(_Section):
    busy: str = "30m"
    no_answer: str = "4h"
    congestion: str = "10m"
    machine: str = "next_day"
    invalid: Literal["next_phone", "done"] = "next_phone"
    rejected: str = "1d"
    abandoned: str = "72h"
    # (dialer.domain.retry) answered without a disposition yet; local/trunk failures; our own cancel; a crash mid-call
    answered: str = "1d"
    failed: str = "10m"
    cancelled: str = "10m"
    interrupted: str = "30m"
    machine_shift: str = "3h"  # machine -> next day, this much later in the local calling day (wraps)
    # (issue 24) the network announced the number (early media or a "fake answer"); 非通知拒否; unusable codec
    unreachable: str = "1d"
    anonymous_rejected: str = "1h"
    failed_codec: str = "1h"

    @field_validator("busy", "no_answer", "congestion", "rejected", "abandoned", "answered", "failed", "cancelled",
                     "interrupted", "machine_shift", "unreachable", "anonymous_rejected", "failed_codec")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("machine")
    @classmethod
    def _machine(cls, v: str) -> str:
        if v != "next_day":
            parse_duration(v)
        return v


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _check_hours(v: tuple[str, str]) -> tuple[str, str]:
    start, end = v
    for t in v:
        if not _HHMM.match(t):
            raise ValueError(f"expected HH:MM times, got {t!r}")
    if start >= end:
        raise ValueError(f"start {start} must be before end {end}")
    if start < f"{EARLIEST_CALL:%H:%M}" or end > f"{LATEST_CALL:%H:%M}":
        raise ValueError(f"calls between {LATEST_CALL:%H:%M} and {EARLIEST_CALL:%H:%M} are never allowed")
    return v


def _check_closed(days: list[str]) -> list[str]:
    from dialer.domain.calling_hours import ClosedSpan

    for d in days:
        ClosedSpan.parse(d)
    return days


Segment = Literal["dormant", "pre_churn", "upsell", "cross_sell", "unpaid"]
SEGMENTS: tuple[Segment, ...] = ("dormant", "pre_churn", "upsell", "cross_sell")  # a call campaign's default


class CampaignConfig(_Section):
    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    mode: Literal["preview", "progressive", "power", "predictive"] = "predictive"
    # `unpaid` (issue 19) is meant for `dialer sms send`; a call campaign may list it too
    segments: list[Segment] = Field(default_factory=lambda: list(SEGMENTS))
    abandon_target: Annotated[float, Field(gt=0, le=ABANDON_LIMIT)] = 0.02
    abandon_limit: Annotated[float, Field(gt=0, le=ABANDON_LIMIT)] = ABANDON_LIMIT
    abandon_window: Literal["1h", "24h", "30d", "day", "campaign"] = "24h"
    # (issue 31) us_tsr / uk_ofcom / strict_hour / jp_cx fix the window and ceiling (README "Abandon regimes")
    abandon_regime: Literal["us", "uk", "us_tsr", "uk_ofcom", "strict_hour", "jp_cx"] = "us"
    connect_limit_s: Annotated[float, Field(gt=0, le=MAX_CONNECT_LIMIT_S)] = MAX_CONNECT_LIMIT_S
    calling_hours: tuple[str, str] = ("09:00", "20:00")
    holidays: str = "JP"  # a country code for the `holidays` package, or "" for none
    # (issue 27) hours that differ by weekday: { sat = ["09:00", "17:00"], sun = "closed" }; others keep
    # calling_hours. closed_days: the campaign's own closure days on top of [calendar] closed_days.
    weekday_hours: dict[Weekday, tuple[str, str] | Literal["closed"]] = Field(default_factory=dict)
    closed_days: list[str] = Field(default_factory=list)
    trunk: str = ""
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 6
    max_attempts_per_phone: Annotated[int, Field(ge=1, le=20)] = 3
    ring_timeout_s: Annotated[float, Field(ge=MIN_RING_S, le=120)] = 24.0
    max_lines_per_agent: Annotated[float, Field(ge=1, le=5)] = 3.0
    power_ratio: Annotated[float, Field(ge=1, le=5)] = 1.5
    wrap_up_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # cold-start priors for the pacing estimators (replaced by the campaign's own history once it has one)
    prior_hit_rate: Annotated[float, Field(gt=0, lt=1)] = 0.2
    prior_talk_s: Annotated[float, Field(gt=0)] = 180.0
    prior_wrap_s: Annotated[float, Field(ge=0)] = 30.0
    info_message: str = "config/sounds/info.wav"
    record_calls: bool = False
    # (issue 29) a WAV (16-bit mono, 8 kHz) played once to the customer, the agent and the recording when the
    # customer is bridged; "" = none. Only meaningful with record_calls (`dialer config check` warns otherwise)
    recording_notice: str = ""
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # hopper / scheduler (dialer.store.entries, dialer.schedule): callbacks and the campaign's calendar
    callback_reserve: str = "15m"  # a callback is held for the agent who set it this long after it is due
    callback_late_after: str = "5m"  # offered this long after its time: flagged callback_late
    callback_valid: str = "7d"  # a callback stays callable this long after its time
    active_days: str = "mon-sun"  # cron day_of_week: the days the scheduler starts the campaign
    active_from: date | None = None  # the campaign's calendar: first and last day it runs (inclusive)
    active_until: date | None = None
    # (issue 24) the number this campaign presents (From / P-Asserted-Identity; "" = the trunk's caller_id) and
    # an optional display name
    caller_id: str = ""
    caller_name: str = ""
    # answering-machine detection (dialer.amd): off = every answer goes to an agent
    amd: Literal["off", "detect"] = "off"
    amd_machine_action: Literal["hangup", "leave_message"] = "hangup"  # hangup -> the machine retry rule
    amd_message: str = ""  # leave_message: WAV played after the greeting's beep
    amd_budget_s: Annotated[float, Field(ge=1.0, le=10.0)] = 4.0  # no verdict by then = unsure (a person)
    # (issue 30) return calls (折り返し): what the pacer keeps agents for (README "Return calls", pacing.inbound)
    inbound_priority: Literal["inbound_first", "blended", "outbound_first"] = "inbound_first"
    return_call_prior_rate: Annotated[float, Field(ge=0, le=1)] = 0.10  # until the campaign measured its own
    return_call_mean_s: Annotated[float, Field(gt=0)] = 1800.0  # mean delay of a return call
    return_call_window_s: Annotated[float, Field(gt=0)] = 7200.0  # later than this after the missed call: none
    return_call_answer_s: Annotated[float, Field(ge=0)] = 20.0  # a return caller finds an agent within this

    @field_validator("recording_notice")
    @classmethod
    def _recording_notice(cls, v: str) -> str:
        """Fail at load (`config check`, `campaign run`): a notice the law or the client requires that silently
        does not play is worse than a campaign that does not start."""
        from dialer.sounds import wav_problem

        problem = wav_problem(v) if v.strip() else None
        if problem:
            raise ValueError(f"recording_notice: {problem}")
        return v

    @model_validator(mode="after")
    def _amd_message(self) -> CampaignConfig:
        if self.amd == "detect" and self.amd_machine_action == "leave_message" and not self.amd_message:
            raise ValueError("amd_machine_action = \"leave_message\" needs amd_message (a WAV file to play)")
        return self

    @field_validator("active_days")
    @classmethod
    def _days(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger(day_of_week=v)
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a cron day_of_week (e.g. \"mon-fri\", \"mon-sat\", \"mon,wed,fri\"): "
                             f"{exc}") from None
        return v

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, v: str) -> str:
        if v:
            import holidays as holidays_lib

            try:
                holidays_lib.country_holidays(v.upper(), years=2026)
            except NotImplementedError:
                raise ValueError(f"unknown holiday calendar {v!r} (a country code such as \"JP\", or \"\" for none)"
                                 ) from None
        return v

    @field_validator("callback_reserve", "callback_late_after", "callback_valid")
    @classmethod
    def _cb_dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("calling_hours")
    @classmethod
    def _hours(cls, v: tuple[str, str]) -> tuple[str, str]:
        return _check_hours(v)

    @field_validator("weekday_hours")
    @classmethod
    def _weekday_hours(cls, v: dict[str, tuple[str, str] | str]) -> dict[str, tuple[str, str] | str]:
        for day, hours in v.items():
            if not isinstance(hours, str):
                try:
                    _check_hours(hours)
                except ValueError as exc:
                    raise ValueError(f"{day}: {exc}") from None
        return v

    @field_validator("closed_days")
    @classmethod
    def _closed(cls, v: list[str]) -> list[str]:
        return _check_closed(v)

    @field_validator("abandon_target", "abandon_limit", mode="before")
    @classmethod
    def _fraction(cls, v: Any) -> Any:
        """2 means 2 %, not 200 %: a whole-number percentage is refused with the fraction it meant."""
        if isinstance(v, int | float) and not isinstance(v, bool) and 1 <= v <= 100:
            raise ValueError(f"{v:g} is read as a fraction ({v * 100:g} %); did you mean {v / 100:g} ({v:g} %)?")
        if isinstance(v, int | float) and not isinstance(v, bool) and ABANDON_LIMIT < v < 1:
            raise ValueError(f"{v:g} ({v * 100:g} %) is above the legal ceiling {ABANDON_LIMIT:g} "
                             f"({ABANDON_LIMIT * 100:g} %)")
        return v

    @model_validator(mode="after")
    def _target_below_limit(self) -> CampaignConfig:
        if self.abandon_target > self.abandon_limit:
            raise ValueError(f"abandon_target {self.abandon_target} is above abandon_limit {self.abandon_limit}")
        return self


class LtvConfig(_Section):
    formula: Literal["aov_freq_years", "revenue_margin_years", "aov_freq_years_minus_cost", "discounted_profit"] = (
        "aov_freq_years"
    )
    years: Annotated[float, Field(gt=0)] = 5.0
    margin: Annotated[float, Field(gt=0, le=1)] = 0.6
    acquisition_cost: float = 0.0
    retention_cost: float = 0.0
    discount_rate: Annotated[float, Field(ge=0, lt=1)] = 0.1


class HoldoutConfig(_Section):
    """`[lists.holdout]`: the share of each segment kept from calling as a control group (lists.holdout)."""

    share: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    seed: str = "tsunagu"
    period: Annotated[str, Field(min_length=1)] = "month"  # month | quarter | week | year | a fixed label
    segments: dict[str, Annotated[float, Field(ge=0, le=0.5)]] = Field(default_factory=dict)
    # (issue 26) a named experiment: assignment keyed by customer and this name (not the calendar), drawn on
    # builds from `start` to `end`; its control customers are never contacted until `end` (the measurement)
    experiment: str = ""
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _experiment_window(self) -> HoldoutConfig:
        if self.experiment and (self.start is None or self.end is None):
            raise ValueError(f"experiment {self.experiment!r} needs start and end dates (its measurement window)")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class ListsConfig(_Section):
    region: str = "JP"
    dormant_min_days: Annotated[int, Field(ge=1)] = 180
    dormant_max_days: Annotated[int, Field(ge=1)] = 1460
    pre_churn_min_hazard: Annotated[float, Field(ge=0, le=1)] = 0.15
    pre_churn_days_before: tuple[int, int] = (5, 1)
    upsell_days_before: Annotated[int, Field(ge=0)] = 5
    upsell_days_after: Annotated[int, Field(ge=0)] = 7
    cross_sell_lookback_days: Annotated[int, Field(ge=1)] = 365
    horizon_days: Annotated[int, Field(ge=1)] = 14
    cost_per_attempt: float = 50.0
    # expected value of a call: P(reach) x P(convert | segment) x delta-value - cost (see lists/README.md)
    loyal_min_orders: Annotated[int, Field(ge=2)] = 5
    cooling_off_days: Annotated[int, Field(ge=0)] = 8
    p_reach: Annotated[float, Field(gt=0, le=1)] = 0.5
    p_convert: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: {"dormant": 0.05, "pre_churn": 0.3, "upsell": 0.4, "cross_sell": 0.3})
    ltv: LtvConfig = Field(default_factory=LtvConfig)
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    # (issue 12) safety and output options of `dialer lists build`; see lists/README.md
    block_customer_on_bad_phone: bool = True
    csv_encoding: Literal["utf-8", "utf-8-sig", "cp932"] = "utf-8"
    max_withdraw_share: Annotated[float, Field(ge=0, le=1)] = 0.2
    lock_wait_s: Annotated[float, Field(ge=0)] = 60.0


class SchedulesConfig(_Section):
    timezone: str = "Asia/Tokyo"
    nightly_list_build: str = "0 2 * * *"
    list_mapping: str = "config/mappings/canonical.toml"
    list_input: str = "var/crm"
    list_out: str = "var/lists"
    # (dialer.schedule) a nightly build missed while the scheduler was down still runs if it is late by less
    # than this; later than that it is skipped (and recorded) rather than run in business hours
    list_build_grace: str = "6h"
    launch_runners: bool = False  # campaign start jobs also spawn `dialer campaign run` when none is live

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as \"Asia/Tokyo\")") from None
        return v

    @field_validator("nightly_list_build")
    @classmethod
    def _cron(cls, v: str) -> str:
        cron_expression(v)
        return v

    def nightly_cron(self) -> str:
        """The nightly build's crontab line ("02:00" is daily at 02:00 in `timezone`)."""
        return cron_expression(self.nightly_list_build)

    @field_validator("list_build_grace")
    @classmethod
    def _grace(cls, v: str) -> str:
        parse_duration(v)
        return v


class BusinessConfig(_Section):
    """Who is calling: the opening lines of a solicitation call must name the business (特定商取引法)."""

    name: str = ""  # required with a real (non-sandbox) trunk: `dialer config check` fails without it
    phone: str = ""  # where customers can call back with a complaint; required like the name

    def missing(self) -> list[str]:
        """The settings the opening lines need but the config leaves empty."""
        return [f"[business] {k}" for k in ("name", "phone") if not getattr(self, k).strip()]


class OutcomesConfig(_Section):
    """Where dispositions go back to the CRM; the token is read from the environment variable named here."""

    webhook_url: Annotated[str, Field(pattern=r"^(https?://.*)?$")] = ""
    token_env: str = "TSUNAGU_CRM_TOKEN"
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    retry_base_s: Annotated[float, Field(gt=0)] = 2.0
    retry_max_s: Annotated[float, Field(gt=0)] = 600.0
    # https only (issue 28); plain http only to a loopback test receiver, and only when said here
    allow_insecure_loopback: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _secure_endpoint(self) -> OutcomesConfig:
        check_endpoint(self.webhook_url, allow_insecure_loopback=self.allow_insecure_loopback,
                       allowed_hosts=self.allowed_hosts, what="webhook_url")
        return self

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be the NAME of an environment variable, not the token itself")
        return v

    def token(self) -> str:
        return os.environ.get(self.token_env, "") if self.token_env else ""


SMS_DEFAULT_TEMPLATE = (
    "【{business}】{name}様 ご注文代金{amount}円のお支払いが未確認です。"
    "こちらからお支払いいただけます: {link} 行き違いの際はご容赦ください。"
    "お問い合わせ: {business} {phone}"
)


class SmsConfig(_Section):
    """`[sms]`: the unpaid segment and the SMS gateway that sends its payment links (dialer.sms).

    The token and the payment-link signing secret are read from the environment variables named here. The
    template must identify the sender (business name and a contact number: 特定商取引法 / 特定電子メール法)
    and carry the link.
    """

    enabled: bool = False  # build the `unpaid` segment in the nightly list build
    max_amount: Annotated[float, Field(gt=0)] = 5000.0
    min_age_days: Annotated[int, Field(ge=0)] = 14
    max_age_days: Annotated[int, Field(ge=1)] = 365
    provider: Literal["generic"] = "generic"
    endpoint: Annotated[str, Field(pattern=r"^(https?://.*)?$")] = ""
    token_env: str = "TSUNAGU_SMS_TOKEN"
    sender_id: Annotated[str, Field(min_length=1, max_length=11)] = "TSUNAGU"
    rate_per_s: Annotated[float, Field(gt=0, le=100)] = 5.0
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    retry_base_s: Annotated[float, Field(gt=0)] = 2.0
    retry_max_s: Annotated[float, Field(gt=0)] = 600.0
    max_tries: Annotated[int, Field(ge=1, le=50)] = 8
    # the gateway's status API, `{key}` = the Idempotency-Key: GET 200 {"id": ...} = it has the message,
    # 404 = it never got it. Settles `unknown` messages (an ambiguous failure); without it an operator does
    status_url: Annotated[str, Field(pattern=r"^(https?://.*\{key\}.*)?$")] = ""
    payment_url: str = "https://pay.example.jp/p/{token}"
    link_secret_env: str = "TSUNAGU_PAYLINK_SECRET"
    template: str = SMS_DEFAULT_TEMPLATE
    max_chars: Annotated[int, Field(ge=70, le=670)] = 670
    # a loopback test gateway reaches no phone: quiet hours are not applied (like a sandbox trunk)
    sandbox: bool = False
    # https only (issue 28); plain http only to a loopback test gateway, and only when said here
    allow_insecure_loopback: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _secure_endpoints(self) -> SmsConfig:
        for what in ("endpoint", "status_url"):
            check_endpoint(getattr(self, what), allow_insecure_loopback=self.allow_insecure_loopback,
                           allowed_hosts=self.allowed_hosts, what=what)
        return self

    @model_validator(mode="after")
    def _sandbox_is_loopback(self) -> SmsConfig:
        if self.sandbox:
            host = re.sub(r"^https?://", "", self.endpoint).split("/")[0].rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise ValueError(f"sandbox = true is only allowed for a loopback gateway, not {host!r}")
        return self

    @field_validator("token_env", "link_secret_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if v and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be the NAME of an environment variable, not the secret itself")
        return v

    @field_validator("template")
    @classmethod
    def _identifies_sender(cls, v: str) -> str:
        missing = [k for k in ("{business}", "{phone}", "{link}") if k not in v]
        if missing:
            raise ValueError(f"the template must contain {', '.join(missing)} (sender identification and the link)")
        return v

    def token(self) -> str:
        return os.environ.get(self.token_env, "") if self.token_env else ""

    def link_secret(self) -> str:
        return os.environ.get(self.link_secret_env, "") if self.link_secret_env else ""


class CostsConfig(_Section):
    """`[costs]`: what calling costs, for the lift report's media ratio (sales ÷ cost)."""

    agent_hour_yen: Annotated[float, Field(ge=0)] = 2500.0
    telephony_per_minute_yen: Annotated[float, Field(ge=0)] = 3.0
    sms_yen: Annotated[float, Field(ge=0)] = 10.0


class ReportsConfig(_Section):
    # UK regime: the share of answering-machine verdicts assumed to be live people hung up on
    machine_false_positive_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    now_window: str = "15m"  # what the monitor's "now" abandon rate looks back over

    @field_validator("now_window")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v


class UiConfig(_Section):
    """The people-facing side: language of the views and how long a monitor command stays valid."""

    language: Annotated[str, Field(pattern=r"^(ja|en)?$")] = ""  # "" = from the locale (LANG)
    # a monitor command not applied within this time is expired, never applied late (nor by a later run)
    command_ttl: str = "10m"

    @field_validator("command_ttl")
    @classmethod
    def _ttl(cls, v: str) -> str:
        parse_duration(v)
        return v

    def command_ttl_s(self) -> float:
        return parse_duration(self.command_ttl)


class RecordingsConfig(_Section):
    """`[recordings]` (issue 29): how long call recordings are kept (a daily job and `dialer recordings purge`
    delete older ones and clear their paths); 0 = keep every recording."""

    keep_days: Annotated[int, Field(ge=0)] = 0


class InboundConfig(_Section):
    """`[inbound]` (issue 30): customers calling back the number a campaign presented (折り返し).

    An INVITE whose called number (Request-URI / To user) is a campaign's `caller_id` (else its trunk's) is that
    campaign's return call; `dids` adds numbers by hand (`"+81501234567" = "campaign name"`). Any other INVITE is
    refused 603 as before. `sip_port` is the inbound desk's own port (the trunk sends calls for the DIDs there).
    Prompts are WAV files (8 kHz mono); empty = spoken by espeak-ng in Japanese at start-up."""

    sip_port: Annotated[int, Field(ge=0, le=65535)] = 5070
    rtp_port: Annotated[int, Field(ge=1024, le=65535)] = 41000
    dids: dict[str, str] = Field(default_factory=dict)
    max_wait_s: Annotated[float, Field(gt=0, le=600)] = 30.0  # queued this long at most, then the menu
    menu_wait_s: Annotated[float, Field(gt=0, le=60)] = 8.0  # silence at the menu this long: goodbye
    business_wav: str = ""  # unknown callers first: the business's name and why we call ([business] name)
    queue_wav: str = ""
    menu_wav: str = ""
    hour_wav: str = ""
    callback_wav: str = ""
    dnc_wav: str = ""
    goodbye_wav: str = ""
    # several nodes (one desk per node on one shared store): the address the desk listens on, and the host:port
    # other desks redirect a caller to (SIP 302) when only this desk's agents are free ("" = bind:sip_port)
    bind: str = "127.0.0.1"
    address: str = ""


class CalendarConfig(_Section):
    """`[calendar]`: the centre's own closure days, for every campaign (public holidays: a campaign's `holidays`).

    "12-29..01-03 年末年始" and "08-13..08-16 お盆" recur every year; "2026-12-08 棚卸" is one day; the text
    after the space is the name shown when a call or a callback is refused for it.
    """

    closed_days: list[str] = Field(default_factory=list)

    @field_validator("closed_days")
    @classmethod
    def _closed(cls, v: list[str]) -> list[str]:
        return _check_closed(v)


class Config(_Section):
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    telephony: TelephonyConfig = Field(default_factory=TelephonyConfig)
    trunks: list[TrunkConfig] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list)
    campaigns: list[CampaignConfig] = Field(default_factory=list)
    lists: ListsConfig = Field(default_factory=ListsConfig)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)
    business: BusinessConfig = Field(default_factory=BusinessConfig)
    outcomes: OutcomesConfig = Field(default_factory=OutcomesConfig)
    ui: UiConfig = Field(default_factory=UiConfig)
    reports: ReportsConfig = Field(default_factory=ReportsConfig)
    sms: SmsConfig = Field(default_factory=SmsConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    calendar: CalendarConfig = Field(default_factory=CalendarConfig)
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    inbound: InboundConfig = Field(default_factory=InboundConfig)
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _cross_refs(self) -> Config:
        for kind, items, key in (("trunks", self.trunks, "name"), ("agents", self.agents, "login"),
                                 ("campaigns", self.campaigns, "name")):
            seen: set[str] = set()
            for item in items:
                value = getattr(item, key)
                if value in seen:
                    raise ValueError(f"[{kind}] {key} {value!r} appears twice")
                seen.add(value)
        for c in self.campaigns:  # the centre's closure days hold for every campaign (issue 27)
            c.closed_days = [*self.calendar.closed_days,
                             *(d for d in c.closed_days if d not in self.calendar.closed_days)]
        trunk_names = {t.name for t in self.trunks}
        for c in self.campaigns:
            if c.trunk and c.trunk not in trunk_names:
                raise ValueError(f"campaign {c.name!r} uses trunk {c.trunk!r}, which is not in [[trunks]]")
        return self

    def campaign(self, name: str) -> CampaignConfig:
        for c in self.campaigns:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.campaigns) or "none"
        raise UnknownNameError(f"{self.source}: no campaign named {name!r} (configured: {known})")

    def trunk(self, name: str) -> TrunkConfig:
        for t in self.trunks:
            if t.name == name:
                return t
        known = ", ".join(t.name for t in self.trunks) or "none"
        raise UnknownNameError(f"{self.source}: no trunk named {name!r} (configured: {known})")


def _export_hint(name: str) -> str:
    return f"set it before starting (e.g. `export {name}=...` in the service's environment file)"


def secret_problems(cfg: Config) -> tuple[list[str], list[str]]:
    """(errors, notes) about secrets named by the config but missing from the environment.

    Errors are exactly what would stop the telephony from starting (a trunk or the agent account that
    authenticates without its password: every call would fail), so `config check` refuses what `campaign run`
    would refuse. A password variable named by a trunk that does not authenticate is only a note.
    """
    errors: list[str] = []
    notes: list[str] = []
    for t in cfg.trunks:
        user = t.username or t.auth_username  # a trunk that authenticates needs its password
        if user and not t.password_env:
            errors.append(f"trunk {t.name!r} has username {user!r} but no password_env: set password_env to "
                          f"the NAME of the environment variable that holds its password")
        elif t.password_env and not t.password():
            msg = f"trunk {t.name!r}: environment variable {t.password_env} (password_env) is not set or empty"
            if user:
                errors.append(f"{msg}; {_export_hint(t.password_env)}")
            else:
                notes.append(f"{msg} (unused while the trunk has no username; if the carrier asks for "
                             f"authentication, {_export_hint(t.password_env)})")
    tc = cfg.telephony
    if tc.agent_username and not tc.agent_password():
        name = tc.agent_password_env or "AGENT_PASSWORD"
        errors.append(f"[telephony] agent_username is set but agent_password_env "
                      f"({tc.agent_password_env or 'unset'}) names no set environment variable; {_export_hint(name)}")
    return errors, notes


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """('campaigns', 0, 'abandon_target') -> "[campaigns][0] (name 'demo').abandon_target"."""
    parts: list[str] = []
    node = data
    for i, p in enumerate(loc):
        if isinstance(p, int):
            label = f"[{p}]"
            if isinstance(node, list) and p < len(node) and isinstance(node[p], dict):
                for k in ("name", "login"):
                    if k in node[p]:
                        label = f"[{p}] ({k} {node[p][k]!r})"
                        break
            parts.append(label)
        else:
            parts.append(("." if i else "") + str(p) if parts else str(p))
        try:
            node = node[p]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "(top level)"


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at LOC (a key's location without the key) accepts, by walking the models."""
    model: Any = Config
    for p in loc:
        if isinstance(p, int):
            continue
        field = model.model_fields.get(p) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _unknown_key(loc: tuple[Any, ...]) -> str:
    """The message for a key no section has: the nearest known key when one is close (difflib)."""
    import difflib

    key = str(loc[-1]) if loc else ""
    known = [k for k in _known_keys(loc[:-1]) if k != "source"]
    near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if near:
        return f"unknown key; did you mean {near[0]!r}?"
    return "unknown key (check the spelling; see config/tsunagu.toml for the keys that exist)"


def _explain(err: ValidationError, data: Any) -> list[str]:
    lines = []
    for e in err.errors():
        where = _loc(tuple(e["loc"]), data)
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = _unknown_key(tuple(e["loc"]))
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and kind != "value_error" and not isinstance(e["input"], dict | list):
                msg += f" (got {e['input']!r})"
        lines.append(f"{where}: {msg}")
    return lines


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        lines = _explain(exc, data)
        raise ConfigError(f"{source}: " + ("\n" + " " * (len(source) + 2)).join(lines)) from None
    cfg.source = source
    return cfg


def load_config(path: str | Path | None = None) -> Config:
    """Load PATH, else $TSUNAGU_CONFIG, else config/tsunagu.toml; embedded defaults if none exists."""
    chosen = Path(path) if path else Path(os.environ[ENV_CONFIG]) if os.environ.get(ENV_CONFIG) else None
    if chosen is None:
        if DEFAULT_CONFIG.exists():
            chosen = DEFAULT_CONFIG
        else:
            cfg = Config()
            cfg.source = "<defaults>"
            return cfg
    try:
        text = chosen.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: no such config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{chosen}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{chosen}: cannot read ({exc.strerror})") from None
    return parse_config(text, str(chosen))
