"""Issue 12: a Shopify shop's refunds and cancellations, and its subscription contracts export."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.lists_util import AS_OF, DATA, REPO, build, listed

SHOPIFY = REPO / "config" / "mappings" / "shopify.toml"
ORDER_COLS = ("Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Accepts Marketing,Currency,"
              "Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Shipping Method,Created at,Lineitem quantity,"
              "Lineitem name,Lineitem price,Lineitem sku,Billing Name,Billing Phone,Cancelled at,Id").split(",")


def _order(name: str, email: str, fin: str, ful: str, day: str, sku: str, cancelled: str = "") -> str:
    row = dict.fromkeys(ORDER_COLS, "")
    row.update({"Name": name, "Email": email, "Financial Status": fin, "Fulfillment Status": ful,
                "Fulfilled at": f"{day} 09:00:00 +0900" if ful == "fulfilled" else "", "Total": "3980",
                "Created at": f"{day} 08:00:00 +0900", "Lineitem quantity": "1", "Lineitem price": "3980",
                "Lineitem sku": sku, "Cancelled at": cancelled, "Id": name[1:]})
    return ",".join(row[c] for c in ORDER_COLS) + "\n"


def test_refunds_cancellations_and_subscriptions(tmp_path: Path) -> None:
    d = tmp_path / "shop"
    shutil.copytree(DATA / "shopify", d)
    with (d / "orders_export.csv").open("a", encoding="utf-8") as fh:
        fh.write(_order("#2001", "yoko@example.jp", "refunded", "fulfilled", "2026-03-01", "REG-A"))
        fh.write(_order("#2002", "yoko@example.jp", "partially_refunded", "fulfilled", "2026-02-01", "REG-B"))
        fh.write(_order("#2003", "yoko@example.jp", "paid", "unfulfilled", "2026-04-01", "REG-A",
                        cancelled="2026-04-01 10:00:00 +0900"))
    (d / "subscriptions_export.csv").write_text(
        "subscription_id,customer_id,sku,quantity,status,created_at,next_charge_scheduled_at,"
        "order_interval_frequency,order_interval_unit,cancelled_at,cancellation_reason\n"
        "S1,'7001,REG-A,1,ACTIVE,2026-08-10,2026-12-07,1,month,,\n"
        "S2,'7002,REG-A,1,CANCELLED,2026-05-01,,2,week,2026-06-12,高い\n", encoding="utf-8")
    with build(d, tmp_path / "out", mapping=SHOPIFY) as r:
        orders = {o[0]: o for b in r.table_rows("orders") for o in b}
        subs = {x[0]: x for b in r.table_rows("subscriptions") for x in b}
        got = listed(r)
        notes = r.summary["notes"]
    assert orders["#2001"][4] == "returned"  # refunded: not a purchase
    assert orders["#2002"][4] == "shipped"  # a partial refund still is
    assert orders["#2003"][4] == "cancelled" and orders["#1004"][4] == "cancelled"
    # interval from frequency x unit; shipments estimated from the start (and the cancellation)
    assert subs["S1"][6] == 30 and subs["S2"][6] == 14
    assert subs["S1"][9] == (AS_OF - subs["S1"][5]).days // 30 + 1 == 4
    assert subs["S2"][9] == 42 // 14 + 1 == 4
    assert any("estimated" in n for n in notes)
    # the active subscriber of REG-A is offered its related REG-B (cross-sell works for a Shopify shop)
    assert got[("7001", "cross_sell")].offer_sku == "REG-B"
