"""VOC analytics (issue 19): refusal reasons by product, segment and week from real store rows, Japanese
expectation-vs-reality texts grouped into themes, a sharply rising reason flagged (and a steady one not),
the CSV for the product team, and the summary delivered to a real local CRM through the outbox."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.cli import main
from dialer.config import OutcomesConfig
from dialer.outcomes import push
from dialer.store.db import get_engine
from dialer.store.models import Attempt, CallListEntry, Campaign, Disposition, OutboxItem, Subscription
from dialer.voc import normalise, themes
from tests.test_outcomes import CRM, free_port

START = datetime(2026, 10, 26, 2, 0, tzinfo=UTC)  # Monday 11:00 JST, ISO week 2026-W44
LEAFLET = ["説明書が分かりにくく、飲み方が分からなかった", "説明書の字が小さくて飲み方が読めない",
           "飲み方の説明書が分かりにくい。期待していたのはもっと簡単な説明", "説明書が分かりづらい、飲み方が不明",
           "ｾﾂﾒｲ書きが分かりにくい（説明書）", "説明書を読んでも飲み方が分からない"]
PRICE = ["価格が高い", "値段が高すぎる、価格が高い", "定期の価格が高いと感じた", "もっと安ければ続けたい"]
EFFECT = ["効果を感じなかった", "期待した効果がなかった", "1か月飲んでも効果を感じない"]


def seed_store(url: str) -> None:
    """4 weeks of refusals: price and no_effect steady; instructions_unclear rare, then 6 in the last week."""
    rng = random.Random(5)
    eng = get_engine(url)
    with Session(eng) as s:
        camp = Campaign(name="winback", segments=["dormant", "upsell"])
        s.add(camp)
        s.flush()
        n = 0

        def refuse(week: int, code: str, text: str, seg: str, sku: str) -> None:
            nonlocal n
            n += 1
            at = START + timedelta(days=7 * week + rng.randint(0, 4), hours=rng.randint(0, 6))
            e = CallListEntry(customer_id=f"C{n}", segment=seg, sku=sku, phones=["+819012340000"])
            s.add(e)
            s.flush()
            a = Attempt(campaign_id=camp.id, entry_id=e.id, customer_id=f"C{n}", segment=seg, dialed_at=at)
            s.add(a)
            s.flush()
            s.add(Disposition(attempt_id=a.id, customer_id=f"C{n}", campaign_id=camp.id, outcome="refused",
                              reason_code=code, voc_text=text, created_at=at))

        for week in range(4):
            for i in range(8):
                refuse(week, "1", PRICE[i % len(PRICE)], "dormant", "REG-A")
            for i in range(5):
                refuse(week, "2", EFFECT[i % len(EFFECT)], "upsell", "TRIAL-A")
        refuse(1, "6", LEAFLET[0], "upsell", "TRIAL-A")
        for t in LEAFLET:
            refuse(3, "6", t, "upsell", "TRIAL-A")
        s.add(Subscription(subscription_id="S1", customer_id="C1", sku="REG-A", status="cancelled",
                           cancelled_at=date(2026, 11, 3), cancel_reason="飲み忘れてたまってしまう"))
        s.add(Subscription(subscription_id="S2", customer_id="C2", sku="REG-A", status="active"))
        s.commit()


def test_theme_grouping_of_japanese_texts() -> None:
    assert normalise("ｾﾂﾒｲ書き　が、分かりにくい！") == "セツメイ書きが分かりにくい"
    th = themes(LEAFLET + PRICE)
    top = th[0]
    assert len(top.texts) >= 5 and all(t in LEAFLET for t in top.texts)
    assert "説明書" in top.as_dict()["keywords"]
    price = [t for t in th if "価格が高い" in t.texts]
    assert price and not set(price[0].texts) & set(LEAFLET)


def test_voc_report_csv_and_crm(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    seed_store(db_url)
    port = free_port()
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[outcomes]\nwebhook_url = "http://127.0.0.1:{port}/voc"\nallow_insecure_loopback = true\n'
                   'token_env = ""\n', encoding="utf-8")
    monkeypatch.delenv("DIALER_DATABASE_URL", raising=False)
    out_csv = tmp_path / "voc.csv"
    assert main(["report", "voc", "--json", "--csv", str(out_csv), "--push", "--config", str(cfg)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["by_reason"]["price"] == 32 and rep["by_reason"]["no_effect_felt"] == 20
    assert rep["by_reason"]["instructions_unclear"] == 7 and rep["by_kind"] == {"refusal": 59, "cancellation": 1}
    assert rep["by_product"]["TRIAL-A"]["instructions_unclear"] == 7 and "instructions_unclear" not in \
        rep["by_product"]["REG-A"]
    assert rep["by_segment"]["upsell"]["no_effect_felt"] == 20
    weeks = {c["week"] for c in rep["counts"]}
    assert weeks == {"2026-W44", "2026-W45", "2026-W46", "2026-W47"}
    last = [c for c in rep["counts"] if c["week"] == "2026-W47" and c["reason"] == "instructions_unclear"]
    assert sum(c["count"] for c in last) == 6
    rising = {r["reason"]: r for r in rep["rising"]}
    assert set(rising) == {"instructions_unclear"} and rising["instructions_unclear"]["count"] == 6
    leaflet = next(t for t in rep["themes"] if t["reason"] == "instructions_unclear")
    assert leaflet["product"] == "TRIAL-A" and leaflet["count"] >= 6 and "説明書" in leaflet["keywords"]
    assert len(leaflet["examples"]) == 3
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert {r["kind"] for r in rows} == {"refusal", "cancellation", "theme", "rising"}
    assert any(r["kind"] == "theme" and "説明書" in r["keywords"] for r in rows)
    # one campaign, one period: the CRM cancellations are left out, the week filter works
    assert main(["report", "voc", "--campaign", "winback", "--from", "2026-11-16", "--to", "2026-11-22", "--json",
                 "--config", str(cfg)]) == 0
    rep2 = json.loads(capsys.readouterr().out)
    assert rep2["by_kind"] == {"refusal": 19} and {c["week"] for c in rep2["counts"]} == {"2026-W47"}
    # the summary reaches the CRM through the outbox, once, even when --push is repeated
    assert main(["report", "voc", "--push", "--config", str(cfg)]) == 0
    eng = get_engine(db_url)
    with Session(eng) as s:
        items = s.exec(select(OutboxItem)).all()
    assert len(items) == 1 and items[0].disposition_id < 0
    with CRM(port) as crm:
        res = push(eng, OutcomesConfig(webhook_url=f"http://127.0.0.1:{port}/voc", token_env="", allow_insecure_loopback=True,
                                       retry_base_s=0.05, retry_max_s=0.2), duration_s=10)
    summaries = [b for b in crm.accepted.values() if b.get("type") == "voc_summary"]
    assert len(summaries) == 1 and summaries[0]["by_reason"]["instructions_unclear"] == 7
    assert res.pending == 0
