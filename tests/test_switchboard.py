"""Issue 30, first step: the telephony belongs to a switchboard above the campaigns, not to a campaign's runner.

No SIP here: building a `Telephony` starts no process, and the runner is built over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.campaign import CampaignRunner
from dialer.config import parse_config
from dialer.store.db import get_engine
from dialer.telephony import CallEvent
from dialer.telephony.events import EventKind
from dialer.telephony.switchboard import Switchboard
from tests.test_campaign_e2e import seed
from tests.test_pause_standby import config_text

REPO = Path(__file__).resolve().parent.parent


def test_a_runner_dials_through_the_switchboard_it_is_given_and_leaves_it(db_url: str) -> None:
    seed(db_url, 2)
    cfg = parse_config(config_text(db_url), "sb.toml")
    board = Switchboard(cfg)
    runner = CampaignRunner(cfg, "c", get_engine(db_url), switchboard=board)
    assert runner.tel is board.tel and board.campaigns == ["c"]
    with pytest.raises(RuntimeError, match="already serves campaign 'c'"):
        board.attach("キャンペーン2")  # one event stream, one loop reading it, until events are dispatched by owner
    first = board.tel
    board.detach("c")  # the last campaign out stops the telephony
    assert board.campaigns == [] and not first.started
    board.stop()  # a second stop does nothing
    again = CampaignRunner(cfg, "c", get_engine(db_url), switchboard=board)
    assert again.tel is board.tel and again.tel is not first  # a restarted campaign gets fresh workers


def test_a_runner_made_without_a_switchboard_gets_a_private_one(db_url: str) -> None:
    seed(db_url, 2)
    cfg = parse_config(config_text(db_url), "sb.toml")
    runner = CampaignRunner(cfg, "c", get_engine(db_url))
    assert runner.switchboard.campaigns == ["c"] and runner.tel is runner.switchboard.tel


def test_a_call_that_belongs_to_no_campaign_is_kept_not_dropped(db_url: str) -> None:
    board = Switchboard(parse_config(config_text(db_url), "sb.toml"))
    ev = CallEvent(EventKind.INCOMING, detail="INVITE from +8190****5678 to the campaign's number")
    board.unowned(ev)
    assert list(board.unowned_events) == [ev]


def test_production_code_builds_telephony_only_in_the_switchboard() -> None:
    """The runner, its handlers and the node no longer build a Telephony; callers hand them a switchboard."""
    offenders = []
    for folder in ("dialer/runner", "dialer/node"):
        offenders += [p for p in (REPO / folder).rglob("*.py") if "Telephony(" in p.read_text(encoding="utf-8")]
    offenders += [p for p in (REPO / "dialer/campaign.py", REPO / "dialer/commands/campaign.py")
                  if "Telephony(" in p.read_text(encoding="utf-8")]
    assert not offenders, offenders
    assert "Telephony(" in (REPO / "dialer/telephony/switchboard.py").read_text(encoding="utf-8")


def test_the_runner_hands_an_incoming_call_up_to_its_switchboard(db_url: str) -> None:
    """An INVITE the campaign did not place is not the runner's: it goes to the owner above, untouched."""
    seed(db_url, 2)
    cfg = parse_config(config_text(db_url), "sb.toml")
    board = Switchboard(cfg)
    runner = CampaignRunner(cfg, "c", get_engine(db_url), switchboard=board)
    ev = CallEvent(EventKind.INCOMING, detail="折り返し: INVITE from +8190****5678")
    runner.handle(ev)
    assert list(board.unowned_events) == [ev] and not runner.live and not runner.counts
