"""The store's schema: one table per thing the dialer must remember across a crash.

Datetimes are timezone-aware UTC (sqlmodel's UTCDateTime stores them as UTC and hands them back aware, on
SQLite as on PostgreSQL); naive datetimes are refused at write time, so a local time can never sneak in.
Lists of phones and rule maps are JSON columns so a contact keeps its ordered numbers in one row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Aware UTC now: the one clock format every table uses."""
    return datetime.now(UTC)


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself (schema version, created-at)."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


# --- CRM mirror ---------------------------------------------------------------------------------------


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    customer_id: str = Field(primary_key=True)
    name: str = ""
    name_kana: str = ""
    phone: str = ""
    phone2: str = ""
    email: str = ""
    prefecture: str = ""
    created_at: date | None = None
    tel_ok: bool = True
    withdrawn: bool = False
    caution: bool = False
    ltv: float = 0.0
    notes: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class Product(SQLModel, table=True):
    __tablename__ = "products"
    sku: str = Field(primary_key=True)
    name: str = ""
    days_per_unit: float | None = None
    is_trial: bool = False
    upgrade_sku: str = ""
    related_skus: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    price: float = 0.0
    unit_cost: float = 0.0


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    order_id: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    ordered_at: date | None = None
    shipped_at: date | None = None
    status: str = "shipped"  # shipped | cancelled | returned | pending
    channel: str = ""
    subscription_id: str = ""
    cycle_no: int | None = None
    total: float = 0.0


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_lines"
    # one mirrored line per product of an order (quantities summed): concurrent mirrors cannot duplicate
    __table_args__ = (UniqueConstraint("order_id", "sku", name="uq_order_line_sku"),)
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(index=True)
    sku: str
    quantity: int = 1
    unit_price: float = 0.0


class Subscription(SQLModel, table=True):
    __tablename__ = "subscriptions"
    subscription_id: str = Field(primary_key=True)
    customer_id: str = Field(index=True)
    sku: str
    quantity: int = 1
    status: str = "active"  # active | paused | cancelled | completed
    started_at: date | None = None
    interval_days: int | None = None
    next_ship_date: date | None = None
    change_deadline: date | None = None
    shipments_count: int = 0
    cancelled_at: date | None = None
    cancel_reason: str = ""


class Block(SQLModel, table=True):
    """A reason never to dial: by phone, by customer, or both; a refusal may be scoped to one product.

    `until` is empty for permanent blocks; the 72 h lock after an abandoned call sets it.
    """

    __tablename__ = "blocks"
    # a CRM block is added once, however many builds run at the same time
    __table_args__ = (
        Index("uq_blocks_crm", func.coalesce(text("phone_e164"), ""), func.coalesce(text("customer_id"), ""),
              "kind", "product_scope", unique=True, sqlite_where=text("source = 'crm'"),
              postgresql_where=text("source = 'crm'")),
    )
    id: int | None = Field(default=None, primary_key=True)
    phone_e164: str | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    kind: str  # dnc | refusal | no_consent | abandon_lock
    product_scope: str = ""
    since: datetime = Field(default_factory=utcnow)
    until: datetime | None = None
    source: str = ""  # crm | disposition | dialer
    reason: str = ""


