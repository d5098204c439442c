"""Return calls in the store (issue 30): the facts the inbound rules need, and what an inbound call writes.

Why here: every SQL lives in dialer/store. The rules (who the caller is, which call they answer, who takes them,
the IVR) are `dialer.domain.inbound`; this module only reads their facts and writes their results:

- an inbound call is an `attempts` row with `direction = inbound` and `answers_attempt_id` = the outbound attempt
  it answers. Its `campaign_id` stays NULL, so no outbound figure (the abandon rate the law counts, the pacer's
  answer rate, the compliance checks) ever counts it; its campaign is the answered attempt's.
- a "do not call me again" keyed in the IVR is a `dnc` block on the number and the customer, exactly as the
  agent's DNC disposition writes it (checked at lease and again at dial), so no further outbound dial happens.
- a callback keyed in the IVR goes through the hopper's `set_callback`, the one booking path.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, inspect, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, or_, select

from dialer.domain.agents import BUSY
from dialer.domain.inbound import (
    AgentFacts,
    CustomerFacts,
    Direction,
    InboundOutcome,
    OutboundFacts,
    match_customer,
)
from dialer.domain.vocabulary import AgentState, BlockKind, Disposition, DispositionSource
from dialer.store.models import Agent, Attempt, Block, CallListEntry, Customer, InboundDesk
from dialer.store.models import Disposition as DispositionRow


def migrate_add_direction(engine: Engine) -> None:
    """Schema 5 (issue 30): attempts say which way the call went and which outbound attempt an inbound one
    answers. Idempotent: a column already there is left alone, whatever order the migrations ran in."""
    cols = {c["name"] for c in inspect(engine).get_columns("attempts")}
    with engine.begin() as conn:
        if "direction" not in cols:
            conn.execute(text("ALTER TABLE attempts ADD COLUMN direction VARCHAR NOT NULL DEFAULT 'outbound'"))
        if "answers_attempt_id" not in cols:
            conn.execute(text("ALTER TABLE attempts ADD COLUMN answers_attempt_id INTEGER"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_attempts_answers_attempt_id ON attempts (answers_attempt_id)"))


def _notations(e164: str) -> list[str]:
    """The ways a CRM may have written E164 in `customers.phone`: +81..., 0..., 0X-XXXX-XXXX digits kept as typed
    are confirmed afterwards by the one normaliser (match_customer), so a loose candidate costs nothing."""
    if not e164.startswith("+81"):
        return [e164]
    national = "0" + e164[3:]
    return [e164, national, e164[1:]]


def _digits(column: Any) -> Any:
    """The stored number without the separators CRMs write (03-1234-5678, (03) 1234 5678), in SQL."""
    for sep in ("-", " ", "(", ")"):
        column = func.replace(column, sep, "")
    return column


@dataclass(frozen=True)
class ReturnCallFacts:
    """Who is calling back, and the call they answer (None/empty when unknown)."""

    caller_e164: str
    customer: CustomerFacts | None
    answers: OutboundFacts | None
    last_agent_id: int | None  # the agent who last spoke to the customer (any direction)


def return_call_facts(engine: Engine, caller: str) -> ReturnCallFacts:
    """Match CALLER (E.164) to a customer among all their numbers and to the most recent outbound attempt."""
    if not caller:
        return ReturnCallFacts("", None, None, None)
    with Session(engine) as s:
        cands = _notations(caller)
        cids: list[str] = list(s.exec(select(Attempt.customer_id).where(col(Attempt.phone_e164) == caller)
                                      .order_by(col(Attempt.dialed_at).desc()).limit(20)).all())
        like = [_digits(col(Customer.phone)).in_(cands), _digits(col(Customer.phone2)).in_(cands)]
        cids += [c for c in s.exec(select(Customer.customer_id).where(or_(*like))).all()]
        seen: list[str] = []
        for c in cids:
            if c and c not in seen:
                seen.append(c)
        known = {r.customer_id: r for r in s.exec(select(Customer).where(col(Customer.customer_id).in_(seen))).all()}
        facts = []
        for cid in seen:
            row_c = known.get(cid)
            phones = [p for p in (row_c.phone, row_c.phone2) if p] if row_c else []
            phones += [p for e in s.exec(select(CallListEntry.phones).where(CallListEntry.customer_id == cid)).all()
                       for p in (e or [])]
            phones += [p for p in s.exec(select(Attempt.phone_e164).where(Attempt.customer_id == cid)).all() if p]
            facts.append(CustomerFacts(cid, row_c.name if row_c else "", tuple(dict.fromkeys(phones))))
        cust = match_customer(caller, facts)
        q = select(Attempt, CallListEntry.reason).join(
            CallListEntry, col(CallListEntry.id) == col(Attempt.entry_id), isouter=True).where(
            col(Attempt.direction) == Direction.OUTBOUND.value)
        q = q.where(col(Attempt.customer_id) == cust.customer_id) if cust else q.where(
            col(Attempt.phone_e164) == caller)
        row = s.exec(q.order_by(col(Attempt.dialed_at).desc(), col(Attempt.id).desc()).limit(1)).first()
        answers = None
        if row is not None:
            a, reason = row
            assert a.id is not None
            answers = OutboundFacts(a.id, a.campaign_id, a.customer_id, a.phone_e164, a.dialed_at, a.agent_id,
                                    reason or "", a.outcome)
        last_agent = None
        if cust is not None:
            last_agent = s.exec(select(Attempt.agent_id).where(
                col(Attempt.customer_id) == cust.customer_id, col(Attempt.agent_connected_at).is_not(None),
                col(Attempt.agent_id).is_not(None)).order_by(col(Attempt.agent_connected_at).desc())).first()
    return ReturnCallFacts(caller, cust, answers, last_agent)


def ready_agents(engine: Engine, logins: list[str] | None = None) -> list[AgentFacts]:
    """Agents as the inbound choice sees them (only LOGINS when given: the agents this host's workers can reach)."""
    with Session(engine) as s:
        q = select(Agent)
        if logins is not None:
            q = q.where(col(Agent.login).in_(logins))
        return [AgentFacts(a.id, a.login, a.campaign_id, a.state == AgentState.READY, a.ready_since)
                for a in s.exec(q.order_by(col(Agent.id))).all() if a.id is not None]


def outbound_waiting(engine: Engine, now: datetime) -> int:
    """Answered outbound calls waiting for an agent right now (answered, no agent yet, not ended or abandoned),
    dialled in the last 10 minutes (older rows are a dead runner's, closed by its successor). Agents of a runner
    and of the desk are the same rows: every campaign's waiting call counts."""
    with Session(engine) as s:
        return int(s.exec(select(func.count()).select_from(Attempt).where(
            col(Attempt.direction) == Direction.OUTBOUND.value, col(Attempt.state) == "answered",
            col(Attempt.agent_connected_at).is_(None), col(Attempt.ended_at).is_(None),
            col(Attempt.abandoned).is_(False), col(Attempt.machine).is_(False),
            col(Attempt.dialed_at) >= now - timedelta(minutes=10))).one())


def claim_ready_agent(engine: Engine, agent_id: int, attempt_id: int) -> bool:
    """Take AGENT_ID for the return call ATTEMPT_ID only if still ready, in one conditional UPDATE: a runner (or
    another desk) that reserved them a moment ago keeps them. The row names the call at once, so a runner that
    read `ready` before this commit is refused (store.agents.move_agent). The caller then moves them with
    `move_agent` (logged)."""
    with engine.begin() as conn:
        res = conn.execute(update(Agent).where(col(Agent.id) == agent_id, col(Agent.state) == AgentState.READY.value)
                           .values(state=AgentState.RESERVED.value, current_attempt_id=attempt_id))
        return int(res.rowcount or 0) == 1


def record_inbound(engine: Engine, *, caller: str, facts: ReturnCallFacts, at: datetime, trunk: str = "",
                   detail: str = "", desk_id: str = "") -> int:
    """The inbound attempt row, written when the INVITE is answered (campaign NULL: see the module docstring)."""
    with Session(engine, expire_on_commit=False) as s:
        row = Attempt(campaign_id=None, customer_id=facts.customer.customer_id if facts.customer else "",
                      segment="", phone_e164=caller, trunk=trunk, state="answered", dialed_at=at, answered_at=at,
                      detail=detail, worker=desk_id)  # the desk holding the caller (reap_desk if it dies)
        row.direction = Direction.INBOUND.value
        row.answers_attempt_id = facts.answers.attempt_id if facts.answers else None
        s.add(row)
        s.commit()
        s.refresh(row)
        assert row.id is not None
        return row.id


def link_screen_pop(engine: Engine, attempt_id: int, facts: ReturnCallFacts, agent_id: int, choice: str) -> None:
    """The inbound attempt carries the answered attempt's entry and segment and the agent, so the agent's screen
    pop (which reads the agent's current attempt) shows the customer, the list's reason (why we had called) and
    that it is a return call."""
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Attempt, attempt_id)
        if row is None:
            return
        if facts.answers is not None:
            ans = s.get(Attempt, facts.answers.attempt_id)
            if ans is not None:
                row.entry_id, row.segment = ans.entry_id, ans.segment
        row.agent_id = agent_id
        row.detail = (row.detail + f"; to agent ({choice})").strip("; ")
        s.add(row)
        s.commit()


