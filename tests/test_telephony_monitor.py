"""The monitor shows a trunk that is down (and why) and the lines this host carries (issue 13, items 2 and 5)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from dialer.store.db import get_engine
from dialer.store.models import Campaign, CampaignStatus
from tests.test_reports import NOW
from tests.test_views_render import _monitor, text_of, world  # noqa: F401


def test_monitor_shows_trunk_down_and_host_capacity(world: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = world
    with Session(get_engine(url)) as s:
        camp = s.exec(select(Campaign).where(Campaign.name == "demo")).one()
        st = s.get(CampaignStatus, camp.id)
        assert st is not None
        st.stats = {**(st.stats or {}), "telephony": {
            "trunk": {"down": True, "reason": "authentication failed (401 Unauthorized: the trunk refused our "
                                              "credentials)"},
            "capacity": {"lines": 52, "configured_lines": 150, "max_lines_per_host": 52}}}
        s.add(st)
        s.commit()
    out = text_of(_monitor(world).render(160, NOW, height=50), 160)
    assert "TRUNK DOWN: authentication failed" in out
    assert "lines 52/52 per host (clamped)" in out
