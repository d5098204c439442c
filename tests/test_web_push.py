"""The browser's live pushes are shared (issue 29): one rendering per view per change, whoever watches.

Real SQLite store, the real `Web` and push `Hub`; no browser (tests/test_web.py drives Chromium)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.web import PASSWORD, _setup


@pytest.fixture()
def web(tmp_path: Path):  # type: ignore[no-untyped-def]
    from dialer.config import load_config
    from dialer.store.db import get_engine
    from dialer.web.app import Web

    cfg = _setup(tmp_path, 6)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield Web(load_config(cfg), get_engine(f"sqlite:///{tmp_path / 'bench.db'}"), push_s=0.3)
    finally:
        os.chdir(here)


def test_consoles_are_rendered_again_only_when_their_agent_changed_and_the_floor_once_for_all(web) -> None:  # type: ignore[no-untyped-def]
    from dialer.service import auth
    from dialer.store.agents import set_idle
    from dialer.web.push import View

    hub = web.hub
    agents = [auth.login(web.engine, f"b{i:02d}", PASSWORD) for i in range(6)]
    sv = auth.login(web.engine, "sv", PASSWORD)
    views = {}
    for who in agents:
        for _tab in range(2):  # two tabs each: one view, two watchers
            k = hub.key("agent", who.agent_login, "ja", who)
            views[k] = hub.views.setdefault(k, View(who))
            views[k].watchers += 1
    for _board in range(3):
        k = hub.key("wallboard", "", "ja", sv)
        views[k] = hub.views.setdefault(k, View(sv))
        views[k].watchers += 1
    assert len(hub.views) == 7  # 12 agent tabs and 3 wallboards share 7 views
    first = hub.render_due(dict(hub.views))
    assert len(first) == 7 and hub.renders == 7
    assert 'data-login="b05"' not in first[hub.key("wallboard", "", "ja", sv)]  # logged out: not on the floor
    # nothing changed: the wallboard is rendered once (for its three watchers), no console at all
    again = hub.render_due(dict(hub.views))
    assert [k[0] for k in again] == ["wallboard"]
    # one agent's state changes: that console alone is rendered again, and shows it; the wallboard too
    assert set_idle(web.engine, "b05", "logged_out", "ready", datetime.now(UTC)) is None
    changed = hub.render_due(dict(hub.views))
    assert sorted(k[1] for k in changed if k[0] == "agent") == ["b05"]
    assert 'state-ready' in changed[hub.key("agent", "b05", "ja", agents[5])]
    board = changed[hub.key("wallboard", "", "ja", sv)]
    assert 'data-login="b05"' in board
