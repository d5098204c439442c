"""A campaign's rules as one frozen object, built once from config: durations parsed, hours checked, enums set.

Why: the config is text ('30m', ("09:00", "20:00"), 'predictive'); every rule that reads it parsed it again,
and two readers could disagree. The policy is parsed once at start-up (dialer.settings) and passed to
the hopper, the retry rules, the console and the reports.

`CampaignPolicy.of` accepts anything shaped like the config's campaign section (a Protocol, so the domain
does not import the config module, which reads files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from dialer.domain.calling_hours import CallingHours
from dialer.domain.durations import parse_duration
from dialer.domain.legal import ABANDON_LIMIT, MAX_CONNECT_LIMIT_S, MIN_RING_S
from dialer.domain.vocabulary import AbandonWindow, CallOutcome, Mode, Regime


class RetrySource(Protocol):
    """The `[campaigns.retry]` section as the config holds it (strings)."""

    @property
    def busy(self) -> str: ...
    @property
    def no_answer(self) -> str: ...
    @property
    def congestion(self) -> str: ...
    @property
    def machine(self) -> str: ...
    @property
    def invalid(self) -> str: ...
    @property
    def rejected(self) -> str: ...
    @property
    def abandoned(self) -> str: ...
    @property
    def answered(self) -> str: ...
    @property
    def failed(self) -> str: ...
    @property
    def cancelled(self) -> str: ...
    @property
    def interrupted(self) -> str: ...
    @property
    def machine_shift(self) -> str: ...


class CampaignSource(Protocol):
    """A `[[campaigns]]` section as the config holds it."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def segments(self) -> Sequence[str]: ...
    @property
    def abandon_target(self) -> float: ...
    @property
    def abandon_limit(self) -> float: ...
    @property
    def abandon_window(self) -> str: ...
    @property
    def abandon_regime(self) -> str: ...
    @property
    def connect_limit_s(self) -> float: ...
    @property
    def calling_hours(self) -> tuple[str, str]: ...
    @property
    def holidays(self) -> str: ...
    @property
    def trunk(self) -> str: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def max_attempts_per_phone(self) -> int: ...
    @property
    def ring_timeout_s(self) -> float: ...
    @property
    def max_lines_per_agent(self) -> float: ...
    @property
    def power_ratio(self) -> float: ...
    @property
    def wrap_up_timeout_s(self) -> float: ...
    @property
    def prior_hit_rate(self) -> float: ...
    @property
    def prior_talk_s(self) -> float: ...
    @property
    def prior_wrap_s(self) -> float: ...
    @property
    def info_message(self) -> str: ...
    @property
    def record_calls(self) -> bool: ...
    @property
    def retry(self) -> RetrySource: ...
    @property
    def callback_reserve(self) -> str: ...
    @property
    def callback_late_after(self) -> str: ...
    @property
    def callback_valid(self) -> str: ...
    @property
    def active_days(self) -> str: ...
    @property
    def active_from(self) -> date | None: ...
    @property
    def active_until(self) -> date | None: ...


def _td(text: str) -> timedelta:
    return timedelta(seconds=parse_duration(text))


_LATE_RETRY = {"unreachable": "1d", "anonymous_rejected": "1h", "failed_codec": "1h"}


@dataclass(frozen=True)
class RetryRules:
    """When to try a contact again after each outcome (see dialer.domain.retry)."""

    delays: dict[CallOutcome, timedelta] = field(default_factory=dict)
    machine_delay: timedelta | None = None  # None: the next day, `machine_shift` later in the calling day
    machine_shift: timedelta = timedelta(hours=3)
    invalid_done: bool = False  # an invalid number ends the contact instead of moving to the next number
    abandon_lock: timedelta = timedelta(hours=72)

    @classmethod
    def of(cls, r: RetrySource) -> RetryRules:
        delays = {CallOutcome(name): _td(getattr(r, name)) for name in
                  ("busy", "no_answer", "congestion", "rejected", "failed", "cancelled", "interrupted", "answered")}
        # (issue 24) the network announced / 非通知拒否 / a codec we cannot speak: never a quick retry spree
        for name, default in _LATE_RETRY.items():
            delays[CallOutcome(name)] = _td(str(getattr(r, name, default)))
        return cls(delays=delays, machine_delay=None if r.machine == "next_day" else _td(r.machine),
                   machine_shift=_td(r.machine_shift), invalid_done=r.invalid == "done",
                   abandon_lock=_td(r.abandoned))

    def delay(self, outcome: str) -> timedelta:
        """The plain delay after OUTCOME (anything unknown is treated as a failure)."""
        try:
            return self.delays[CallOutcome(outcome)]
        except (KeyError, ValueError):
            return self.delays.get(CallOutcome.FAILED, timedelta(minutes=10))