def attempt_segment(engine: Engine, attempt_id: int) -> str:
    with Session(engine) as s:
        row = s.get(Attempt, attempt_id)
        return row.segment if row else ""


def end_inbound(engine: Engine, attempt_id: int, outcome: InboundOutcome, at: datetime, *, agent_id: int | None = None,
                connected_at: datetime | None = None, hangup_by: str = "", detail: str = "") -> None:
    with Session(engine, expire_on_commit=False) as s:
        row = s.get(Attempt, attempt_id)
        if row is None:
            return
        row.outcome, row.state, row.ended_at = outcome.value, "ended", at
        row.agent_id = agent_id if agent_id is not None else row.agent_id
        row.agent_connected_at = connected_at or row.agent_connected_at
        row.hangup_by = hangup_by or row.hangup_by
        row.detail = (row.detail + " " + detail).strip()
        s.add(row)
        s.commit()


def record_ivr_dnc(engine: Engine, *, attempt_id: int, customer_id: str, phone_e164: str, at: datetime,
                   campaign_id: int | None = None) -> None:
    """'Do not call me again' keyed in the IVR: the DNC block the agent's disposition writes (number and customer,
    at once), and a disposition row (source dtmf, reason ivr) with its outbox row in the same transaction, so the
    compliance report lists it with its delay and the CRM hears of it like an agent's DNC."""
    from dialer.store.outbox import enqueue_outcome

    with Session(engine) as s:
        s.add(Block(customer_id=customer_id or None, phone_e164=phone_e164 or None, kind=BlockKind.DNC.value,
                    since=at, source="ivr", reason=f"do-not-call keyed in the IVR (inbound attempt {attempt_id})"))
        d = DispositionRow(attempt_id=attempt_id, customer_id=customer_id, campaign_id=campaign_id,
                           outcome=Disposition.DNC.value, source=DispositionSource.DTMF.value, reason_code="ivr",
                           created_at=at)
        s.add(d)
        s.flush()
        enqueue_outcome(s, d)
        s.commit()


