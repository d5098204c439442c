"""Preview mode: the runner reserves an entry for each ready agent, the console shows its pop, and the agent
dials, skips with a reason, or takes the next — through store commands the runner applies.

Live: a SIPp carrier that answers and a simulated pjsua2 agent; the console's own store API writes the
commands. One dial must be exactly one INVITE at the carrier and one attempt row, and the agent who dialled
gets the call; a skip gives the entry back with its reason recorded; an entry blocked (DNC) after it was
reserved is never dialled, whatever the agent presses.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlmodel import Session, select

from dialer.config import parse_config
from dialer.domain import preview
from dialer.i18n import set_language
from dialer.store import preview as preview_store
from dialer.store.db import dispose_engines, get_engine, init_db
from dialer.store.models import Agent, Attempt, Block, CallListEntry, CampaignEvent, ControlCommand, Customer
from dialer.views.agent_console import AgentConsole
from tests.conftest import REPO
from tests.sipp import Sipp, free_udp_port
from tests.test_reports import NOW, build_store, write_config


def text_of(renderable: object, width: int) -> str:
    con = Console(record=True, width=width, color_system=None)
    con.print(renderable)
    return con.export_text()


# ------------------------------------------------------------------------------ the console (no SIP)
@pytest.fixture()
def reserved_console(db_url: str, tmp_path: Path) -> tuple[AgentConsole, int]:
    """The known store (tests/test_reports) with a02 ready and C7's entry reserved for a02 in preview."""
    build_store(db_url)
    cfgp = write_config(tmp_path, db_url)
    cfg = parse_config(cfgp.read_text(encoding="utf-8"), str(cfgp))
    engine = get_engine(db_url)
    with Session(engine) as s:
        a02 = s.exec(select(Agent).where(Agent.login == "a02")).one()
        a02.state, a02.pause_reason, a02.state_since = "ready", "", NOW - timedelta(seconds=20)
        e = s.exec(select(CallListEntry).where(CallListEntry.customer_id == "C7")).first()
        assert e is not None and e.id is not None
        e.status, e.lease_owner, e.lease_expires_at = "leased", preview.owner("demo", "a02"), NOW + timedelta(hours=1)
        s.add(a02)
        s.add(e)
        s.commit()
        eid = e.id
    c = AgentConsole(engine, cfg, "a02")
    c.refresh(NOW)
    return c, eid


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_console_shows_the_preview_pop_before_any_dial(reserved_console: tuple[AgentConsole, int],
                                                       lang: str) -> None:
    c, _eid = reserved_console
    try:
        set_language(lang)
        out = text_of(c.render(80, NOW), 80)
        title, keys = {"en": ("preview — next call, not dialled yet (demo)", "c dial  s skip (reason)  n next"),
                       "ja": ("プレビュー — 次の架電先（未発信）（demo）", "c 発信  s スキップ（理由）  n 次へ")}[lang]
        assert title in out and keys in out
        # the full pop: name, kana, masked number, why listed, the opening naming the agent
        assert "顧客7" in out and "コキャク7" in out and "tel …0007" in out and "+81" not in out
        assert "trial ends in 3 days" in out and "Suzuki" in out and "勧誘" in out
        assert ("waiting for a call" if lang == "en" else "着信待ち") not in out
        wide = text_of(c.render(160, NOW), 160)
        assert title in wide and "コキャク7" in wide
        c.handle_key("s", NOW)
        out = text_of(c.render(80, NOW), 80)
        assert ("skip reason" if lang == "en" else "スキップ理由") in out
        assert ("bad data" if lang == "en" else "データ不備") in out
    finally:
        set_language("en")


def test_console_keys_write_dial_and_skip_commands(reserved_console: tuple[AgentConsole, int]) -> None:
    from dialer.store.campaigns import load_campaign, record_event

    c, eid = reserved_console
    cid = load_campaign(c.engine, "demo").id

    def runner_answers() -> None:  # what the runner's event says once it applied the command
        record_event(c.engine, cid, preview.DIAL, "a02: refused: campaign paused/preview, agent ready")
        c.refresh(NOW)

    c.handle_key("c", NOW)
    c.handle_key("c", NOW)  # pressed twice before the runner answered: one command
    assert c.message == "waiting for the dialer to apply your last key"
    runner_answers()
    c.handle_key("s", NOW)
    c.handle_key("2", NOW)  # bad data
    runner_answers()
    c.handle_key("n", NOW)
    with Session(c.engine) as s:
        cmds = [(x.campaign, x.command, x.argument, x.requested_by)
                for x in s.exec(select(ControlCommand).order_by(ControlCommand.id)).all()  # type: ignore[arg-type]
                if x.command.startswith("preview")]
    assert cmds == [("demo", "preview_dial", f"{eid} a02", "a02"),
                    ("demo", "preview_skip", f"{eid} a02 bad_data", "a02"),
                    ("demo", "preview_skip", f"{eid} a02", "a02")]


