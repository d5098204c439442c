"""The agent's console: state, screen pop on connect, and the disposition form — keyboard only.

Ownership of the agent row (shared with the runner): while the agent is idle the console moves it between
logged_out, ready and paused; while reserved / on a call / in wrap-up it writes only `pending_state`, which
the runner applies after wrap-up. Every idle change is a conditional UPDATE (WHERE state = what we saw), so
a console never overwrites a reservation the runner made a moment earlier.

Preview mode: the runner reserves an entry for a ready agent; the console shows its pop and sends dial /
skip as control commands (dialer.store.preview) — the runner re-checks and dials, the console never does.

Dispositions are INSERTed (source "console") together with their outbox row; the runner picks them up,
applies blocks, callbacks and retries, and ends the wrap-up.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dialer.config import Config, ConfigError
from dialer.domain.agents import BUSY as BUSY_STATES
from dialer.domain.agents import IDLE as IDLE_STATES
from dialer.domain.agents import PAUSE_REASONS as PAUSE_REASON_CODES
from dialer.domain.calling_hours import CallingHours
from dialer.domain.dtmf import OUTCOME_BY_DIGIT, REFUSAL_REASONS
from dialer.domain.policy import CampaignPolicy
from dialer.domain.preview import SKIP_REASONS
from dialer.domain.vocabulary import LIVE_ATTEMPT, AgentState, AttemptState, Disposition
from dialer.i18n import N_, _, fmt_datetime
from dialer.service import Engine
from dialer.service import console as console_service
from dialer.service.auth import Principal, local_admin
from dialer.service.forms import FormError, opening_lines, parse_amount, parse_callback  # noqa: F401 - re-exported
from dialer.views.labels import label
from dialer.views.reasons import reason_words
from dialer.views.render import LineField, aware, dur, last4, row, wrap_japanese, yen

IDLE = IDLE_STATES
BUSY = tuple(sorted(BUSY_STATES))
PAUSE_REASONS = PAUSE_REASON_CODES

# the fields each outcome asks for, in order: (key, prompt, required)
FORM_FIELDS: dict[str, list[tuple[str, str, bool]]] = {
    "sale": [("amount", N_("amount ¥"), True), ("sku", N_("product SKU"), True), ("note", N_("note"), False)],
    "upsell": [("amount", N_("amount ¥"), True), ("sku", N_("product SKU"), True), ("note", N_("note"), False)],
    "cross_sell": [("amount", N_("amount ¥"), True), ("sku", N_("product SKU"), True), ("note", N_("note"), False)],
    "callback": [("when", N_("call back at (14:30, 14時30分, 明日 14:00, 12/8 10:00, +2h)"), True), ("note", N_("note"), False)],
    "refused": [("reason", N_("reason code (1-9)"), True), ("expected", N_("VOC: what they expected"), False),
                ("experienced", N_("VOC: what they got"), False)],
    "dnc": [("note", N_("note"), False)],
    "wrong_number": [("note", N_("note"), False)],
    "machine": [("note", N_("note"), False)],
    "no_interest": [("note", N_("note"), False)],
    "other": [("note", N_("note"), False)],
}


# ------------------------------------------------------------------------------------------- screen pop


def screen_pop(engine: Engine, attempt_id: int, agent_name: str, business: str,
               business_phone: str = "", *, who: Principal | None = None,
               login: str | None = None) -> dict[str, Any] | None:
    """The record the agent needs the moment the call connects (plain data; rendered by `render_pop`).

    Read through the service layer (`dialer.service.console`): an agent sees only their own call's pop;
    without LOGIN, any call for those who may read the floor (the local admin of a single-seat install).
    The depletion date is the list builder's own rule (lists.depletion)."""
    return _decorate(console_service.screen_pop(engine, who or local_admin(), login, attempt_id), agent_name,
                     business, business_phone)


def preview_pop(engine: Engine, login: str, agent_name: str, business: str,
                business_phone: str = "", *, who: Principal | None = None) -> dict[str, Any] | None:
    """Preview mode: the pop of the entry the runner reserved for LOGIN, before anything is dialled."""
    return _decorate(console_service.preview_card(engine, who or local_admin(), login), agent_name, business,
                     business_phone)