# --- Campaigns and lists ------------------------------------------------------------------------------


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    mode: str = "predictive"  # preview | progressive | power | predictive
    segments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    abandon_target: float = 0.02
    abandon_limit: float = 0.03
    abandon_window: str = "24h"  # 1h | 24h | 30d | day | campaign
    abandon_regime: str = "us"  # us | uk
    connect_limit_s: float = 2.0
    calling_hours_start: str = "09:00"
    calling_hours_end: str = "20:00"
    holidays: str = "JP"
    trunk: str = ""
    max_attempts: int = 6
    max_attempts_per_phone: int = 3
    ring_timeout_s: float = 24.0
    max_lines_per_agent: float = 3.0
    power_ratio: float = 1.5
    retry_rules: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    info_message: str = ""
    record_calls: bool = False
    state: str = "stopped"  # stopped | running | paused
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CallListEntry(SQLModel, table=True):
    """One contact in one segment: what the hopper leases and the dialer works through.

    `phones` is the ordered list of E.164 numbers (best first); `phone_index` points at the one in use and
    `attempts_by_phone` counts dials per number so the hopper can rotate before giving up.
    """

    __tablename__ = "call_list_entries"
    __table_args__ = (
        UniqueConstraint("customer_id", "segment", name="uq_entry_customer_segment"),
        Index("ix_entry_status_next", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    customer_id: str = Field(index=True)
    segment: str = Field(index=True)  # dormant | pre_churn | upsell | cross_sell | callback
    sub_segment: str = ""
    sku: str = ""  # the OFFERED product (offer_sku): refusal scope, screen pop, sale default
    qualifying_sku: str = ""  # the product that put the customer on the list (the trial for an upsell)
    reason: str = ""
    phones: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    phone_index: int = 0
    attempts_by_phone: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    priority: float = 0.0
    callable_from: datetime | None = None
    callable_until: datetime | None = None
    timezone: str = "Asia/Tokyo"
    attempts: int = 0
    # pending | leased | dialing | done | exhausted | withdrawn | blocked
    status: str = Field(default="pending", index=True)
    status_reason: str = ""
    next_attempt_at: datetime | None = None
    last_outcome: str = ""
    last_attempt_at: datetime | None = None
    lease_owner: str = ""
    lease_expires_at: datetime | None = None
    callback_at: datetime | None = None
    callback_agent: str = ""
    callback_reserved_until: datetime | None = None
    callback_late: bool = False
    locked_until: datetime | None = None
    # hopper bookkeeping (dialer.store.entries): the unique token of the lease that won the row, the attempt being
    # dialled, numbers found unusable (phone -> invalid | wrong_number | dnc), a per-entry attempt cap
    # raised by a callback
    lease_token: str = Field(default="", index=True)
    current_attempt_id: int | None = None
    phone_flags: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attempt_limit: int | None = None
    build_date: date | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


# --- Calls ---------------------------------------------------------------------------------------------


class Attempt(SQLModel, table=True):
    """One row per dial, written before the INVITE leaves so a crash can never lose or repeat it."""

    __tablename__ = "attempts"
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int | None = Field(default=None, index=True)
    entry_id: int | None = Field(default=None, index=True)
    customer_id: str = Field(default="", index=True)
    segment: str = ""
    phone_e164: str = ""
    trunk: str = ""
    worker: str = ""
    state: str = Field(default="dialing", index=True)  # dialing | ringing | answered | connected | ended | interrupted
    dialed_at: datetime = Field(default_factory=utcnow, index=True)
    ringing_at: datetime | None = None
    answered_at: datetime | None = None
    agent_connected_at: datetime | None = None
    ended_at: datetime | None = None
    sip_status: int | None = None
    # answered | busy | no_answer | invalid | rejected | congestion | cancelled | machine | failed | interrupted
    outcome: str = ""
    abandoned: bool = False
    machine: bool = False
    # answering-machine detection: human | machine | unsure | hangup ("" = AMD off), when, and why (JSON)
    amd_verdict: str = ""
    amd_decided_s: float | None = None
    amd_features: str = ""
    agent_id: int | None = Field(default=None, index=True)
    hangup_by: str = ""  # customer | agent | dialer
    recording_path: str = ""
    detail: str = ""
    # (issue 18) the node that dialled it and that node's membership epoch ("" / 0: single-host runner)
    node_id: str = Field(default="", index=True, sa_column_kwargs={"server_default": ""})
    node_epoch: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # (issue 30) outbound | inbound (a return call: campaign_id NULL, answers_attempt_id = the call it answers)
    direction: str = Field(default="outbound", sa_column_kwargs={"server_default": "outbound"})
    answers_attempt_id: int | None = Field(default=None, index=True)


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    id: int | None = Field(default=None, primary_key=True)
    login: str = Field(unique=True, index=True)
    name: str = ""
    sip_uri: str = ""
    segments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # logged_out | ready | reserved | on_call | wrap_up | paused | unavailable
    state: str = "logged_out"
    state_since: datetime = Field(default_factory=utcnow)
    ready_since: datetime | None = None
    pause_reason: str = ""
    # what the agent asked for while on a call (ready | paused | logged_out); applied after wrap-up
    pending_state: str = ""
    campaign_id: int | None = None
    current_attempt_id: int | None = None
    # (issue 18) the node whose workers place this agent's legs ("" = unassigned)
    node_id: str = Field(default="", sa_column_kwargs={"server_default": ""})


class Disposition(SQLModel, table=True):
    __tablename__ = "dispositions"
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int | None = Field(default=None, index=True)
    agent_id: int | None = None
    customer_id: str = Field(default="", index=True)
    campaign_id: int | None = None
    # sale | upsell | cross_sell | callback | refused | dnc | wrong_number | machine | no_interest | other
    outcome: str
    amount: float = 0.0
    sku: str = ""
    reason_code: str = ""
    voc_text: str = ""
    callback_at: datetime | None = None
    source: str = "console"  # console | dtmf | timeout
    created_at: datetime = Field(default_factory=utcnow, index=True)


class ControlCommand(SQLModel, table=True):
    """A manager's command to a running campaign (pause, resume, stop, mode, target), kept as an audit."""

    __tablename__ = "control_commands"
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(index=True)
    command: str
    argument: str = ""
    requested_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    applied_at: datetime | None = None
    result: str = ""


class CampaignStatus(SQLModel, table=True):
    """The runner's live view of a campaign, rewritten every second so a monitor on another host can read it."""

    __tablename__ = "campaign_status"
    campaign_id: int = Field(primary_key=True)
    runner: str = ""  # host:pid of the runner holding the campaign
    heartbeat_at: datetime = Field(default_factory=utcnow)
    mode: str = ""  # the mode in effect (may be progressive after an abandon-budget drop)
    dial_level: float = 0.0
    lines_dialing: int = 0
    lines_ringing: int = 0
    waiting_for_agent: int = 0
    hit_rate: float = 0.0
    aht_s: float = 0.0
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CampaignEvent(SQLModel, table=True):
    """Things a campaign says about itself (mode dropped to progressive, trunk down, worker restarted)."""

    __tablename__ = "campaign_events"
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int | None = Field(default=None, index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    level: str = "info"
    kind: str = ""
    message: str = ""


# --- Agent time and CRM feedback (views, reports, outcomes) -------------------------------------------


class AgentStateLog(SQLModel, table=True):
    """One row per stretch of time an agent spent in one state: occupancy's denominator comes from here.

    Written by `dialer.store.agents.log_agent_state` from both the console and the runner, so the history is
    complete whoever moved the agent; the open stretch has `ended_at` empty.
    """

    __tablename__ = "agent_state_log"
    id: int | None = Field(default=None, primary_key=True)
    agent_id: int = Field(index=True)
    state: str
    campaign_id: int | None = None
    started_at: datetime = Field(default_factory=utcnow, index=True)
    ended_at: datetime | None = None
    detail: str = ""  # pause reason, or who made the change


class OutboxItem(SQLModel, table=True):
    """An outcome waiting to reach the CRM: written with the disposition, deleted never, marked when delivered.

    Durable so a CRM outage loses nothing; `idempotency_key` is sent with every try so the CRM can drop
    repeats of a delivery whose acknowledgement was lost.
    """

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    disposition_id: int = Field(unique=True, index=True)
    idempotency_key: str = Field(unique=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", index=True)  # pending | delivered | dead
    tries: int = 0
    next_try_at: datetime = Field(default_factory=utcnow)
    last_error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class InboundDesk(SQLModel, table=True):
    """(issue 30) A running inbound desk (`dialer inbound run`): the SIP address a trunk can be redirected to (302)
    to reach the agents it serves, and its heartbeat. A desk whose beat stops is dead: another desk closes the
    return calls it left open (recorded, never lost silently) and frees the agents it held."""

    __tablename__ = "inbound_desks"
    desk_id: str = Field(primary_key=True)  # host:port of its SIP transport
    address: str = ""  # host:port the trunk is redirected to
    agents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # logins it rings
    started_at: datetime = Field(default_factory=utcnow)
    beat_at: datetime = Field(default_factory=utcnow, index=True)