def test_nothing_reserved_means_no_command(reserved_console: tuple[AgentConsole, int]) -> None:
    c, eid = reserved_console
    with Session(c.engine) as s:
        e = s.get(CallListEntry, eid)
        assert e is not None
        e.status, e.lease_owner = "pending", ""
        s.add(e)
        s.commit()
    c.refresh(NOW)
    assert c.preview is None
    c.handle_key("c", NOW)
    assert c.message == "nothing reserved for you to dial"
    with Session(c.engine) as s:
        assert not [x for x in s.exec(select(ControlCommand)).all() if x.command.startswith("preview")]


def test_owner_and_argument_round_trip() -> None:
    assert preview.parse_owner(preview.owner("春:キャンペーン", "a01")) == ("春:キャンペーン", "a01")
    assert preview.parse_owner("host:123") is None
    assert preview.parse_argument(preview.command_argument(5, "a01", "bad_data")) == (5, "a01", "bad_data")
    assert preview.parse_argument("7 a01") == (7, "a01", "")
    with pytest.raises(ValueError):
        preview.parse_argument("x a01")


# ------------------------------------------------------------------------------ live: SIPp carrier + agent
CONFIG = """
[database]
url = "sqlite:///{db}"
[telephony]
sip_port_base = {sip_base}
rtp_port_base = 41500
lines = 4
agent_legs = "on_connect"
[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:{carrier_port}"
max_channels = 4
max_cps = 10
sandbox = true
[[agents]]
login = "p0"
sip_uri = "sip:p0@127.0.0.1:{agent_port}"
[[campaigns]]
name = "pv"
mode = "preview"
trunk = "loop"
ring_timeout_s = 15
connect_limit_s = 2.0
wrap_up_timeout_s = 3
"""


