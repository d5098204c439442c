"""uk_ofcom counts 3 % of live calls per call centre per 24 h (issue 31): campaigns on one store share one budget.

A real SQLite store; the other campaign's facts are attempt rows, read by dialer.node.budget.SiteFeed into the
pacer's site book (pacing.engine.Pacer.site_book), which every count of the pacer then includes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from dialer.node.budget import SiteFeed
from dialer.store import Engine
from dialer.store.db import init_db
from dialer.store.models import Attempt
from pacing.engine import AgentView, Pacer, PacerConfig, Snapshot


def _attempts(engine: Engine, campaign_id: int, at: datetime, people: int, abandoned: int, machines: int = 0,
              customer: str = "顧客") -> None:
    with Session(engine) as s:
        for i in range(people + machines):
            s.add(Attempt(campaign_id=campaign_id, customer_id=f"{customer}{i}", state="ended", dialed_at=at,
                          answered_at=at, ended_at=at, machine=i >= people, abandoned=i < abandoned,
                          agent_connected_at=at if abandoned <= i < people else None))
        s.commit()


def _pacer(regime: str) -> Pacer:
    return Pacer(PacerConfig(abandon_regime=regime, day_start_s=0.0, warmup_answers=0, ramp_answers=0))


def test_campaigns_on_one_store_share_one_uk_ofcom_day_budget(tmp_path: Path) -> None:
    engine, _ = init_db(f"sqlite:///{tmp_path / 'site.db'}")
    now_dt = datetime.now(UTC).replace(microsecond=0)
    now = now_dt.timestamp()
    midnight = datetime.fromtimestamp(now - now % 86400.0, UTC)
    _attempts(engine, 2, midnight - timedelta(hours=3), people=50, abandoned=40, customer="昨日")  # yesterday
    _attempts(engine, 2, now_dt - timedelta(minutes=5), people=100, abandoned=2, machines=10)
    _attempts(engine, 1, now_dt - timedelta(minutes=5), people=5, abandoned=5, customer="自分")  # own: not the feed's

    a = _pacer("uk_ofcom")
    feed = SiteFeed.for_pacer(engine, 1, a, now)
    assert feed is not None
    assert feed.poll(a, time.monotonic()) == 100 + 10 + 2
    assert feed.fed == {"answered": 100, "machine": 10, "abandoned": 2}
    assert a.book.counts(now, "day", 0.0) == (2.0, 100.0)  # today only; campaign 1's own rows are its own to record
    assert a.budget(now)["abandons"] == 2.0
    assert feed.poll(a, time.monotonic() + 10.0) == 0  # each fact once

    ready = Snapshot(now=now, agents=[AgentView("ready")] * 4 + [AgentView("on_call", 200.0)] * 4)
    assert not a.budget_exhausted(now)
    _attempts(engine, 2, now_dt - timedelta(minutes=1), people=2, abandoned=2, customer="追加")
    assert feed.poll(a, time.monotonic() + 20.0) == 4
    assert a.book.counts(now, "day", 0.0) == (4.0, 102.0)
    assert a.budget_exhausted(now)  # 4 / 102 > 3 %: spent by the other campaign, this one goes progressive
    d = a.decide(ready)
    assert d.dial <= 4 and d.mode == "progressive" and "budget spent" in d.note

    # a restart: the saved state holds only the pacer's own book; the site book is read again, not counted twice
    b = Pacer.from_state(a.cfg, a.to_state())
    feed_b = SiteFeed.for_pacer(engine, 1, b, now)
    assert feed_b is not None and feed_b.poll(b, time.monotonic()) == 100 + 10 + 2 + 4
    assert b.book.counts(now, "day", 0.0) == (4.0, 102.0)

    # a regime counted per campaign reads nothing of the others
    own = _pacer("jp_cx")
    assert own.site_book() is None and SiteFeed.for_pacer(engine, 1, own, now) is None
