"""Phone cleaning and the compliance property: no blocked number ever reaches call_list.csv."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lists import BlockRow, Suppressions, parse_phone_cell
from lists.phones import fast_jp_mobile
from tests.lists_util import build, customer, line, order, read_csv, write_export


@pytest.mark.parametrize(("raw", "e164", "kind"), [
    ("090-1234-5678", "+819012345678", "mobile"),
    ("０９０－１２３４－５６７８", "+819012345678", "mobile"),
    ("090ー1234ー5678", "+819012345678", "mobile"),  # katakana long mark, not a dash to NFKC
    ("06−6123−4567", "+81661234567", "fixed"),  # minus sign
    ("TEL:03-1234-5678", "+81312345678", "fixed"),
    ("(携帯)080-1111-2222", "+818011112222", "mobile"),
    ("03-1234-5678(内線123)", "+81312345678", "fixed"),
    ("03-1234-5678 ext. 12", "+81312345678", "fixed"),
    ("+81 90 1234 5678", "+819012345678", "mobile"),
    ("050-1234-5678", "+815012345678", "voip"),
])
def test_usable_numbers(raw: str, e164: str, kind: str) -> None:
    (r,) = parse_phone_cell(raw, "JP")
    assert (r.e164, r.kind, r.reason) == (e164, kind, "")


@pytest.mark.parametrize(("raw", "reason"), [
    ("0120-123-456", "toll_free"), ("0800-111-2222", "toll_free"), ("0570-064-555", "shared_cost"),
    ("020-4123-4567", "pager"), ("abc", "no_digits"), ("000-0000-0000", "dummy_number"), ("なし", "dummy_number"),
    ("090-1234", "invalid_number"),
])
def test_rejected_numbers(raw: str, reason: str) -> None:
    (r,) = parse_phone_cell(raw, "JP")
    assert r.reason == reason and r.kind == ""


def test_several_numbers_in_one_cell_and_excel_zero() -> None:
    got = parse_phone_cell("携帯:090-2222-3333 自宅:03-3333-4444", "JP")
    assert [r.e164 for r in got] == ["+819022223333", "+81333334444"]
    assert [r.e164 for r in parse_phone_cell("090-1234-5678 / 03-1234-5678", "JP")] == ["+819012345678", "+81312345678"]
    (z,) = parse_phone_cell("9012345678", "JP")
    assert z.e164 == "+819012345678" and z.flag == "leading_zero_restored"


def test_fast_path_agrees_with_phonenumbers() -> None:
    for d in ("09012345678", "08098765432", "07011112222"):
        assert fast_jp_mobile(d)
        (r,) = parse_phone_cell(d, "JP")
        assert r.kind == "mobile" and r.e164 == "+81" + d[1:]
    assert not fast_jp_mobile("09001234567")  # 090-0... is not an assigned mobile range


POOL = [f"090-3{i:03d}-{i * 7 % 10000:04d}" for i in range(12)]
E164 = {p: "+81" + p.replace("-", "")[1:] for p in POOL}
STYLES = [lambda p: p, lambda p: p.replace("-", ""), lambda p: "TEL:" + p,
          lambda p: p.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_blocked_number_ever_listed(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    n = data.draw(st.integers(3, 10))
    cs, os_, ls = [], [], []
    for i in range(n):
        p1 = data.draw(st.sampled_from(POOL))
        style = data.draw(st.sampled_from(STYLES))
        p2 = data.draw(st.one_of(st.just(""), st.sampled_from(POOL)))
        cs.append(customer(f"C{i}", style(p1), phone2=p2))
        os_.append(order(f"O{i}", f"C{i}", "2026-01-0" + str(1 + i % 9)))
        ls.append(line(f"O{i}", "REG-A"))
    crm_blocks, dialer_blocks, blocked = [], [], set()
    cust_blocked: set[str] = set()
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["dnc", "refusal", "no_consent"]))
        if data.draw(st.booleans()):
            p = data.draw(st.sampled_from(POOL))
            blocked.add(E164[p])
            if data.draw(st.booleans()):
                crm_blocks.append({"phone": data.draw(st.sampled_from(STYLES))(p), "kind": kind})
            else:
                dialer_blocks.append(BlockRow(kind=kind, phone_e164=E164[p], source="disposition"))
        else:
            cid = f"C{data.draw(st.integers(0, n - 1))}"
            cust_blocked.add(cid)
            if data.draw(st.booleans()):
                crm_blocks.append({"customer_id": cid, "kind": kind})
            else:
                dialer_blocks.append(BlockRow(kind=kind, customer_id=cid, source="disposition"))
    for c in cs:  # a customer blocked outright takes their numbers with them
        if c["customer_id"] in cust_blocked:
            for cell in (c["phone"], c["phone2"]):
                for r in parse_phone_cell(cell, "JP"):
                    blocked.add(r.e164)
    d = write_export(tmp_path_factory.mktemp("prop") / "x", customers=cs, orders=os_, order_lines=ls,
                     blocks=crm_blocks)
    with build(d, sup=Suppressions(blocks=dialer_blocks)) as r:
        assert r.summary["conservation"]["customers_ok"]
    rows = read_csv(d.parent / "x_out" / "call_list.csv")
    listed_numbers = {p for row in rows for p in row["phones"].split(";")}
    assert not (listed_numbers & blocked)
    assert not ({row["customer_id"] for row in rows} & cust_blocked)