@pytest.mark.sip
@pytest.mark.slow
def test_preview_dial_skip_and_dnc_live(tmp_path: Path) -> None:
    from dialer.agentsim import AgentSpec, start_agents, stop_agents
    from dialer.campaign import CampaignRunner
    from dialer.store.agents import log_agent_state

    carrier_port = free_udp_port(6000, 6499)
    agent_port = free_udp_port(6500, 6899)
    sip_base = free_udp_port(6900, 6990, span=8)
    db = tmp_path / "pv.db"
    text = CONFIG.format(db=db, sip_base=sip_base, carrier_port=carrier_port, agent_port=agent_port)
    cfg = parse_config(text, str(tmp_path / "pv.toml"))
    url = f"sqlite:///{db}"
    init_db(url)
    engine = get_engine(url)
    now = datetime.now(UTC)
    phones = {}
    with Session(engine) as s:
        for i, cid in enumerate(("K1", "K2", "K3")):
            s.add(Customer(customer_id=cid, name=f"顧客{cid}", name_kana=f"コキャク{cid}"))
            e = CallListEntry(customer_id=cid, segment="dormant", sku="SKU-1", phones=[f"+8190200000{i:02d}"],
                              priority=float(300 - 100 * i), reason="test", callable_from=now - timedelta(days=1),
                              callable_until=now + timedelta(days=1))
            s.add(e)
        s.commit()
        ids = {e.customer_id: int(e.id or 0) for e in s.exec(select(CallListEntry)).all()}
        phones = {int(e.id or 0): e.phones[0] for e in s.exec(select(CallListEntry)).all()}
    carrier = Sipp(REPO / "config" / "sipp" / "carrier_answer.xml", port=carrier_port, workdir=tmp_path,
                   rtp_echo=True, duration_ms=500).start()
    agents = start_agents([AgentSpec("p0", "127.0.0.1", agent_port)], talk_mean=2.0, talk_cv=0.1, duration=120,
                          stats_dir=str(tmp_path), rtp_base=47500)
    seen: list[tuple[str, int]] = []  # (step, entry) as the console saw them
    step = {"name": "first", "at": time.monotonic()}

    def console() -> bool:
        """What an agent at the console does, through the console's store API; True ends the run."""
        held = preview_store.reservation(engine, "p0")
        name = step["name"]
        if name == "first" and held:
            seen.append(("skipped", held[1]))
            preview_store.request_skip(engine, held[0], "p0", held[1], "bad_data")
            step["name"] = "second"
        elif name == "second" and held and held[1] != seen[-1][1]:
            seen.append(("dnc", held[1]))
            with Session(engine) as s:  # a do-not-call arrives while the entry sits on the agent's screen
                s.add(Block(phone_e164=phones[held[1]], kind="dnc", source="test"))
                s.commit()
            preview_store.request_dial(engine, held[0], "p0", held[1])
            step["name"] = "refused?"
        elif name == "refused?" and _events(engine, "preview_dial"):
            step["name"] = "third"
        elif name == "third" and held and held[1] not in {e for _, e in seen}:
            seen.append(("dialled", held[1]))
            preview_store.request_dial(engine, held[0], "p0", held[1])
            preview_store.request_dial(engine, held[0], "p0", held[1])  # pressed twice: dialled once
            step["name"] = "calling"
        elif name == "calling":
            with Session(engine) as s:
                done = [a for a in s.exec(select(Attempt)).all() if a.state == "ended"]
            return bool(done)
        return False

    try:
        runner = CampaignRunner(cfg, "pv", engine, auto_login=True, state_logger=log_agent_state)
        runner.run(60.0, should_stop=console)
    finally:
        stop_agents(agents)
        carrier.stop(grace_s=1.0)
    try:
        assert [k for k, _ in seen] == ["skipped", "dnc", "dialled"], (seen, step)
        skipped, dnc, dialled = (e for _, e in seen)
        assert (skipped, dnc, dialled) == (ids["K1"], ids["K2"], ids["K3"])  # hopper order, skipped one passed
        # exactly one INVITE, one attempt, for the entry dialled, connected to the agent who dialled it
        assert carrier.received("INVITE") == 1
        with Session(engine) as s:
            rows = list(s.exec(select(Attempt)).all())
            agent = s.exec(select(Agent).where(Agent.login == "p0")).one()
            entries = {int(e.id or 0): e for e in s.exec(select(CallListEntry)).all()}
        assert len(rows) == 1
        a = rows[0]
        assert a.entry_id == dialled and a.agent_id == agent.id and a.agent_connected_at is not None
        assert a.outcome == "answered" and a.state == "ended"
        # the DNC'd entry was refused at dial time and never reached the carrier
        refusals = _events(engine, "preview_dial")
        assert f"p0: refused: entry {dnc} not dialled: blocked: dnc" in refusals, refusals
        # a second press of dial on the same entry is refused: it is no longer reserved
        assert f"p0: refused: entry {dialled} is not reserved for p0" in refusals, refusals
        assert entries[dnc].attempts == 0 and not {r.phone_e164 for r in rows} & {phones[dnc]}
        # the skipped entry is back in the hopper, untouched, with the reason recorded
        assert entries[skipped].status == "pending" and entries[skipped].attempts == 0
        assert _events(engine, "preview_skip") == [f"p0: entry {skipped} skipped: bad_data (back to the hopper)"]
        # what the agent's console shows for the refused dial
        since = datetime.now(UTC) - timedelta(minutes=5)
        assert preview_store.last_result(engine, "p0", since) == f"refused: entry {dialled} is not reserved for p0"
        # nothing left leased when the runner stopped
        assert not [e for e in entries.values() if e.status == "leased"]
    finally:
        dispose_engines()


def _events(engine: object, kind: str) -> list[str]:
    with Session(engine) as s:  # type: ignore[call-overload]
        return [e.message for e in s.exec(select(CampaignEvent).where(CampaignEvent.kind == kind)).all()]


def test_console_shows_the_runners_refusal(reserved_console: tuple[AgentConsole, int]) -> None:
    from dialer.store.campaigns import load_campaign, record_event

    c, eid = reserved_console
    c.handle_key("c", NOW)
    cid = load_campaign(c.engine, "demo").id
    record_event(c.engine, cid, preview.DIAL, "a01: refused: not a02's")  # another agent's result: not shown
    c.refresh(NOW)
    assert not c.error and c.asked_at is not None
    record_event(c.engine, cid, preview.DIAL, f"a02: refused: entry {eid} not dialled: blocked: dnc")
    c.refresh(NOW)
    out = text_of(c.render(80, NOW), 80)
    assert f"the dialer did not dial: refused: entry {eid} not dialled: blocked: dnc" in out
    assert c.asked_at is None


def test_a_new_runner_releases_the_reservations_of_a_dead_one(reserved_console: tuple[AgentConsole, int]) -> None:
    c, eid = reserved_console
    assert preview_store.reservation(c.engine, "a02") == ("demo", eid)
    assert preview_store.release_all(c.engine, "other", NOW) == 0  # another campaign's runner: not ours
    assert preview_store.release_all(c.engine, "demo", NOW) == 1
    assert preview_store.reservation(c.engine, "a02") is None
    with Session(c.engine) as s:
        e = s.get(CallListEntry, eid)
        assert e is not None and e.status == "pending" and e.lease_owner == ""
