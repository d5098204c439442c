"""The settings step: config is the source of truth on every start, every pacer field arrives, and the pacer
and the compliance report count the same calendar day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from dialer.campaign import CampaignRunner
from dialer.config import Config, parse_config
from dialer.reports import compliance_report
from dialer.settings import campaign_settings
from dialer.store.db import get_engine
from dialer.store.models import Attempt, Campaign, CampaignEvent, CampaignStatus
from pacing.engine import Pacer

JST = ZoneInfo("Asia/Tokyo")

CONFIG = """
[database]
url = "{url}"
[[trunks]]
name = "lab"
proxy = "sip:127.0.0.1:5999"
sandbox = true
[[campaigns]]
name = "c"
trunk = "lab"
mode = "power"
abandon_target = {target}
abandon_window = "day"
abandon_regime = "uk"
prior_hit_rate = 0.35
prior_talk_s = 150
prior_wrap_s = 20
[schedules]
timezone = "Asia/Tokyo"
[reports]
machine_false_positive_share = 0.25
"""


def _cfg(url: str, target: float) -> Config:
    return parse_config(CONFIG.replace("{url}", url).replace("{target}", str(target)), "t.toml")


def test_every_pacer_field_comes_from_config(db_url: str) -> None:
    cfg = parse_config(CONFIG.replace("{url}", db_url).replace("{target}", "0.01"), "t.toml")
    now = datetime(2026, 11, 24, 15, 30, tzinfo=JST)
    s = campaign_settings(cfg, "c", now)
    p = s.pacer
    assert (p.mode, p.abandon_target, p.abandon_window, p.abandon_regime) == ("power", 0.01, "day", "uk")
    assert (p.prior_hit_rate, p.prior_talk_s, p.prior_wrap_s) == (0.35, 150, 20)
    assert p.amd_false_positive_rate == 0.25
    # the day window starts at Tokyo midnight, not UTC midnight
    assert p.day_start_s == datetime(2026, 11, 24, 0, 0, tzinfo=JST).timestamp()
    assert s.policy.retry.abandon_lock == timedelta(hours=72) and s.policy.hours.start.hour == 9


def test_an_edited_abandon_target_is_used_on_the_next_start(db_url: str) -> None:
    eng = get_engine(db_url)
    first = CampaignRunner(_cfg(db_url, 0.02), "c", eng)
    assert first.pacer_target() == 0.02
    first.publish(first.clock())  # the run's pacer state is saved, as every running campaign does
    # the operator edits tsunagu.toml between runs
    second = CampaignRunner(_cfg(db_url, 0.01), "c", eng)
    assert second.pacer_target() == 0.01 and second.pacer.ctl.target == 0.01
    second.publish(second.clock())
    with Session(eng) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "c")).one()
        assert camp.abandon_target == 0.01
        st = s.get(CampaignStatus, camp.id)
        assert st is not None and st.stats["target"] == 0.01
        events = s.exec(select(CampaignEvent).where(CampaignEvent.kind == "config_changed")).all()
    assert [e.message for e in events] == ["abandon_target: 0.02 -> 0.01 (from config)"]
    # an unchanged config changes nothing and says nothing
    CampaignRunner(_cfg(db_url, 0.01), "c", eng)
    with Session(eng) as s:
        assert len(s.exec(select(CampaignEvent).where(CampaignEvent.kind == "config_changed")).all()) == 1


@pytest.mark.parametrize("minutes_after_midnight", [1, 20, 60 * 23 + 59])
def test_pacer_day_window_and_compliance_report_agree_at_local_midnight(db_url: str,
                                                                        minutes_after_midnight: int) -> None:
    """Calls on both sides of Tokyo midnight (which is 15:00 UTC): both must count only today's."""
    cfg = parse_config(CONFIG.replace("{url}", db_url).replace("{target}", "0.02"), "t.toml")
    midnight = datetime(2026, 11, 25, 0, 0, tzinfo=JST)
    now = midnight + timedelta(minutes=minutes_after_midnight)
    settings = campaign_settings(cfg, "c", midnight - timedelta(hours=5))  # the run started the evening before
    pacer = Pacer(settings.pacer)
    eng = get_engine(db_url)
    calls = [(-50, True), (-40, True), (-30, False), (-20, False),  # yesterday evening: 2 of 4 abandoned
             (0, False), (0.5, True), (0.75, False)]  # today: 1 of 3 (the first at 00:00:00 exactly)
    with Session(eng) as s:
        camp = Campaign(name="c", abandon_window="day", abandon_regime="us", state="running")
        s.add(camp)
        s.commit()
        for k, (minute, abandoned) in enumerate(calls):
            at = midnight + timedelta(minutes=minute)
            if at > now:
                continue
            s.add(Attempt(campaign_id=camp.id, customer_id=f"K{k}", phone_e164="+81312345678", state="ended",
                          outcome="answered", abandoned=abandoned, dialed_at=at - timedelta(seconds=9),
                          answered_at=at, trunk="lab"))
            pacer.record_outcome(at.timestamp(), "human", 9.0)
            if abandoned:
                pacer.record_abandon(at.timestamp(), 2.0)
        s.commit()
    report = compliance_report(eng, cfg, now=now.astimezone(UTC), campaign="c")
    day = report["campaigns"]["c"]["windows"]["day"]
    assert (day["answered"], day["abandoned"]) == (3, 1)
    assert pacer.book.counts(now.timestamp(), "day", settings.pacer.day_start_s) == (1.0, 3.0)
    assert pacer.abandon_rates(now.timestamp())["day"] == pytest.approx(day["us"])
