"""Issue 27: one occupancy everywhere, counted from a hand-made agent timeline.

Rows written below with known intervals (minutes after T = 09:00 JST); the runner crashed at T+120 (its last
heartbeat), the figures are read at T+300:

  a01  ready 0-20, on_call 20-35, wrap 35-40, ready 40-90, on_call 90-110, wrap 110-open (crash)
       -> logged in 120, talk 35, wrap 15 (the open wrap-up counts 110-120, not up to T+300, not cut at 110)
  a02  paused -30-10 (untagged; the campaign began at 0: counts 0-10), ready 10-50, on_call 50-60, wrap 60-62,
       logged_out 62-70, ready 70-open -> logged in 10+40+10+2+50 = 112, talk 10, wrap 2
  team logged in 232 min, talk 45, wrap 17: occupancy (占有率) 62 / 232
  hour 09:00 JST: a01 60 (talk 15, wrap 5), a02 60 (talk 10) -> 30/120; hour 10:00: a01 60 (20 + 10), a02 52
  (wrap 2) -> 32/112; 11:00: nobody (the crash).
  quarter 09:30-09:45: a01 on_call 5, wrap 5, ready 5; a02 ready 15 -> 10/30.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from dialer.domain.agent_time import Span, agent_time, team_time, time_by_bucket
from dialer.reports import campaign_report
from dialer.store.agent_time import close_after_crash, close_at_stop, reopen_stretches
from dialer.store.db import get_engine
from dialer.store.models import Agent, AgentStateLog, Attempt, Campaign, CampaignStatus
from dialer.store.report_rows import period_rows
from dialer.views.monitor import quarter_hours
from dialer.views.report_charts import build_series, daily_rows
from dialer.views.report_view import write_report_csv

T = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
M = timedelta(minutes=1)
NOW = T + 300 * M
CRASH = T + 120 * M

A01 = [("ready", 0, 20), ("on_call", 20, 35), ("wrap_up", 35, 40), ("ready", 40, 90), ("on_call", 90, 110),
       ("wrap_up", 110, None)]
A02 = [("paused", -30, 10), ("ready", 10, 50), ("on_call", 50, 60), ("wrap_up", 60, 62), ("logged_out", 62, 70),
       ("ready", 70, None)]


def spans(agent_id: int, rows: list[tuple[str, int, int | None]]) -> list[Span]:
    return [Span(agent_id, st, T + a * M, None if b is None else T + b * M) for st, a, b in rows]


def test_domain_counts_the_timeline_by_hand() -> None:
    all_spans = spans(1, A01) + spans(2, A02)
    per = agent_time(all_spans, T, None, CRASH)
    assert (per[1].logged_in_s, per[1].talk_s, per[1].wrap_s) == (120 * 60, 35 * 60, 15 * 60)
    assert (per[2].logged_in_s, per[2].talk_s, per[2].wrap_s) == (112 * 60, 10 * 60, 2 * 60)
    team = team_time(per)
    assert team.occupancy == pytest.approx(62 / 232)
    hours = time_by_bucket(all_spans, [(T + i * 60 * M, T + (i + 1) * 60 * M) for i in range(3)], CRASH)
    assert [h.logged_in_s / 60 for h in hours] == [120, 112, 0]
    assert [h.busy_s / 60 for h in hours] == [30, 32, 0] and hours[2].occupancy is None
    assert sum(h.logged_in_s for h in hours) == team.logged_in_s  # the hours add up to the total
    # an open stretch is never counted past OPEN_UNTIL, and a window edge cuts a stretch that spans it
    assert agent_time(spans(1, A01), T + 115 * M, T + 400 * M, CRASH)[1].wrap_s == 5 * 60
    assert agent_time(spans(2, A02), None, T + 5 * M, CRASH)[2].logged_in_s == 35 * 60


def write_timeline(url: str, *, state: str = "running", beat: datetime | None = CRASH) -> dict[str, int]:
    eng = get_engine(url)
    with Session(eng, expire_on_commit=False) as s:
        camp = Campaign(name="tl", segments=["dormant"], state=state, holidays="")
        other = Campaign(name="elsewhere", segments=["upsell"], state="running", holidays="")
        a01, a02, a03 = (Agent(login="a01", name="佐藤"), Agent(login="a02", name="鈴木"),
                         Agent(login="a03", name="高橋"))
        for r in (camp, other, a01, a02, a03):
            s.add(r)
        s.commit()
        assert camp.id and other.id and a01.id and a02.id and a03.id
        for agent, rows in ((a01, A01), (a02, A02)):
            for st, a, b in rows:
                s.add(AgentStateLog(agent_id=agent.id, state=st, started_at=T + a * M,
                                    ended_at=None if b is None else T + b * M,
                                    campaign_id=None if a < 0 else camp.id))
            agent.state, agent.campaign_id = rows[-1][0], camp.id
        # a03 works another campaign all along: never counted for tl, never logged out by tl's stop
        s.add(AgentStateLog(agent_id=a03.id, state="ready", started_at=T, campaign_id=other.id))
        a03.state, a03.campaign_id = "ready", other.id
        for agent, dialed, connected, ended in ((a01, 19, 20, 35), (a01, 89, 90, 110), (a02, 49, 50, 60)):
            s.add(Attempt(campaign_id=camp.id, entry_id=1, customer_id="C1", segment="dormant",
                          phone_e164="+819000000001", dialed_at=T + dialed * M, answered_at=T + connected * M,
                          agent_connected_at=T + connected * M, ended_at=T + ended * M, outcome="answered",
                          state="ended", agent_id=agent.id))
        if beat is not None:
            s.add(CampaignStatus(campaign_id=camp.id, runner="deadhost:4242", heartbeat_at=beat, mode="predictive"))
        for r in (a01, a02, a03):
            s.add(r)
        s.commit()
        return {"camp": camp.id, "other": other.id, "a01": a01.id, "a02": a02.id, "a03": a03.id}


def test_report_chart_csv_and_monitor_agree_on_the_crashed_timeline(db_url: str) -> None:
    write_timeline(db_url)
    eng = get_engine(db_url)
    r = campaign_report(eng, "tl", now=NOW)
    assert r["logged_in_s"] == 232 * 60 and r["talk_s"] == 45 * 60 and r["wrap_s"] == 17 * 60
    assert r["occupancy"] == pytest.approx(62 / 232)
    assert r["agents"]["a01"]["logged_in_s"] == 120 * 60 and r["agents"]["a02"]["logged_in_s"] == 112 * 60
    assert r["agents"]["a01"]["occupancy"] == pytest.approx(50 / 120)
    assert r["agents"]["a01"]["aht_s"] == pytest.approx(50 * 60 / 2) and "a03" not in r["agents"]
    assert r["aht_s"] == pytest.approx(62 * 60 / 3)
    # the charts: the same count per hour, adding up to the report
    rows = period_rows(eng, "tl", None, None)
    assert rows is not None
    series = build_series(rows, "Asia/Tokyo", 0.0, None, None, now=NOW)
    assert [h.hour for h in series.hours] == [9, 10, 11]  # Tokyo hours
    assert [t.logged_in_s / 60 for t in series.agent_hours] == [120, 112, 0]
    assert series.occupancy[:2] == [pytest.approx(30 / 120), pytest.approx(32 / 112)] and series.occupancy[2] is None
    assert sum(t.logged_in_s for t in series.agent_hours) == r["logged_in_s"]
    assert sum(t.busy_s for t in series.agent_hours) == r["talk_s"] + r["wrap_s"]
    # the CSVs carry the same agent time
    day = [d for d in daily_rows(rows, "Asia/Tokyo", 0.0) if d["segment"] == "ALL"]
    assert len(day) == 1 and day[0]["logged_in_s"] == str(232 * 60) and day[0]["occupancy"] == f"{62 / 232:.4f}"
    buf = io.StringIO()
    write_report_csv(r, buf)
    all_row = next(x for x in csv.DictReader(io.StringIO(buf.getvalue())) if x["segment"] == "ALL")
    assert all_row["logged_in_s"] == str(232 * 60) and all_row["occupancy"] == f"{62 / 232:.4f}"
    # the monitor's 15-minute rows: the same rule, open stretches cut at the dead runner's heartbeat
    with Session(eng) as s:
        log = list(s.exec(select(AgentStateLog)).all())
        atts = list(s.exec(select(Attempt)).all())
    camp_id = rows.campaign.id
    q = quarter_hours(atts, log, camp_id, T + 120 * M, n=8, regime="us", fp_share=0.0, until=CRASH)
    by_start = {x["at"]: x["occupancy"] for x in q}
    assert by_start[T + 30 * M] == pytest.approx(10 / 30)


def test_a_stop_closes_the_campaigns_agents_stretches_and_the_next_start_reopens_them(db_url: str) -> None:
    ids = write_timeline(db_url, state="stopped", beat=None)
    eng = get_engine(db_url)
    out = close_at_stop(eng, ids["camp"], ["a01", "a02", "a03"], CRASH)
    assert sorted(out) == ["a01", "a02"]  # a03 works another campaign
    with Session(eng) as s:
        open_rows = s.exec(select(AgentStateLog).where(col(AgentStateLog.ended_at).is_(None))).all()
        assert [(r.agent_id, r.state) for r in open_rows] == [(ids["a03"], "ready")]
        # the agents keep the state they chose (the console still shows it); only the counting stops
        assert {a.login: a.state for a in s.exec(select(Agent)).all()} == {"a01": "wrap_up", "a02": "ready",
                                                                         "a03": "ready"}
    # with no heartbeat at all (open_until would be "now"), nothing is counted into the future any more
    r = campaign_report(eng, "tl", now=NOW)
    assert r["logged_in_s"] == 232 * 60 and r["occupancy"] == pytest.approx(62 / 232)
    # the next runner opens each logged-in agent's state again when it starts: its run is counted from there
    assert reopen_stretches(eng, ids["camp"], ["a01", "a02", "a03"], NOW) == 2
    r = campaign_report(eng, "tl", now=NOW + 10 * M)
    assert r["logged_in_s"] == (232 + 20) * 60 and r["wrap_s"] == (17 + 10) * 60


def test_recovery_closes_what_a_crash_left_open_at_the_last_heartbeat(db_url: str) -> None:
    ids = write_timeline(db_url)
    eng = get_engine(db_url)
    assert close_after_crash(eng, ids["camp"], ["a01", "a02", "a03"], CRASH, NOW) == 2
    assert reopen_stretches(eng, ids["camp"], ["a01", "a02", "a03"], NOW) == 2
    with Session(eng, expire_on_commit=False) as s:
        rows = s.exec(select(AgentStateLog).where(AgentStateLog.agent_id == ids["a01"])
                      .order_by(col(AgentStateLog.id))).all()
        st = s.get(CampaignStatus, ids["camp"])
        assert st is not None
        st.runner, st.heartbeat_at = "newhost:1", NOW + 10 * M  # the recovering runner is live
        s.add(st)
        s.commit()
    tail = [(r.state, r.started_at.replace(tzinfo=UTC), r.ended_at and r.ended_at.replace(tzinfo=UTC))
            for r in rows[-2:]]
    assert tail == [("wrap_up", T + 110 * M, CRASH), ("wrap_up", NOW, None)]
    # ten minutes into the new run: the outage is not logged-in time, the resumed stretches are
    r = campaign_report(eng, "tl", now=NOW + 10 * M)
    assert r["logged_in_s"] == (232 + 20) * 60 and r["wrap_s"] == (17 + 10) * 60
