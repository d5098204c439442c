"""The monitor's read model: one campaign's row, the runner's live status, its agents (and whom each is
talking to), recent events and commands. The monitor decides what to show of it (dialer.views.monitor)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.store.models import (
    Agent,
    Attempt,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    ControlCommand,
    Customer,
)


@dataclass
class MonitorRows:
    campaign: Campaign
    status: CampaignStatus | None
    agents: list[tuple[Agent, str]]  # every agent, and who their current call is with ("" when none)
    events: list[CampaignEvent]  # newest first
    commands: list[ControlCommand]  # newest first


def monitor_rows(engine: Engine, name: str, events: int = 3, commands: int = 4) -> MonitorRows:
    with Session(engine, expire_on_commit=False) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == name)).one()
        st = s.get(CampaignStatus, camp.id)
        agents = []
        for a in s.exec(select(Agent).order_by(col(Agent.login))).all():
            who = ""
            if a.current_attempt_id is not None:
                att = s.get(Attempt, a.current_attempt_id)
                if att is not None:
                    cust = s.get(Customer, att.customer_id)
                    who = (cust.name if cust and cust.name else att.customer_id) + (
                        f" [{att.segment}]" if att.segment else "")
            agents.append((a, who))
        evs = list(s.exec(select(CampaignEvent).where(CampaignEvent.campaign_id == camp.id)
                          .order_by(col(CampaignEvent.id).desc()).limit(events)).all())
        cmds = list(s.exec(select(ControlCommand).where(ControlCommand.campaign == name)
                           .order_by(col(ControlCommand.id).desc()).limit(commands)).all())
    return MonitorRows(camp, st, agents, evs, cmds)


__all__ = ["MonitorRows", "monitor_rows"]
