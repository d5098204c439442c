"""Every segment rule, the horizon, the EV priority, rejects with their lines, and conservation."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from lists import ListSettings
from lists.ltv import ltv, p_alive, remaining_shipments
from lists.settings import LtvSettings
from tests.lists_util import AS_OF, DATA, build, customer, line, listed, order, read_csv, sub, write_export


def ago(days: int) -> str:
    return (AS_OF - timedelta(days=days)).isoformat()


def ahead(days: int) -> str:
    return (AS_OF + timedelta(days=days)).isoformat()


def test_dormant_bounds_and_active_subscription(tmp_path: Path) -> None:
    cs, os_, ls = [], [], []
    for i, days in enumerate((180, 181, 1460, 1461, 400)):
        cid = f"C{i}"
        cs.append(customer(cid, f"090-2000-{i:04d}"))
        os_.append(order(f"O{i}", cid, ago(days)))
        ls.append(line(f"O{i}", "REG-A"))
    # C4 has an active subscription: not dormant however old the last order
    d = write_export(tmp_path / "x", customers=cs, orders=os_, order_lines=ls,
                     subscriptions=[sub("S4", "C4", 20, next_ship=ahead(60))])
    with build(d) as r:
        got = {c for c, s in listed(r) if s == "dormant"}
    assert got == {"C1", "C2"}


def test_last_purchase_ignores_unshipped_orders_and_sub_segments(tmp_path: Path) -> None:
    cs = [customer("A", "090-2100-0001"), customer("B", "090-2100-0002"), customer("L", "090-2100-0003")]
    os_ = [order("A1", "A", ago(300)), order("A2", "A", ago(10), status="cancelled"),
           order("B1", "B", ago(300)), order("B2", "B", ago(600))]
    os_ += [order(f"L{i}", "L", ago(300 + 30 * i)) for i in range(5)]
    ls = [line(o["order_id"], "REG-A") for o in os_]
    d = write_export(tmp_path / "x", customers=cs, orders=os_, order_lines=ls)
    with build(d) as r:
        got = listed(r)
    assert got[("A", "dormant")].sub_segment == "one_time"  # the cancelled order 10 days ago does not count
    assert got[("B", "dormant")].sub_segment == "repeat"
    assert got[("L", "dormant")].sub_segment == "loyal"
    assert got[("A", "dormant")].callable_from == AS_OF
    assert got[("A", "dormant")].callable_until == AS_OF + timedelta(days=14)


def _churn_export(tmp_path: Path, c3: int, r3: int, next_ship: str) -> Path:
    """C(3) cancelled at 3, r3 subscriptions past 3, plus the active one at 3 (censored)."""
    cs = [customer("P", "090-2200-0001")]
    subs = [sub("SP", "P", 3, next_ship=next_ship)]
    for i in range(c3):
        cs.append(customer(f"X{i}", f"090-2201-{i:04d}"))
        subs.append(sub(f"SX{i}", f"X{i}", 3, status="cancelled"))
    for i in range(r3):
        cs.append(customer(f"R{i}", f"090-2202-{i:04d}"))
        subs.append(sub(f"SR{i}", f"R{i}", 4 + i, status="completed"))
    return write_export(tmp_path / f"churn{c3}_{r3}_{next_ship}", customers=cs, subscriptions=subs,
                        orders=[order("OP", "P", ago(20))], order_lines=[line("OP", "REG-A")])


def test_pre_churn_hazard_threshold_and_window(tmp_path: Path) -> None:
    # h(3) = 3 / (3 + 17) = 0.15: exactly on the threshold, listed
    with build(_churn_export(tmp_path, 3, 17, ahead(10))) as r:
        e = listed(r)[("P", "pre_churn")]
        assert r.summary["hazard"]["3"] == pytest.approx(0.15)
    assert (e.callable_from, e.callable_until) == (AS_OF + timedelta(days=5), AS_OF + timedelta(days=9))
    assert e.sku == "REG-A" and "hazard 0.15" in e.reason
    # h(3) = 2 / (2 + 18) = 0.10: below, not listed
    with build(_churn_export(tmp_path, 2, 18, ahead(10))) as r:
        assert ("P", "pre_churn") not in listed(r)
    # next shipment 40 days out: window starts after the 14-day horizon
    with build(_churn_export(tmp_path, 3, 17, ahead(40))) as r:
        got = listed(r)
    assert ("P", "pre_churn") not in got and ("P", "cross_sell") in got


def test_upsell_one_order_trial_only_and_depletion_window(tmp_path: Path) -> None:
    cs = [customer(c, f"090-2300-{i:04d}") for i, c in enumerate(["ONE", "TRI", "TWO", "SUB", "OWN"])]
    os_ = [order("o1", "ONE", ago(25)),                                   # 1 x REG-A (30 d): runs out in 5 days
           order("t1", "TRI", ago(100)), order("t2", "TRI", ago(9)),     # trial only, twice
           order("w1", "TWO", ago(200)), order("w2", "TWO", ago(25)),    # two regular orders: not upsell
           order("s1", "SUB", ago(25)),                                   # active subscriber: not upsell
           order("n1", "OWN", ago(60)), order("n2", "OWN", ago(40)), order("n3", "OWN", ago(20))]
    ls = [line("o1", "REG-A"), line("t1", "TRIAL-A"), line("t2", "TRIAL-A"), line("w1", "REG-A"),
          line("w2", "REG-A"), line("s1", "REG-A"), line("n1", "TRIAL-A"), line("n2", "TRIAL-A"), line("n3", "TRIAL-A")]
    d = write_export(tmp_path / "x", customers=cs, orders=os_, order_lines=ls,
                     subscriptions=[sub("S", "SUB", 1, next_ship=ahead(5))])
    with build(d) as r:
        got = listed(r)
    one = got[("ONE", "upsell")]
    assert one.callable_from == AS_OF  # depletion - 5 = today
    assert one.callable_until == AS_OF + timedelta(days=5 + 7)
    tri = got[("TRI", "upsell")]
    assert tri.sub_segment == "trial" and tri.qualifying_sku == "TRIAL-A" and tri.offer_sku == tri.sku == "REG-A"
    # trial bought 9 days ago, 7 days of product: runs out 2 days ago; window -7..+5 clipped to today
    assert tri.callable_until == AS_OF + timedelta(days=5)
    assert ("TWO", "upsell") not in got and ("SUB", "upsell") not in got
    # own rhythm: trials 20 days apart twice, so depletion = last + 20, not last + 7
    own = got[("OWN", "upsell")]
    assert "own rhythm" in own.reason and own.callable_until == AS_OF + timedelta(days=7)


def test_upsell_cooling_off_delays_the_first_call(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[customer("N", "090-2400-0001")],
                     orders=[order("o", "N", ago(2))], order_lines=[line("o", "TRIAL-A")])
    with build(d) as r:
        e = listed(r)[("N", "upsell")]
    assert e.callable_from == AS_OF + timedelta(days=6)  # ordered 2 days ago + 8-day cooling-off


def test_cross_sell_lookback(tmp_path: Path) -> None:
    cs = [customer("X", "090-2500-0001"), customer("Y", "090-2500-0002"), customer("Z", "090-2500-0003")]
    os_ = [order("y1", "Y", ago(100)), order("z1", "Z", ago(400))]
    ls = [line("y1", "REG-B"), line("z1", "REG-B")]
    subs = [sub("SX", "X", 20, next_ship=ahead(60)), sub("SY", "Y", 20, next_ship=ahead(60)),
            sub("SZ", "Z", 20, next_ship=ahead(60))]
    d = write_export(tmp_path / "x", customers=cs, orders=os_, order_lines=ls, subscriptions=subs)
    with build(d) as r:
        got = listed(r)
    assert got[("X", "cross_sell")].sku == "REG-B"
    assert got[("Y", "cross_sell")].sku == "REG-C"  # bought REG-B 100 days ago: offer the next related sku
    assert got[("Z", "cross_sell")].sku == "REG-B"  # 400 days ago is outside the 365-day lookback
    assert (got[("X", "cross_sell")].callable_from, got[("X", "cross_sell")].callable_until) == (
        AS_OF, AS_OF + timedelta(days=14))


def test_priority_is_the_expected_value_on_the_configured_ltv(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[customer("D", "090-2600-0001")],
                     orders=[order("o", "D", ago(400), total=10000)], order_lines=[line("o", "REG-A")])
    for formula in ("aov_freq_years", "revenue_margin_years", "aov_freq_years_minus_cost", "discounted_profit"):
        lt = LtvSettings(formula=formula, years=3, margin=0.5, acquisition_cost=1000, retention_cost=500)
        s = ListSettings(ltv=lt, p_reach=0.6, cost_per_attempt=40, p_convert={"dormant": 0.1})
        with build(d, tmp_path / formula, settings=s) as r:
            e = listed(r)[("D", "dormant")]
        # one order, 400 days of history: aov 10000, freq 1/1.095 per year, P(alive) 1 (no repeat)
        freq = 1 / (400 / 365.25)
        expected = 0.6 * 0.1 * (0.5 * 10000 + p_alive(0, 0, 400 / 7, *s.bgnbd) * ltv(10000, freq, lt)) - 40
        assert e.priority == pytest.approx(expected, abs=0.01), formula


def test_ltv_formulas_and_survival() -> None:
    s = LtvSettings(formula="aov_freq_years", years=5)
    assert ltv(3000, 12, s) == 180_000  # the brief's example
    assert ltv(150_000, 1, LtvSettings(formula="revenue_margin_years", margin=0.8, years=5)) == pytest.approx(600_000)
    assert ltv(5000, 15, LtvSettings(formula="aov_freq_years_minus_cost", years=10, acquisition_cost=30_000)) == 720_000
    assert ltv(1000, 1, LtvSettings(formula="discounted_profit", margin=1, years=2, discount_rate=0.1)) == \
        pytest.approx(1000 / 1.1 + 1000 / 1.21)
    rem = remaining_shipments({1: 0.5, 2: 0.0, 3: 1.0})
    assert rem[1] == pytest.approx(0.5 + 0.5)  # reaches 2 w.p. 0.5, 3 w.p. 0.5
    assert rem[3] == 0.0
    assert 0 < p_alive(3, 10, 100, 0.243, 4.414, 0.793, 2.426) < p_alive(3, 90, 100, 0.243, 4.414, 0.793, 2.426)


def test_sample_export_end_to_end_expectations(tmp_path: Path) -> None:
    """The hand-written canonical sample: every outcome named, every bad row rejected with its line."""
    with build(DATA / "canonical", tmp_path / "out") as r:
        got = set(listed(r))
        s = r.summary
    assert got == {("C001", "dormant"), ("C003", "upsell"), ("C004", "pre_churn"), ("C004", "cross_sell"),
                   ("C005", "cross_sell")}
    assert s["suppressed"] == {"dnc": 1, "duplicate_phone": 1, "no_consent": 1, "non_consumer_number": 1,
                               "refusal_product": 1, "tel_ng": 1, "withdrawn": 1}
    rejects = {(x["file"], x["line"], x["reason"].split(" (")[0]) for x in read_csv(tmp_path / "out" / "rejects.csv")}
    assert {("customers.csv", "14", "duplicate customer_id"), ("customers.csv", "15", "bad date"),
            ("customers.csv", "15", "phone no_digits"), ("customers.csv", "12", "phone toll_free"),
            ("orders.csv", "14", "bad date"), ("orders.csv", "16", "unknown customer"),
            ("orders.csv", "17", "unknown status: teleported"), ("order_lines.csv", "14", "quantity must be positive"),
            ("order_lines.csv", "15", "unknown sku")} <= rejects
    c = s["conservation"]
    assert c["customers_ok"] and c["rows_ok"]
    assert c["customers"] == 14 and c["listed"] + c["suppressed"] + c["not_eligible"] == 14
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["entries"] == {"dormant": 1, "pre_churn": 1, "upsell": 1, "cross_sell": 2}
    assert on_disk["rows_read"]["customers.csv"] == 15
    rows = read_csv(tmp_path / "out" / "call_list.csv")
    assert list(rows[0]) == ["customer_id", "segment", "phone_e164", "phones", "reason", "priority", "callable_from",
                             "callable_until", "name", "offer_sku", "offer_name", "qualifying_sku"]
    prios = [float(x["priority"]) for x in rows]
    assert prios == sorted(prios, reverse=True)
    c5 = next(x for x in rows if x["customer_id"] == "C005")
    assert c5["phones"] == "+819011110005;+81661110005"  # mobile first, then the fixed line


def test_malformed_csv_rows_are_rejected_with_their_line(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[customer("A", "090-2700-0001")],
                     orders=[order("o", "A", ago(300))], order_lines=[line("o", "REG-A")])
    text = (d / "customers.csv").read_text(encoding="utf-8")
    (d / "customers.csv").write_text(text + 'B,"名前\n改行",,090-2700-0002,,,,,1,0,0\nC,too,few\n'
                                     "D,x,,090-2700-0004,,,,,1,0,0\n", encoding="utf-8")
    with build(d) as r:
        s = r.summary
        ids = {cid for cid, _ in listed(r)}
    rej = read_csv(d.parent / "x_out" / "rejects.csv")
    assert [(x["line"], x["reason"]) for x in rej if x["reason"].startswith("malformed")] == [
        ("5", "malformed CSV: missing columns")]
    assert s["conservation"]["rows_ok"] and s["conservation"]["customers"] == 3
    assert "A" in ids


def test_as_of_moves_today(tmp_path: Path) -> None:
    d = write_export(tmp_path / "x", customers=[customer("A", "090-2800-0001")],
                     orders=[order("o", "A", "2026-01-01")], order_lines=[line("o", "REG-A")])
    with build(d, as_of=date(2026, 6, 1)) as r:
        assert ("A", "dormant") not in listed(r)  # 151 days
    with build(d, tmp_path / "later", as_of=date(2026, 8, 1)) as r:
        assert ("A", "dormant") in listed(r)  # 212 days


def test_each_suppression_kind_is_named(tmp_path: Path) -> None:
    """One dormant customer per kind; each ends suppressed under exactly that reason."""
    specs = {
        "OK": {}, "WD": {"withdrawn": 1}, "NG": {"tel_ok": 0}, "CA": {"caution": 1},
        "DP": {}, "DC": {}, "RF": {}, "RS": {}, "NC": {},
        "TF": {"phone": "0120-444-555"}, "NV": {"phone": "0570-064-555"}, "PG": {"phone": "020-4123-4567"},
        "IV": {"phone": "090-12"}, "NO": {"phone": ""},
        "D1": {"phone": "090-5555-0001"}, "D2": {"phone": "090-5555-0001"},
    }
    cs, os_, ls = [], [], []
    for i, (cid, kw) in enumerate(specs.items()):
        kw = {"phone": f"090-5000-{i:04d}", **kw}
        cs.append(customer(cid, **kw))
        os_.append(order(f"O{cid}", cid, ago(300 + (1 if cid == "D2" else 0))))  # D1 bought more recently
        ls.append(line(f"O{cid}", "REG-A"))
    blocks = [{"phone": "09050000004", "kind": "dnc"},            # DP: by phone, written differently
              {"customer_id": "DC", "kind": "dnc"},
              {"customer_id": "RF", "kind": "refusal"},             # no product scope: everything
              {"customer_id": "RS", "kind": "refusal", "product_scope": "REG-A"},  # dormant is not product-specific
              {"phone": "090-5000-0008", "kind": "no_consent"}]
    d = write_export(tmp_path / "x", customers=cs, orders=os_, order_lines=ls, blocks=blocks)
    with build(d) as r:
        got = {c for c, _ in listed(r)}
        s = r.summary
    assert got == {"OK", "RS", "D1"}
    assert s["suppressed_customers"] == {
        "withdrawn": 1, "tel_ng": 1, "caution": 1, "dnc": 2, "refusal": 1, "no_consent": 1,
        "non_consumer_number": 3, "invalid_phone": 1, "no_phone": 1, "duplicate_phone": 1}
