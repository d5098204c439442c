"""The hopper: which call-list entries a campaign may dial NOW, in what order, leased so no two dialers share one.

An entry is dialable at instant `at` only when all of these hold (SQL narrows, Python decides):
- its status is `pending` (or `leased` with an expired lease) and its segment is one of the campaign's;
- its callable window is open (`callable_from <= at < callable_until`; callbacks widen it) and its retry
  delay has passed (`next_attempt_at <= at`), and it is not locked (`locked_until`);
- the contact's local time is inside the campaign's calling hours in every zone it may be in, and the local
  date is not a holiday (dialer.domain.calling_hours) -- skipped only when `respect_calling_hours=False`, which the
  campaign loop passes for loopback sandbox trunks that reach no real person;
- no block applies: `dnc` / `no_consent` (by customer, or by number -> the next number is used), `refusal`
  for the entry's product (`product_scope` empty or equal to the entry's sku; permanent: 再勧誘の禁止), an
  `abandon_lock` whose `until` is in the future; the customer is not withdrawn, tel_ok=0 or flagged caution;
- the customer is not in the hold-out control group for the entry's segment (dialer.store.holdout);
- attempts are below the contact's maximum and a number with attempts left remains (dialer.domain.retry).

ORDER (what `preview` shows and `lease` hands out first):
1. callbacks whose time has come, earliest first (so late ones -- missed while the dialer was down -- lead;
   they are flagged `callback_late` once more than `callback_late_after` past their time);
2. then by urgency weighted by value: score = priority / max(1, hours until callable_until), highest first
   (an entry without an end counts as 720 h away), so a contact whose window closes today outranks a more
   valuable one with two weeks left, but not one worth far more;
3. ties by entry id (older rows first).

Leasing is atomic on SQLite and PostgreSQL alike: candidates are read (on PostgreSQL `FOR UPDATE SKIP LOCKED`
so concurrent leasers skip each other's rows), then each is claimed with a conditional
`UPDATE ... WHERE id = ? AND status = 'pending' ...` carrying a fresh lease token, and only the rows that carry
that token afterwards are returned. A row can only flip once, so two leasers never get the same entry.

All times are aware datetimes passed in by the caller: the hopper never reads the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import Table, and_, case, func, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel, col
from sqlmodel import select as orm_select

from dialer.domain import entry as lifecycle
from dialer.domain.callbacks import DEFAULT_CALLBACK
from dialer.domain.calling_hours import contact_zones, zone_for_prefecture
from dialer.domain.entry import BlockFacts, CustomerFacts, EntryFacts, Verdict, aware, need_aware
from dialer.domain.policy import CampaignPolicy, CampaignSource
from dialer.domain.retry import OUTCOMES
from dialer.domain.vocabulary import (
    LIVE_ATTEMPT,
    AttemptState,
    BlockKind,
    CallOutcome,
    Disposition,
    EntryStatus,
)
from dialer.store.holdout import controls as holdout_controls
from dialer.store.models import Attempt, Block, CallListEntry, Customer
from dialer.store.nodes import NodeFence

T: Table = SQLModel.metadata.tables[CallListEntry.__tablename__]
BT: Table = SQLModel.metadata.tables[Block.__tablename__]
CT: Table = SQLModel.metadata.tables[Customer.__tablename__]

NO_END_HOURS = lifecycle.NO_END_HOURS
SCAN_LIMIT = 2000  # rows one lease/preview call may examine (blocked ones are parked so they are not re-read)
ZONE_CACHE_S = 300.0
DISPOSITIONS = tuple(d.value for d in Disposition)


@dataclass(frozen=True)
class HopperItem:
    """One line of `preview`: an entry that would be dialled at that instant, and why it is there."""

    entry_id: int
    customer_id: str
    segment: str
    phone_e164: str
    reason: str
    due_because: str
    priority: float = 0.0
    score: float = 0.0
    callable_until: datetime | None = None


@dataclass(frozen=True)
class Lease:
    """An entry handed to one dialer until `lease_expires_at`; `callback_agent` asks for that agent."""

    entry_id: int
    customer_id: str
    segment: str
    sku: str
    phone_e164: str
    phone_index: int
    attempt_no: int
    priority: float
    callback_agent: str
    due_because: str = ""
    callback_late: bool = False
    lease_token: str = ""
    lease_expires_at: datetime | None = None


def _epoch(column: ColumnElement[Any], pg: bool) -> ColumnElement[Any]:
    if pg:
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _facts(r: Row[Any]) -> EntryFacts:
    return EntryFacts(id=r.id, customer_id=r.customer_id, segment=r.segment, sku=r.sku or "", phones=tuple(r.phones or ()),
                      phone_index=r.phone_index, attempts=r.attempts, attempts_by_phone=dict(r.attempts_by_phone or {}),
                      phone_flags=dict(r.phone_flags or {}), attempt_limit=r.attempt_limit, timezone=r.timezone or "",
                      priority=float(r.priority), callable_from=r.callable_from, callable_until=r.callable_until,
                      callback_at=r.callback_at, callback_late=bool(r.callback_late), last_outcome=r.last_outcome or "")


def _block(r: Row[Any]) -> BlockFacts:
    return BlockFacts(kind=r.kind, phone_e164=r.phone_e164, customer_id=r.customer_id,
                      product_scope=r.product_scope or "", until=r.until)


def _customer(r: Row[Any]) -> CustomerFacts:
    return CustomerFacts(tel_ok=bool(r.tel_ok), withdrawn=bool(r.withdrawn), caution=bool(r.caution),
                         prefecture=r.prefecture or "")


Candidate = tuple[Row[Any], EntryFacts, Verdict]


class Hopper:
    """The ordered, leasable supply of entries for one campaign (see the module docstring for the rules)."""

    def __init__(self, engine: Engine, campaign: CampaignPolicy | CampaignSource, *,
                 respect_calling_hours: bool = True) -> None:
        self.engine = engine
        self.policy = CampaignPolicy.of(campaign)
        self.respect_calling_hours = respect_calling_hours
        self.hours = self.policy.hours
        self.segments = list(self.policy.segments)
        self.pg = engine.dialect.name == "postgresql"
        self._zones: tuple[datetime, list[str]] | None = None
        self._controls: set[str] = set()
        # (issue 18) multi-node: leases and dial marks only while this node's membership holds, and callbacks
        # reserved for an agent held by another node are left to that node
        self.fence: NodeFence | None = None
        self.foreign_agents: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ selection
    def _free(self, at: datetime) -> ColumnElement[bool]:
        return or_(T.c.status == EntryStatus.PENDING,
                   and_(T.c.status == EntryStatus.LEASED, T.c.lease_expires_at <= at))

    def _due(self, at: datetime) -> ColumnElement[bool]:
        return and_(
            self._free(at),
            T.c.segment.in_(self.segments),
            or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= at),
            or_(T.c.callable_from.is_(None), T.c.callable_from <= at),
            or_(T.c.callable_until.is_(None), T.c.callable_until > at),
            or_(T.c.locked_until.is_(None), T.c.locked_until <= at),
        )

    def _closed_zones(self, conn: Connection, at: datetime) -> list[str]:
        """Entry time zones closed right now: a cheap SQL pre-filter (Python still checks every contact)."""
        if not self.respect_calling_hours:
            return []
        if self._zones is None or abs((at - self._zones[0]).total_seconds()) > ZONE_CACHE_S:
            names = conn.execute(select(T.c.timezone).distinct().where(
                T.c.status.in_((EntryStatus.PENDING, EntryStatus.LEASED)),
                T.c.segment.in_(self.segments))).scalars().all()
            self._zones = (at, [str(n) for n in names if n])
        return [z for z in self._zones[1] if not self.hours.is_open(at, (z,))]

    def _ordered(self, at: datetime) -> list[ColumnElement[Any]]:
        cb_due = and_(T.c.callback_at.is_not(None), T.c.callback_at <= at)
        at_epoch = at.timestamp()
        hours_left = (_epoch(T.c.callable_until, self.pg) - literal(at_epoch)) / 3600.0
        hours = case((T.c.callable_until.is_(None), literal(NO_END_HOURS)),
                     (hours_left < 1.0, literal(1.0)), else_=hours_left)
        score = T.c.priority / hours
        return [case((cb_due, 0), else_=1), case((cb_due, _epoch(T.c.callback_at, self.pg)), else_=0.0),
                score.desc(), T.c.id]

    def _page(self, conn: Connection, at: datetime, offset: int, size: int, lock: bool) -> Sequence[Row[Any]]:
        q = select(T).where(self._due(at))
        closed = self._closed_zones(conn, at)
        if closed:
            q = q.where(T.c.timezone.not_in(closed))
        q = q.order_by(*self._ordered(at)).offset(offset).limit(size)
        if lock and self.pg:
            q = q.with_for_update(skip_locked=True, of=T)
        return conn.execute(q).all()

    def _context(self, conn: Connection, rows: Sequence[Row[Any]], at: datetime
                 ) -> tuple[dict[str, CustomerFacts], list[BlockFacts]]:
        cids = sorted({r.customer_id for r in rows})
        phones = sorted({p for r in rows for p in (r.phones or []) if p})
        customers = {c.customer_id: _customer(c)
                     for c in conn.execute(select(CT).where(CT.c.customer_id.in_(cids))).all()}
        cond = [BT.c.customer_id.in_(cids)]
        if phones:
            cond.append(BT.c.phone_e164.in_(phones))
        blocks = conn.execute(select(BT).where(or_(*cond), or_(BT.c.until.is_(None), BT.c.until > at))).all()
        # hold-out control: never dialled while an experiment measures them, in any segment (issues 19, 26)
        self._controls = holdout_controls(conn, cids, at)
        return customers, [_block(b) for b in blocks]

    def _judge(self, e: EntryFacts, at: datetime, customers: dict[str, CustomerFacts],
               blocks: list[BlockFacts]) -> Verdict:
        return lifecycle.judge(e, at, customers.get(e.customer_id), blocks, self.policy,
                               respect_calling_hours=self.respect_calling_hours,
                               in_control_group=e.customer_id in self._controls)

    def _scan(self, conn: Connection, at: datetime, want: int, lock: bool, skip: set[int]
              ) -> tuple[list[Candidate], list[Candidate]]:
        """Walk the ordered candidates; return (dialable, to park), at most WANT dialable ones."""
        good: list[Candidate] = []
        parked: list[Candidate] = []
        taken: set[str] = set()
        offset, size = 0, max(50, 4 * want)
        while len(good) < want and offset < SCAN_LIMIT:
            rows = self._page(conn, at, offset, size, lock)
            if not rows:
                break
            offset += len(rows)
            customers, blocks = self._context(conn, rows, at)
            siblings = self._siblings(conn, rows)
            for r in rows:
                if r.id in skip or self._foreign_callback(r, at):
                    continue
                e = _facts(r)
                v = self._judge(e, at, customers, blocks)
                if v.ok:
                    if e.customer_id in taken or lifecycle.customer_resting(e, siblings.get(e.customer_id, ()), at):
                        continue  # one call per customer at a time; the other entry's retry delay holds (not parked)
                    if len(good) < want:
                        good.append((r, e, v))
                        taken.add(e.customer_id)
                elif v.park is not None:
                    parked.append((r, e, v))
            if len(rows) < size:
                break
        return good, parked

    def _siblings(self, conn: Connection, rows: Sequence[Row[Any]]) -> dict[str, list[lifecycle.SiblingFacts]]:
        """Every entry of the page's customers (any segment, any status): the customer-level rest rule reads them."""
        cids = sorted({r.customer_id for r in rows})
        out: dict[str, list[lifecycle.SiblingFacts]] = {}
        if not cids:
            return out
        q = select(T.c.id, T.c.customer_id, T.c.status, T.c.lease_expires_at, T.c.last_attempt_at,
                   T.c.next_attempt_at).where(T.c.customer_id.in_(cids))
        for x in conn.execute(q).all():
            out.setdefault(x.customer_id, []).append(lifecycle.SiblingFacts(
                entry_id=x.id, status=x.status, lease_expires_at=x.lease_expires_at,
                last_attempt_at=x.last_attempt_at, next_attempt_at=x.next_attempt_at))
        return out

    def _foreign_callback(self, r: Row[Any], at: datetime) -> bool:
        """A callback still reserved for an agent whose legs live on another node: that node makes it."""
        return bool(self.foreign_agents and r.callback_agent in self.foreign_agents
                    and r.callback_reserved_until is not None and at < aware(r.callback_reserved_until))

    # ------------------------------------------------------------------ the interface the campaign loop uses
    def preview(self, at: datetime, limit: int = 50) -> list[HopperItem]:
        """What `lease` would hand out at AT, in order, with why each is due; writes nothing."""
        need_aware(at)
        with self.engine.connect() as conn:
            good, _ = self._scan(conn, at, limit, lock=False, skip=set())
        out = []
        for r, e, v in good:
            because, _late = lifecycle.due_because(e, at, self.policy)
            out.append(HopperItem(entry_id=e.id, customer_id=e.customer_id, segment=r.segment,
                                  phone_e164=e.phones[v.phone_index], reason=r.reason, due_because=because,
                                  priority=e.priority, score=lifecycle.score(e, at),
                                  callable_until=aware(e.callable_until) if e.callable_until else None))
        return out

    def lease(self, n: int, owner: str, at: datetime, lease_s: float = 120.0,
              exclude: Collection[int] = ()) -> list[Lease]:
        """Claim up to N dialable entries for OWNER until at + lease_s; never the same entry to two leasers.

        EXCLUDE: entries not to hand to this owner (one a preview agent just passed on)."""
        need_aware(at)
        if n <= 0:
            return []
        token = uuid.uuid4().hex
        expires = at + timedelta(seconds=lease_s)
        won: list[Lease] = []
        lost: set[int] = set()
        with self.engine.begin() as conn:
            if self.fence is not None and not self.fence.holds(conn):
                return []  # this node cannot prove its membership: it takes nothing
            for _round in range(3):
                good, parked = self._scan(conn, at, n - len(won), lock=True,
                                          skip=lost | set(exclude) | {w.entry_id for w in won})
                for _r, e, v in parked:
                    assert v.park is not None
                    conn.execute(update(T).where(T.c.id == e.id, self._free(at)).values(**v.park, updated_at=at))
                if not good:
                    break
                order: dict[int, tuple[str, bool]] = {}
                for _r, e, v in good:
                    because, late = lifecycle.due_because(e, at, self.policy)
                    values: dict[str, Any] = {"status": EntryStatus.LEASED.value, "lease_owner": owner,
                                              "lease_token": token, "lease_expires_at": expires,
                                              "phone_index": v.phone_index, "updated_at": at}
                    if v.park and "phone_flags" in v.park:
                        values["phone_flags"] = v.park["phone_flags"]
                    if late:
                        values["callback_late"] = True
                    res = conn.execute(update(T).where(T.c.id == e.id, self._due(at)).values(**values))
                    if res.rowcount == 1:
                        order[e.id] = (because, late)
                    else:
                        lost.add(e.id)
                mine = {x.id: x for x in conn.execute(select(T).where(T.c.lease_token == token)).all()}
                for eid, (because, late) in order.items():
                    row = mine.get(eid)
                    if row is None or row.lease_owner != owner:
                        lost.add(eid)
                        continue
                    agent = ""
                    if (row.callback_agent and row.callback_reserved_until is not None
                            and at < aware(row.callback_reserved_until)
                            and row.callback_at is not None and aware(row.callback_at) <= at):
                        agent = row.callback_agent
                    won.append(Lease(entry_id=eid, customer_id=row.customer_id, segment=row.segment, sku=row.sku,
                                     phone_e164=row.phones[row.phone_index], phone_index=row.phone_index,
                                     attempt_no=row.attempts + 1, priority=float(row.priority),
                                     callback_agent=agent, due_because=because, callback_late=late,
                                     lease_token=token, lease_expires_at=expires))
                if len(won) >= n or not lost:
                    break
        return won

    def check_dialable(self, entry_id: int, phone_e164: str, at: datetime) -> str | None:
        """Re-check right before the INVITE leaves (blocks, hours, window, limits): None if OK, else why not."""
        need_aware(at)
        per_phone = self.policy.max_attempts_per_phone
        with self.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.id == entry_id)).first()
            if row is None:
                return f"no call-list entry {entry_id}"
            if row.status not in (EntryStatus.PENDING, EntryStatus.LEASED):
                return f"entry is {row.status}" + (f" ({row.status_reason})" if row.status_reason else "")
            if row.segment not in self.segments:
                return f"segment {row.segment} is not in this campaign"
            if phone_e164 not in (row.phones or []):
                return "number is not on the entry"
            if phone_e164 in (row.phone_flags or {}):
                return f"number flagged {row.phone_flags[phone_e164]}"
            if row.callable_from is not None and aware(row.callable_from) > at:
                return f"window opens {aware(row.callable_from).isoformat()}"
            if row.callable_until is not None and aware(row.callable_until) <= at:
                return f"window closed {aware(row.callable_until).isoformat()}"
            if row.next_attempt_at is not None and aware(row.next_attempt_at) > at:
                return f"retry not due until {aware(row.next_attempt_at).isoformat()}"
            if row.locked_until is not None and aware(row.locked_until) > at:
                return f"locked until {aware(row.locked_until).isoformat()}"
            if (row.attempts_by_phone or {}).get(phone_e164, 0) >= per_phone:
                return f"number already tried {per_phone} times"
            customers, blocks = self._context(conn, [row], at)
            e = _facts(row)
            hits = lifecycle.blocks_for(e, phone_e164, blocks, at)
            if hits:
                b = hits[0]
                return f"blocked: {b.kind}" + (f" ({b.product_scope})" if b.product_scope else "") + (
                    f" until {aware(b.until).isoformat()}" if b.until is not None else "")
            v = self._judge(e, at, customers, blocks)
            if not v.ok:
                return v.why
            if self.respect_calling_hours:
                closed = lifecycle.closed_reason(e, phone_e164, at, customers.get(e.customer_id), self.policy)
                if closed:
                    return closed
        return None

    def contact_refusal(self, entry_id: int, phone_e164: str, at: datetime) -> tuple[str, datetime | None] | None:
        """Why the entry's customer may not be contacted on PHONE at AT by any channel, or None when they may.

        The same blocks, customer flags, hold-out and calling hours as a call, but not the entry's status or
        window: the SMS sender re-checks a message queued earlier (its entry already closed) right before it
        leaves, so a refusal or DNC recorded meanwhile still stops it. Returns (why, retry_at): retry_at is set
        when the refusal is temporary (calling hours, holiday, abandon lock) and None when it is final.
        """
        need_aware(at)
        with self.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.id == entry_id)).first()
            if row is None:
                return f"no call-list entry {entry_id}", None
            if phone_e164 not in (row.phones or []):
                return "number is not on the entry", None
            customers, blocks = self._context(conn, [row], at)
            e = _facts(row)
            hits = lifecycle.blocks_for(e, phone_e164, blocks, at)
            final = [b for b in hits if b.kind != BlockKind.ABANDON_LOCK]
            if final:
                b = final[0]
                return f"blocked: {b.kind}" + (f" ({b.product_scope})" if b.product_scope else ""), None
            locks = [aware(b.until) for b in hits if b.until is not None]
            if hits:
                return "abandon lock", max(locks) if locks else None
            closed: str | None = None
            zones: tuple[str, ...] = ()
            if self.respect_calling_hours:
                cust = customers.get(e.customer_id)
                zones = contact_zones(phone_e164, e.timezone, cust.prefecture if cust is not None else "")
                closed = self.hours.closed_reason(at, zones)
            v = self._judge(e, at, customers, blocks)
            # exhausted entries still say when their number would be callable; a closure answers below
            if not v.ok and v.cause not in (lifecycle.Ineligible.MAX_ATTEMPTS, lifecycle.Ineligible.NO_NUMBER) \
                    and not (v.cause is lifecycle.Ineligible.CLOSED and closed):
                return v.why, None
            if closed:
                return closed, self.hours.next_open(at, zones) or at + timedelta(days=1)
        return None

    def mark_dialing(self, entry_id: int, attempt_id: int, at: datetime, lease_token: str = "") -> bool:
        """The INVITE is about to leave: count the attempt now, so a crash can never make it free.

        LEASE_TOKEN (multi-node): only while the entry still carries that lease (row locked) and the node's
        fence holds; False when not, and then nothing was written and the INVITE must not leave."""
        need_aware(at)
        with Session(self.engine) as s:
            if lease_token:
                if self.fence is not None and not self.fence.holds(s.connection()):
                    return False
                e = s.get(CallListEntry, entry_id, with_for_update=True)
                if e is None or e.status != EntryStatus.LEASED or e.lease_token != lease_token:
                    return False
            else:
                e = s.get(CallListEntry, entry_id)
            if e is None:
                return False
            lifecycle.count_attempt(e, lifecycle.current_phone(e))
            e.status = EntryStatus.DIALING.value
            e.current_attempt_id = attempt_id
            e.last_attempt_at = at
            e.lease_expires_at = None
            e.updated_at = at
            s.add(e)
            s.commit()
            return True

    def record_result(self, entry_id: int, outcome: str, at: datetime, *, abandoned: bool = False,
                      phone_e164: str = "") -> None:
        """A dial ended with OUTCOME: apply the retry rules, the 72 h lock after an abandon, done/exhausted.

        If a disposition (or recover) already decided the entry's fate, only the lock and last outcome are written.
        """
        need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None:
                return
            phone = phone_e164 or lifecycle.current_phone(e)
            lock_until = None
            if abandoned:
                lock_until = at + self.policy.retry.abandon_lock
                s.add(Block(phone_e164=phone, customer_id=None, kind=BlockKind.ABANDON_LOCK.value, since=at,
                            until=lock_until, source="dialer", reason=f"abandoned call (entry {entry_id})"))
                if e.locked_until is None or aware(e.locked_until) < lock_until:
                    e.locked_until = lock_until
            e.last_outcome = outcome + (" (abandoned)" if abandoned else "")
            e.updated_at = at
            if e.status not in (EntryStatus.DIALING, EntryStatus.LEASED):
                s.add(e)
                s.commit()
                return
            if e.status == EntryStatus.LEASED:  # mark_dialing was skipped: the attempt still counts
                lifecycle.count_attempt(e, phone)
            lifecycle.apply_outcome(e, outcome if outcome in OUTCOMES else "failed", at, lock_until, self.policy)
            e.last_attempt_at = at
            lifecycle.clear_callback(e)
            s.add(e)
            s.commit()

    def apply_disposition(self, entry_id: int, outcome: str, at: datetime, *, callback_at: datetime | None = None,
                          agent_login: str = "", sku: str = "") -> None:
        """The agent's verdict on an answered call (what each does: dialer.domain.entry.DispositionEffect).

        sale/upsell/cross_sell/other -> done; callback -> due at callback_at (default: DEFAULT_CALLBACK, 24 h;
        moved to the next calling slot when the campaign cannot call then: one rule, dialer.domain.callbacks), held for the
        agent for `callback_reserve`; refused and no_interest -> done + a permanent `refusal` block for the
        product (再勧誘の禁止: "not interested" is a refusal too); dnc -> done + a `dnc` block on the number
        and the customer, effective at once for every entry; wrong_number -> next number or exhausted;
        machine -> as the machine outcome (next day, another hour).
        """
        need_aware(at)
        effect = lifecycle.disposition_effect(outcome)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None:
                return
            phone = lifecycle.current_phone(e)
            scope = sku or e.sku
            e.updated_at = at
            if effect is lifecycle.DispositionEffect.CALLBACK:
                lifecycle.schedule_callback(e, callback_at or at + DEFAULT_CALLBACK, agent_login,
                                            self.policy.callback_reserve, self.policy)
            elif effect is lifecycle.DispositionEffect.REFUSAL_BLOCK:
                s.add(Block(customer_id=e.customer_id, phone_e164=None, kind=BlockKind.REFUSAL.value,
                            product_scope=scope, since=at, source="disposition",
                            reason=f"{outcome} by {agent_login or 'agent'}"))
                lifecycle.finish(e, EntryStatus.DONE.value, outcome)
            elif effect is lifecycle.DispositionEffect.DNC_BLOCK:
                s.add(Block(customer_id=e.customer_id, phone_e164=phone or None, kind=BlockKind.DNC.value, since=at,
                            source="disposition", reason=f"do-not-call asked ({agent_login or 'agent'})"))
                lifecycle.finish(e, EntryStatus.DONE.value, "dnc")
            elif effect is lifecycle.DispositionEffect.AS_OUTCOME:
                lifecycle.apply_outcome(e, outcome, at, aware(e.locked_until) if e.locked_until else None,
                                        self.policy)
                lifecycle.clear_callback(e)
            else:
                lifecycle.finish(e, EntryStatus.DONE.value, outcome)
            s.add(e)
            s.commit()

    def release(self, entry_id: int, at: datetime) -> None:
        """Give back an entry that was leased but never dialled (an attempt marked but not placed is undone)."""
        need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None or e.status not in (EntryStatus.LEASED, EntryStatus.DIALING):
                return
            if e.status == EntryStatus.DIALING:
                lifecycle.uncount_attempt(e, lifecycle.current_phone(e))
            e.status = EntryStatus.PENDING.value
            lifecycle.release_lease(e)
            e.updated_at = at
            s.add(e)
            s.commit()

    def release_owner(self, owner: str, at: datetime) -> int:
        """Leases OWNER (a runner that is gone: killed, taken over from) still holds go back to pending at once,
        expired or not; they were never dialled (a dialled entry is `dialing`, settled by `recover`)."""
        return self._release_leases(T.c.lease_owner == owner, at) if owner else 0

    def _release_leases(self, which: Any, at: datetime) -> int:
        """Leased entries of this campaign's segments matching WHICH go back to pending, unowned."""
        with self.engine.begin() as conn:
            res = conn.execute(update(T).where(T.c.status == EntryStatus.LEASED, which, T.c.segment.in_(self.segments))
                               .values(status=EntryStatus.PENDING.value, lease_owner="", lease_token="",
                                       lease_expires_at=None, updated_at=at))
            return int(res.rowcount or 0)

    def recover(self, at: datetime) -> dict[str, int]:
        """After a crash: expired leases go back to pending; entries left `dialing` are settled, never redialled.

        A dialing entry whose attempt row ended with a real outcome gets that outcome's rule (the crash fell
        between the two writes); otherwise it is `interrupted`: the attempt counts and the retry delay applies.
        The attempt row is closed as interrupted if it was still open.
        """
        need_aware(at)
        counts = {"leases_released": 0, "interrupted": 0, "settled": 0}
        counts["leases_released"] = self._release_leases(T.c.lease_expires_at <= at, at)
        with Session(self.engine) as s:
            ids = list(s.exec(orm_select(CallListEntry.id).where(
                CallListEntry.status == EntryStatus.DIALING, col(CallListEntry.segment).in_(self.segments))).all())
        for eid in ids:
            if eid is None:
                continue
            with Session(self.engine) as s:
                e = s.get(CallListEntry, eid)
                if e is None or e.status != EntryStatus.DIALING:
                    continue
                att = s.get(Attempt, e.current_attempt_id) if e.current_attempt_id is not None else None
                outcome, abandoned = "interrupted", False
                if att is not None:
                    abandoned = bool(att.abandoned)
                    if att.state == AttemptState.ENDED and att.outcome in OUTCOMES and att.outcome != CallOutcome.INTERRUPTED:
                        outcome = att.outcome
                    elif att.state in LIVE_ATTEMPT:
                        att.state, att.outcome = AttemptState.INTERRUPTED.value, att.outcome or "interrupted"
                        att.ended_at = att.ended_at or at
                        att.detail = (att.detail + " closed by hopper recovery").strip()
                        s.add(att)
                        s.commit()
            self.record_result(eid, outcome, at, abandoned=abandoned)
            counts["interrupted" if outcome == CallOutcome.INTERRUPTED else "settled"] += 1
        return counts

    def set_callback(self, customer_id: str, segment: str, at_time: datetime, agent_login: str = "",
                     reserve_s: float = 900) -> int:
        """Make the contact due at AT_TIME (held for AGENT_LOGIN for RESERVE_S); stored, so it survives restarts.

        Creates the entry from the customers table when the contact has none in that segment.
        """
        need_aware(at_time)
        with Session(self.engine) as s:
            e = s.exec(orm_select(CallListEntry).where(
                CallListEntry.customer_id == customer_id, CallListEntry.segment == segment)).first()
            if e is None:
                cust = s.get(Customer, customer_id)
                if cust is None:
                    raise ValueError(f"no customer {customer_id!r} and no call-list entry to put a callback on")
                phones = [p for p in (_e164(cust.phone), _e164(cust.phone2)) if p]
                if not phones:
                    raise ValueError(f"customer {customer_id!r} has no usable phone number")
                e = CallListEntry(customer_id=customer_id, segment=segment, reason="callback", phones=phones,
                                  timezone=zone_for_prefecture(cust.prefecture) or "Asia/Tokyo")
            lifecycle.schedule_callback(e, at_time, agent_login, timedelta(seconds=reserve_s), self.policy)
            s.add(e)
            s.commit()
            s.refresh(e)
            assert e.id is not None
            return e.id