def disposed_attempts(engine: Engine, attempt_ids: list[int]) -> set[int]:
    """Which of ATTEMPT_IDS have a disposition (the agent's verdict on a return call ends their wrap-up)."""
    if not attempt_ids:
        return set()
    with Session(engine) as s:
        return {int(a) for a in s.exec(select(DispositionRow.attempt_id).where(
            col(DispositionRow.attempt_id).in_(attempt_ids))).all() if a is not None}


def still_wrapping(engine: Engine, agent_id: int, attempt_id: int) -> bool:
    """Is the agent still in wrap-up on ATTEMPT_ID (not moved by a console or taken by a runner since)?"""
    with Session(engine) as s:
        a = s.get(Agent, agent_id)
        return a is not None and a.state == AgentState.WRAP_UP and a.current_attempt_id == attempt_id


# ------------------------------------------------------------------ several desks (several nodes) on one store
DESK_STALE_S = 10.0  # a desk whose beat is older than this is dead (it beats every DESK_BEAT_S)
DESK_BEAT_S = 2.0


def desk_beat(engine: Engine, desk_id: str, address: str, logins: list[str], at: datetime) -> None:
    """This desk is alive, reachable at ADDRESS, ringing LOGINS (an insert the first time, then its beat)."""
    with Session(engine) as s:
        row = s.get(InboundDesk, desk_id)
        if row is None:
            row = InboundDesk(desk_id=desk_id, address=address, agents=list(logins), started_at=at, beat_at=at)
        else:
            row.address, row.agents, row.beat_at = address, list(logins), at
        s.add(row)
        s.commit()