def _decorate(pop: dict[str, Any] | None, agent_name: str, business: str, business_phone: str
              ) -> dict[str, Any] | None:
    if pop is None:
        return None
    pop.pop("spent")  # already folded into pop["ltv"] / pop["ltv_source"] by the read model
    phone = pop.pop("phone_e164")
    pop["phone"] = last4(phone)
    pop["keep"] = (business, agent_name)
    pop["opening"] = opening_lines(business, agent_name, pop["product"], business_phone)
    return pop


_ISO_DAY = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")


def card_date(d: date | datetime | None, tz: str = "Asia/Tokyo") -> str:
    """The one date format of the customer card (issue 27 found three): the UI language's date; a datetime is
    shown as its local day."""
    if d is None:
        return "—"
    if isinstance(d, datetime):
        return fmt_datetime(d, tz, "date")
    return fmt_datetime(datetime(d.year, d.month, d.day, 12, tzinfo=ZoneInfo(tz)), tz, "date")


def card_dates(text: str) -> str:
    """ISO dates inside list text (the builder's reason: 'bought 2026-11-23, runs out 2026-12-23') in the card's
    format."""
    return _ISO_DAY.sub(lambda m: card_date(date(int(m[1]), int(m[2]), int(m[3]))), text)


def render_pop(pop: dict[str, Any], tz: str, wide: bool, width: int = 80, *, dialled: Text | None = None
               ) -> RenderableType:
    """The customer card; DIALLED (preview: the line saying where the dial is) keeps it on screen until the call
    connects, fails or ends."""
    parts: list[RenderableType] = []
    if dialled is not None:
        parts.append(dialled)
    head = Text()
    head.append(f"{pop['name'] or pop['customer_id']}", style="bold")
    if pop["kana"]:
        head.append(f" ({pop['kana']})")
    head.append(f"  {pop['customer_id']}  tel {pop['phone']}")
    if pop["caution"]:
        head.append(f"  ⚠ {_('caution')}", style="bold red")
    parts.append(head)
    if pop.get("return_call"):  # (issue 30) they called us back: say so, and why we had called (the line below)
        parts.append(Text(_("return call: the customer called back the number we called from"), style="bold magenta"))
    seg = Text()
    seg.append(f"{pop['segment']}", style="bold cyan")
    if pop["sub_segment"]:
        seg.append(f"/{pop['sub_segment']}")
    seg.append(f": {card_dates(reason_words(pop['reason']) or '—')}")
    parts.append(seg)
    # (issue 27) two different figures, each named: the customer's value and what this call is expected to bring
    ltv_word = _("LTV (CRM)") if pop.get("ltv_source", "crm") == "crm" else _("spent to date")
    parts.append(Text(f"{ltv_word} {yen(pop['ltv'])}   {_('call value (expected yen of this call)')} "
                      f"{yen(pop['expected_value'])}"))
    subs = "; ".join(
        f"{x['sku']} {x['status']}" + (f" {_('next shipment')} {card_date(x['next_ship'])}" if x["next_ship"] else "")
        + f" #{x['shipments']}" + (f" (cancel: {x['cancel_reason']})" if x["cancel_reason"] else "")
        for x in pop["subscriptions"]) or _("none")
    depl_sku = pop.get("depletion_sku") or ""
    depl = (f"{card_date(pop['depletion'])}" + (f" {depl_sku}" if depl_sku else "") + f" ({pop['depletion_how']})"
            if pop["depletion"] else "—")
    parts.append(Text(f"{_('subscription')}: {subs}   {_('runs out')}: {depl}"))
    orders = "  ".join(f"{_('ordered')} {card_date(o['date'])} {yen(o['total'])} {'+'.join(o['skus'])}"
                       + (f" ({_('shipped')} {card_date(o['shipped'])})" if o.get("shipped")
                          and o["shipped"] != o["date"] else "")
                       + ("" if o["status"] == "shipped" else f" ({o['status']})")
                       for o in pop["orders"][: (5 if wide else 3)] if o["date"]) or _("none")
    parts.append(Text(f"{_('orders')}: {orders}"))
    hist = Table(box=None, padding=(0, 1), show_header=False)
    hist.add_column(no_wrap=True)
    hist.add_column(no_wrap=True)
    hist.add_column(overflow="fold")
    for h in pop["history"][: (5 if wide else 3)]:
        what = label("outcome", h["outcome"]) + (f" {yen(h['amount'])}" if h["amount"] else "") + (
            f" {label('refusal', h['reason'])}" if h["outcome"] == Disposition.REFUSED else "")
        row(hist, card_date(h["at"], tz), what, h["voc"] or "")
    if pop["notes"]:
        parts.append(Text(f"{_('notes')}: {pop['notes']}", style="italic"))
    if pop["history"]:
        parts.append(Text(f"{_('earlier contacts')}:", style="bold"))
        parts.append(hist)
    else:
        parts.append(Text(f"{_('earlier contacts')}: {_('none')}", style="dim"))
    script = "\n".join(wrap_japanese(pop["opening"], max(20, width - 8), keep=tuple(pop.get("keep") or ())))
    parts.append(Panel(Text(script), title=_("opening (特定商取引法)"), title_align="left", padding=(0, 1),
                       border_style="green"))
    if dialled is not None:
        title = _("preview — dialled ({campaign})").format(campaign=pop["campaign"])
        return Panel(Group(*parts), title=Text(title), title_align="left", padding=(0, 1), border_style="green")
    if pop["attempt_id"] is None:  # preview: nothing dialled yet
        title = _("preview — next call, not dialled yet ({campaign})").format(campaign=pop["campaign"])
        return Panel(Group(*parts), title=Text(title), title_align="left", padding=(0, 1), border_style="yellow")
    return Panel(Group(*parts), title=Text(_("screen pop — call {id} ({campaign})").format(
        id=pop["attempt_id"], campaign=pop["campaign"])),
                 title_align="left", padding=(0, 1), border_style="cyan")


