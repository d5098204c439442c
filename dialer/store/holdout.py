"""Hold-out assignments in the store: who was treatment or control, per customer, segment and campaign period.

Recorded at every nightly build so a later CRM export can be compared (`dialer report lift`), and read by the
hopper and the SMS sender so a control customer is never contacted even if an entry for them exists (an older
build, a hand-made callback). The first assignment of a period is kept: a later build with another seed or
share cannot move a customer between groups in the middle of an experiment.

A control customer stays held for the whole measurement (issue 26), whatever later builds say: until the end of
the named experiment that holds them out (`holdout_experiments`), or, for a calendar period, until HOLD_DAYS
after their first assignment in it (the lift's default purchase window) -- and held from every segment, because
the lift counts all of the customer's purchases, so a call for another product would contaminate it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint, and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from dialer.store.models import utcnow

HOLD_DAYS = 30  # a calendar period's control is held this long after its first assignment (lift --days default)


class HoldoutGroup(StrEnum):
    TREATMENT = "treatment"
    CONTROL = "control"


class HoldoutExperiment(SQLModel, table=True):
    """A named hold-out experiment ([lists.holdout] experiment/start/end): its controls are held until `end`."""

    __tablename__ = "holdout_experiments"
    name: str = Field(primary_key=True)
    start: date
    end: date
    updated_at: datetime = Field(default_factory=utcnow)


class HoldoutAssignment(SQLModel, table=True):
    """One customer's group for one segment in one campaign period (lists.holdout decides it)."""

    __tablename__ = "holdout_assignments"
    __table_args__ = (
        UniqueConstraint("period", "customer_id", "segment", name="uq_holdout_period_customer_segment"),
        Index("ix_holdout_customer_segment", "customer_id", "segment"),
    )
    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(index=True)
    customer_id: str
    segment: str
    group: str  # treatment | control
    first_build: date
    last_build: date
    created_at: datetime = Field(default_factory=utcnow)


HT = HoldoutAssignment.__table__  # type: ignore[attr-defined]
XT = HoldoutExperiment.__table__  # type: ignore[attr-defined]


def record_experiment(engine: Engine, name: str, start: date, end: date) -> None:
    """Keep the experiment's window (a later config may move `end` later: the hold follows it)."""
    ins = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    stmt = ins(XT).values(name=name, start=start, end=end, updated_at=utcnow())
    with engine.begin() as conn:
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
            "start": stmt.excluded.start, "end": stmt.excluded.end, "updated_at": stmt.excluded.updated_at}))


def _hold_end(period: str, first: date, last: date, ends: dict[str, date]) -> date:
    """The last day a control assignment is measured: its experiment's end, else HOLD_DAYS after the first
    assignment of the calendar period (or its last build, while builds still list it)."""
    return ends[period] if period in ends else max(first + timedelta(days=HOLD_DAYS), last)


def held_until(conn: Connection, customer_ids: Iterable[str]) -> dict[str, date]:
    """customer -> the last day any of their control assignments is still being measured."""
    cids = sorted(set(customer_ids))
    ends = {str(n): e for n, e in conn.execute(select(XT.c.name, XT.c.end)).all()}
    out: dict[str, date] = {}
    for i in range(0, len(cids), 500):
        for cid, period, first, last in conn.execute(
                select(HT.c.customer_id, HT.c.period, HT.c.first_build, HT.c.last_build)
                .where(HT.c.customer_id.in_(cids[i:i + 500]), HT.c.group == HoldoutGroup.CONTROL)).all():
            until = _hold_end(period, first, last, ends)
            if cid not in out or until > out[cid]:
                out[cid] = until
    return out


def record_assignments(engine: Engine, batches: Iterable[list[tuple[str, str, str, str]]], build_date: date) -> int:
    """Insert new (customer, segment, group, period) rows; existing ones keep their group, only `last_build` moves."""
    n = 0
    ins = sqlite_insert if engine.dialect.name == "sqlite" else pg_insert
    now = utcnow()
    with engine.begin() as conn:
        for rows in batches:
            if not rows:
                continue
            values = [{"period": p, "customer_id": c, "segment": s, "group": g, "first_build": build_date,
                       "last_build": build_date, "created_at": now} for c, s, g, p in rows]
            stmt = ins(HT)
            stmt = stmt.on_conflict_do_update(index_elements=["period", "customer_id", "segment"],
                                              set_={"last_build": stmt.excluded.last_build})
            conn.execute(stmt, values)
            n += len(values)
    return n


