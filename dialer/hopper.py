"""The hopper: which call-list entries a campaign may dial NOW, in what order, leased so no two dialers share one.

An entry is dialable at instant `at` only when all of these hold (SQL narrows, Python decides):
- its status is `pending` (or `leased` with an expired lease) and its segment is one of the campaign's;
- its callable window is open (`callable_from <= at < callable_until`; callbacks widen it) and its retry
  delay has passed (`next_attempt_at <= at`), and it is not locked (`locked_until`);
- the contact's local time is inside the campaign's calling hours in every zone it may be in, and the local
  date is not a holiday (dialer.calling_hours) -- skipped only when `respect_calling_hours=False`, which the
  campaign loop passes for loopback sandbox trunks that reach no real person;
- no block applies: `dnc` / `no_consent` (by customer, or by number -> the next number is used), `refusal`
  for the entry's product (`product_scope` empty or equal to the entry's sku; permanent: 再勧誘の禁止), an
  `abandon_lock` whose `until` is in the future; the customer is not withdrawn, tel_ok=0 or flagged caution;
- the customer is not in the hold-out control group for the entry's segment (dialer.store.holdout);
- attempts are below the contact's maximum and a number with attempts left remains (dialer.retry).

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import and_, case, func, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session
from sqlmodel import select as orm_select

from dialer.calling_hours import CallingHours, contact_zones, zone_for_prefecture
from dialer.config import CampaignConfig, parse_duration
from dialer.retry import OUTCOMES, Counters, decide, usable_phone
from dialer.store.holdout import controls as holdout_controls
from dialer.store.models import Attempt, Block, CallListEntry, Customer

T = CallListEntry.__table__  # type: ignore[attr-defined]
BT = Block.__table__  # type: ignore[attr-defined]
CT = Customer.__table__  # type: ignore[attr-defined]

NO_END_HOURS = 720.0  # an entry without callable_until ranks as if its window closed in 30 days
SCAN_LIMIT = 2000  # rows one lease/preview call may examine (blocked ones are parked so they are not re-read)
ZONE_CACHE_S = 300.0
LIVE_ATTEMPT_STATES = ("dialing", "ringing", "answered", "connected")
FINAL = ("done", "exhausted", "blocked", "withdrawn")
SALE = ("sale", "upsell", "cross_sell")
DISPOSITIONS = ("sale", "upsell", "cross_sell", "callback", "refused", "dnc", "wrong_number", "machine",
                "no_interest", "other")


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


@dataclass
class _Verdict:
    ok: bool
    phone_index: int = 0
    why: str = ""
    # housekeeping lease() writes so the same row is not examined again and again
    park: dict[str, Any] | None = None


def _epoch(col: Any, pg: bool) -> ColumnElement[Any]:
    if pg:
        return func.extract("epoch", col)
    return (func.julianday(col) - 2440587.5) * 86400.0


class Hopper:
    """The ordered, leasable supply of entries for one campaign (see the module docstring for the rules)."""

    def __init__(self, engine: Engine, campaign: CampaignConfig, *, respect_calling_hours: bool = True) -> None:
        self.engine = engine
        self.cc = campaign
        self.respect_calling_hours = respect_calling_hours
        self.hours = CallingHours.from_campaign(campaign.calling_hours, campaign.holidays)
        self.segments = list(campaign.segments)
        self.pg = engine.dialect.name == "postgresql"
        self.late_after = timedelta(seconds=parse_duration(campaign.callback_late_after))
        self.reserve = timedelta(seconds=parse_duration(campaign.callback_reserve))
        self.callback_valid = timedelta(seconds=parse_duration(campaign.callback_valid))
        self.abandon_lock = timedelta(seconds=parse_duration(campaign.retry.abandoned))
        self._zones: tuple[datetime, list[str]] | None = None
        self._controls: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ selection
    def _free(self, at: datetime) -> ColumnElement[bool]:
        return or_(T.c.status == "pending", and_(T.c.status == "leased", T.c.lease_expires_at <= at))

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
                T.c.status.in_(("pending", "leased")), T.c.segment.in_(self.segments))).scalars().all()
            self._zones = (at, [n for n in names if n])
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

    def _context(self, conn: Connection, rows: Sequence[Any], at: datetime
                 ) -> tuple[dict[str, Any], list[Any]]:
        cids = sorted({r.customer_id for r in rows})
        phones = sorted({p for r in rows for p in (r.phones or []) if p})
        customers = {c.customer_id: c for c in conn.execute(select(CT).where(CT.c.customer_id.in_(cids))).all()}
        cond = [BT.c.customer_id.in_(cids)]
        if phones:
            cond.append(BT.c.phone_e164.in_(phones))
        blocks = conn.execute(select(BT).where(or_(*cond), or_(BT.c.until.is_(None), BT.c.until > at))).all()
        self._controls = holdout_controls(conn, cids)  # hold-out control group: never dialled (issue 19)
        return customers, list(blocks)

    def _blocks_for(self, row: Any, phone: str, blocks: list[Any], at: datetime) -> list[Any]:
        out = []
        for b in blocks:
            if b.until is not None and _aware(b.until) <= at:
                continue
            by_phone = bool(b.phone_e164) and b.phone_e164 == phone
            by_customer = bool(b.customer_id) and b.customer_id == row.customer_id
            if not (by_phone or by_customer):
                continue
            if b.kind == "refusal" and b.product_scope and b.product_scope != row.sku:
                continue
            out.append(b)
        return out

    def _judge(self, row: Any, at: datetime, customers: dict[str, Any], blocks: list[Any]) -> _Verdict:
        """Can ROW be dialled at AT? If not, why, and what to write so it is not re-examined."""
        if (row.customer_id, row.segment) in self._controls:
            return _Verdict(False, why="holdout: control group",
                            park={"status": "withdrawn", "status_reason": "suppressed: holdout"})
        cust = customers.get(row.customer_id)
        if cust is not None and (not cust.tel_ok or cust.withdrawn or cust.caution):
            flag = "tel_ok=0" if not cust.tel_ok else "withdrawn" if cust.withdrawn else "caution flag"
            return _Verdict(False, why=f"customer {flag}", park={"status": "blocked", "status_reason": f"customer {flag}"})
        limit = row.attempt_limit or self.cc.max_attempts
        if row.attempts >= limit:
            return _Verdict(False, why=f"max attempts ({limit}) reached",
                            park={"status": "exhausted", "status_reason": f"max attempts ({limit}) reached"})
        counters = Counters(list(row.phones or []), row.phone_index, row.attempts, dict(row.attempts_by_phone or {}),
                            dict(row.phone_flags or {}), row.attempt_limit)
        while True:
            idx = usable_phone(counters, self.cc.max_attempts_per_phone, prefer=counters.phone_index)
            if idx is None:
                return _Verdict(False, why="no usable number left",
                                park={"status": "exhausted", "status_reason": "no usable number left",
                                      "phone_flags": counters.phone_flags})
            phone = counters.phones[idx]
            hits = self._blocks_for(row, phone, blocks, at)
            permanent = [b for b in hits if b.kind != "abandon_lock"]
            customer_wide = [b for b in permanent if b.kind == "refusal"
                             or (b.customer_id == row.customer_id and b.customer_id)]
            if customer_wide:
                b = customer_wide[0]
                why = f"{b.kind}" + (f" ({b.product_scope})" if b.product_scope else "")
                return _Verdict(False, why=f"blocked: {why}", park={"status": "blocked", "status_reason": f"blocked: {why}"})
            if permanent:  # dnc / no_consent on this number only: try the next number
                counters.phone_flags[phone] = permanent[0].kind
                counters.phone_index = idx
                continue
            locks = [b for b in hits if b.kind == "abandon_lock"]
            if locks:
                until = max(_aware(b.until) for b in locks)
                return _Verdict(False, why=f"abandon lock until {until.isoformat()}", park={"next_attempt_at": until})
            break
        if self.respect_calling_hours:
            zones = contact_zones(phone, row.timezone or "", cust.prefecture if cust is not None else "")
            closed = self.hours.closed_reason(at, zones)
            if closed:
                return _Verdict(False, why=closed)
        park = None
        if idx != row.phone_index or counters.phone_flags != dict(row.phone_flags or {}):
            park = {"phone_index": idx, "phone_flags": counters.phone_flags}
        return _Verdict(True, phone_index=idx, park=park)

    def _due_because(self, row: Any, at: datetime) -> tuple[str, bool]:
        if row.callback_at is not None and _aware(row.callback_at) <= at:
            cb = _aware(row.callback_at)
            late = bool(row.callback_late) or at - cb > self.late_after
            if late:
                return f"callback_late (due {cb.isoformat()}, {_human(at - cb)} late)", True
            return f"callback (due {cb.isoformat()})", False
        if row.callable_until is not None:
            left = _aware(row.callable_until) - at
            if left <= timedelta(hours=24):
                return f"window_closing (closes in {_human(left)})", False
        if row.attempts:
            return f"retry (after {row.last_outcome or 'a previous attempt'})", False
        if row.callable_from is not None:
            return f"window_open (since {_aware(row.callable_from).isoformat()})", False
        return "window_open", False

    def _score(self, row: Any, at: datetime) -> float:
        if row.callable_until is None:
            hours = NO_END_HOURS
        else:
            hours = max(1.0, (_aware(row.callable_until) - at).total_seconds() / 3600.0)
        return float(row.priority) / hours

    def _scan(self, conn: Connection, at: datetime, want: int, lock: bool, skip: set[int]
              ) -> tuple[list[tuple[Any, _Verdict]], list[tuple[Any, _Verdict]]]:
        """Walk the ordered candidates; return (dialable, to park), at most WANT dialable ones."""
        good: list[tuple[Any, _Verdict]] = []
        parked: list[tuple[Any, _Verdict]] = []
        offset, size = 0, max(50, 4 * want)
        while len(good) < want and offset < SCAN_LIMIT:
            rows = self._page(conn, at, offset, size, lock)
            if not rows:
                break
            offset += len(rows)
            customers, blocks = self._context(conn, rows, at)
            for r in rows:
                if r.id in skip:
                    continue
                v = self._judge(r, at, customers, blocks)
                if v.ok:
                    if len(good) < want:
                        good.append((r, v))
                elif v.park is not None:
                    parked.append((r, v))
            if len(rows) < size:
                break
        return good, parked

    # ------------------------------------------------------------------ the interface the campaign loop uses
    def preview(self, at: datetime, limit: int = 50) -> list[HopperItem]:
        """What `lease` would hand out at AT, in order, with why each is due; writes nothing."""
        _need_aware(at)
        with self.engine.connect() as conn:
            good, _ = self._scan(conn, at, limit, lock=False, skip=set())
        out = []
        for r, v in good:
            because, _late = self._due_because(r, at)
            out.append(HopperItem(entry_id=r.id, customer_id=r.customer_id, segment=r.segment,
                                  phone_e164=r.phones[v.phone_index], reason=r.reason, due_because=because,
                                  priority=float(r.priority), score=self._score(r, at),
                                  callable_until=_aware(r.callable_until) if r.callable_until else None))
        return out

    def lease(self, n: int, owner: str, at: datetime, lease_s: float = 120.0) -> list[Lease]:
        """Claim up to N dialable entries for OWNER until at + lease_s; never the same entry to two leasers."""
        _need_aware(at)
        if n <= 0:
            return []
        token = uuid.uuid4().hex
        expires = at + timedelta(seconds=lease_s)
        won: list[Lease] = []
        lost: set[int] = set()
        with self.engine.begin() as conn:
            for _round in range(3):
                good, parked = self._scan(conn, at, n - len(won), lock=True, skip=lost | {w.entry_id for w in won})
                for r, v in parked:
                    assert v.park is not None
                    conn.execute(update(T).where(T.c.id == r.id, self._free(at)).values(**v.park, updated_at=at))
                if not good:
                    break
                order: dict[int, tuple[Any, _Verdict, str, bool]] = {}
                for r, v in good:
                    because, late = self._due_because(r, at)
                    values: dict[str, Any] = {"status": "leased", "lease_owner": owner, "lease_token": token,
                                              "lease_expires_at": expires, "phone_index": v.phone_index,
                                              "updated_at": at}
                    if v.park and "phone_flags" in v.park:
                        values["phone_flags"] = v.park["phone_flags"]
                    if late:
                        values["callback_late"] = True
                    res = conn.execute(update(T).where(T.c.id == r.id, self._due(at)).values(**values))
                    if res.rowcount == 1:
                        order[r.id] = (r, v, because, late)
                    else:
                        lost.add(r.id)
                mine = {x.id: x for x in conn.execute(select(T).where(T.c.lease_token == token)).all()}
                for eid, (_r, _v, because, late) in order.items():
                    row = mine.get(eid)
                    if row is None or row.lease_owner != owner:
                        lost.add(eid)
                        continue
                    agent = ""
                    if (row.callback_agent and row.callback_reserved_until is not None
                            and at < _aware(row.callback_reserved_until)
                            and row.callback_at is not None and _aware(row.callback_at) <= at):
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
        _need_aware(at)
        with self.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.id == entry_id)).first()
            if row is None:
                return f"no call-list entry {entry_id}"
            if row.status not in ("pending", "leased"):
                return f"entry is {row.status}" + (f" ({row.status_reason})" if row.status_reason else "")
            if row.segment not in self.segments:
                return f"segment {row.segment} is not in this campaign"
            if phone_e164 not in (row.phones or []):
                return "number is not on the entry"
            if phone_e164 in (row.phone_flags or {}):
                return f"number flagged {row.phone_flags[phone_e164]}"
            if row.callable_from is not None and _aware(row.callable_from) > at:
                return f"window opens {_aware(row.callable_from).isoformat()}"
            if row.callable_until is not None and _aware(row.callable_until) <= at:
                return f"window closed {_aware(row.callable_until).isoformat()}"
            if row.next_attempt_at is not None and _aware(row.next_attempt_at) > at:
                return f"retry not due until {_aware(row.next_attempt_at).isoformat()}"
            if row.locked_until is not None and _aware(row.locked_until) > at:
                return f"locked until {_aware(row.locked_until).isoformat()}"
            if (row.attempts_by_phone or {}).get(phone_e164, 0) >= self.cc.max_attempts_per_phone:
                return f"number already tried {self.cc.max_attempts_per_phone} times"
            customers, blocks = self._context(conn, [row], at)
            hits = self._blocks_for(row, phone_e164, blocks, at)
            if hits:
                b = hits[0]
                return f"blocked: {b.kind}" + (f" ({b.product_scope})" if b.product_scope else "") + (
                    f" until {_aware(b.until).isoformat()}" if b.until is not None else "")
            v = self._judge(row, at, customers, blocks)
            if not v.ok:
                return v.why
            if self.respect_calling_hours:
                cust = customers.get(row.customer_id)
                zones = contact_zones(phone_e164, row.timezone or "", cust.prefecture if cust is not None else "")
                closed = self.hours.closed_reason(at, zones)
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
        _need_aware(at)
        with self.engine.connect() as conn:
            row = conn.execute(select(T).where(T.c.id == entry_id)).first()
            if row is None:
                return f"no call-list entry {entry_id}", None
            if phone_e164 not in (row.phones or []):
                return "number is not on the entry", None
            customers, blocks = self._context(conn, [row], at)
            hits = self._blocks_for(row, phone_e164, blocks, at)
            final = [b for b in hits if b.kind != "abandon_lock"]
            if final:
                b = final[0]
                return f"blocked: {b.kind}" + (f" ({b.product_scope})" if b.product_scope else ""), None
            if hits:
                return "abandon lock", max(_aware(b.until) for b in hits)
            closed, zones = None, ()
            if self.respect_calling_hours:
                cust = customers.get(row.customer_id)
                zones = contact_zones(phone_e164, row.timezone or "", cust.prefecture if cust is not None else "")
                closed = self.hours.closed_reason(at, zones)
            v = self._judge(row, at, customers, blocks)
            if not v.ok and v.why != closed and not v.why.startswith(("max attempts", "no usable number")):
                return v.why, None
            if closed:
                return closed, self.hours.next_open(at, zones) or at + timedelta(days=1)
        return None

    def mark_dialing(self, entry_id: int, attempt_id: int, at: datetime) -> None:
        """The INVITE is about to leave: count the attempt now, so a crash can never make it free."""
        _need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None:
                return
            phone = _current(e)
            abp = dict(e.attempts_by_phone or {})
            abp[phone] = abp.get(phone, 0) + 1
            e.attempts_by_phone = abp
            e.attempts += 1
            e.status = "dialing"
            e.current_attempt_id = attempt_id
            e.last_attempt_at = at
            e.lease_expires_at = None
            e.updated_at = at
            s.add(e)
            s.commit()

    def record_result(self, entry_id: int, outcome: str, at: datetime, *, abandoned: bool = False,
                      phone_e164: str = "") -> None:
        """A dial ended with OUTCOME: apply the retry rules, the 72 h lock after an abandon, done/exhausted.

        If a disposition (or recover) already decided the entry's fate, only the lock and last outcome are written.
        """
        _need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None:
                return
            phone = phone_e164 or _current(e)
            lock_until = None
            if abandoned:
                lock_until = at + self.abandon_lock
                s.add(Block(phone_e164=phone, customer_id=None, kind="abandon_lock", since=at, until=lock_until,
                            source="dialer", reason=f"abandoned call (entry {entry_id})"))
                if e.locked_until is None or _aware(e.locked_until) < lock_until:
                    e.locked_until = lock_until
            e.last_outcome = outcome + (" (abandoned)" if abandoned else "")
            e.updated_at = at
            if e.status not in ("dialing", "leased"):
                s.add(e)
                s.commit()
                return
            if e.status == "leased":  # mark_dialing was skipped: the attempt still counts
                abp = dict(e.attempts_by_phone or {})
                abp[phone] = abp.get(phone, 0) + 1
                e.attempts_by_phone = abp
                e.attempts += 1
            self._apply_outcome(e, outcome if outcome in OUTCOMES else "failed", at, lock_until)
            e.last_attempt_at = at
            _clear_callback(e)
            s.add(e)
            s.commit()

    def _apply_outcome(self, e: CallListEntry, outcome: str, at: datetime, lock_until: datetime | None) -> None:
        c = Counters(list(e.phones or []), e.phone_index, e.attempts, dict(e.attempts_by_phone or {}),
                     dict(e.phone_flags or {}), e.attempt_limit)
        nx = decide(outcome, at, c, self.cc, e.timezone or "Asia/Tokyo")
        e.status, e.phone_index, e.phone_flags = nx.status, nx.phone_index, nx.phone_flags
        e.status_reason = nx.reason
        nxt = nx.next_attempt_at
        if lock_until is not None and nxt is not None and nxt < lock_until:
            nxt = lock_until
        e.next_attempt_at = nxt
        e.lease_owner, e.lease_token, e.lease_expires_at = "", "", None
        e.current_attempt_id = None

    def apply_disposition(self, entry_id: int, outcome: str, at: datetime, *, callback_at: datetime | None = None,
                          agent_login: str = "", sku: str = "") -> None:
        """The agent's verdict on an answered call.

        sale/upsell/cross_sell/other -> done; callback -> due at callback_at (default: in 1 h), held for the
        agent for `callback_reserve`; refused and no_interest -> done + a permanent `refusal` block for the
        product (再勧誘の禁止: "not interested" is a refusal too); dnc -> done + a `dnc` block on the number
        and the customer, effective at once for every entry; wrong_number -> next number or exhausted;
        machine -> as the machine outcome (next day, another hour).
        """
        _need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None:
                return
            phone = _current(e)
            scope = sku or e.sku
            e.updated_at = at
            if outcome == "callback":
                self._callback(e, callback_at or at + timedelta(hours=1), agent_login, self.reserve)
            elif outcome in ("refused", "no_interest"):
                s.add(Block(customer_id=e.customer_id, phone_e164=None, kind="refusal", product_scope=scope,
                            since=at, source="disposition", reason=f"{outcome} by {agent_login or 'agent'}"))
                _finish(e, "done", outcome)
            elif outcome == "dnc":
                s.add(Block(customer_id=e.customer_id, phone_e164=phone or None, kind="dnc", since=at,
                            source="disposition", reason=f"do-not-call asked ({agent_login or 'agent'})"))
                _finish(e, "done", "dnc")
            elif outcome in ("wrong_number", "machine"):
                self._apply_outcome(e, outcome, at, _aware(e.locked_until) if e.locked_until else None)
                _clear_callback(e)
            else:  # sale, upsell, cross_sell, other, anything new: the contact is dealt with
                _finish(e, "done", outcome)
            s.add(e)
            s.commit()

    def _callback(self, e: CallListEntry, when: datetime, agent: str, reserve: timedelta) -> None:
        _need_aware(when)
        e.callback_at = when
        e.callback_agent = agent
        e.callback_reserved_until = when + reserve if agent else None
        e.callback_late = False
        e.next_attempt_at = when
        if e.status != "blocked":
            e.status = "pending"
            e.status_reason = "callback"
        if e.callable_from is not None and _aware(e.callable_from) > when:
            e.callable_from = when
        if e.callable_until is None or _aware(e.callable_until) < when + self.callback_valid:
            e.callable_until = when + self.callback_valid
        # the customer asked for this call: it gets its own attempts, and the numbers start afresh
        e.attempt_limit = max(e.attempt_limit or self.cc.max_attempts, e.attempts + self.cc.max_attempts_per_phone)
        e.attempts_by_phone = {}
        e.lease_owner, e.lease_token, e.lease_expires_at = "", "", None
        e.current_attempt_id = None

    def release(self, entry_id: int, at: datetime) -> None:
        """Give back an entry that was leased but never dialled (an attempt marked but not placed is undone)."""
        _need_aware(at)
        with Session(self.engine) as s:
            e = s.get(CallListEntry, entry_id)
            if e is None or e.status not in ("leased", "dialing"):
                return
            if e.status == "dialing":
                phone = _current(e)
                abp = dict(e.attempts_by_phone or {})
                abp[phone] = max(0, abp.get(phone, 0) - 1)
                e.attempts_by_phone = abp
                e.attempts = max(0, e.attempts - 1)
            e.status = "pending"
            e.lease_owner, e.lease_token, e.lease_expires_at = "", "", None
            e.current_attempt_id = None
            e.updated_at = at
            s.add(e)
            s.commit()

    def recover(self, at: datetime) -> dict[str, int]:
        """After a crash: expired leases go back to pending; entries left `dialing` are settled, never redialled.

        A dialing entry whose attempt row ended with a real outcome gets that outcome's rule (the crash fell
        between the two writes); otherwise it is `interrupted`: the attempt counts and the retry delay applies.
        The attempt row is closed as interrupted if it was still open.
        """
        _need_aware(at)
        counts = {"leases_released": 0, "interrupted": 0, "settled": 0}
        with self.engine.begin() as conn:
            res = conn.execute(update(T).where(T.c.status == "leased", T.c.lease_expires_at <= at,
                                               T.c.segment.in_(self.segments))
                               .values(status="pending", lease_owner="", lease_token="", lease_expires_at=None,
                                       updated_at=at))
            counts["leases_released"] = int(res.rowcount or 0)
        with Session(self.engine) as s:
            ids = list(s.exec(orm_select(CallListEntry.id).where(
                CallListEntry.status == "dialing", CallListEntry.segment.in_(self.segments))).all())  # type: ignore[attr-defined]
        for eid in ids:
            if eid is None:
                continue
            with Session(self.engine) as s:
                e = s.get(CallListEntry, eid)
                if e is None or e.status != "dialing":
                    continue
                att = s.get(Attempt, e.current_attempt_id) if e.current_attempt_id is not None else None
                outcome, abandoned = "interrupted", False
                if att is not None:
                    abandoned = bool(att.abandoned)
                    if att.state == "ended" and att.outcome in OUTCOMES and att.outcome != "interrupted":
                        outcome = att.outcome
                    elif att.state in LIVE_ATTEMPT_STATES:
                        att.state, att.outcome = "interrupted", att.outcome or "interrupted"
                        att.ended_at = att.ended_at or at
                        att.detail = (att.detail + " closed by hopper recovery").strip()
                        s.add(att)
                        s.commit()
            self.record_result(eid, outcome, at, abandoned=abandoned)
            counts["interrupted" if outcome == "interrupted" else "settled"] += 1
        return counts

    def set_callback(self, customer_id: str, segment: str, at_time: datetime, agent_login: str = "",
                     reserve_s: float = 900) -> int:
        """Make the contact due at AT_TIME (held for AGENT_LOGIN for RESERVE_S); stored, so it survives restarts.

        Creates the entry from the customers table when the contact has none in that segment.
        """
        _need_aware(at_time)
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
            self._callback(e, at_time, agent_login, timedelta(seconds=reserve_s))
            s.add(e)
            s.commit()
            s.refresh(e)
            assert e.id is not None
            return e.id


# ---------------------------------------------------------------------- helpers
def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _need_aware(dt: datetime) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"the hopper needs aware datetimes, got naive {dt.isoformat()}")


def _current(e: CallListEntry) -> str:
    phones = list(e.phones or [])
    return phones[e.phone_index] if 0 <= e.phone_index < len(phones) else ""


def _finish(e: CallListEntry, status: str, why: str) -> None:
    e.status, e.status_reason = status, why
    e.next_attempt_at = None
    e.lease_owner, e.lease_token, e.lease_expires_at = "", "", None
    e.current_attempt_id = None
    _clear_callback(e)


def _clear_callback(e: CallListEntry) -> None:
    e.callback_at = None
    e.callback_agent = ""
    e.callback_reserved_until = None
    e.callback_late = False


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


def _human(td: timedelta) -> str:
    s = max(0, int(td.total_seconds()))
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


__all__ = ["DISPOSITIONS", "Hopper", "HopperItem", "Lease"]
