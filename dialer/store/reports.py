"""The rows reports recount from (attempts, dispositions, the agent state log, blocks), read in one session.

Reports never trust the runner's live status: they recount from these (dialer.reports does the arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.errors import UserError
from dialer.store.entries import penetration
from dialer.store.models import (
    Agent,
    AgentStateLog,
    Attempt,
    Block,
    CallListEntry,
    Campaign,
    CampaignStatus,
    Customer,
    Disposition,
)


@dataclass
class CampaignRows:
    campaign: Campaign
    attempts: list[Attempt]
    dispositions: list[Disposition]
    agents: dict[int, Agent]
    state_log: list[AgentStateLog]
    status: CampaignStatus | None = None  # the runner's heartbeat: up to when an open agent stretch counts
    penetration: dict[str, dict[str, int]] = field(default_factory=dict)


def _load_campaign(s: Session, name: str) -> Campaign:
    camp = s.exec(select(Campaign).where(Campaign.name == name)).first()
    if camp is None:
        known = ", ".join(s.exec(select(Campaign.name)).all()) or "none"
        raise UserError(f"no campaign named {name!r} in the store (known: {known})")
    return camp


def campaign_rows(engine: Engine, name: str) -> CampaignRows:
    """Everything `campaign_report` counts, for campaign NAME (UserError if the store does not know it)."""
    with Session(engine, expire_on_commit=False) as s:
        camp = _load_campaign(s, name)
        attempts = list(s.exec(select(Attempt).where(Attempt.campaign_id == camp.id).order_by(col(Attempt.id))).all())
        disps = list(s.exec(select(Disposition).where(Disposition.campaign_id == camp.id)).all())
        agents = {a.id: a for a in s.exec(select(Agent)).all() if a.id is not None}
        agent_ids = {a.agent_id for a in attempts if a.agent_id is not None}
        tagged = set(s.exec(select(AgentStateLog.agent_id).where(AgentStateLog.campaign_id == camp.id)).all())
        log = list(s.exec(select(AgentStateLog).where(
            (col(AgentStateLog.campaign_id) == camp.id)
            | (col(AgentStateLog.campaign_id).is_(None) & col(AgentStateLog.agent_id).in_(agent_ids | tagged))
        )).all())
        status = s.get(CampaignStatus, camp.id)
    return CampaignRows(camp, attempts, disps, agents, log, status, penetration(engine, list(camp.segments)))


@dataclass
class ComplianceRows:
    campaigns: list[Campaign]
    entry_tz: dict[int | None, str]
    entry_sku: dict[int | None, str]
    entry_prefecture: dict[int | None, str]  # the customer's prefecture, one of the zones a contact may be in
    attempts: list[Attempt]  # every campaign's, by dial time
    dispositions: list[Disposition]  # dnc and refusals, by id
    blocks: list[Block]


def compliance_rows(engine: Engine, campaign: str | None = None) -> ComplianceRows:
    with Session(engine, expire_on_commit=False) as s:
        q = select(Campaign).order_by(col(Campaign.name))
        if campaign:
            _load_campaign(s, campaign)
            q = q.where(Campaign.name == campaign)
        camps = list(s.exec(q).all())
        entries = s.exec(select(CallListEntry.id, CallListEntry.timezone, CallListEntry.sku)).all()
        prefs = s.exec(select(CallListEntry.id, Customer.prefecture).join(
            Customer, col(Customer.customer_id) == col(CallListEntry.customer_id))).all()
        # dials only: a return call (issue 30) after a DNC is the customer calling us, not a dial after the DNC
        attempts = list(s.exec(select(Attempt).where(col(Attempt.direction) != "inbound")
                               .order_by(col(Attempt.dialed_at))).all())
        disps = list(s.exec(select(Disposition).where(col(Disposition.outcome).in_(("dnc", "refused")))
                            .order_by(col(Disposition.id))).all())
        blocks = list(s.exec(select(Block)).all())
    entry_tz: dict[int | None, str] = {i: tz for i, tz, _ in entries}
    entry_sku: dict[int | None, str] = {i: sku for i, _, sku in entries}
    entry_pref: dict[int | None, str] = {i: p or "" for i, p in prefs}
    return ComplianceRows(camps, entry_tz, entry_sku, entry_pref, attempts, disps, blocks)


__all__ = ["CampaignRows", "ComplianceRows", "campaign_rows", "compliance_rows"]
