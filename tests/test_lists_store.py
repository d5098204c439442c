"""`dialer lists build` against a real SQLite store: upserts, idempotence, withdrawals, the dialer's blocks."""

from __future__ import annotations

import csv
import fcntl
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from dialer.cli import main
from dialer.store.db import get_engine
from dialer.store.models import Block, CallListEntry, Customer, Order
from tests.conftest import run_env
from tests.lists_util import CANONICAL, DATA, REPO, read_csv

CONFIG = REPO / "config" / "tsunagu.toml"
TOKYO = ZoneInfo("Asia/Tokyo")


def _build(inp: Path, out: Path, as_of: str = "2026-11-23") -> int:
    return main(["lists", "build", "--mapping", str(CANONICAL), "--input", str(inp), "--out", str(out),
                 "--as-of", as_of, "--config", str(CONFIG)])


def _entries(url: str) -> dict[tuple[str, str], CallListEntry]:
    with Session(get_engine(url)) as s:
        return {(e.customer_id, e.segment): e for e in s.exec(select(CallListEntry)).all()}


@pytest.fixture()
def crm(tmp_path: Path) -> Path:
    d = tmp_path / "crm"
    shutil.copytree(DATA / "canonical", d)
    return d


@pytest.fixture()
def store(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    return db_url


def test_build_writes_store_rows_and_mirror(store: str, crm: Path, tmp_path: Path) -> None:
    assert _build(crm, tmp_path / "out") == 0
    got = _entries(store)
    assert set(got) == {("C001", "dormant"), ("C003", "upsell"), ("C004", "pre_churn"), ("C004", "cross_sell"),
                        ("C005", "cross_sell")}
    pc = got[("C004", "pre_churn")]
    assert pc.status == "pending" and pc.sku == "REG-A" and pc.sub_segment == "after_3" and pc.timezone == "Asia/Tokyo"
    # dates are Tokyo days: the window 11-25..11-29 starts at 11-25 00:00 JST = 11-24 15:00 UTC
    assert pc.callable_from == datetime(2026, 11, 25, tzinfo=TOKYO).astimezone(UTC)
    assert pc.callable_until == datetime(2026, 11, 29, 23, 59, 59, tzinfo=TOKYO).astimezone(UTC)
    assert got[("C005", "cross_sell")].phones == ["+819011110005", "+81661110005"]
    assert str(pc.build_date) == "2026-11-23"
    with Session(get_engine(store)) as s:
        assert s.get(Customer, "C003").name == "高橋 陽子"
        assert s.get(Order, "O004").subscription_id == "S004"
        crm_blocks = s.exec(select(Block).where(Block.source == "crm")).all()
        assert {b.kind for b in crm_blocks} == {"dnc", "refusal", "no_consent"}
        assert any(b.phone_e164 == "+819011110006" for b in crm_blocks)  # the full-width number, normalised


def test_rerun_same_day_is_idempotent(store: str, crm: Path, tmp_path: Path) -> None:
    assert _build(crm, tmp_path / "out") == 0
    first = {k: (e.id, e.status, e.priority, e.phones, e.callable_from) for k, e in _entries(store).items()}
    calls1 = (tmp_path / "out" / "call_list.csv").read_text(encoding="utf-8")
    assert _build(crm, tmp_path / "out") == 0
    second = {k: (e.id, e.status, e.priority, e.phones, e.callable_from) for k, e in _entries(store).items()}
    assert first == second
    assert (tmp_path / "out" / "call_list.csv").read_text(encoding="utf-8") == calls1
    with Session(get_engine(store)) as s:
        assert len(s.exec(select(Block).where(Block.source == "crm")).all()) == 3  # blocks not duplicated


def test_in_progress_and_finished_entries_keep_their_state(store: str, crm: Path, tmp_path: Path) -> None:
    assert _build(crm, tmp_path / "out") == 0
    with Session(get_engine(store)) as s:
        states = {("C001", "dormant"): "leased", ("C003", "upsell"): "dialing", ("C005", "cross_sell"): "done",
                  ("C004", "cross_sell"): "exhausted"}
        for e in s.exec(select(CallListEntry)).all():
            if (e.customer_id, e.segment) in states:
                e.status = states[(e.customer_id, e.segment)]
                e.priority = -1.0
                s.add(e)
        s.commit()
    # C001 no longer eligible (its order removed), the rest unchanged
    rows = [r for r in read_csv(crm / "orders.csv") if r["customer_id"] != "C001"]
    with (crm / "orders.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert _build(crm, tmp_path / "out2") == 0
    got = _entries(store)
    for key, status in states.items():
        assert got[key].status == status and got[key].priority == -1.0, key
    # the exhausted entry is fed back as a suppression and never re-listed
    assert "C004,cross_sell" not in (tmp_path / "out2" / "call_list.csv").read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text(encoding="utf-8"))
    assert summary["suppressed"]["max_attempts"] == 1


def test_entries_no_longer_eligible_are_withdrawn_not_deleted(store: str, crm: Path, tmp_path: Path) -> None:
    assert _build(crm, tmp_path / "out") == 0
    n = len(_entries(store))
    with (crm / "blocks.csv").open("a", encoding="utf-8", newline="") as fh:
        fh.write(",C003,dnc,,2026-11-22\n")
    assert _build(crm, tmp_path / "out2", as_of="2026-11-23") == 0
    got = _entries(store)
    assert len(got) == n
    assert got[("C003", "upsell")].status == "withdrawn"
    assert got[("C003", "upsell")].status_reason == "suppressed: dnc"
    # a later day: C004's pre_churn window (11-25..11-29) has passed
    assert _build(crm, tmp_path / "out3", as_of="2026-12-05") == 0
    got = _entries(store)
    assert got[("C004", "pre_churn")].status == "withdrawn"
    assert got[("C004", "pre_churn")].status_reason.startswith("no longer eligible")
    # eligible again: a withdrawn entry comes back as pending
    assert _build(crm, tmp_path / "out4", as_of="2026-11-23") == 0
    assert _entries(store)[("C004", "pre_churn")].status == "pending"


def test_dialer_blocks_from_the_store_are_honoured(store: str, crm: Path, tmp_path: Path) -> None:
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    lock_until = datetime(2026, 11, 25, 14, 0, tzinfo=TOKYO)  # 72 h after an abandoned call
    with Session(get_engine(store)) as s:
        s.add(Block(phone_e164="+819011110001", kind="dnc", source="disposition", reason="もう電話しないで"))
        s.add(Block(customer_id="C004", kind="refusal", product_scope="REG-B", source="disposition"))
        s.add(Block(phone_e164="+818011110003", kind="abandon_lock", source="dialer", since=now, until=lock_until))
        s.add(Block(phone_e164="+817011110004", kind="abandon_lock", source="dialer", since=now, until=lock_until))
        s.add(Block(phone_e164="+819011110005", kind="abandon_lock", source="dialer",
                    since=now - timedelta(days=5), until=now - timedelta(days=2)))  # expired
        s.commit()
    assert _build(crm, tmp_path / "out") == 0
    rows = {(r["customer_id"], r["segment"]): r for r in read_csv(tmp_path / "out" / "call_list.csv")}
    assert ("C001", "dormant") not in rows  # dnc disposition on its number
    assert ("C004", "cross_sell") not in rows  # refusal scoped to REG-B
    assert rows[("C004", "pre_churn")]["callable_from"] == "2026-11-26"  # lock ends 11-25 14:00 local
    assert ("C003", "upsell") not in rows  # its window ends 11-24, inside the lock
    assert rows[("C005", "cross_sell")]["callable_from"] == "2026-11-23"  # the expired lock changes nothing
    assert "+819011110001" not in (tmp_path / "out" / "call_list.csv").read_text(encoding="utf-8")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    # C006 (CRM dnc), C001, and C012 who shares C001's number
    assert summary["suppressed"]["dnc"] == 3 and summary["suppressed"]["refusal_product"] == 2
    assert summary["suppressed"]["abandon_lock"] == 1


def test_cli_end_to_end_subprocess(tmp_path: Path) -> None:
    env = {**run_env(), "DIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}"}
    py = [sys.executable, "-m", "dialer", "lists"]
    subprocess.run([*py, "sample", "--out", str(tmp_path / "crm"), "--customers", "300", "--as-of", "2026-11-23"],
                   check=True, cwd=REPO, env=env, capture_output=True)
    p = subprocess.run([*py, "build", "--mapping", str(CANONICAL), "--input", str(tmp_path / "crm"), "--out",
                        str(tmp_path / "out"), "--as-of", "2026-11-23", "--config", str(CONFIG)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "entries" in p.stdout and "store:" in p.stdout
    rows = read_csv(tmp_path / "out" / "call_list.csv")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert len(rows) >= 30 and all(summary["entries"][s] >= 1 for s in ("dormant", "pre_churn", "upsell", "cross_sell"))
    assert summary["rejected"] and summary["suppressed"].get("dnc", 0) >= 1
    assert summary["conservation"]["customers_ok"] and summary["conservation"]["rows_ok"]
    with Session(get_engine(env["DIALER_DATABASE_URL"])) as s:
        assert len(s.exec(select(CallListEntry)).all()) == len(rows)


def test_user_error_is_one_line_exit_2(tmp_path: Path) -> None:
    d = tmp_path / "crm"
    shutil.copytree(DATA / "canonical", d)
    p = d / "orders.csv"
    p.write_text(p.read_text(encoding="utf-8").replace("ordered_at", "ordered_on", 1), encoding="utf-8")
    env = {**run_env(), "DIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}"}
    r = subprocess.run([sys.executable, "-m", "dialer", "lists", "build", "--mapping", str(CANONICAL), "--input", str(d),
                        "--out", str(tmp_path / "out"), "--config", str(CONFIG)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "orders.csv" in r.stderr and "'ordered_at'" in r.stderr and "Traceback" not in r.stderr


def test_nightly_wrapper_locks_logs_and_fails_loudly(tmp_path: Path) -> None:
    env = {**run_env(), "DIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'n.db'}", "PYTHON": sys.executable,
           "LIST_MAPPING": str(CANONICAL), "LIST_INPUT": str(DATA / "canonical"), "LIST_OUT": str(tmp_path / "lists"),
           "LIST_LOG_DIR": str(tmp_path / "log"), "LIST_LOCK": str(tmp_path / "run" / "lock")}
    script = str(REPO / "scripts" / "nightly-list-build")
    ok = subprocess.run([script, "--as-of", "2026-11-23"], env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert len(list((tmp_path / "lists").glob("*/call_list.csv"))) == 1
    log = next((tmp_path / "log").glob("*.log")).read_text(encoding="utf-8")
    assert "end: exit 0" in log and "5 entries" in log
    # a run still holding the lock: the next one is skipped, not stacked
    with (tmp_path / "run" / "lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        busy = subprocess.run([script], env=env, capture_output=True, text=True, timeout=60)
        assert busy.returncode == 75 and "still running" in busy.stderr
    bad = subprocess.run([script], env={**env, "LIST_INPUT": str(tmp_path / "missing")}, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "failed" in bad.stderr