FAILED_DIALS = frozenset({"busy", "no_answer", "congestion", "invalid", "rejected", "failed", "cancelled",
                          "interrupted"})


def _secs(res: dict[str, Any]) -> str:
    start, end = aware(res.get("dialed_at")), aware(res.get("ended_at"))
    if start is None or end is None:
        return "—"
    s = max(0.0, (end - start).total_seconds())
    return f"{s:.2f}" if s < 10 else f"{s:.0f}"


def dial_result_text(name: str, res: dict[str, Any]) -> str:
    """How a previewed dial ended without reaching the agent: 「松本 陽菜 様: 発信失敗 — 輻輳 (503)、0.11 秒」."""
    outcome = res.get("outcome") or "failed"
    status = f" ({res['sip_status']})" if res.get("sip_status") else ""
    what = "abandoned" if res.get("abandoned") else outcome
    if outcome in FAILED_DIALS:
        return _("{name}: call failed — {outcome}{status}, after {secs} s").format(
            name=name, outcome=label("outcome", what), status=status, secs=_secs(res))
    return _("{name}: call ended — {outcome}{status}, after {secs} s").format(
        name=name, outcome=label("outcome", what), status=status, secs=_secs(res))


def dial_status(d: dict[str, Any], now: datetime) -> Text:
    """The line on the dialled card: requested, dialling, ringing or answered, and for how long."""
    res = d.get("result") or {}
    state = res.get("state") or ""
    since = aware(res.get("dialed_at"))
    took = f" {dur((now - since).total_seconds())}" if since else ""
    if d.get("attempt_id") is None:
        words = _("dial requested: waiting for the dialer…")
    elif state == AttemptState.RINGING:
        words = _("ringing {name}…").format(name=d["name"]) + took
    elif state in (AttemptState.ANSWERED, AttemptState.CONNECTED):
        words = _("{name} answered: connecting you…").format(name=d["name"]) + took
    else:
        words = _("dialling {name}…").format(name=d["name"]) + took
    return Text(words, style="bold green")


# ------------------------------------------------------------------------------------------- console


