"""The campaign report as charts: self-contained HTML (screenshotted by headless Chromium: every chart box
must hold a drawn chart), the PNG sheet, CSV per day × segment, --from/--to, and untruncated piped text."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dialer.views.report_charts import CHART_GAP, CHART_H, CHART_TOP, CHARTS, chart_boxes
from tests.conftest import REPO, run_env
from tests.test_reports import build_store, write_config


@pytest.fixture()
def cfg(db_url: str, tmp_path: Path) -> Path:
    build_store(db_url)
    return write_config(tmp_path, db_url)


def report(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", "report", "campaign", "demo", "--config", str(cfg), *args],
                          cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=180)


def _pixels(path: Path) -> object:
    from matplotlib import image

    return image.imread(str(path))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (scripts/_setup installs it)")
def test_html_report_renders_every_chart_in_chromium(cfg: Path, tmp_path: Path) -> None:
    import numpy as np

    html_file, png_file = tmp_path / "report.html", tmp_path / "report.png"
    r = report(cfg, "--html", str(html_file), "--png", str(png_file))
    assert r.returncode == 0, r.stderr
    page = html_file.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(CHARTS)
    assert "http://" not in page and "https://" not in page and "<script" not in page  # nothing fetched at view
    assert "campaign demo" in page and "period" in page
    shot = tmp_path / "shot.png"
    height = CHART_TOP + len(CHARTS) * (CHART_H + CHART_GAP)
    out = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--force-device-scale-factor=1", f"--screenshot={shot}", f"--window-size=960,{height}",
                          html_file.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), out.stderr[-2000:]
    px = np.asarray(_pixels(shot))[:, :, :3]
    assert px.shape[0] >= height and px.shape[1] >= 960
    for name, (left, top, w, h) in chart_boxes().items():
        box = px[top:top + h, left:left + w]
        ink = (box < 0.95).any(axis=2)
        colours = {tuple(c) for c in (box[ink] * 255).astype(int)[::7].tolist()}
        assert ink.mean() > 0.01, f"chart {name}: blank ({ink.mean():.4f} of its pixels drawn)"
        assert len(colours) > 5, f"chart {name}: only {len(colours)} colours"
    # the control: the gap between two charts is blank, so "drawn" above means something
    left, top, w, h = chart_boxes()[CHARTS[0]]
    gap = px[top + h + 5: top + h + CHART_GAP - 5, left:left + w]
    assert not (gap < 0.95).any()
    sheet = np.asarray(_pixels(png_file))[:, :, :3]
    assert sheet.shape[0] > 1000 and (sheet < 0.95).any(axis=2).mean() > 0.02


def test_csv_per_day_and_segment_with_period(cfg: Path) -> None:
    r = report(cfg, "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    by = {(x["date"], x["segment"]): x for x in rows}
    assert by[("2026-11-23", "dormant")]["attempts"] == "10" and by[("2026-11-23", "ALL")]["abandon_rate"] == (
        f"{2 / 9:.4f}")
    assert by[("2026-11-23", "ALL")]["revenue"] == "11960" and ("2026-11-22", "upsell") in by
    later = list(csv.DictReader(io.StringIO(report(cfg, "--csv", "--from", "2026-11-23").stdout)))
    assert {x["date"] for x in later} == {"2026-11-23"}
    none = list(csv.DictReader(io.StringIO(report(cfg, "--csv", "--to", "2026-11-22").stdout)))
    assert {x["date"] for x in none} == {"2026-11-22"}
    bad = report(cfg, "--from", "yesterday")
    assert bad.returncode == 2 and "--from" in bad.stderr and "Traceback" not in bad.stderr


def test_piped_text_report_has_period_and_whole_headers(cfg: Path) -> None:
    r = report(cfg)  # stdout is a pipe here, as under cron or `| less`
    assert r.returncode == 0, r.stderr
    assert "period 2026-11-22" in r.stdout and "(Asia/Tokyo)" in r.stdout
    assert "…" not in r.stdout
    for head in ("segment", "attempts", "answered", "abandon", "to agent", "revenue", "exhausted"):
        assert head in r.stdout


class _Tables(HTMLParser):
    """Every <table id=...> of a DOM as rows of cell texts (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._id: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._id = dict(attrs).get("id") or ""
            self.tables[self._id] = []
        elif tag == "tr" and self._id is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._id is not None and self._row is not None:
            self.tables[self._id].append(self._row)
            self._row = None
        elif tag == "table":
            self._id = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _text_figures(text: str) -> dict[str, object]:
    """The figures the piped text report prints (the manager's reference)."""
    def num(label: str) -> str:
        m = re.search(rf"{re.escape(label)}\s+([\d.,¥%]+)", text)
        assert m, f"{label!r} not in the text report"
        return m.group(1)

    outcomes = re.search(r"attempt outcome\s+n\s+disposition\s+n\s*\n((?:.+\n)+?)(?:\S)", text)
    assert outcomes
    disps: dict[str, int] = {}
    for line in outcomes.group(1).splitlines():
        cells = re.split(r"\s{2,}", line.strip())  # columns are 2+ spaces apart; a label may hold one space
        if len(cells) == 4:
            disps[cells[2]] = int(cells[3])
        elif len(cells) == 2 and line.startswith(" " * 20):
            disps[cells[0]] = int(cells[1])
    refusals = dict((m.group(1), int(m.group(2)))
                    for m in re.finditer(r"^ \d (\S.*?)\s{2,}(\d+)\s*$", text, re.M))
    segs = {m.group(1): [int(x) for x in m.group(2, 3, 4)] for m in re.finditer(
        r"│ (\w+)\s+│(?:[^│]*│){7}\s*(\d+) │\s*(\d+) │\s*(\d+) │", text)}
    agents = {m.group(1): (int(m.group(2)), m.group(3)) for m in re.finditer(
        r"│ (a\d\d)\s+│\s+(\d+) │(?:[^│]*│){6}\s*(¥[\d,]+) │", text)}
    return {"attempts": int(num("attempts")), "answered": int(num("answered (person)")),
            "connected": int(num("connected to agent")), "sales": int(num("sales")), "occupancy": num("occupancy"),
            "dispositions": disps, "refusals": refusals, "segments": segs, "agents": agents}


def _runs(mask: object) -> int:
    """The longest run of True along the last axis (a bar's drawn length in pixels)."""
    import numpy as np

    m = np.asarray(mask)
    best = 0
    for line in m.reshape(-1, m.shape[-1]):
        run = cur = 0
        for v in line:
            cur = cur + 1 if v else 0
            run = max(run, cur)
        best = max(best, run)
    return best


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (scripts/_setup installs it)")
def test_every_chart_agrees_with_the_text_report_in_chromium(cfg: Path, tmp_path: Path) -> None:
    """Issue 27: the figures each chart draws (printed under it, read back from Chromium's DOM) are the text
    report's; the funnel's bars and the list-progress stacks measured on the screenshot are in proportion to
    them; the HTML carries the manager's tables; counts stand on integer axes."""
    import numpy as np

    from dialer.views.labels import label
    from dialer.views.report_charts import FUNNEL_COLOURS, PEN_PARTS

    html_file = tmp_path / "report.html"
    r = report(cfg, "--html", str(html_file))
    assert r.returncode == 0, r.stderr
    text = _text_figures(report(cfg).stdout)
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html_file.as_uri()],
                         capture_output=True, text=True, timeout=120)
    parser = _Tables()
    parser.feed(dom.stdout)
    t = parser.tables
    assert {f"data-{c}" for c in CHARTS} <= set(t), sorted(t)
    funnel = {row[0]: int(row[1]) for row in t["data-funnel"][1:]}
    assert funnel == {"dialled": text["attempts"], "answered": text["answered"],
                      "connected to agent": text["connected"], "sale": text["sales"]}
    # list progress counts entries: each stack adds up to the segment's entries (dormant 6, upsell 3), and the
    # parts still to work are the text report's "left", the exhausted ones its "exhausted"
    pen = {row[0]: [int(x) for x in row[1:]] for row in t["data-penetration"][1:]}
    assert {k: v[-1] for k, v in pen.items()} == {"dormant": 6, "upsell": 3}
    for seg, parts in pen.items():
        done, retry, fresh, exhausted, blocked, entries = parts
        assert done + retry + fresh + exhausted + blocked == entries
        dialled, left, exh = text["segments"][seg]  # type: ignore[index]
        assert (retry + fresh, exhausted) == (left, exh)
        assert dialled <= entries
    outcomes = {row[0]: int(row[1]) for row in t["data-outcomes"][1:]}
    assert outcomes == {label("outcome", k): v for k, v in text["dispositions"].items()}  # type: ignore[attr-defined]
    assert max(outcomes, key=outcomes.get) == label("outcome", "refused")  # the largest outcome is drawn  # type: ignore[arg-type]
    refusals = {row[0]: int(row[1]) for row in t["data-refusals"][1:]}
    assert refusals == {label("refusal", k): v for k, v in text["refusals"].items()}  # type: ignore[attr-defined]

    def secs(d: str) -> int:
        parts = [int(x) for x in d.split(":")]
        return sum(v * 60 ** i for i, v in enumerate(reversed(parts)))

    hours = t["data-occupancy"][1:]
    logged = sum(secs(h[1]) for h in hours)
    busy = sum(secs(h[2]) + secs(h[3]) for h in hours)
    assert f"{100 * busy / logged:.1f}%" == text["occupancy"]  # the hourly chart adds up to the report's figure
    agents = {row[0]: (int(row[1]), row[7]) for row in t["table-agents"][1:] if re.fullmatch(r"a\d\d", row[0])}
    assert agents == text["agents"]
    assert t["table-agents"][0][:4] == ["agent", "calls", "talk", "AHT"]
    assert "table-abandon" in t and "table-refusals" in t and "table-outcomes" in t
    # the pictures: bar lengths on the screenshot in proportion to the figures
    shot = tmp_path / "shot.png"
    height = CHART_TOP + len(CHARTS) * (CHART_H + CHART_GAP)
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--screenshot={shot}", f"--window-size=960,{height}",
                    html_file.as_uri()], capture_output=True, text=True, timeout=120)
    px = (np.asarray(_pixels(shot))[:, :, :3] * 255).round().astype(int)

    def colour_mask(box: tuple[int, int, int, int], hex_colour: str) -> object:
        left, top, w, h = box
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return (np.abs(px[top:top + h, left:left + w] - rgb).sum(axis=2) <= 6)

    boxes = chart_boxes()
    widths = [_runs(colour_mask(boxes["funnel"], c)) for c in FUNNEL_COLOURS]
    values = [funnel[k] for k in ("dialled", "answered", "connected to agent", "sale")]
    for w, v in zip(widths, values, strict=True):
        assert abs(w / widths[0] - v / values[0]) < 0.02, (widths, values)
    stacks = [colour_mask(boxes["penetration"], c) for _k, c, _w in PEN_PARTS]
    tall = np.zeros_like(np.asarray(stacks[0]))
    for m in stacks:
        tall |= np.asarray(m)
    columns = tall.sum(axis=0)  # drawn height per pixel column: the dormant bar is twice the upsell bar
    wide = Counter(int(c) for c in columns if c > 5)
    heights = sorted((h for h, n in wide.items() if n >= 50), reverse=True)  # bars are wide, legend patches not
    assert len(heights) == 2 and abs(heights[0] / heights[1] - 6 / 3) < 0.05, wide.most_common(6)
