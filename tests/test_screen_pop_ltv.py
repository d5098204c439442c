"""The customer's value on the screen pop is one rule for every console (terminal and browser): the CRM's LTV
when the export carries one, else what the customer has actually paid — cancelled and returned orders are not
purchases — with its source named so both consoles label it the same way."""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from dialer.store.db import get_engine
from dialer.store.models import CallListEntry, Customer, Order
from dialer.store.screen_pop import entry_pop_rows
from tests.test_reports import build_store


def _entry_of(engine: object, customer_id: str) -> int:
    with Session(engine) as s:  # type: ignore[arg-type]
        e = s.exec(select(CallListEntry).where(CallListEntry.customer_id == customer_id)).first()
        assert e is not None and e.id is not None
        return e.id


def test_ltv_falls_back_to_what_was_paid_and_says_so(db_url: str) -> None:
    build_store(db_url)
    engine = get_engine(db_url)
    with Session(engine) as s:
        cust = s.exec(select(Customer).where(Customer.customer_id == "C7")).one()
        cust.ltv = 0.0  # an export with no LTV column
        s.add(cust)
        for o in s.exec(select(Order).where(Order.customer_id == "C7")).all():
            s.delete(o)
        for oid, status, total in (("L1", "shipped", 3200.0), ("L2", "returned", 9800.0),
                                   ("L3", "cancelled", 5000.0), ("L4", "shipped", 1000.0)):
            s.add(Order(order_id=oid, customer_id="C7", ordered_at=date(2026, 11, 1), status=status, total=total))
        s.commit()
    pop = entry_pop_rows(engine, _entry_of(engine, "C7"), "demo")
    assert pop is not None
    assert (pop["ltv"], pop["ltv_source"]) == (4200.0, "spent")

    with Session(engine) as s:
        cust = s.exec(select(Customer).where(Customer.customer_id == "C7")).one()
        cust.ltv = 48000.0  # the CRM's own figure wins when there is one
        s.add(cust)
        s.commit()
    pop = entry_pop_rows(engine, _entry_of(engine, "C7"), "demo")
    assert pop is not None
    assert (pop["ltv"], pop["ltv_source"]) == (48000.0, "crm")
