"""Issue 31: the monitor shows what is left of the abandon regime's window budget (the runner publishes
`Pacer.budget()`), red when less than one abandon is left."""

from __future__ import annotations

from rich.text import Text

from dialer.i18n import set_language
from dialer.views.monitor import _budget_left
from pacing.engine import Pacer, PacerConfig


def test_budget_left_is_shown_from_the_pacers_figures() -> None:
    set_language("en")
    p = Pacer(PacerConfig(abandon_regime="jp_cx"))
    for k in range(300):
        p.record_outcome(60.0 + k, "human", 8.0)
    p.record_abandon(400.0, 2.0)
    t = Text()
    _budget_left(t, p.budget(500.0))
    assert "budget left 5.0/6.0 (day)" in t.plain and "red" not in str(t.spans)
    for _ in range(5):
        p.record_abandon(450.0, 2.0)
    t = Text()
    _budget_left(t, p.budget(500.0))
    assert "budget left 0.0/6.0" in t.plain and "red" in str(t.spans)
    t = Text()
    _budget_left(t, None)           # an older runner publishes no budget: nothing shown
    assert t.plain == ""
    set_language("ja")
    t = Text()
    _budget_left(t, p.budget(500.0))
    assert "0.0/6.0" in t.plain and "budget left" not in t.plain