@dataclass(frozen=True)
class CampaignPolicy:
    """Everything a campaign's rules need, parsed and checked against the law (dialer.domain.legal)."""

    name: str
    mode: Mode = Mode.PREDICTIVE
    segments: tuple[str, ...] = ()
    abandon_target: float = 0.02
    abandon_limit: float = ABANDON_LIMIT
    abandon_window: AbandonWindow = AbandonWindow.DAY_24H
    abandon_regime: Regime = Regime.US
    connect_limit_s: float = MAX_CONNECT_LIMIT_S
    hours: CallingHours = field(default_factory=CallingHours)
    trunk: str = ""
    max_attempts: int = 6
    max_attempts_per_phone: int = 3
    ring_timeout_s: float = 24.0
    max_lines_per_agent: float = 3.0
    power_ratio: float = 1.5
    wrap_up_timeout_s: float = 60.0
    prior_hit_rate: float = 0.2
    prior_talk_s: float = 180.0
    prior_wrap_s: float = 30.0
    info_message: str = ""
    record_calls: bool = False
    retry: RetryRules = field(default_factory=RetryRules)
    callback_reserve: timedelta = timedelta(minutes=15)
    callback_late_after: timedelta = timedelta(minutes=5)
    callback_valid: timedelta = timedelta(days=7)
    active_days: str = "mon-sun"
    active_from: date | None = None
    active_until: date | None = None

    def __post_init__(self) -> None:
        if not 0 < self.abandon_target <= self.abandon_limit <= ABANDON_LIMIT:
            raise ValueError(f"campaign {self.name!r}: need 0 < abandon_target <= abandon_limit <= {ABANDON_LIMIT}")
        if self.ring_timeout_s < MIN_RING_S:
            raise ValueError(f"campaign {self.name!r}: ring_timeout_s must be at least {MIN_RING_S:g} s")
        if not 0 < self.connect_limit_s <= MAX_CONNECT_LIMIT_S:
            raise ValueError(f"campaign {self.name!r}: connect_limit_s must be in (0, {MAX_CONNECT_LIMIT_S:g}]")

    @classmethod
    def of(cls, c: CampaignSource | CampaignPolicy) -> CampaignPolicy:
        """Parse a config section once (a policy passes through unchanged)."""
        if isinstance(c, CampaignPolicy):
            return c
        return cls(
            name=c.name, mode=Mode(c.mode), segments=tuple(c.segments), abandon_target=c.abandon_target,
            abandon_limit=c.abandon_limit, abandon_window=AbandonWindow(c.abandon_window),
            abandon_regime=Regime(c.abandon_regime), connect_limit_s=c.connect_limit_s,
            hours=CallingHours.from_campaign(c.calling_hours, c.holidays, getattr(c, "weekday_hours", None),
                                             getattr(c, "closed_days", ())), trunk=c.trunk,
            max_attempts=c.max_attempts, max_attempts_per_phone=c.max_attempts_per_phone,
            ring_timeout_s=c.ring_timeout_s, max_lines_per_agent=c.max_lines_per_agent, power_ratio=c.power_ratio,
            wrap_up_timeout_s=c.wrap_up_timeout_s, prior_hit_rate=c.prior_hit_rate, prior_talk_s=c.prior_talk_s,
            prior_wrap_s=c.prior_wrap_s, info_message=c.info_message, record_calls=c.record_calls,
            retry=RetryRules.of(c.retry), callback_reserve=_td(c.callback_reserve),
            callback_late_after=_td(c.callback_late_after), callback_valid=_td(c.callback_valid),
            active_days=c.active_days, active_from=c.active_from, active_until=c.active_until)

    @property
    def holidays(self) -> str:
        return self.hours.holidays


__all__ = ["CampaignPolicy", "CampaignSource", "RetryRules", "RetrySource"]