@dataclass
class AgentConsole:
    engine: Engine
    cfg: Config
    login: str
    mode: str = "main"  # main | pause | skip | outcome | field | confirm
    message: str = ""
    error: str = ""
    quit: bool = False
    agent: dict[str, Any] = field(default_factory=dict)
    pop: dict[str, Any] | None = None
    pop_attempt: int | None = None
    disposed: set[int] = field(default_factory=set)
    outcome: str = ""
    values: dict[str, str] = field(default_factory=dict)
    field_index: int = 0
    line: LineField = field(default_factory=LineField)
    want_pause_reason: str = ""
    saved_id: int | None = None
    preview: dict[str, Any] | None = None  # preview mode: the entry reserved for this agent, not dialled yet
    asked_at: datetime | None = None  # preview: when this console last sent a dial/skip the runner has not answered
    asked_mono: float = 0.0
    dialled: dict[str, Any] | None = None  # preview: the card dialled, shown until its call connects or ends
    guard: Any = None  # (issue 25) dialer.journal.StoreGuard: dispositions kept locally while the store is away
    # (issue 28) who is at this console: every read and write goes through the service layer as this user
    who: Principal = field(default_factory=local_admin)

    def __post_init__(self) -> None:
        console_service.open_seat(self.engine, self.who, self.login, list(self.cfg.agents), str(self.cfg.source))

    # ------------------------------------------------------------------ the store away (issue 25)
    def _store_guard(self) -> Any:
        from dialer.journal import Journal, StoreGuard, apply_record, journal_path

        if self.guard is None:
            self.guard = StoreGuard(
                self.engine, Journal(journal_path(self.cfg.database.journal_dir, "console", self.login)),
                f"console:{self.login}", lambda _line: None,
                lambda rec, conn: apply_record(rec, conn, hopper=None, campaign_id=0, state_logger=None))
        return self.guard

    def _store_away(self, error: BaseException | None) -> bool:
        """True (and said on the console) when ERROR means the store is down or full; the view stays as it was."""
        g = self._store_guard()
        if error is not None and not g.absorb(error):
            return False
        self.error = _("the store is unreachable ({why}): this screen is as it was; dispositions are kept on this "
                       "computer and sent when it is back").format(why=g.error)
        return True

    def refresh(self, now: datetime | None = None) -> None:
        g = self._store_guard()
        if g.degraded and not g.recover():
            self._store_away(None)
            return
        try:
            self._refresh(now)
        except Exception as error:
            if not self._store_away(error):
                raise

    def handle_key(self, k: str, now: datetime | None = None) -> None:
        try:
            self._handle_key(k, now)
        except Exception as error:
            if not self._store_away(error):
                raise

    # ------------------------------------------------------------------ reading the store
    def _refresh(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        check = self.pop_attempt if self.pop_attempt is not None and self.pop_attempt not in self.disposed else None
        self.agent, disposed = console_service.snapshot(self.engine, self.who, self.login, check)
        self.agent["since"] = aware(self.agent["since"])
        if check is not None and disposed:
            self.disposed.add(check)
        # a pause asked for during a call: the runner applies it; the console fills in the reason after (a
        # call taken on standby kept the earlier pause's reason: the one asked for since wins)
        if self.agent["state"] == AgentState.PAUSED and self.want_pause_reason \
                and self.agent["pause_reason"] != self.want_pause_reason:
            self._set_idle("paused", now, self.want_pause_reason, expect="paused")
            self.want_pause_reason = ""
        aid = self.agent["attempt_id"]
        if aid is not None and self.agent["state"] in BUSY and aid != self.pop_attempt:
            self.pop_attempt = aid
            self.saved_id = None
        if self.asked_at is not None:
            result = console_service.preview_result(self.engine, self.who, self.login, self.asked_at)
            if result is not None:
                self.asked_at = None
                if result.startswith("refused"):
                    self.error = _("the dialer did not dial: {why}").format(why=result)
                    self.dialled, self.message = None, ""
                elif self.dialled is not None:
                    found = re.search(r"dialled: attempt (\d+)", result)
                    self.dialled["attempt_id"] = int(found.group(1)) if found else None
                    if found is None:
                        self.dialled = None
        self._follow_dial(now)
        self.preview = None
        if self.agent["state"] == AgentState.READY:
            self.preview = preview_pop(self.engine, self.login, self.agent["name"], self.cfg.business.name,
                                       self.cfg.business.phone, who=self.who)
        if self.pop_attempt is not None:
            self.pop = screen_pop(self.engine, self.pop_attempt, self.agent["name"], self.cfg.business.name,
                                  self.cfg.business.phone, who=self.who, login=self.login)

    def _follow_dial(self, now: datetime) -> None:
        """Preview (issue 27): keep the dialled card until its call reaches this agent (the screen pop takes over)
        or ends without them; then say how it ended (「発信失敗 (503)」) and let the next card show."""
        d = self.dialled
        if d is None:
            return
        if self.agent.get("state") in BUSY:
            self.dialled, self.message = None, ""  # connected: the call's own pop, no "dialling…" left behind
            return
        if d.get("attempt_id") is None:
            return
        res = console_service.dialled_call(self.engine, self.who, self.login, d["attempt_id"])
        if res is None:
            return
        d["result"] = res
        if res["agent_connected_at"] is not None:
            self.dialled, self.message = None, ""
        elif res["state"] not in LIVE_ATTEMPT:
            self.dialled, self.message = None, dial_result_text(d["name"], res)

    def calling_hours(self) -> CallingHours:
        """The calling hours and calendar of the campaign the agent works (callbacks are offered inside them);
        the legal window when the campaign is unknown."""
        name = self.agent.get("campaign") or (self.pop or {}).get("campaign") or ""
        try:
            cc = self.cfg.campaign(name) if name else None
        except ConfigError:
            cc = None
        return CampaignPolicy.of(cc).hours if cc is not None else CallingHours.legal()

    def wrap_timeout_s(self) -> float:
        name = self.agent.get("campaign") or ""
        try:
            return self.cfg.campaign(name).wrap_up_timeout_s if name else 60.0
        except ConfigError:
            return 60.0

    # ------------------------------------------------------------------ writing agent state
    def _set_idle(self, new: str, now: datetime, reason: str = "", expect: str | None = None) -> bool:
        """Idle transition guarded by the state we saw: False (and a message) if the runner got there first."""
        seen = expect or self.agent["state"]
        now_in = console_service.set_idle_state(self.engine, self.who, self.login, seen, new, now, reason)
        if now_in is None:
            return True
        self.message = (_("state changed to {state} meanwhile; try again").format(state=label("state", now_in))
                        if now_in else _("state changed meanwhile; try again"))
        return False

    def _set_pending(self, pending: str) -> None:
        console_service.set_after_call(self.engine, self.who, self.login, pending)

    # ------------------------------------------------------------------ keys
    def _handle_key(self, k: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.error = ""
        if self.mode == "pause":
            if k in PAUSE_REASONS:
                self._pause(PAUSE_REASONS[k], now)
            self.mode = "main"
            return
        if self.mode == "skip":
            if k in SKIP_REASONS:
                self._skip(SKIP_REASONS[k])
            else:
                self.message = _("skip cancelled")
            self.mode = "main"
            return
        if self.mode == "outcome":
            if k in OUTCOME_BY_DIGIT:
                self._start_form(OUTCOME_BY_DIGIT[k])
            elif k == "esc":
                self.mode = "main"
            return
        if self.mode == "field":
            self._field_key(k, now)
            return
        if self.mode == "confirm":
            if k == "enter":
                self._save(now)
            elif k in ("esc", "backspace"):
                self.mode, self.field_index = "field", len(FORM_FIELDS[self.outcome]) - 1
                self.line = LineField(self.values.get(FORM_FIELDS[self.outcome][-1][0], ""))
            return
        self._main_key(k, now)

    def _main_key(self, k: str, now: datetime) -> None:
        state = self.agent.get("state", "logged_out")
        busy = state in BUSY
        if k == "q":
            self.quit = True
        elif k == "l" and state == AgentState.LOGGED_OUT:
            if self._set_idle("ready", now):
                self.message = _("logged in: ready")
        elif k == "r":
            if busy:
                self._set_pending("")
                self.want_pause_reason = ""
                self.message = _("back to ready after this call")
            elif state in (AgentState.PAUSED, AgentState.UNAVAILABLE, AgentState.UNREACHABLE, AgentState.REFUSING, AgentState.LOGGED_OUT) \
                    and self._set_idle("ready", now):
                self.message = _("ready")
        elif k == "p" and state != AgentState.LOGGED_OUT:
            self.mode = "pause"
        elif k in ("c", "s", "n") and self.asked_at is not None and time.monotonic() - self.asked_mono < 10:
            self.message = _("waiting for the dialer to apply your last key")  # one press, one command
        elif k in ("c", "s", "n") and self.dialled is not None and self.dialled.get("attempt_id") is not None:
            self.message = _("the call to {name} is still in progress").format(name=self.dialled["name"])
        elif k in ("c", "s", "n") and state == AgentState.READY and self.preview is not None:
            if k == "c":
                p = self.preview
                console_service.preview_dial(self.engine, self.who, self.login, p["entry_id"])
                self.asked_at, self.asked_mono = datetime.now(UTC), time.monotonic()
                self.dialled = {"pop": p, "name": p["name"] or p["customer_id"], "attempt_id": None, "result": None}
                self.message = ""  # the dialled card says where the call is (dial_status), until it ends
            elif k == "s":
                self.mode = "skip"
            else:
                self._skip("")
        elif k in ("c", "s", "n"):
            self.message = _("nothing reserved for you to dial")
        elif k == "o":
            if busy:
                self._set_pending("logged_out")
                self.message = _("will log out after this call")
            elif state != AgentState.LOGGED_OUT and self._set_idle(AgentState.LOGGED_OUT, now):
                self.message = _("logged out")
        elif k == "d" or (k in OUTCOME_BY_DIGIT and self.can_dispose()):
            if not self.can_dispose():
                self.message = _("no call to set a disposition for")
            elif k == "d":
                self.mode = "outcome"
            else:
                self._start_form(OUTCOME_BY_DIGIT[k])

    def _skip(self, reason: str) -> None:
        """Pass on the reserved entry (back to the hopper, REASON recorded); the runner reserves the next."""
        if self.preview is None:
            return
        p = self.preview
        console_service.preview_skip(self.engine, self.who, self.login, p["entry_id"], reason)
        self.asked_at, self.asked_mono = datetime.now(UTC), time.monotonic()
        self.message = _("skipped ({reason}); the next entry comes up").format(reason=label("skip", reason))
        self.preview = None

    def _pause(self, reason: str, now: datetime) -> None:
        if self.agent.get("state") in BUSY:
            self._set_pending("paused")
            self.want_pause_reason = reason
            self.message = _("will pause ({reason}) after this call").format(reason=label("pause", reason))
        elif self._set_idle("paused", now, reason):
            # (standby) the pacer may have dialled for this agent a moment ago: such a call can still reach them
            self.message = _("paused: {reason} (a call dialled before your pause may still reach you in the next "
                             "seconds)").format(reason=label("pause", reason))

    def can_dispose(self) -> bool:
        return self.pop is not None and self.pop_attempt is not None and self.pop_attempt not in self.disposed

    def _start_form(self, outcome: str) -> None:
        self.outcome, self.values, self.field_index = outcome, {}, 0
        self.mode = "field"
        self.line = LineField(self._default(FORM_FIELDS[outcome][0][0]))

    def _default(self, key: str) -> str:
        if key == "sku" and self.pop:
            return str(self.pop.get("sku") or "")
        return ""

    def _field_key(self, k: str, now: datetime) -> None:
        fields = FORM_FIELDS[self.outcome]
        key, _prompt, required = fields[self.field_index]
        if k == "esc":
            self.mode, self.message = "main", _("disposition cancelled")
            return
        if k == "enter":
            text = self.line.text.strip()
            try:
                if required and not text:
                    raise FormError(_("required"))
                self._validate(key, text, now)
            except FormError as exc:
                self.error = str(exc)
                return
            self.values[key] = text
            self.field_index += 1
            if self.field_index >= len(fields):
                self.mode = "confirm"
            else:
                self.line = LineField(self.values.get(fields[self.field_index][0], "")
                                      or self._default(fields[self.field_index][0]))
            return
        if k == "up" and self.field_index > 0:
            self.values[key] = self.line.text
            self.field_index -= 1
            self.line = LineField(self.values.get(fields[self.field_index][0], ""))
            return
        self.line.key(k)

    def _validate(self, key: str, text: str, now: datetime) -> None:
        if key == "amount":
            parse_amount(text)
        elif key == "when":
            parse_callback(text, now, self.cfg.schedules.timezone, self.calling_hours())
        elif key == "reason" and text not in REFUSAL_REASONS:
            raise FormError(_("reason code must be one of") + " " + ", ".join(
                f"{c} {label('refusal', n)}" for c, n in REFUSAL_REASONS.items()))

    def build_disposition(self, now: datetime) -> dict[str, Any]:
        """The disposition's columns from the form (plain data: the service layer writes it)."""
        v = self.values
        voc = v.get("note", "")
        if self.outcome == Disposition.REFUSED:
            exp, got = v.get("expected", ""), v.get("experienced", "")
            voc = " / ".join(x for x in ((f"期待: {exp}" if exp else ""), (f"実際: {got}" if got else "")) if x)
        assert self.pop is not None
        return {
            "attempt_id": self.pop_attempt, "agent_id": self.agent["id"], "customer_id": self.pop["customer_id"],
            "campaign_id": self.pop["campaign_id"], "outcome": self.outcome,
            "amount": parse_amount(v["amount"]) if "amount" in v else 0.0,
            "sku": v.get("sku", "") or str(self.pop.get("sku") or ""),
            "reason_code": v.get("reason", ""), "voc_text": voc,
            "callback_at": parse_callback(v["when"], now, self.cfg.schedules.timezone, self.calling_hours())
            if "when" in v else None,
            "source": "console", "created_at": now}

    def _save(self, now: datetime) -> None:
        try:
            d = self.build_disposition(now)
        except FormError as exc:  # e.g. the callback time passed while the form was open
            self.error = str(exc)
            self.mode, self.field_index = "field", 0
            return
        from dialer.journal import JournalOp

        saved: int | None = self._store_guard().write(
            JournalOp.DISPOSITION, d, lambda: console_service.dispose(self.engine, self.who, self.login, d), None)
        self.saved_id = saved
        assert self.pop_attempt is not None
        self.disposed.add(self.pop_attempt)
        self.mode = "main"
        if saved is None:  # (issue 25) journalled: replayed once when the store answers again
            self.message = _("disposition kept on this computer (store unreachable): {outcome}; sent when it is "
                             "back").format(outcome=label("outcome", self.outcome))
            return
        self.message = _("saved disposition #{id}: {outcome}").format(id=saved, outcome=label("outcome", self.outcome))

    # ------------------------------------------------------------------ drawing
    def render(self, width: int = 80, now: datetime | None = None) -> RenderableType:
        now = now or datetime.now(UTC)
        tz = self.cfg.schedules.timezone
        a = self.agent
        parts: list[RenderableType] = []
        head = Text()
        head.append(f"{_('tsunagu agent')} {a.get('login', self.login)} ", style="bold")
        head.append(f"{a.get('name', '')}  ")
        state = a.get("state", "?")
        head.append(label("state", state).upper(), style={"ready": "bold cyan", "on_call": "bold green",
                                                          "wrap_up": "bold yellow", "paused": "bold magenta",
                                                          "reserved": "green"}.get(state, "bold"))
        since = a.get("since")
        head.append(f" {dur((now - since).total_seconds()) if since else '—'}")
        if state == AgentState.PAUSED and a.get("pause_reason"):
            head.append(f" ({label('pause', a['pause_reason'])})")
        if a.get("pending"):
            head.append(f"  {_('after call')}: {label('state', a['pending'])}", style="yellow")
        if a.get("campaign"):
            head.append(f"  {_('campaign')} {a['campaign']}")
        head.append(f"  {fmt_datetime(now, tz, 'time')}", style="dim")
        parts.append(head)
        if state == AgentState.WRAP_UP and since:
            el = (now - since).total_seconds()
            limit = self.wrap_timeout_s()
            parts.append(Text(f"{_('wrap-up')} {dur(el)} / {dur(limit)}",
                              style="bold red" if el > limit * 0.8 else "yellow"))
        if self.pop is not None and (state in BUSY or self.can_dispose()):
            parts.append(render_pop(self.pop, tz, width >= 110, width))
            if self.pop_attempt in self.disposed:
                saved = f" (#{self.saved_id})" if self.saved_id else ""
                parts.append(Text(_("disposition saved{saved}; waiting for the dialer to close wrap-up").format(
                    saved=saved), style="green"))
        elif state == AgentState.READY and self.dialled is not None:
            parts.append(render_pop(self.dialled["pop"], tz, width >= 110, width,
                                    dialled=dial_status(self.dialled, now)))
        elif state == AgentState.READY and self.preview is not None:
            parts.append(render_pop(self.preview, tz, width >= 110, width))
        elif state in IDLE:
            parts.append(Text(_("waiting for a call") if state == AgentState.READY else _("not taking calls"), style="dim"))
        parts.append(self._form())
        if self.error:
            parts.append(Text(f"✗ {self.error}", style="bold red"))
        elif self.message:
            parts.append(Text(self.message, style="bold"))
        parts.append(Text(self._keys(), style="dim"))
        return Group(*parts)

    def _form(self) -> RenderableType:
        if self.mode == "pause":
            return Text(_("pause reason") + ": " + "  ".join(f"{k} {label('pause', v)}" for k, v in
                                                           PAUSE_REASONS.items()) + "  " + _("(other: cancel)"),
                        style="bold reverse")
        if self.mode == "skip":
            return Text(_("skip reason") + ": " + "  ".join(f"{k} {label('skip', v)}" for k, v in SKIP_REASONS.items())
                        + "  " + _("(other: cancel)"), style="bold reverse")
        if self.mode == "outcome":
            return Text(_("outcome") + ": " + "  ".join(f"{d} {label('outcome', o)}" for d, o in OUTCOME_BY_DIGIT.items())
                        + "  " + _("Esc cancel"), style="bold reverse")
        if self.mode in ("field", "confirm"):
            t = Text()
            t.append(f"{_('disposition')}: {label('outcome', self.outcome)}\n", style="bold")
            for i, (key, prompt, req) in enumerate(FORM_FIELDS[self.outcome]):
                if self.mode == "field" and i == self.field_index:
                    t.append(f"▶ {_(prompt)}{' *' if req else ''}: ", style="bold")
                    t.append(self.line.text + "▏\n", style="reverse")
                else:
                    t.append(f"  {_(prompt)}: {self.values.get(key, '')}\n")
            if self.outcome == Disposition.REFUSED and self.mode == "field" and FORM_FIELDS[Disposition.REFUSED][self.field_index][0] == "reason":
                t.append("  " + " ".join(f"{c}={label('refusal', n)}" for c, n in REFUSAL_REASONS.items()) + "\n",
                         style="dim")
            if self.mode == "confirm":
                t.append(_("Enter = save   Esc = back"), style="bold reverse")
            return t
        return Text("")

    def _keys(self) -> str:
        state = self.agent.get("state", "logged_out")
        if self.mode in ("field",):
            return _("Enter next field  ↑ previous field  Backspace edit  Esc cancel")
        if self.mode != "main":
            return ""
        if state == AgentState.LOGGED_OUT:
            return _("l log in  q quit")
        if state in BUSY:
            return _("d or 0-9 disposition  p pause after call  o log out after call  r ready after call  q quit")
        extra = "  " + _("d disposition (last call)") if self.can_dispose() else ""
        if state == AgentState.READY and self.preview is not None:
            extra = "  " + _("c dial  s skip (reason)  n next") + extra
        return _("r ready  p pause  o log out") + extra + "  " + _("q quit")


def run_live(console_view: AgentConsole, refresh_s: float = 0.5) -> None:
    from rich.console import Console
    from rich.live import Live

    from dialer.views.render import cbreak_keys

    con = Console()
    console_view.refresh()
    with cbreak_keys() as keys, Live(console_view.render(con.width), console=con, screen=True,
                                     auto_refresh=False) as live:
        last = 0.0
        while not console_view.quit:
            pressed = keys.read(0.1)
            for k in pressed:
                console_view.handle_key(k)
                console_view.refresh()
            if pressed or time.monotonic() - last >= refresh_s:
                console_view.refresh()
                live.update(console_view.render(con.width), refresh=True)
                last = time.monotonic()
