"""Every reason the list builder writes reaches a Japanese agent in Japanese (dialer/views/reasons.py): real
lists are built from a generated export, and each entry's reason is said again through the catalog."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

from dialer.i18n import set_language
from dialer.views.reasons import reason_words
from lists import build_lists, load_mapping
from lists.sample import write_sample
from tests.conftest import REPO

AS_OF = date(2026, 11, 23)
# the builder's English words: none may survive in the Japanese text (SKUs and numbers may)
ENGLISH = re.compile(r"\b(last purchase|days ago|orders?|subscription|after shipment|cancel hazard|next ship|"
                     r"bought|runs out|offer|own rhythm|subscribes to|related|P\(alive\))\b")


def test_every_reason_the_builder_writes_is_said_in_japanese(tmp_path: Path) -> None:
    d, out = tmp_path / "crm", tmp_path / "out"
    write_sample(d, customers=600, seed=11, as_of=AS_OF)
    with build_lists(load_mapping(REPO / "config/mappings/canonical.toml"), d, out, AS_OF):
        pass
    with (out / "call_list.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    segments = {r["segment"] for r in rows}
    assert {"dormant", "pre_churn", "upsell", "cross_sell"} <= segments, segments
    try:
        set_language("ja")
        for r in rows:
            ja = reason_words(r["reason"])
            assert ja != r["reason"] and not ENGLISH.search(ja), (r["segment"], r["reason"], ja)
            # the facts are kept: every date and the SKUs of the sentence are still there
            for day in re.findall(r"\d{4}-\d{2}-\d{2}", r["reason"]):
                assert day in ja
        set_language("en")
        assert reason_words("a sentence of a form not known") == "a sentence of a form not known"
    finally:
        set_language("en")