def held_customers(engine: Engine, day: date, except_period: str) -> set[str]:
    """Every customer held as control on DAY by a period or experiment other than EXCEPT_PERIOD (the one a build
    is drawing): the build lists and draws them no more until that measurement ends."""
    with engine.connect() as conn:
        ends = {str(n): e for n, e in conn.execute(select(XT.c.name, XT.c.end)).all()}
        out: set[str] = set()
        for cid, period, first, last in conn.execute(
                select(HT.c.customer_id, HT.c.period, HT.c.first_build, HT.c.last_build)
                .where(HT.c.group == HoldoutGroup.CONTROL, HT.c.period != except_period)).all():
            if day <= _hold_end(period, first, last, ends):
                out.add(str(cid))
    return out


def latest_groups(conn: Connection, customer_ids: Iterable[str], skip_periods: Iterable[str] = ()
                  ) -> dict[tuple[str, str], str]:
    """(customer, segment) -> the group of the most recent period's assignment (by last build, then period)."""
    skip = set(skip_periods)
    cids = sorted(set(customer_ids))
    out: dict[tuple[str, str], tuple[date, str, str]] = {}
    for i in range(0, len(cids), 500):
        rows = conn.execute(select(HT.c.customer_id, HT.c.segment, HT.c.group, HT.c.last_build, HT.c.period)
                            .where(HT.c.customer_id.in_(cids[i:i + 500]))).all()
        for cid, seg, grp, last, period in rows:
            if period in skip:
                continue
            key = (cid, seg)
            if key not in out or (last, period) > out[key][:2]:
                out[key] = (last, period, grp)
    return {k: v[2] for k, v in out.items()}


def controls(conn: Connection, customer_ids: Iterable[str], at: datetime | None = None) -> set[str]:
    """The customers held out at AT (default now): a control assignment still being measured, or -- as before --
    a latest assignment that is control. Never to be contacted, in any segment, by any channel."""
    cids = list(customer_ids)
    day = (at or datetime.now(UTC)).date()
    held = {c for c, until in held_until(conn, cids).items() if day <= until}
    experiments = conn.execute(select(XT.c.name)).scalars().all()  # an ended experiment releases its controls
    return held | {c for (c, _s), g in latest_groups(conn, cids, experiments).items() if g == HoldoutGroup.CONTROL}


def assignments(engine: Engine, segments: Iterable[str], periods: Iterable[str] | None = None
                ) -> list[tuple[str, str, str, str, date, date]]:
    """(customer, segment, group, period, first_build, last_build) for the segments (and periods) asked."""
    cond = [HT.c.segment.in_(list(segments))]
    if periods is not None:
        cond.append(HT.c.period.in_(list(periods)))
    with engine.connect() as conn:
        rows = conn.execute(select(HT.c.customer_id, HT.c.segment, HT.c.group, HT.c.period, HT.c.first_build,
                                   HT.c.last_build).where(and_(*cond)).order_by(HT.c.customer_id)).all()
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def group_counts(engine: Engine, segments: Iterable[str]) -> dict[str, dict[str, int]]:
    """Latest period only: segment -> {treatment: n, control: n} (what the monitor shows)."""
    segs = list(segments)
    with engine.connect() as conn:
        last = conn.execute(select(HT.c.period).where(HT.c.segment.in_(segs))
                            .order_by(HT.c.last_build.desc(), HT.c.period.desc()).limit(1)).scalar()
        if last is None:
            return {}
        out: dict[str, dict[str, int]] = {}
        for seg, grp in conn.execute(select(HT.c.segment, HT.c.group).where(HT.c.segment.in_(segs),
                                                                            HT.c.period == last)).all():
            d = out.setdefault(seg, {"treatment": 0, "control": 0})
            d[grp] = d.get(grp, 0) + 1
    return out



def group_for(conn: Connection, customer_id: str, segment: str) -> str:
    """The customer's latest group for the segment, or "" when no hold-out assignment was ever recorded."""
    return latest_groups(conn, [customer_id]).get((customer_id, segment), "")
