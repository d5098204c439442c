"""VOC analytics (the customer's キモチ): why customers said no, by product, segment and week, and what they
expected versus what they got, grouped into themes a product team can act on.

Grouping is deliberately simple and robust for Japanese without any model: texts are NFKC-normalised, and
a text joins the theme holding the text whose character bigrams (all-hiragana ones dropped) overlap its own
most (Jaccard ≥ THEME_SIMILARITY; greedy single linkage, in order, so the result is deterministic). A theme's keywords are its most frequent content runs (kanji,
katakana or Latin sequences of two or more characters: in Japanese, hiragana carries grammar more than
meaning). A reason is flagged as rising when its share in the latest week is at least RISE_RATIO times its
share before, with at least RISE_MIN cases, and the two-proportion z-test says p < 0.05.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any
from zoneinfo import ZoneInfo

from dialer.domain.dtmf import REFUSAL_REASONS
from dialer.lift import two_proportions
from dialer.store.voc import Voice
from lists.csvsafe import SafeDictWriter

THEME_SIMILARITY = 0.2
RISE_RATIO = 1.5
RISE_MIN = 5
EXAMPLES = 3
_CONTENT = re.compile(r"[\u4e00-\u9fff\u3005\u30a0-\u30ffa-z0-9]{2,}")
_DROP = re.compile(r"[\s\W_]+", re.UNICODE)
_HIRAGANA = re.compile(r"^[\u3040-\u309f]+$")


def normalise(text: str) -> str:
    """NFKC (full-width to half-width, ｶﾀｶﾅ to カタカナ), lower case, punctuation and spaces removed."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text).lower())


def bigrams(norm: str) -> set[str]:
    """Character bigrams, without the all-hiragana ones (particles and endings: grammar, not topic)."""
    grams = {norm[i:i + 2] for i in range(len(norm) - 1)} if len(norm) > 1 else {norm} if norm else set()
    content = {g for g in grams if not _HIRAGANA.match(g)}
    return content or grams


def keywords(texts: Sequence[str], k: int = 5) -> list[str]:
    c: Counter[str] = Counter()
    for t in texts:
        c.update(set(_CONTENT.findall(unicodedata.normalize("NFKC", t).lower())))
    return [w for w, _n in c.most_common(k)]


@dataclass
class Theme:
    texts: list[str] = field(default_factory=list)
    grams: list[set[str]] = field(default_factory=list)  # one bigram set per text

    def as_dict(self) -> dict[str, Any]:
        return {"count": len(self.texts), "keywords": keywords(self.texts), "examples": self.texts[:EXAMPLES]}


def themes(texts: Sequence[str]) -> list[Theme]:
    """Greedy single-linkage clustering on character bigrams (a text joins the theme holding its most similar
    text, if that similarity reaches THEME_SIMILARITY); largest theme first."""
    out: list[Theme] = []
    for t in texts:
        g = bigrams(normalise(t))
        if not g:
            continue
        best, score = None, 0.0
        for th in out:
            j = max(len(g & m) / len(g | m) for m in th.grams)
            if j > score:
                best, score = th, j
        if best is not None and score >= THEME_SIMILARITY:
            best.texts.append(t)
            best.grams.append(g)
        else:
            out.append(Theme([t], [g]))
    return sorted(out, key=lambda th: (-len(th.texts), th.texts[0]))


def reason_of(v: Voice) -> str:
    if v.kind == "refusal":
        return str(REFUSAL_REASONS.get(v.reason_code, v.reason_code or "unspecified"))
    n = unicodedata.normalize("NFKC", v.text).strip()
    return n[:40] if n else "unspecified"


def week_of(at: datetime | date, tz: ZoneInfo) -> str:
    d = at.astimezone(tz).date() if isinstance(at, datetime) else at
    y, w, _ = d.isocalendar()
    return f"{y:04d}-W{w:02d}"


