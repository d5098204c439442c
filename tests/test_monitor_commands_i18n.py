"""(issue 27) The monitor's confirmations and the runner's command results in the chosen language:
`target 0.0150` reads 放棄率目標 1.5 %, never a raw fraction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dialer.i18n import command_result, command_text, percent, regime_text, set_language


@pytest.fixture()
def ja() -> Iterator[None]:
    set_language("ja")
    yield
    set_language("en")


@pytest.mark.parametrize(("fraction", "shown"), [(0.015, "1.5 %"), (0.02, "2 %"), (0.0125, "1.25 %"),
                                                 (0.03, "3 %")])
def test_percent(fraction: float, shown: str) -> None:
    assert percent(fraction) == shown


def test_commands_and_results_in_japanese(ja: None) -> None:
    assert command_text("target", "0.0150") == "放棄率目標 1.5 %"
    assert command_text("mode", "power") == "モード パワー"
    assert command_text("pause") == "一時停止"
    assert command_result("abandon target 0.015") == "放棄率目標 1.5 %"
    assert command_result("mode predictive") == "モード プレディクティブ"
    assert command_result("expired: not applied within 10 min") == "期限切れ: 10 分以内に適用されませんでした"
    assert command_result("refused: 'x' is not a number").startswith("拒否: ")
    assert command_result("paused: no new dials; calls in progress continue").startswith("一時停止")
    assert regime_text("uk").startswith("英国基準")


def test_commands_in_english_keep_percent() -> None:
    set_language("en")
    assert command_text("target", "0.0150") == "abandon target 1.5 %"
    assert command_result("running") == "running"
    assert command_result("something new") == "something new"  # unknown results pass through unchanged


def _segments_view() -> object:
    from types import SimpleNamespace

    pen = {s: {"dialled": 1234, "remaining": 56789, "exhausted": 12, "entries": 70000}
           for s in ("dormant", "pre_churn", "upsell", "cross_sell")}
    held = {"groups": {s: {"control": 7000} for s in pen},
            "lift": {"segments": {s: {"enough_data": True, "purchase_rate_lift": 0.031} for s in pen}}}
    return SimpleNamespace(report={"penetration": pen, "holdout": held})


@pytest.mark.parametrize("width", [76, 60, 44])
def test_segment_table_chooses_columns_by_width_never_squeezes_them(ja: None, width: int) -> None:
    from rich.console import Console

    from dialer.views.monitor import segments_table

    con = Console(record=True, width=width, color_system=None)
    con.print(segments_table(_segments_view(), width))  # type: ignore[arg-type]
    out = con.export_text()
    assert "…" not in out and "休眠" in out and "解約予兆" in out, out
    header = out.splitlines()[0].split()
    assert header[:3] == ["セグメント", "架電済", "残り"] and "件数" in header, out
    wide = Console(record=True, width=200, color_system=None)
    wide.print(segments_table(_segments_view(), 200))  # type: ignore[arg-type]
    assert len(wide.export_text().splitlines()[0].split()) == 7  # every column when there is room


@pytest.mark.parametrize("width", [80, 100])
def test_campaign_report_at_terminal_width_never_squeezes_a_header(ja: None, db_url: str, width: int) -> None:
    from rich.console import Console

    from dialer.reports import campaign_report
    from dialer.store.db import get_engine
    from dialer.views.report_view import render_campaign_report
    from tests.test_reports import NOW, build_store

    build_store(db_url)
    rep = campaign_report(get_engine(db_url), "demo", now=NOW)
    con = Console(record=True, width=width, color_system=None)
    con.print(render_campaign_report(rep, width))
    out = con.export_text()
    assert "…" not in out, out
    assert all(len(line) <= width for line in out.splitlines())
    assert "セグメント" in out and "休眠" in out and "アップセル" in out  # segment names in Japanese
    assert "効果を実感できない" in out and "話中" in out and "成約" in out  # refusal reasons and outcomes too
    wide = Console(record=True, width=200, color_system=None)
    wide.print(render_campaign_report(rep))  # piped (width 0): every column
    full = wide.export_text()
    assert "架電済" in full and "終了" in full
