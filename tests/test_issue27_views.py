"""Issue 27 in the views: the preview console says what happened to the dialled call (in a real terminal, the
test playing the runner's part in the store), the monitor's rates are counts over a stated window, and the
headless status line is words."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from dialer.domain import preview
from dialer.domain.vocabulary import AgentState
from dialer.i18n import set_language
from dialer.store.campaigns import load_campaign, record_event
from dialer.store.db import get_engine
from dialer.store.models import Agent, Attempt, CallListEntry, ControlCommand, utcnow
from tests.test_reports import NOW
from tests.test_views_render import _monitor, text_of, world
from tests.test_views_tmux import TEXT, Tmux, _cmd, term, wait_for, with_language

__all__ = ["term", "world"]  # fixtures shared with tests/test_views_tmux.py and tests/test_views_render.py

RESULT = {  # (dialled card, failure line, connected pop title)
    "en": ("dialling 顧客7", "顧客7: call failed — congestion (503), after 0.11 s", "screen pop — call"),
    "ja": ("顧客7 様へ発信中", "顧客7 様: 発信失敗 — 輻輳 (503)、0.11 秒", "顧客情報 — 通話"),
}
DIALLING_WORDS = ("dialling", "発信中")


def _reserve(url: str, customer: str, login: str) -> int:
    with Session(get_engine(url)) as s:
        e = s.exec(select(CallListEntry).where(CallListEntry.customer_id == customer)).first()
        assert e is not None and e.id is not None
        e.status, e.lease_owner = "leased", preview.owner("demo", login)
        e.lease_expires_at = utcnow() + timedelta(hours=1)
        s.add(e)
        s.commit()
        return e.id


def _runner_dials(url: str, entry_id: int, customer: str, login: str) -> int:
    """What the runner does with a preview_dial: the attempt row, then its event naming the attempt."""
    eng = get_engine(url)
    with Session(eng) as s:
        e = s.get(CallListEntry, entry_id)
        assert e is not None
        e.status, e.lease_owner = "dialing", ""
        a = Attempt(campaign_id=load_campaign(eng, "demo").id, entry_id=entry_id, customer_id=customer,
                    segment=e.segment, phone_e164="+819000000007", state="dialing", dialed_at=utcnow())
        s.add(e)
        s.add(a)
        s.commit()
        s.refresh(a)
        assert a.id is not None
        aid = a.id
    record_event(eng, load_campaign(eng, "demo").id, preview.DIAL, f"{login}: entry {entry_id} dialled: attempt {aid}")
    return aid


def _command(url: str, n: int) -> ControlCommand:
    def found() -> ControlCommand | None:
        with Session(get_engine(url)) as s:
            rows = s.exec(select(ControlCommand).where(ControlCommand.command == "preview_dial")).all()
            return rows[n - 1] if len(rows) >= n else None
    return wait_for(found, f"dial command #{n}")


@pytest.mark.parametrize(("lang", "size"), [("en", (80, 24)), ("ja", (80, 24)), ("en", (160, 50)),
                                            ("ja", (160, 50))])
def test_preview_console_shows_how_the_dialled_call_went(term: tuple[Tmux, str, Path], lang: str,
                                                          size: tuple[int, int]) -> None:
    t, url, cfg = term
    card, failed, pop_title = RESULT[lang]
    e7 = _reserve(url, "C7", "a01")
    t.start("agent", _cmd("agent", "a01", "--config", str(with_language(cfg, lang))), size)
    t.wait_screen("agent", TEXT[lang]["login"])
    t.keys("agent", "l")
    t.wait_screen("agent", "顧客7")
    t.keys("agent", "c")
    _command(url, 1)
    a7 = _runner_dials(url, e7, "C7", "a01")
    e8 = _reserve(url, "C8", "a01")  # the agent is still ready: the runner reserves the next card at once
    screen = t.wait_screen("agent", card)
    assert "顧客8" not in screen, screen  # the dialled customer stays until the call ends
    with Session(get_engine(url)) as s:  # the carrier says 503 after 0.11 s
        a = s.get(Attempt, a7)
        assert a is not None
        a.state, a.outcome, a.sip_status = "ended", "congestion", 503
        a.ended_at = a.dialed_at + timedelta(seconds=0.11)
        s.add(a)
        s.commit()
    screen = t.wait_screen("agent", failed)
    t.wait_screen("agent", "顧客8")  # then the next card, the result still said
    assert failed in t.screen("agent")
    # a call that connects: the pop of the call, and no "dialling…" left on screen while talking
    t.keys("agent", "c")
    _command(url, 2)
    a8 = _runner_dials(url, e8, "C8", "a01")
    with Session(get_engine(url)) as s:
        a = s.get(Attempt, a8)
        ag = s.exec(select(Agent).where(Agent.login == "a01")).one()
        assert a is not None
        a.state, a.outcome, a.answered_at, a.agent_connected_at = "connected", "answered", utcnow(), utcnow()
        a.agent_id = ag.id
        ag.state, ag.current_attempt_id, ag.state_since = AgentState.ON_CALL.value, a8, utcnow()
        s.add(a)
        s.add(ag)
        s.commit()
    screen = t.wait_screen("agent", pop_title)
    assert not any(w in screen for w in DIALLING_WORDS), screen
    lines = screen.rstrip("\n").splitlines()
    assert len(lines) <= size[1] and all(len(x) <= size[0] for x in lines)
    t.keys("agent", "q")
    wait_for(lambda: "agent" not in t.run("list-sessions"), "console exit")


def test_headless_status_line_is_words() -> None:
    from dialer.commands.campaign import status_line

    agents = {AgentState.READY: 8, AgentState.ON_CALL: 2, AgentState.WRAP_UP: 0}
    set_language("en")  # whatever language an earlier test left switched on
    try:
        line = status_line("predictive", {"dialled": 40, "answered": 12, "connected": 10}, 3, agents)
        assert "AgentState" not in line and "{" not in line and "<" not in line
        assert "agents: on call 2, ready 8" in line and "dialled 40" in line and "wrap" not in line
        set_language("ja")
        line = status_line("predictive", {"dialled": 40}, 3, agents)
        assert "通話中 2" in line and "待機 8" in line and "ready" not in line and "AgentState" not in line
    finally:
        set_language("en")


@pytest.mark.parametrize(("lang", "width"), [("en", 80), ("ja", 80), ("en", 160), ("ja", 160)])
def test_customer_card_agrees_with_itself(db_url: str, tmp_path: Path, lang: str, width: int) -> None:
    """An upsell card: the run-out date is the one the list used (of the product bought, not the one offered),
    every date in one format, order and ship dates labelled apart, LTV and the call's value named apart."""
    from dialer.config import parse_config
    from dialer.views.agent_console import AgentConsole
    from tests.test_reports import NOW, build_store, write_config
    from tests.test_views_render import text_of

    build_store(db_url)
    eng = get_engine(db_url)
    with Session(eng) as s:  # C1 bought SKU-A on 09-01 and 10-01 (shipped the next days): runs out 11-01
        e = CallListEntry(customer_id="C1", segment="upsell", sku="SKU-B", qualifying_sku="SKU-A", priority=48373,
                          reason="SKU-A bought 2026-10-02, runs out 2026-11-01 (own rhythm); offer SKU-B subscription",
                          phones=["+819000000001"], status="leased", lease_owner=preview.owner("demo", "a02"),
                          lease_expires_at=NOW + timedelta(hours=1))
        a02 = s.exec(select(Agent).where(Agent.login == "a02")).one()
        a02.state, a02.pause_reason = "ready", ""
        s.add(e)
        s.add(a02)
        s.commit()
    cfgp = write_config(tmp_path, db_url)
    c = AgentConsole(eng, parse_config(cfgp.read_text(encoding="utf-8"), str(cfgp)), "a02")
    try:
        set_language(lang)
        c.refresh(NOW)
        assert c.preview is not None and c.preview["depletion"].isoformat() == "2026-11-01"
        out = text_of(c.render(width, NOW), width)
        flat = " ".join(out.replace("│", " ").split())
        if lang == "ja":
            assert "残量切れ予測: 2026年11月1日 SKU-A" in flat
            # the list's reason, in Japanese and in the same date format
            assert "SKU-A を 2026年10月2日 に購入、2026年11月1日 ごろ使い切り見込み" in flat
            assert "購入日 2026年10月1日" in flat and "出荷日 2026年10月2日" in flat
            assert "次回出荷 2026年12月1日" in flat
            assert "LTV（CRM） ¥100,001" in flat and "架電価値（この架電の期待額） ¥48,373" in flat
            assert not re.search(r"\d{2,4}-\d{2}-\d{2}", flat), flat  # no second date format
        else:
            assert "runs out: 2026-11-01 SKU-A (own repurchase interval)" in flat
            assert "ordered 2026-10-01" in flat and "shipped 2026-10-02" in flat and "next shipment 2026-12-01" in flat
            assert "LTV (CRM) ¥100,001" in flat and "call value (expected yen of this call) ¥48,373" in flat
            assert all(len(d) == 10 for d in re.findall(r"\b[\d-]{8,10}\b", flat) if d.count("-") == 2)
    finally:
        set_language("en")