# ---------------------------------------------------------------------- other reads of the entries table
def penetration(engine: Engine, segments: Sequence[str]) -> dict[str, dict[str, int]]:
    """How far the list has been worked, per segment: dialled at least once, still to work, given up."""
    q = orm_select(CallListEntry.segment, CallListEntry.status, CallListEntry.attempts)
    if segments:
        q = q.where(col(CallListEntry.segment).in_(list(segments)))
    out: dict[str, dict[str, int]] = {}
    with Session(engine) as s:
        rows = s.exec(q).all()
    for seg, status, attempts in rows:
        d = out.setdefault(seg, {"entries": 0, "dialled": 0, "remaining": 0, "exhausted": 0, "done": 0,
                                 "blocked": 0, "not_dialled": 0})
        d["entries"] += 1
        d["dialled"] += int((attempts or 0) > 0)
        if status in (EntryStatus.PENDING, EntryStatus.LEASED, EntryStatus.DIALING):
            d["remaining"] += 1
            d["not_dialled"] += int(not attempts)  # remaining = not_dialled + dialled and due again (issue 27)
        elif status == EntryStatus.EXHAUSTED:
            d["exhausted"] += 1
        elif status == EntryStatus.DONE:
            d["done"] += 1
        elif status in (EntryStatus.BLOCKED, EntryStatus.WITHDRAWN):
            d["blocked"] += 1
    return dict(sorted(out.items()))


