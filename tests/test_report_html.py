"""The campaign report as charts: self-contained HTML (screenshotted by headless Chromium: every chart box
must hold a drawn chart), the PNG sheet, CSV per day × segment, --from/--to, and untruncated piped text."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
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
