"""The screen pop's read model: the record an agent needs the moment a call connects (plain data).

The depletion date is `lists.depletion`'s: the same rule the list builder used to put the customer on the
list, so the pop never contradicts the list.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from dialer.domain.dtmf import REFUSAL_REASONS
from dialer.domain.inbound import Direction
from dialer.store.models import (
    Agent,
    Attempt,
    CallListEntry,
    Campaign,
    Customer,
    Disposition,
    Order,
    OrderLine,
    Product,
    Subscription,
)
from lists.depletion import depletion_date as depletion_rule


def depletion_date(s: Session, customer_id: str, sku: str) -> tuple[date | None, str]:
    """When the customer's product runs out (lists.depletion), from their shipped orders of SKU."""
    if not sku:
        return None, ""
    rows = s.exec(select(Order, OrderLine).where(Order.customer_id == customer_id, OrderLine.order_id == Order.order_id,
                                                 OrderLine.sku == sku, Order.status == "shipped")).all()
    purchases = [(day, ln.quantity) for o, ln in rows if (day := o.shipped_at or o.ordered_at) is not None]
    prod = s.get(Product, sku)
    return depletion_rule(purchases, prod.days_per_unit if prod else None, bool(prod and prod.is_trial))


def screen_pop_rows(engine: Engine, attempt_id: int) -> dict[str, Any] | None:
    """Everything the pop shows except the opening lines (the console adds those); `spent` is what the
    customer bought to date (the console's LTV when the CRM has none)."""
    with Session(engine) as s:
        att = s.get(Attempt, attempt_id)
        if att is None:
            return None
        entry = s.get(CallListEntry, att.entry_id) if att.entry_id is not None else None
        answered = s.get(Attempt, att.answers_attempt_id) if att.answers_attempt_id is not None else None
        # (issue 30) an inbound call has no campaign of its own (no outbound figure counts it): its campaign is the
        # one of the call it answers, so the pop, the script and the disposition's campaign are that campaign's
        campaign_id = att.campaign_id if att.campaign_id is not None else (answered.campaign_id if answered else None)
        camp = s.get(Campaign, campaign_id) if campaign_id is not None else None
        out = _pop(s, att.customer_id, entry, camp, att.segment, att.phone_e164)
    inbound = att.direction == Direction.INBOUND
    out.update({"attempt_id": attempt_id, "state": att.state, "campaign_id": campaign_id,
                "connected_at": att.agent_connected_at, "ended_at": att.ended_at,
                # (issue 30) a customer calling back: the entry (and its reason) is the one of the call they answer
                "return_call": inbound, "answers_attempt_id": att.answers_attempt_id,
                # why we had called: the list's reason is the entry's (above); when and what came of that call
                "answers": {"at": _utc(answered.dialed_at), "outcome": answered.outcome or answered.state,
                            "campaign": camp.name if camp else ""} if answered is not None else None,
                # a caller matched to no customer: the pop says so instead of showing an empty card
                "unknown_caller": inbound and not att.customer_id})
    return out


def _utc(dt: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; the store writes UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def entry_pop_rows(engine: Engine, entry_id: int, campaign: str) -> dict[str, Any] | None:
    """The same record for an entry not dialled yet (preview mode: the pop the agent reads before dialling);
    `attempt_id` is None and the number is the one the entry would be dialled on."""
    with Session(engine) as s:
        entry = s.get(CallListEntry, entry_id)
        if entry is None:
            return None
        camp = s.exec(select(Campaign).where(Campaign.name == campaign)).first() if campaign else None
        phones = list(entry.phones or [])
        phone = phones[entry.phone_index] if 0 <= entry.phone_index < len(phones) else ""
        out = _pop(s, entry.customer_id, entry, camp, entry.segment, phone)
    out.update({"attempt_id": None, "state": "preview", "campaign_id": camp.id if camp else None,
                "connected_at": None, "ended_at": None, "entry_id": entry_id})
    return out


def _pop(s: Session, customer_id: str, entry: CallListEntry | None, camp: Campaign | None, segment: str,
         phone_e164: str) -> dict[str, Any]:
    """The pop's fields shared by a call (by attempt) and a preview (by entry)."""
    cust = s.get(Customer, customer_id)
    sku = entry.sku if entry else ""
    prod = s.get(Product, sku) if sku else None
    orders = []
    for o in s.exec(select(Order).where(Order.customer_id == customer_id)
                    .order_by(col(Order.ordered_at).desc()).limit(5)).all():
        skus = [ln.sku for ln in s.exec(select(OrderLine).where(OrderLine.order_id == o.order_id)).all()]
        orders.append({"date": o.ordered_at, "shipped": o.shipped_at, "total": o.total, "status": o.status,
                       "skus": skus, "cycle": o.cycle_no})
    subs = [{"sku": x.sku, "status": x.status, "next_ship": x.next_ship_date, "shipments": x.shipments_count,
             "change_deadline": x.change_deadline, "cancel_reason": x.cancel_reason}
            for x in s.exec(select(Subscription).where(Subscription.customer_id == customer_id)).all()]
    history = []
    for d in s.exec(select(Disposition).where(Disposition.customer_id == customer_id)
                    .order_by(col(Disposition.created_at).desc()).limit(8)).all():
        ag = s.get(Agent, d.agent_id) if d.agent_id is not None else None
        dc = s.get(Campaign, d.campaign_id) if d.campaign_id is not None else None
        history.append({"at": d.created_at, "outcome": d.outcome, "amount": d.amount, "sku": d.sku,
                        "reason": REFUSAL_REASONS.get(d.reason_code, d.reason_code), "voc": d.voc_text,
                        "agent": ag.login if ag else "", "campaign": dc.name if dc else "", "source": d.source,
                        "attempt_id": d.attempt_id})
    # (issue 27) the run-out date the list builder used: of the product that put the customer on the list (the
    # trial for an upsell), not of the one offered, which they have never bought
    depl_sku = (entry.qualifying_sku if entry and entry.qualifying_sku else "") or sku
    depl, depl_how = depletion_date(s, customer_id, depl_sku)
    product_name = prod.name if prod and prod.name else (sku or "ご愛用の商品")
    # what the customer has actually paid us: cancelled and returned orders are not purchases
    spent = float(s.exec(select(func.coalesce(func.sum(Order.total), 0.0)).where(
        Order.customer_id == customer_id, col(Order.status).not_in(("cancelled", "returned")))).one() or 0.0)
    # LTV on the card: the CRM's figure when the export carries one, else what they have spent with us, with its
    # source named so every console labels it the same way (issue 27: one rule, here, for terminal and browser)
    crm_ltv = float(cust.ltv) if cust and cust.ltv else 0.0
    return {
        "customer_id": customer_id,
        "name": cust.name if cust else "", "kana": cust.name_kana if cust else "", "phone_e164": phone_e164,
        "caution": bool(cust and cust.caution), "notes": cust.notes if cust else "",
        "ltv": crm_ltv or spent, "ltv_source": "crm" if crm_ltv else "spent", "expected_value": entry.priority if entry else None,
        "segment": segment or (entry.segment if entry else ""), "sub_segment": entry.sub_segment if entry else "",
        "reason": entry.reason if entry else "", "sku": sku, "product": product_name,
        "campaign": camp.name if camp else "", "orders": orders, "subscriptions": subs,
        "depletion": depl, "depletion_how": depl_how, "depletion_sku": depl_sku, "history": history,
        "spent": spent,
    }


__all__ = ["depletion_date", "entry_pop_rows", "screen_pop_rows"]
