"""Hold-out control groups: a random share of each segment's eligible customers is kept from calling.

The point is causal: comparing treatment and control later (`dialer report lift`) shows what the calls
earned. Assignment must therefore be random but *stable*: the same customer stays in the same group for every
nightly build of one campaign period, so control is never dialled on a later night. It is a pure function of
(seed, period, customer id) -- a SHA-256 draw, never RNG state -- so SQL (the build) and Python (the store,
the hopper, the SMS sender) always agree. Only customers who would otherwise be listed take part: a customer
suppressed for compliance could not be treated, so counting them in either group would bias the comparison.

A calendar period ends while its measurement is still running (issue 26: building on 11-30 then 12-01 drew a new
lottery and released most November controls inside their 30-day window), so an experiment is better named:
`experiment = "winback-2026-12"` with `start` and `end` keys the draw by the name (stable for the experiment's
whole life), draws only on builds between start and end, and the store holds its controls until `end`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

import duckdb

GROUPS = ("treatment", "control")
PERIODS = ("month", "quarter", "week", "year")
_DIGITS = 15  # hex digits of the digest used as the uniform draw (60 bits: exact in a DuckDB BIGINT)


@dataclass(frozen=True)
class HoldoutSettings:
    """`[lists.holdout]`: share of each segment held out, the seed, and what one campaign period is.

    `period` is `month` (default), `quarter`, `week`, `year`, or any fixed label (e.g. `2026-winter`) for a
    campaign whose period is not calendar-shaped. `segments` overrides the share per segment.
    """

    share: float = 0.0
    seed: str = "tsunagu"
    period: str = "month"
    segments: dict[str, float] = field(default_factory=dict)
    experiment: str = ""  # a named experiment: the draw's key instead of the calendar period
    start: date | None = None
    end: date | None = None
    # customers still measured as control by ANOTHER period or experiment (the store knows): not listed and
    # not drawn again, so a new period neither calls them nor counts them as treatment that was never called
    held: frozenset[str] = frozenset()

    def key_for(self, as_of: date) -> str:
        """What the draw is keyed by on AS_OF: the experiment's name, else the calendar period."""
        return self.experiment or period_key(as_of, self.period)

    def drawing_on(self, as_of: date) -> bool:
        """False outside a named experiment's start..end: no new assignments (and no new control) that night."""
        if not self.experiment:
            return True
        return (self.start is None or self.start <= as_of) and (self.end is None or as_of <= self.end)

    def share_for(self, segment: str) -> float:
        return float(self.segments.get(segment, self.share))

    @property
    def enabled(self) -> bool:
        return self.share > 0 or any(v > 0 for v in self.segments.values())


def period_key(as_of: date, period: str) -> str:
    """The campaign period `as_of` falls in: 2026-11, 2026-Q4, 2026-W48, 2026, or the fixed label itself."""
    if period == "month":
        return f"{as_of.year:04d}-{as_of.month:02d}"
    if period == "quarter":
        return f"{as_of.year:04d}-Q{(as_of.month - 1) // 3 + 1}"
    if period == "week":
        y, w, _ = as_of.isocalendar()
        return f"{y:04d}-W{w:02d}"
    if period == "year":
        return f"{as_of.year:04d}"
    return period


def draw(seed: str, period: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, period, customer): the customer's lottery ticket."""
    digest = hashlib.sha256(f"{seed}|{period}|{customer_id}".encode()).hexdigest()
    return int(digest[:_DIGITS], 16) / float(16**_DIGITS)


def group_of(seed: str, period: str, customer_id: str, share: float) -> str:
    return "control" if draw(seed, period, customer_id) < share else "treatment"


def draw_sql(seed: str, period: str, col: str) -> str:
    """SQL twin of `draw` for DuckDB (same digest, same digits), so the build and Python agree."""
    prefix = f"{seed}|{period}|".replace("'", "''")
    return f"(('0x' || substr(sha256('{prefix}' || {col}), 1, {_DIGITS}))::BIGINT / {float(16**_DIGITS)!r})"


def apply_holdout(con: duckdb.DuckDBPyConnection, h: HoldoutSettings, as_of: date) -> dict[str, object]:
    """Split `entries` into treatment and control; control rows move to `suppressed` with reason `holdout`.

    Leaves a `holdout` table (customer_id, segment, grp, period, draw) for every entry that took part, and
    returns the counts per segment and group for summary.json.
    """
    period = h.key_for(as_of)
    held = 0
    if h.held:
        con.execute("CREATE OR REPLACE TEMP TABLE held_out AS SELECT unnest(?::VARCHAR[]) AS customer_id",
                    [sorted(h.held)])
        held = int((con.execute("SELECT count(*) FROM entries WHERE customer_id IN (SELECT customer_id FROM held_out)")
                    .fetchone() or (0,))[0])
        con.execute("INSERT INTO suppressed SELECT customer_id, segment, 'holdout' FROM entries "
                    "WHERE customer_id IN (SELECT customer_id FROM held_out)")
        con.execute("DELETE FROM entries WHERE customer_id IN (SELECT customer_id FROM held_out)")
    if not h.drawing_on(as_of):
        empty_holdout(con)
        return {"period": period, "experiment": h.experiment, "drawing": False, "segments": {},
                "held_from_earlier": held,
                "note": f"experiment {h.experiment} draws from {h.start} to {h.end}: no hold-out on {as_of}"}
    share_case = "CASE segment " + " ".join(
        f"WHEN '{seg.replace(chr(39), '')}' THEN {float(v)!r}" for seg, v in sorted(h.segments.items())
    ) + f" ELSE {float(h.share)!r} END" if h.segments else f"{float(h.share)!r}"
    con.execute(f"""
        CREATE OR REPLACE TABLE holdout AS
        SELECT customer_id, segment, CASE WHEN u < sh THEN 'control' ELSE 'treatment' END AS grp,
               '{period.replace("'", "''")}' AS period, u AS draw, sh AS share
          FROM (SELECT customer_id, segment, {draw_sql(h.seed, period, 'customer_id')} AS u, {share_case} AS sh
                  FROM entries)""")
    con.execute("INSERT INTO suppressed SELECT customer_id, segment, 'holdout' FROM holdout WHERE grp = 'control'")
    con.execute("DELETE FROM entries WHERE (customer_id, segment) IN "
                "(SELECT customer_id, segment FROM holdout WHERE grp = 'control')")
    counts: dict[str, dict[str, int]] = {}
    for seg, grp, n in con.execute("SELECT segment, grp, count(*) FROM holdout GROUP BY 1, 2 ORDER BY 1, 2").fetchall():
        counts.setdefault(str(seg), {"treatment": 0, "control": 0})[str(grp)] = int(n)
    return {"period": period, "seed_hash": hashlib.sha256(h.seed.encode()).hexdigest()[:12], "share": h.share,
            "segments": counts, "held_from_earlier": held, **({"experiment": h.experiment, "start": str(h.start), "end": str(h.end)}
                                   if h.experiment else {})}


def empty_holdout(con: duckdb.DuckDBPyConnection) -> None:
    """No hold-out configured: every listed entry is treatment (kept as a table so outputs have one shape)."""
    con.execute("""CREATE OR REPLACE TABLE holdout AS
                   SELECT customer_id, segment, 'treatment' AS grp, '' AS period, 1.0 AS draw, 0.0 AS share
                     FROM entries""")