def voc_report(voices: Sequence[Voice], tz: str = "Asia/Tokyo") -> dict[str, Any]:
    z = ZoneInfo(tz)
    rows = [(week_of(v.at, z), v.segment or "-", v.product or "-", reason_of(v), v) for v in voices]
    counts = Counter((w, s, p, r, v.kind) for w, s, p, r, v in rows)
    out: dict[str, Any] = {
        "total": len(rows),
        "by_kind": dict(Counter(v.kind for v in voices)),
        "by_reason": dict(Counter(r for *_x, r, _v in rows).most_common()),
        "by_product": {p: dict(Counter(r for _w, _s, p2, r, _v in rows if p2 == p).most_common())
                       for p in sorted({p for _w, _s, p, _r, _v in rows})},
        "by_segment": {s: dict(Counter(r for _w, s2, _p, r, _v in rows if s2 == s).most_common())
                       for s in sorted({s for _w, s, _p, _r, _v in rows})},
        "counts": [{"week": w, "segment": s, "product": p, "reason": r, "kind": k, "count": n}
                   for (w, s, p, r, k), n in sorted(counts.items())],
        "themes": [], "rising": [],
    }
    by_rp: dict[tuple[str, str], list[str]] = {}
    for _w, _s, p, r, v in rows:
        if v.text.strip():
            by_rp.setdefault((r, p), []).append(v.text.strip())
    for (r, p), texts in sorted(by_rp.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        for th in themes(texts):
            out["themes"].append({"reason": r, "product": p, **th.as_dict()})
    weeks = sorted({w for w, *_x in rows})
    if len(weeks) >= 2:
        last = weeks[-1]
        n_last = sum(1 for w, *_x in rows if w == last)
        n_before = len(rows) - n_last
        for reason in out["by_reason"]:
            a = sum(1 for w, _s, _p, r, _v in rows if w == last and r == reason)
            b = sum(1 for w, _s, _p, r, _v in rows if w != last and r == reason)
            share_last, share_before = a / n_last, b / n_before if n_before else 0.0
            test = two_proportions(a, n_last, b, n_before)
            if a >= RISE_MIN and share_last >= RISE_RATIO * share_before and test.p_value < 0.05:
                out["rising"].append({"reason": reason, "week": last, "count": a, "share": round(share_last, 4),
                                      "share_before": round(share_before, 4), "p_value": round(test.p_value, 6)})
    return out


CSV_FIELDS = ["kind", "week", "segment", "product", "reason", "count", "share", "share_before", "keywords",
              "examples"]


def write_csv(rep: dict[str, Any], out: IO[str]) -> int:
    """One CSV for the product team: count rows, then theme rows, then rising-reason rows."""
    w = SafeDictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    n = 0
    for c in rep["counts"]:
        w.writerow({"kind": c["kind"], "week": c["week"], "segment": c["segment"], "product": c["product"],
                    "reason": c["reason"], "count": c["count"]})
        n += 1
    for t in rep["themes"]:
        w.writerow({"kind": "theme", "product": t["product"], "reason": t["reason"], "count": t["count"],
                    "keywords": " ".join(t["keywords"]), "examples": " | ".join(t["examples"])})
        n += 1
    for r in rep["rising"]:
        w.writerow({"kind": "rising", "week": r["week"], "reason": r["reason"], "count": r["count"],
                    "share": r["share"], "share_before": r["share_before"]})
        n += 1
    return n


def render(rep: dict[str, Any]) -> str:
    lines = [f"VOC: {rep['total']} voices ({', '.join(f'{k} {v}' for k, v in rep['by_kind'].items()) or 'none'})"]
    for r in rep["rising"]:
        lines.append(f"  RISING: {r['reason']} in {r['week']}: {r['count']} ({r['share']:.0%} vs "
                     f"{r['share_before']:.0%} before, p = {r['p_value']:.3f})")
    lines.append("reasons: " + ", ".join(f"{k} {v}" for k, v in rep["by_reason"].items()))
    for p, reasons in rep["by_product"].items():
        lines.append(f"  {p}: " + ", ".join(f"{k} {v}" for k, v in reasons.items()))
    lines.append("themes (expectation vs reality):")
    for t in rep["themes"][:20]:
        lines.append(f"  [{t['reason']} / {t['product']}] {t['count']}x  {' '.join(t['keywords'])}")
        for e in t["examples"]:
            lines.append(f"      「{e}」")
    return "\n".join(lines)


def summary_payload(rep: dict[str, Any], key: str, campaign: str | None, start: str, end: str) -> dict[str, Any]:
    """What the CRM gets: the breakdown and the themes, not the customers' identities."""
    return {"type": "voc_summary", "outcome_id": key, "campaign": campaign or "", "from": start, "to": end,
            "generated_at": datetime.now().astimezone().isoformat(), "total": rep["total"],
            "by_reason": rep["by_reason"], "by_product": rep["by_product"], "rising": rep["rising"],
            "themes": rep["themes"][:50]}
