"""`dialer report lift --html FILE`: the lift report as one self-contained page (charts as data: URIs), drawn
with the campaign report's matplotlib set-up (dialer.views.report_charts) so Japanese labels render."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from dialer.views.report_charts import _pyplot


def _chart(rep: dict[str, Any]) -> bytes:
    """Purchase rate per segment, treatment vs control, with each group's 95% interval."""
    plt = _pyplot()
    segs = list(rep["segments"])
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    for k, (grp, color) in enumerate((("treatment", "#2a7ab9"), ("control", "#b0b0b0"))):
        rates, errs = [], []
        for seg in segs:
            g = rep["segments"][seg][grp]
            n, p = g["customers"], g["purchase_rate"] or 0.0
            rates.append(p * 100)
            errs.append(1.96 * (p * (1 - p) / n) ** 0.5 * 100 if n else 0.0)
        xs = [i + (k - 0.5) * 0.38 for i in range(len(segs))]
        ax.bar(xs, rates, width=0.36, color=color, yerr=errs, capsize=4, label=grp)
    ax.set_xticks(range(len(segs)), segs)
    ax.set_ylabel("purchase rate (%)")
    ax.legend(frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_lift_html(path: str, rep: dict[str, Any], text: str) -> None:
    data = base64.b64encode(_chart(rep)).decode("ascii")
    title = f"lift: {rep['campaign']} ({rep['period']})"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body {{ font-family: sans-serif; margin: 20px; color: #222; }} pre {{ font-size: 13px; }}</style></head>
<body><h1>{html.escape(title)}</h1>
<img alt="purchase rate by group" width="800" height="360" src="data:image/png;base64,{data}">
<pre>{html.escape(text)}</pre></body></html>
"""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