def count_window_openings(engine: Engine, segments: Sequence[str], since: datetime, until: datetime
                          ) -> dict[str, int]:
    """Entries whose callable window opened, and callbacks that fell due, in (since, until]."""
    E = CallListEntry
    with Session(engine) as s:
        opened = s.exec(orm_select(func.count()).select_from(E).where(
            E.status == EntryStatus.PENDING, col(E.segment).in_(list(segments)),
            col(E.callable_from) > since, col(E.callable_from) <= until)).one()
        callbacks = s.exec(orm_select(func.count()).select_from(E).where(
            E.status == EntryStatus.PENDING, col(E.segment).in_(list(segments)),
            col(E.callback_at) > since, col(E.callback_at) <= until)).one()
    return {"opened": int(opened), "callbacks_due": int(callbacks)}


def entry_zones_and_skus(engine: Engine) -> tuple[dict[int, str], dict[int, str]]:
    """entry id -> time zone, entry id -> sku: what the compliance report needs to judge each attempt."""
    with Session(engine) as s:
        rows = s.exec(orm_select(CallListEntry.id, CallListEntry.timezone, CallListEntry.sku)).all()
    return ({i: tz for i, tz, _ in rows if i is not None}, {i: sku for i, _, sku in rows if i is not None})


def _e164(raw: str, region: str = "JP") -> str:
    if not raw:
        return ""
    try:
        pn = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(pn):
        return ""
    return phonenumbers.format_number(pn, phonenumbers.PhoneNumberFormat.E164)


__all__ = ["DISPOSITIONS", "Hopper", "HopperItem", "Lease", "count_window_openings", "entry_zones_and_skus",
           "penetration"]
