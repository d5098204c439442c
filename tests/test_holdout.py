"""Hold-out control groups (issue 19): stable hash assignment, suppressed as `holdout`, recorded in the store,
and -- the property -- a control customer is never leased by the real hopper, whatever else is in the store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from dialer.commands.lists import upsert_entries
from dialer.config import CampaignConfig
from dialer.store.db import get_engine, init_db
from dialer.store.entries import Hopper
from dialer.store.holdout import HoldoutAssignment, assignments, controls, group_counts, record_assignments
from dialer.store.models import CallListEntry
from lists import ListSettings, build_lists, load_mapping
from lists.holdout import HoldoutSettings, draw, draw_sql, group_of, period_key
from lists.sample import write_sample
from tests.lists_util import CANONICAL, read_csv

AS_OF = date(2026, 11, 23)
TOKYO = "Asia/Tokyo"


def test_sql_and_python_draws_agree_and_are_uniform() -> None:
    ids = [f"C{i:06d}" for i in range(2000)] + ["顧客-あいう", "ｶﾅ01", "O'Brien"]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (cid VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[i] for i in ids])
    sql = dict(con.execute(f"SELECT cid, {draw_sql('s1', '2026-11', 'cid')} FROM t").fetchall())
    for cid in ids:
        assert abs(sql[cid] - draw("s1", "2026-11", cid)) < 1e-12
    share = sum(draw("s1", "2026-11", c) < 0.1 for c in ids[:2000]) / 2000
    assert 0.08 < share < 0.12
    # another period or seed is another lottery, not the same one shifted
    same = sum(group_of("s1", "2026-11", c, 0.5) == group_of("s1", "2026-12", c, 0.5) for c in ids[:2000])
    assert 850 < same < 1150
    assert period_key(AS_OF, "month") == "2026-11" and period_key(AS_OF, "quarter") == "2026-Q4"
    assert period_key(AS_OF, "week") == "2026-W48" and period_key(AS_OF, "冬の掘り起こし") == "冬の掘り起こし"


def _build(inp: Path, out: Path, as_of: date, share: float, seed: str = "s1", **kw: object):  # type: ignore[no-untyped-def]
    s = ListSettings(holdout=HoldoutSettings(share=share, seed=seed, **kw))  # type: ignore[arg-type]
    return build_lists(load_mapping(CANONICAL), inp, out, as_of, s)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("holdout") / "crm"
    write_sample(d, customers=1500, seed=7, as_of=AS_OF)
    return d


def test_build_holds_out_control_per_segment_and_is_stable(export: Path, tmp_path: Path) -> None:
    with _build(export, tmp_path / "a", AS_OF, 0.2) as r0:
        pass
    with _build(export, tmp_path / "b", AS_OF, 0.0) as base:
        all_entries = {(e.customer_id, e.segment) for e in base.entries()}
    with _build(export, tmp_path / "a", AS_OF, 0.2) as r:
        listed = {(e.customer_id, e.segment) for e in r.entries()}
        held = {(c, s): g for rows in r.holdout_rows() for c, s, g, _p in rows}
    summ = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert r0.summary["holdout"] == summ["holdout"]  # same night twice: identical assignment
    control = {k for k, g in held.items() if g == "control"}
    # every entry that would have been listed took part; control ones are exactly the missing ones
    assert set(held) == all_entries
    assert listed == all_entries - control
    assert summ["suppressed"]["holdout"] == len(control)
    assert summ["conservation"]["customers_ok"]
    for seg, c in summ["holdout"]["segments"].items():
        n = c["treatment"] + c["control"]
        if n >= 100:
            assert 0.1 < c["control"] / n < 0.3, (seg, c)
    assert all(group_of("s1", "2026-11", cid, 0.2) == "control" for cid, _seg in control)
    rows = read_csv(tmp_path / "a" / "call_list.csv")
    assert rows and {x["group"] for x in rows} == {"treatment"}
    assert not control & {(x["customer_id"], x["segment"]) for x in rows}
    h = read_csv(tmp_path / "a" / "holdout.csv")
    assert {(x["customer_id"], x["segment"]) for x in h if x["group"] == "control"} == control
    # a later night in the same month: whoever is still eligible keeps their group
    with _build(export, tmp_path / "c", AS_OF + timedelta(days=3), 0.2) as r2:
        held2 = {(c, s): g for rows in r2.holdout_rows() for c, s, g, _p in rows}
    common = set(held) & set(held2)
    assert len(common) > 0.5 * len(held)
    assert all(held[k] == held2[k] for k in common)
    # per-segment override: dormant at 0 keeps every dormant entry
    with _build(export, tmp_path / "d", AS_OF, 0.2, segments={"dormant": 0.0}) as r3:
        assert not [1 for rows in r3.holdout_rows() for _c, s, g, _p in rows if s == "dormant" and g == "control"]


def test_store_records_first_assignment_of_a_period(db_url: str) -> None:
    engine = get_engine(db_url)
    record_assignments(engine, [[("C1", "dormant", "control", "2026-11"), ("C2", "dormant", "treatment", "2026-11")]],
                       AS_OF)
    # a later build with another seed says otherwise: the period's first assignment stands
    record_assignments(engine, [[("C1", "dormant", "treatment", "2026-11")]], AS_OF + timedelta(days=1))
    rows = {(r[0], r[3]): r for r in assignments(engine, ["dormant"])}
    assert rows[("C1", "2026-11")][2] == "control" and rows[("C1", "2026-11")][5] == AS_OF + timedelta(days=1)
    assert group_counts(engine, ["dormant"]) == {"dormant": {"treatment": 1, "control": 1}}
    # the next period re-draws, but November's control stays held while November is measured (issue 26):
    # HOLD_DAYS after its first assignment, in every segment; then the latest period decides
    record_assignments(engine, [[("C1", "dormant", "treatment", "2026-12")]], date(2026, 12, 2))
    with engine.connect() as conn:
        assert controls(conn, ["C1", "C2"], datetime(2026, 12, 2, 3, tzinfo=UTC)) == {"C1"}
        assert controls(conn, ["C1", "C2"], datetime(2026, 12, 23, 3, tzinfo=UTC)) == {"C1"}
        assert controls(conn, ["C1", "C2"], datetime(2026, 12, 24, 3, tzinfo=UTC)) == set()


def test_cli_build_records_assignments_and_withdraws_control(tmp_path: Path, db_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from dialer.cli import main

    write_sample(tmp_path / "crm", customers=400, seed=3, as_of=AS_OF)
    cfg = tmp_path / "t.toml"
    cfg.write_text('[lists.holdout]\nshare = 0.25\nseed = "冬"\n', encoding="utf-8")
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    args = ["lists", "build", "--mapping", str(CANONICAL), "--input", str(tmp_path / "crm"),
            "--as-of", AS_OF.isoformat(), "--config", str(cfg)]
    assert main([*args, "--out", str(tmp_path / "o1")]) == 0
    engine = get_engine(db_url)
    rec = assignments(engine, ["dormant", "pre_churn", "upsell", "cross_sell"])
    ctl = {(r[0], r[1]) for r in rec if r[2] == "control"}
    assert ctl and all(r[3] == "2026-11" for r in rec)
    with Session(engine) as s:
        stored = {(e.customer_id, e.segment) for e in s.exec(select(CallListEntry)).all()}
    assert not ctl & stored
    # switch the hold-out on for a list already in the store: the control entries are withdrawn, not deleted
    cfg.write_text('[lists.holdout]\nshare = 0.0\n', encoding="utf-8")
    with Session(engine) as s:
        s.exec(delete(HoldoutAssignment))  # type: ignore[call-overload]
        s.commit()
    assert main([*args, "--out", str(tmp_path / "o2")]) == 0
    cfg.write_text('[lists.holdout]\nshare = 0.25\nseed = "冬"\n', encoding="utf-8")
    assert main([*args, "--out", str(tmp_path / "o3")]) == 0
    with Session(engine) as s:
        rows = {(e.customer_id, e.segment): e for e in s.exec(select(CallListEntry)).all()}
    for k in ctl:
        assert rows[k].status == "withdrawn" and rows[k].status_reason == "suppressed: holdout"


# --- the property: through the real hopper, control is never leased -----------------------------------------

@pytest.fixture(scope="module")
def prop_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine, _ = init_db(f"sqlite:///{tmp_path_factory.mktemp('hprops') / 'p.db'}")
    return engine


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(min_value=1, max_value=40), share=st.floats(min_value=0.05, max_value=0.5),
       seed=st.text(min_size=1, max_size=6), stray=st.booleans(),
       periods=st.lists(st.sampled_from(["2026-10", "2026-11"]), min_size=1, max_size=2, unique=True))
def test_control_customers_are_never_leased(prop_engine: Engine, n: int, share: float, seed: str, stray: bool,
                                            periods: list[str]) -> None:
    engine = prop_engine
    with Session(engine) as s:
        for t in (CallListEntry, HoldoutAssignment):
            s.exec(delete(t))  # type: ignore[call-overload]
        s.commit()
    at = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo on a weekday
    truth: dict[tuple[str, str], str] = {}
    for i, period in enumerate(sorted(periods)):
        rows = []
        for k in range(n):
            cid, seg = f"顧客{k:03d}", ("dormant", "upsell")[k % 2]
            g = group_of(seed, period, cid, share)
            rows.append((cid, seg, g, period))
            # October's control is still measured on 11-24 (first assignment 10-25 + 30 days): control in any
            # period recorded here holds the customer (issue 26)
            truth[(cid, seg)] = "control" if "control" in (g, truth.get((cid, seg))) else g
        record_assignments(engine, [rows], date(2026, 10 + i, 25))
    with Session(engine) as s:
        for (cid, seg), g in truth.items():
            if g == "control" and not stray:
                continue  # a normal build never lists them; `stray` plants them anyway (older build, hand edit)
            s.add(CallListEntry(customer_id=cid, segment=seg, phones=["+8190" + f"{abs(hash(cid)) % 10**8:08d}"],
                                timezone=TOKYO, callable_from=at - timedelta(days=1),
                                callable_until=at + timedelta(days=3), priority=100.0))
        s.commit()
    hopper = Hopper(engine, CampaignConfig(name="p", segments=["dormant", "upsell"]))
    preview = hopper.preview(at, limit=200)
    leased = hopper.lease(200, "t", at)
    got = {(x.customer_id, x.segment) for x in leased}
    assert not {(p.customer_id, p.segment) for p in preview} & {k for k, g in truth.items() if g == "control"}
    assert got == {k for k, g in truth.items() if g == "treatment"}
    for k, g in truth.items():
        if g == "control" and stray:
            with Session(engine) as s:
                e = s.exec(select(CallListEntry).where(
                    CallListEntry.customer_id == k[0], CallListEntry.segment == k[1])).one()
                assert e.status == "withdrawn" and e.status_reason == "suppressed: holdout"
                assert hopper.check_dialable(e.id or 0, e.phones[0], at) is not None


def test_upsert_of_a_build_never_stores_control(export: Path, tmp_path: Path, db_url: str) -> None:
    engine = get_engine(db_url)
    from zoneinfo import ZoneInfo

    with _build(export, tmp_path / "o", AS_OF, 0.3) as r:
        upsert_entries(engine, r, ZoneInfo(TOKYO), AS_OF)
        record_assignments(engine, r.holdout_rows(), AS_OF)
    hopper = Hopper(engine, CampaignConfig(name="all"), respect_calling_hours=False)
    leased = hopper.lease(5000, "t", datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    with engine.connect() as conn:
        ctl = controls(conn, [x.customer_id for x in leased])
    assert leased and not ctl


def test_outcomes_export_carries_the_group(db_url: str) -> None:
    import io

    from dialer.outcomes import export_csv
    from dialer.store.models import Attempt, Disposition

    engine = get_engine(db_url)
    record_assignments(engine, [[("C1", "dormant", "treatment", "2026-11")]], AS_OF)
    with Session(engine) as s:
        for cid in ("C1", "C9"):
            a = Attempt(customer_id=cid, segment="dormant", phone_e164="+819012345678")
            s.add(a)
            s.flush()
            s.add(Disposition(attempt_id=a.id, customer_id=cid, outcome="sale", amount=3980))
        s.commit()
    buf = io.StringIO()
    export_csv(engine, datetime(2000, 1, 1, tzinfo=UTC), buf)
    import csv as _csv

    rows = {r["customer_id"]: r for r in _csv.DictReader(io.StringIO(buf.getvalue()))}
    assert rows["C1"]["group"] == "treatment" and rows["C9"]["group"] == ""


# --- issue 26: hold-outs stay held for the whole measurement --------------------------------------------------


def _cli_build(tmp_path: Path, crm: Path, cfg: Path, as_of: date, out: str) -> None:
    from dialer.cli import main

    assert main(["lists", "build", "--mapping", str(CANONICAL), "--input", str(crm), "--as-of", as_of.isoformat(),
                 "--config", str(cfg), "--out", str(tmp_path / out), "--force"]) == 0


def test_month_boundary_does_not_release_november_controls(tmp_path: Path, db_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Calendar periods: 11-30 and 12-01 draw two lotteries, yet no November control is dialled on 12-01."""
    nov30, dec1 = date(2026, 11, 30), date(2026, 12, 1)
    write_sample(tmp_path / "crm", customers=600, seed=5, as_of=nov30)
    cfg = tmp_path / "t.toml"
    cfg.write_text('[lists.holdout]\nshare = 0.3\nseed = "歳末"\n', encoding="utf-8")
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    _cli_build(tmp_path, tmp_path / "crm", cfg, nov30, "o1")
    _cli_build(tmp_path, tmp_path / "crm", cfg, dec1, "o2")
    engine = get_engine(db_url)
    rec = assignments(engine, ["dormant", "pre_churn", "upsell", "cross_sell"])
    nov_ctl = {r[0] for r in rec if r[3] == "2026-11" and r[2] == "control"}
    dec = {r[0]: r[2] for r in rec if r[3] == "2026-12"}
    # December's lottery alone would have moved some of them to treatment (what released them before issue 26)...
    assert [c for c in nov_ctl if group_of("歳末", "2026-12", c, 0.3) == "treatment"]
    # ...but they are neither drawn again nor listed while November is measured
    assert dec and not nov_ctl & set(dec)
    assert not nov_ctl & {r["customer_id"] for r in read_csv(tmp_path / "o2" / "call_list.csv")}
    summ = json.loads((tmp_path / "o2" / "summary.json").read_text(encoding="utf-8"))
    assert summ["holdout"]["held_from_earlier"] > 0
    # and an entry for one of them that is in the store anyway (an older build, a hand edit) is never dialled
    at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 12:00 in Tokyo
    stray = sorted(nov_ctl)[:5]
    with Session(engine) as s:
        for i, cid in enumerate(stray):
            s.add(CallListEntry(customer_id=cid, segment="upsell", phones=[f"+8190555{i:05d}"], timezone=TOKYO,
                                callable_from=at - timedelta(days=1), callable_until=at + timedelta(days=3),
                                priority=10**9))
        s.commit()
    hopper = Hopper(engine, CampaignConfig(name="all"), respect_calling_hours=False)
    preview = {p.customer_id for p in hopper.preview(at, limit=5000)}
    leased = {x.customer_id for x in hopper.lease(5000, "t", at)}
    assert leased, "nothing leasable: the test would prove nothing"
    assert not (leased | preview) & nov_ctl
    assert not leased & {c for c, g in dec.items() if g == "control"}