def desk_leave(engine: Engine, desk_id: str) -> None:
    """A desk stopping cleanly (its calls hung up and closed): nobody is redirected to it any more."""
    with engine.begin() as conn:
        conn.execute(delete(InboundDesk).where(col(InboundDesk.desk_id) == desk_id))


def live_desks(engine: Engine, now: datetime, stale_s: float = DESK_STALE_S) -> dict[str, tuple[str, list[str]]]:
    """Desks beating within STALE_S: desk id -> (address, agent logins)."""
    cutoff = now - timedelta(seconds=stale_s)
    with Session(engine) as s:
        return {d.desk_id: (d.address, list(d.agents or []))
                for d in s.exec(select(InboundDesk).where(col(InboundDesk.beat_at) >= cutoff)).all()}


def reap_desk(engine: Engine, desk_id: str, at: datetime, *, stale_s: float | None = DESK_STALE_S) -> list[int]:
    """Close the return calls a dead desk left open and free the agents it held; returns the attempts closed.

    Why: a desk (a node) that dies cuts its callers; their inbound attempts were written when answered, so they
    are closed here with the reason (a caller still queued = an inbound abandon, reported as one) instead of
    staying open for ever, and an agent it had reserved, bridged or kept in wrap-up goes back to ready. The desk's
    row is deleted first by a conditional DELETE (still stale), so of two desks reaping at once one does it.
    STALE_S None: reap whatever its beat (a desk restarting on the same address reaps its predecessor)."""
    with engine.begin() as conn:
        q = delete(InboundDesk).where(col(InboundDesk.desk_id) == desk_id)
        if stale_s is not None:
            q = q.where(col(InboundDesk.beat_at) < at - timedelta(seconds=stale_s))
        gone = int(conn.execute(q).rowcount or 0) == 1
    if not gone and stale_s is not None:
        return []
    closed: list[int] = []
    with Session(engine) as s:
        rows = s.exec(select(Attempt).where(col(Attempt.direction) == Direction.INBOUND.value,
                                            col(Attempt.worker) == desk_id, col(Attempt.ended_at).is_(None))).all()
        for r in rows:
            talking = r.agent_connected_at is not None
            r.outcome = (InboundOutcome.ANSWERED if talking else InboundOutcome.QUEUE_ABANDONED).value
            r.state, r.ended_at, r.hangup_by = "ended", at, "dialer"
            r.detail = (r.detail + f" the desk {desk_id} stopped (node failure) while the caller was "
                        + ("talking to the agent" if talking else "waiting") + ": cut; the trunk may re-deliver").strip()
            s.add(r)
            assert r.id is not None
            closed.append(r.id)
        s.commit()
        held = list(s.exec(select(Agent).where(col(Agent.current_attempt_id).in_(closed))).all()) if closed else []
    from dialer.store.agents import log_agent_state, move_agent

    for a in held:
        if a.id is not None and a.state in BUSY:
            move_agent(engine, a.id, AgentState.READY.value, at, campaign_id=a.campaign_id, force=True,
                       state_logger=log_agent_state)
    return closed