MONITOR_RATE = {"en": (r"first 1[12] min \(per-hour figures after an hour\): dials 5\s+connects 3\s+sales 1 \(¥5,980\)",
                       "dial level"),
                "ja": (r"開始から1[12]分 \(1時間あたりの数値は1時間経過後\): 発信 5\s+接続 3\s+成約 1 \(¥5,980\)", "発信倍率")}


@pytest.mark.parametrize(("lang", "size"), [("en", (80, 24)), ("ja", (80, 24)), ("en", (160, 50)),
                                            ("ja", (160, 50))])
def test_monitor_rates_are_counts_over_a_stated_window(term: tuple[Tmux, str, Path], lang: str,
                                                       size: tuple[int, int]) -> None:
    """A campaign 12 minutes old with 3 connects and 1 sale: the monitor says so, and prints no per-hour rate
    scaled up from those minutes (it showed 'connects/h 753.4' beside '35 dials, 17 connects')."""
    import threading

    from dialer.store.models import Campaign, CampaignStatus, Disposition

    t, url, cfg = term
    pattern, live_word = MONITOR_RATE[lang]
    eng = get_engine(url)
    now = utcnow()
    with Session(eng) as s:
        camp = Campaign(name="fresh", segments=["dormant"], state="running", mode="predictive", holidays="")
        s.add(camp)
        s.commit()
        s.refresh(camp)
        assert camp.id is not None
        s.add(CampaignStatus(campaign_id=camp.id, runner="test:1", heartbeat_at=now, mode="predictive"))
        for i, ago in enumerate((12, 10, 8, 5, 2)):
            dialed = now - timedelta(minutes=ago)
            a = Attempt(campaign_id=camp.id, entry_id=1, customer_id=f"C{i + 1}", segment="dormant",
                        phone_e164="+819000000001", dialed_at=dialed, state="ended",
                        outcome="answered" if i < 3 else "no_answer", ended_at=dialed + timedelta(seconds=70))
            if i < 3:
                a.answered_at = a.agent_connected_at = dialed + timedelta(seconds=5)
            s.add(a)
            s.commit()
            s.refresh(a)
            if i == 0:
                s.add(Disposition(attempt_id=a.id, customer_id=a.customer_id, campaign_id=camp.id, outcome="sale",
                                  amount=5980, created_at=dialed + timedelta(seconds=80)))
        s.commit()
        camp_id = camp.id
    stop = threading.Event()

    def beat() -> None:  # the live runner's part
        while not stop.is_set():
            with Session(eng) as s:
                st = s.get(CampaignStatus, camp_id)
                if st is not None:
                    st.heartbeat_at = utcnow()
                    s.add(st)
                    s.commit()
            stop.wait(0.5)

    th = threading.Thread(target=beat, daemon=True)
    th.start()
    try:
        t.start("mon", _cmd("monitor", "--campaign", "fresh", "--config", str(with_language(cfg, lang))), size)
        screen = t.wait_screen("mon", live_word)
        flat = " ".join(screen.replace("│", " ").split())
        assert re.search(pattern, flat), screen
        assert "/h" not in flat and "/時" not in flat, screen
        if size == (160, 50):  # the large layout defines its occupancy term (ja: 占有率)
            assert ("占有率 = (通話 + 後処理)" if lang == "ja" else "occupancy = (talk + wrap-up)") in flat, screen
        lines = screen.rstrip("\n").splitlines()
        assert len(lines) <= size[1] and TEXT[lang]["legend"] in lines[-1], screen
        t.keys("mon", "q")
        wait_for(lambda: "mon" not in t.run("list-sessions"), "monitor exit")
    finally:
        stop.set()
        th.join(timeout=5)