def test_named_experiment_assignment_is_stable_and_held_until_its_end(tmp_path: Path, db_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    nov30, dec1 = date(2026, 11, 30), date(2026, 12, 1)
    write_sample(tmp_path / "crm", customers=600, seed=5, as_of=nov30)
    cfg = tmp_path / "t.toml"
    cfg.write_text('[lists.holdout]\nshare = 0.3\nseed = "歳末"\nexperiment = "冬の掘り起こし"\n'
                   'start = 2026-11-15\nend = 2026-12-31\n', encoding="utf-8")
    monkeypatch.setenv("DIALER_DATABASE_URL", db_url)
    _cli_build(tmp_path, tmp_path / "crm", cfg, nov30, "o1")
    engine = get_engine(db_url)
    first = {(r[0], r[1]): r[2] for r in assignments(engine, ["dormant", "pre_churn", "upsell", "cross_sell"])}
    _cli_build(tmp_path, tmp_path / "crm", cfg, dec1, "o2")
    rec = assignments(engine, ["dormant", "pre_churn", "upsell", "cross_sell"])
    assert {r[3] for r in rec} == {"冬の掘り起こし"}  # keyed by the experiment, not the month
    after = {(r[0], r[1]): r[2] for r in rec}
    common = set(first) & set(after)
    assert len(common) > 0.5 * len(first) and all(first[k] == after[k] for k in common)
    assert all(group_of("歳末", "冬の掘り起こし", c, 0.3) == g for (c, _s), g in after.items())
    ctl = {c for (c, _s), g in after.items() if g == "control"}
    assert ctl
    with engine.connect() as conn:
        assert controls(conn, sorted(ctl), datetime(2026, 12, 31, 14, tzinfo=UTC)) == ctl  # the last day
        assert controls(conn, sorted(ctl), datetime(2027, 1, 1, 3, tzinfo=UTC)) == set()  # measured: released
    # a build after the end draws nothing: no new control, nobody newly held out
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("end = 2026-12-31", "end = 2026-11-30"), encoding="utf-8")
    _cli_build(tmp_path, tmp_path / "crm", cfg, dec1 + timedelta(days=1), "o3")
    summ = json.loads((tmp_path / "o3" / "summary.json").read_text(encoding="utf-8"))
    assert summ["holdout"]["drawing"] is False and summ["suppressed"].get("holdout", 0) == 0