def held_by_live_desk(engine: Engine, agent_ids: list[int], now: datetime, stale_s: float = DESK_STALE_S) -> set[int]:
    """Which of AGENT_IDS a live desk holds (reserved, on or wrapping up a return call it has open or just ended):
    a runner restarting must not take them back to ready. A dead desk's agents are not: `reap_desk` frees them,
    and a runner's restart may too."""
    live = set(live_desks(engine, now, stale_s))
    if not agent_ids or not live:
        return set()
    return {a for a, w in held_by_desks(engine, agent_ids) if w in live}


def held_by_desks(engine: Engine, agent_ids: Collection[int]) -> list[tuple[int, str]]:
    """(agent id, desk id) for each of AGENT_IDS a desk holds: busy (reserved, on or wrapping up) on an inbound
    attempt. The one reading of "the desk holds this agent", for the pacer (`return_calls.desk_now`) and for a
    runner's restart (`held_by_live_desk`)."""
    if not agent_ids:
        return []
    with Session(engine) as s:
        rows = s.exec(select(Agent.id, Attempt.worker).join(Attempt, col(Attempt.id) == col(Agent.current_attempt_id))
                      .where(col(Agent.id).in_(list(agent_ids)), col(Attempt.direction) == Direction.INBOUND.value,
                             col(Agent.state).in_(sorted(BUSY)))).all()
    return [(int(a), str(w or "")) for a, w in rows if a is not None]


def dead_desks(engine: Engine, now: datetime, stale_s: float = DESK_STALE_S) -> list[str]:
    with Session(engine) as s:
        return list(s.exec(select(InboundDesk.desk_id).where(
            col(InboundDesk.beat_at) < now - timedelta(seconds=stale_s))).all())


def is_dnc(engine: Engine, customer_id: str, phone_e164: str) -> bool:
    with Session(engine) as s:
        cond = [col(Block.phone_e164) == phone_e164] if phone_e164 else []
        if customer_id:
            cond.append(col(Block.customer_id) == customer_id)
        return bool(cond) and s.exec(select(Block.id).where(col(Block.kind) == BlockKind.DNC.value,
                                                            or_(*cond))).first() is not None


def inbound_rows(engine: Engine, since: datetime | None = None) -> list[dict[str, Any]]:
    """Every inbound attempt with the campaign of the call it answers (reports)."""
    with Session(engine) as s:
        q = select(Attempt).where(col(Attempt.direction) == Direction.INBOUND.value)
        if since is not None:
            q = q.where(col(Attempt.dialed_at) >= since)
        rows = list(s.exec(q.order_by(col(Attempt.id))).all())
        ans_ids = [r.answers_attempt_id for r in rows if r.answers_attempt_id]
        camp = dict(s.exec(select(Attempt.id, Attempt.campaign_id).where(col(Attempt.id).in_(ans_ids))).all())
    return [{"id": r.id, "outcome": r.outcome, "answers": r.answers_attempt_id,
             "campaign_id": camp.get(r.answers_attempt_id), "agent_id": r.agent_id,
             "wait_s": _wait(r), "known": bool(r.customer_id)} for r in rows]


def _wait(r: Attempt) -> float | None:
    if r.answered_at is None:
        return None
    end = r.agent_connected_at or r.ended_at
    return None if end is None else round((end - r.answered_at).total_seconds(), 1)


__all__ = ["DESK_BEAT_S", "DESK_STALE_S", "ReturnCallFacts", "dead_desks", "desk_beat", "desk_leave", "live_desks",
           "held_by_desks", "held_by_live_desk", "outbound_waiting", "reap_desk", "attempt_segment", "claim_ready_agent", "disposed_attempts", "link_screen_pop", "end_inbound", "inbound_rows", "is_dnc", "migrate_add_direction", "ready_agents",
           "record_inbound", "record_ivr_dnc", "return_call_facts", "still_wrapping"]