EVENTS = [  # (kind, message as the runner writes it), newest last
    ("tick_lag", "runner loop 2.5s late (limit 1s, [telephony] max_tick_lag_s): no new dials until it catches up"),
    ("mode_drop", "abandon budget for the 24h window is spent: dialling progressive until it recovers "
                  "(abandon 3.1 % > limit 3.0 %)"),
]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_monitor_events_and_segments_in_the_ui_language(world: tuple[str, Path], lang: str) -> None:
    """(issue 27) The monitor's event lines and the segment beside the customer in the chosen language; the
    store keeps the runner's English."""
    url, _cfg = world
    eng = get_engine(url)
    camp_id = load_campaign(eng, "demo").id
    for i, (kind, message) in enumerate(EVENTS):
        record_event(eng, camp_id, kind, message, "warning", at=NOW - timedelta(seconds=30 - i))
    set_language(lang)
    try:
        m = _monitor(world)
        out = text_of(m.render(160, NOW, height=50), 160)
    finally:
        set_language("en")
    if lang == "ja":
        assert "モード降格: 24h の放棄率の枠を使い切りました: 回復するまでプログレッシブで発信します" in out, out
        assert "処理遅延: ランナーの処理が 2.5 秒遅延" in out, out
        assert "顧客7 [アップセル]" in out and "[upsell]" not in out and "mode_drop" not in out, out
    else:
        assert "mode_drop: abandon budget for the 24h window is spent: dialling progressive" in out, out
        assert "tick_lag: runner loop 2.5s late" in out and "顧客7 [upsell]" in out, out
    with Session(eng) as s:  # what is stored stays the runner's words
        from dialer.store.models import CampaignEvent
        stored = {e.kind: e.message for e in s.exec(select(CampaignEvent)).all()}
    assert stored["tick_lag"] == EVENTS[0][1]


def test_demo_speaks_the_ui_language(tmp_path: Path) -> None:
    """(issue 27) The demo's own lines in Japanese when it is chosen (its live view is the monitor's)."""
    from dialer.demo import next_commands
    from dialer.i18n import _

    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    set_language("ja")
    try:
        text = next_commands("/usr/bin:/bin", venv)
        line = _("running campaign 'demo' ({mode}) for {s} s").format(mode=_("predictive"), s="120")
        report = _("campaign report")
    finally:
        set_language("en")
    assert "このシェルの PATH にはまだ入っていません" in text and "有効化せずに実行する場合" in text, text
    assert "does not have on PATH" not in text
    assert line == "キャンペーン 'demo' (プレディクティブ) を 120 秒間実行中" and report == "キャンペーンレポート"
