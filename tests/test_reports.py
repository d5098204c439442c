"""Reports recounted from a store with known contents: every figure below is worked out by hand in the
comments of `build_store`, so a wrong definition (denominator, window edge, clipping) fails here."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.config import parse_config
from dialer.reports import campaign_report, compliance_report
from dialer.store.agents import log_agent_state
from dialer.store.db import get_engine
from dialer.store.models import (
    Agent,
    AgentStateLog,
    Attempt,
    Block,
    CallListEntry,
    Campaign,
    CampaignEvent,
    CampaignStatus,
    Customer,
    Disposition,
    Order,
    OrderLine,
    Product,
    Subscription,
)
from dialer.views.report_view import write_report_csv
from tests.conftest import REPO, run_env

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)  # 19:00 in Tokyo
M = timedelta(minutes=1)
S = timedelta(seconds=1)

CONFIG = """
[database]
url = "sqlite:///{db}"
[[trunks]]
name = "local"
proxy = "sip:127.0.0.1:5060"
[[trunks]]
name = "sandbox"
proxy = "sip:127.0.0.1:5061"
sandbox = true
[[agents]]
login = "a01"
name = "Sato"
sip_uri = "sip:a01@127.0.0.1:5301"
[[agents]]
login = "a02"
name = "Suzuki"
sip_uri = "sip:a02@127.0.0.1:5302"
[[campaigns]]
name = "demo"
trunk = "local"
[business]
name = "つなぐ通販"
[reports]
machine_false_positive_share = 0.5
"""


def write_config(tmp: Path, db_url: str) -> Path:
    p = tmp / "tsunagu.toml"
    p.write_text(CONFIG.replace("{db}", db_url.split("///", 1)[1]), encoding="utf-8")
    return p


def build_store(db_url: str) -> dict[str, int]:
    """demo (US, target 2%, limit 3%, window 24h, running) and other (UK, stopped).

    demo attempts (16): dormant 10 = 4 connected (talk 120 s, 50/40/30/20 min ago), 1 abandoned (10 min ago),
    2 busy, 2 no answer, 1 machine; upsell 6 = 3 connected (talk 180 s; 3 h, 2.5 h, 25 min ago),
    1 abandoned (2 h ago), 1 invalid (26 h ago), 1 still ringing.
    -> answered 9, abandoned 2 (US 22.2%), machine 1, to agent 7, finished 15 -> hit 60%.
    windows: now(15m) 1/1, 1h 1/6, 24h 2/9.
    talk 4*120 + 3*180 = 1020 s; wrap 2 x 60 s (state log); AHT 1140/7 = 162.9 s.
    logged in: a01 and a02 each from 4 h ago to now = 28800 s; occupancy 1140/28800.
    dispositions: sale 5980, refused(2), dnc, callback, upsell 3980, cross_sell 2000, refused(1)
    -> sales 3, revenue 11960.
    """
    eng = get_engine(db_url)
    ids: dict[str, int] = {}
    with Session(eng) as s:
        s.add(Product(sku="SKU-A", name="美容液 30日分", days_per_unit=30, price=5980))
        s.add(Product(sku="SKU-B", name="青汁", days_per_unit=30, price=3980))
        for i in range(1, 13):
            s.add(Customer(customer_id=f"C{i}", name=f"顧客{i}", name_kana=f"コキャク{i}", ltv=100000 + i))
        s.add(Order(order_id="O1", customer_id="C1", ordered_at=date(2026, 9, 1), shipped_at=date(2026, 9, 2),
                    total=5980))
        s.add(OrderLine(order_id="O1", sku="SKU-A", quantity=1, unit_price=5980))
        s.add(Order(order_id="O2", customer_id="C1", ordered_at=date(2026, 10, 1), shipped_at=date(2026, 10, 2),
                    total=5980))
        s.add(OrderLine(order_id="O2", sku="SKU-A", quantity=1, unit_price=5980))
        s.add(Subscription(subscription_id="S1", customer_id="C1", sku="SKU-A", status="active",
                           next_ship_date=date(2026, 12, 1), shipments_count=2))
        # NOW is 勤労感謝の日: these fixtures judge hours only (holidays are test_compliance_holidays_and_zones)
        demo = Campaign(name="demo", segments=["dormant", "upsell"], state="running", abandon_window="24h",
                        holidays="")
        other = Campaign(name="other", segments=["dormant"], state="stopped", abandon_regime="uk",
                         abandon_window="campaign", holidays="")
        s.add(demo)
        s.add(other)
        a01 = Agent(login="a01", name="Sato", state="on_call", state_since=NOW - 95 * S)
        a02 = Agent(login="a02", name="Suzuki", state="paused", state_since=NOW - 300 * S, pause_reason="lunch")
        s.add(a01)
        s.add(a02)
        s.commit()
        for r in (demo, other, a01, a02):
            s.refresh(r)
        assert demo.id and other.id and a01.id and a02.id
        ids.update(demo=demo.id, other=other.id, a01=a01.id, a02=a02.id)
        a01.campaign_id = a02.campaign_id = demo.id
        # penetration: dormant (status, attempts) and upsell
        entries = {}
        for n, (seg, status, att, sku, tz) in enumerate([
            ("dormant", "done", 1, "SKU-A", "Asia/Tokyo"), ("dormant", "done", 2, "SKU-A", "Asia/Tokyo"),
            ("dormant", "pending", 1, "SKU-A", "Asia/Tokyo"), ("dormant", "pending", 0, "SKU-A", "Asia/Tokyo"),
            ("dormant", "exhausted", 6, "SKU-A", "Asia/Tokyo"), ("dormant", "blocked", 1, "SKU-A", "Asia/Tokyo"),
            ("upsell", "done", 1, "SKU-B", "Asia/Tokyo"), ("upsell", "pending", 0, "SKU-B", "Asia/Tokyo"),
            ("upsell", "leased", 0, "SKU-B", "Asia/Tokyo"), ("cross_sell", "pending", 0, "SKU-B", "Europe/London"),
        ], start=1):
            e = CallListEntry(customer_id=f"C{n}", segment=seg, status=status, attempts=att, sku=sku, timezone=tz,
                              reason="last purchase 400 days ago" if seg == "dormant" else "trial ends in 3 days",
                              priority=1000.0 * n, phones=[f"+8190000000{n:02d}"])
            s.add(e)
            entries[n] = e
        s.commit()
        for e in entries.values():
            s.refresh(e)

        def att(seg: str, ago: timedelta, outcome: str, *, cust: str = "C1", entry: int = 1, talk: float | None = None,
                agent: int | None = None, abandoned: bool = False, state: str = "ended", camp: int = demo.id,
                phone: str | None = None, trunk: str = "local") -> Attempt:
            dialed = NOW - ago
            a = Attempt(campaign_id=camp, entry_id=entries[entry].id, customer_id=cust, segment=seg,
                        phone_e164=phone or f"+8190000000{entry:02d}", dialed_at=dialed, outcome=outcome,
                        state=state, abandoned=abandoned, agent_id=agent, trunk=trunk)
            if outcome in ("answered", "machine"):
                a.answered_at = dialed + 10 * S
            if talk is not None:
                a.agent_connected_at = dialed + 11 * S
                a.ended_at = dialed + 11 * S + talk * S
            elif state == "ended":
                a.ended_at = dialed + 15 * S
            s.add(a)
            return a

        d_conn = [att("dormant", m * M, "answered", cust=f"C{i + 1}", entry=i + 1, talk=120,
                      agent=(a01.id if i % 2 == 0 else a02.id)) for i, m in enumerate((50, 40, 30, 20))]
        att("dormant", 10 * M, "answered", abandoned=True, cust="C5", entry=5)
        for m in (45, 35):
            att("dormant", m * M, "busy", cust="C6", entry=6)
        for m in (44, 34):
            att("dormant", m * M, "no_answer", cust="C6", entry=6)
        att("dormant", 33 * M, "machine", cust="C6", entry=6)
        u_conn = [att("upsell", ago, "answered", cust="C7", entry=7, talk=180, agent=(a01.id if i != 1 else a02.id))
                  for i, ago in enumerate((180 * M, 150 * M, 25 * M))]
        att("upsell", 120 * M, "answered", abandoned=True, cust="C8", entry=8)
        att("upsell", 26 * 60 * M, "invalid", cust="C9", entry=9)
        att("upsell", 5 * S, "", cust="C9", entry=9, state="ringing")
        # other campaign: 22:00 Tokyo (outside), 09:30 Tokyo but 00:30 London (outside), sandbox 22:30 Tokyo
        att("dormant", NOW - datetime(2026, 11, 22, 13, 0, tzinfo=UTC), "no_answer", cust="C10", entry=4,
            camp=other.id)
        att("cross_sell", NOW - datetime(2026, 11, 23, 0, 30, tzinfo=UTC), "busy", cust="C10", entry=10,
            camp=other.id)
        att("dormant", NOW - datetime(2026, 11, 22, 13, 30, tzinfo=UTC), "busy", cust="C10", entry=4,
            camp=other.id, trunk="sandbox")
        s.commit()
        for a in d_conn + u_conn:
            s.refresh(a)

        def disp(a: Attempt, outcome: str, **kw: object) -> Disposition:
            assert a.ended_at is not None
            d = Disposition(attempt_id=a.id, agent_id=a.agent_id, customer_id=a.customer_id, campaign_id=a.campaign_id,
                            outcome=outcome, created_at=a.ended_at + 30 * S, **kw)  # type: ignore[arg-type]
            s.add(d)
            return d

        disp(d_conn[0], "sale", amount=5980, sku="SKU-A")
        disp(d_conn[1], "refused", reason_code="2", voc_text="期待: 肌が変わる / 実際: 変化なし", sku="SKU-A")
        dnc = disp(d_conn[2], "dnc")
        disp(d_conn[3], "callback", callback_at=NOW + timedelta(days=1))
        disp(u_conn[0], "upsell", amount=3980, sku="SKU-B")
        disp(u_conn[1], "cross_sell", amount=2000, sku="SKU-B")
        disp(u_conn[2], "refused", reason_code="1", sku="SKU-B")
        s.commit()
        assert dnc.created_at is not None
        s.add(Block(phone_e164=d_conn[2].phone_e164, customer_id=d_conn[2].customer_id, kind="dnc",
                    since=dnc.created_at + S, source="disposition"))
        # a DNC in 'other' that was NOT honoured: called again an hour later
        v = att("dormant", 5 * 60 * M, "answered", cust="C11", entry=4, camp=other.id, talk=60, phone="+819011112222")
        s.commit()
        s.refresh(v)
        s.add(Disposition(attempt_id=v.id, customer_id="C11", campaign_id=other.id, outcome="dnc",
                          created_at=NOW - 4 * 60 * M))
        att("dormant", 3 * 60 * M, "no_answer", cust="C11", entry=4, camp=other.id, phone="+819011112222")
        # state history: each agent logged in 4 h ago, on call for each call it took (as the runner logs it),
        # one 60 s wrap-up an hour ago
        moves = [(ag, NOW - 240 * M, "ready") for ag in (a01, a02)]
        moves += [(ag, NOW - 60 * M, "wrap_up") for ag in (a01, a02)] + [(ag, NOW - 59 * M, "ready") for ag in (a01, a02)]
        for a in d_conn + u_conn:
            assert a.agent_connected_at is not None and a.ended_at is not None
            ag = a01 if a.agent_id == a01.id else a02
            moves += [(ag, a.agent_connected_at, "on_call"), (ag, a.ended_at, "ready")]
        for ag, at, state in sorted(moves, key=lambda m: m[1]):
            log_agent_state(s, ag, state, at)
        s.add(CampaignStatus(campaign_id=demo.id, mode="progressive", dial_level=1.75, lines_dialing=2,
                             lines_ringing=1, waiting_for_agent=0, heartbeat_at=NOW - S, runner="host:1"))
        s.add(CampaignEvent(campaign_id=demo.id, at=NOW - 2 * M, level="warning", kind="mode_drop",
                            message="abandon budget for the 24h window is spent"))
        a01.current_attempt_id = u_conn[2].id
        s.add(a01)
        s.add(a02)
        s.commit()
    return ids


@pytest.fixture()
def store(db_url: str) -> str:
    build_store(db_url)
    return db_url


def test_campaign_report_numbers(store: str) -> None:
    r = campaign_report(get_engine(store), "demo", now=NOW)
    assert r["attempts"] == 16 and r["in_flight"] == 1
    assert (r["answered"], r["abandoned"], r["machine"]) == (9, 2, 1)
    assert r["abandon_rate"] == pytest.approx(2 / 9)
    assert r["connected_to_agent"] == 7
    assert r["hit_rate"] == pytest.approx(9 / 15)
    w = r["abandon_windows"]
    assert (w["now"]["answered"], w["now"]["abandoned"]) == (1, 1)
    assert (w["1h"]["answered"], w["1h"]["abandoned"]) == (6, 1)
    assert w["24h"]["rate"] == pytest.approx(2 / 9) and w["window"]["span"] == "24h"
    assert r["talk_s"] == 1020 and r["wrap_s"] == 120
    assert r["aht_s"] == pytest.approx(1140 / 7)
    assert r["logged_in_s"] == pytest.approx(2 * 4 * 3600)
    assert r["occupancy"] == pytest.approx(1140 / 28800)
    assert r["talk_minutes_per_agent_hour"] == pytest.approx(17 / 8)
    assert (r["sales"], r["revenue"], r["dnc"]) == (3, 11960, 1)
    assert r["refusals"] == {"total": 2, "by_reason": {"2 no_effect_felt": 1, "1 price": 1}}
    assert r["outcomes"] == {"answered": 9, "busy": 2, "no_answer": 2, "machine": 1, "invalid": 1, "in_flight": 1}
    assert r["dispositions"]["refused"] == 2 and r["dispositions"]["callback"] == 1
    dormant, upsell = r["by_segment"]["dormant"], r["by_segment"]["upsell"]
    assert (dormant["attempts"], dormant["answered"], dormant["abandoned"], dormant["sales"]) == (10, 5, 1, 1)
    assert (upsell["attempts"], upsell["connected_to_agent"], upsell["revenue"]) == (6, 3, 5980)
    assert r["penetration"]["dormant"] == {"entries": 6, "dialled": 5, "remaining": 2, "exhausted": 1, "done": 2,
                                           "blocked": 1, "not_dialled": 1}
    assert r["penetration"]["upsell"]["remaining"] == 2 and "cross_sell" not in r["penetration"]
    assert r["agents"]["a01"]["calls"] == 4 and r["agents"]["a01"]["talk_s"] == 120 * 2 + 180 * 2
    assert r["agents"]["a02"]["sales"] == 1 and r["agents"]["a02"]["revenue"] == 2000
    json.dumps(r)  # plain data only


def test_uk_regime_counts_machine_share(store: str) -> None:
    r = campaign_report(get_engine(store), "demo", now=NOW, machine_fp_share=0.5)
    assert r["abandon_rate_us"] == pytest.approx(2 / 9)
    assert r["abandon_rate_uk"] == pytest.approx(2.5 / 9.5)


def test_compliance_report(store: str, tmp_path: Path) -> None:
    cfg = parse_config(write_config(tmp_path, store).read_text(encoding="utf-8"))
    c = compliance_report(get_engine(store), cfg, now=NOW)
    demo, other = c["campaigns"]["demo"], c["campaigns"]["other"]
    assert demo["calls_outside_hours"] == 0 and not demo["within_limit"]
    assert demo["windows"]["24h"]["us"] == pytest.approx(2 / 9)
    assert demo["windows"]["24h"]["uk"] == pytest.approx(2.5 / 9.5)
    assert other["regime"] == "uk" and other["calls_outside_hours"] == 2
    assert other["calls_outside_hours_sandbox"] == 1
    assert {o["timezone"] for o in other["outside_hours"]} == {"Asia/Tokyo", "Europe/London"}
    assert c["calls_outside_hours"] == 2
    dnc = c["dnc"]
    assert dnc["requests"] == 2 and dnc["blocked"] == 1 and dnc["honoured"] == 1 and dnc["violations"] == 1
    honoured = next(i for i in dnc["items"] if i["campaign"] == "demo")
    assert honoured["block_delay_s"] == 1.0 and honoured["attempts_after"] == 0
    assert "*" in honoured["phone"]
    assert c["refusals"]["requests"] == 2 and c["refusals"]["violations"] == 0


def test_report_cli_json_csv_and_compliance(store: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, store)
    py = [sys.executable, "-m", "dialer"]
    out = subprocess.run([*py, "report", "campaign", "demo", "--json", "--config", str(cfg)], cwd=REPO,
                         env=run_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    for key in ("attempts", "answered", "abandoned", "abandon_rate", "connected_to_agent", "occupancy", "outcomes",
                "by_segment"):
        assert key in r
    assert r["attempts"] == 16 and r["by_segment"]["dormant"]["attempts"] == 10
    table = subprocess.run([*py, "report", "campaign", "demo", "--config", str(cfg)], cwd=REPO, env=run_env(),
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "¥11,960" in table.stdout and "no effect felt" in table.stdout
    comp = subprocess.run([*py, "report", "compliance", "--config", str(cfg)], cwd=REPO, env=run_env(),
                          capture_output=True, text=True, timeout=60)
    assert comp.returncode == 1  # other has calls outside hours and an unhonoured DNC
    assert "calls outside calling hours: 2" in comp.stdout
    bad = subprocess.run([*py, "report", "campaign", "nope", "--config", str(cfg)], cwd=REPO, env=run_env(),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no campaign named 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_report_csv_rows(store: str) -> None:
    r = campaign_report(get_engine(store), "demo", now=NOW)
    buf = io.StringIO()
    write_report_csv(r, buf)
    rows = {row["segment"]: row for row in csv.DictReader(io.StringIO(buf.getvalue()))}
    assert rows["dormant"]["attempts"] == "10" and rows["upsell"]["revenue"] == "5980"
    assert rows["ALL"]["attempts"] == "16" and rows["ALL"]["abandon_rate"] == f"{2 / 9:.4f}"
    assert rows["ALL"]["dialled"] == "6" and rows["ALL"]["remaining"] == "4"


def test_state_log_closes_previous_stretch(db_url: str) -> None:
    eng = get_engine(db_url)
    with Session(eng) as s:
        a = Agent(login="x")
        log_agent_state(s, a, "ready", NOW)
        log_agent_state(s, a, "ready", NOW + S)  # no-op: already open in that state
        log_agent_state(s, a, "paused", NOW + 10 * S, detail="lunch")
        s.commit()
        rows = s.exec(select(AgentStateLog).order_by(AgentStateLog.id)).all()
    assert [(r.state, r.ended_at) for r in rows] == [("ready", NOW + 10 * S), ("paused", None)]
    assert rows[1].detail == "lunch"


def test_compliance_holidays_and_zones(db_url: str) -> None:
    """Issue 12: the report judges calls as the hopper does, in every zone of the contact and on holidays."""
    eng = get_engine(db_url)
    with Session(eng) as s:
        s.add(Customer(customer_id="H1", name="x", prefecture="北海道"))
        s.add(Customer(customer_id="US", name="y"))
        camp = Campaign(name="hol", segments=["dormant"], holidays="JP")
        s.add(camp)
        s.commit()
        e1 = CallListEntry(customer_id="H1", segment="dormant", phones=["+819011110001"])
        e2 = CallListEntry(customer_id="US", segment="dormant", phones=["+12125550100"])
        s.add(e1)
        s.add(e2)
        s.commit()
        weekday = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # Wed 11:00 in Tokyo, Tue 21:00 in New York
        for e, at in ((e1, NOW - timedelta(hours=8)), (e1, weekday), (e2, weekday)):
            s.add(Attempt(campaign_id=camp.id, entry_id=e.id, customer_id=e.customer_id, segment="dormant",
                          phone_e164=e.phones[0], dialed_at=at, outcome="no_answer", state="ended", trunk="t"))
        s.commit()
    c = compliance_report(eng, None, now=NOW + timedelta(days=2), campaign="hol")["campaigns"]["hol"]
    whys = sorted(o["why"].split(":")[0] for o in c["outside_hours"])
    assert c["calls_outside_hours"] == 2
    assert whys == ["holiday in Asia/Tokyo", "outside calling hours in America/New_York"]
