"""The web app: routes over the service layer. See `dialer.web` for the design and `security` for the locks.

Each page is a shell plus a live region; the live region is rendered by the same function for the first paint
and for every Server-Sent Events push, so what the browser shows after an update is what a reload would show.
Database work runs in the thread pool (the event loop only moves bytes), and the SSE push of one view is
computed once per interval however many browsers watch it (fifty agents, a few wallboards).
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dialer import i18n
from dialer.config import Config, ConfigError
from dialer.domain.agents import BUSY, PAUSE_REASONS
from dialer.domain.calling_hours import CallingHours
from dialer.domain.dtmf import OUTCOME_BY_DIGIT, REFUSAL_REASONS
from dialer.domain.policy import CampaignPolicy
from dialer.domain.vocabulary import AgentState, Disposition
from dialer.errors import UserError
from dialer.i18n import N_, _
from dialer.service import Engine, auth, console, floor
from dialer.service.auth import Principal
from dialer.service.roles import Permission, PermissionDenied, Role
from dialer.views.reasons import reason_words
from dialer.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    LoginLimiter,
    SecurityHeaders,
    csrf_for,
    csrf_ok,
    same_origin,
    set_session_cookie,
)

HERE = Path(__file__).resolve().parent
OUTCOMES = list(OUTCOME_BY_DIGIT.values())
FIGURES_S = 2.0  # how old the floor's report figures may be (agents' states are always read fresh)
WEB_LABELS = {
    "role": {"agent": N_("agent"), "supervisor": N_("supervisor"), "admin": N_("admin")},
}


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


class Web:
    """State shared by the routes: config, store, templates, the render lock and the push cache."""

    def __init__(self, cfg: Config, engine: Engine, *, secure_cookies: bool = True, push_s: float = 0.3) -> None:
        self.cfg, self.engine = cfg, engine
        self.secure_cookies = secure_cookies
        self.push_s = push_s
        self.limiter = LoginLimiter()
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(_=lambda s: i18n._(s), label=self._label, reason=reason_words)
        # the UI catalog is process-wide: one render at a time holds the language it needs
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[float, str]] = {}
        self._figures: dict[str, tuple[float, Any]] = {}  # campaign -> (when, the monitor's CampaignView)
        self._recounting: set[str] = set()
        from dialer.web.push import Hub

        self.hub = Hub(self, push_s)  # live pushes: one rendering per view per change, shared by its watchers

    @staticmethod
    def _label(kind: str, value: str) -> str:
        from dialer.views.labels import label

        if kind in WEB_LABELS:
            word = WEB_LABELS[kind].get(value)
            return i18n._(word) if word else value
        return label(kind, value) if value else ""

    # ----------------------------------------------------------------------------------------- who
    def principal(self, request: Request) -> Principal | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        try:
            return auth.authenticate(self.engine, token)
        except UserError:
            return None

    def lang(self, request: Request) -> str:
        chosen = request.cookies.get("lang") or self.cfg.ui.language
        if not chosen:
            accept = request.headers.get("accept-language", "")
            chosen = "ja" if accept.lower().startswith("ja") else "en"
        return chosen if chosen in i18n.LANGUAGES else "en"

    def render(self, lang: str, template: str, **ctx: Any) -> str:
        with self._lock:
            i18n.set_language(lang)
            return self.env.get_template(template).render(lang=lang, **ctx)

    # ----------------------------------------------------------------------------------------- data
    def agent_context(self, who: Principal, login: str, now: datetime) -> dict[str, Any]:
        console.open_seat(self.engine, who, login, list(self.cfg.agents))
        agent, _disposed = console.snapshot(self.engine, who, login, None)
        since = _aware(agent.get("since"))
        pop = None
        attempt_id = agent.get("attempt_id")
        if attempt_id is not None and agent.get("state") in BUSY:
            pop = console.screen_pop(self.engine, who, login, int(attempt_id))
        preview = console.preview_card(self.engine, who, login) if pop is None else None
        opening = ""
        shown = pop or preview
        if shown is not None:
            from dialer.service.forms import opening_lines

            opening = opening_lines(self.cfg.business.name, agent.get("name", ""), str(shown.get("product", "")),
                                    self.cfg.business.phone)
        script = ""
        if shown is not None:
            from dialer.web.talkscript import render_script, script_dir

            script = render_script(script_dir(self.cfg.source), str(shown.get("campaign") or agent.get("campaign")
                                                                    or ""), str(shown.get("segment") or ""))
        return {"agent": agent, "since": since.isoformat() if since else "", "pop": pop, "preview": preview,
                "script": script,
                "opening": opening, "attempt_id": attempt_id if pop else None, "tz": ZoneInfo(self.cfg.schedules.timezone),
                "pause_reasons": list(PAUSE_REASONS.values()), "outcomes": OUTCOMES,
                "refusals": REFUSAL_REASONS, "busy": agent.get("state") in BUSY, "now": now}

    def calendar_context(self, who: Principal, login: str, now: datetime, week: int) -> dict[str, Any]:
        """Seven days of the agent's own callbacks on the centre's hours and calendar (closed days named)."""
        from datetime import timedelta

        from dialer.domain.calling_hours import business_today, local_midnight

        console.open_seat(self.engine, who, login, list(self.cfg.agents))
        agent, _disposed = console.snapshot(self.engine, who, login, None)
        tz = ZoneInfo(self.cfg.schedules.timezone)
        first = business_today(self.cfg.schedules.timezone, now) + timedelta(days=7 * week)
        start = local_midnight(datetime.combine(first, datetime.min.time(), tz), self.cfg.schedules.timezone)
        end = start + timedelta(days=7)
        campaign = agent.get("campaign") or (self.cfg.campaigns[0].name if self.cfg.campaigns else "")
        hours = self.calling_hours(campaign)
        booked = console.my_callbacks(self.engine, who, login, start, end)
        days = []
        for i in range(7):
            d = first + timedelta(days=i)
            window = hours.window(d)
            days.append({"date": d, "closed": hours.day_closed(d) if window is None else None,
                         "window": f"{window[0]:%H:%M}-{window[1]:%H:%M}" if window else "",
                         "callbacks": [c for c in booked if c["at"] is not None and c["at"].astimezone(tz).date() == d]})
        return {"agent": agent, "login": login, "days": days, "tz": tz, "week": week, "campaign": campaign}

    def _recount(self, name: str) -> None:
        from dialer.service.monitor import gather

        try:
            self._figures[name] = (time.monotonic(), gather(self.engine, name, self.cfg, datetime.now(UTC)))
        finally:
            self._recounting.discard(name)

    def floor_context(self, who: Principal, now: datetime) -> dict[str, Any]:
        """The floor's figures (the monitor's own `gather`, recounted at most every FIGURES_S) with the live part
        — runner status and every agent's state — read fresh on each push, so a state change reaches the floor
        and the wallboards within a push however long the report takes to recount."""
        import dataclasses

        from dialer.service.monitor import campaign_names, gather, live_floor

        auth.require(self.engine, who, Permission.MONITOR_READ)
        mono = time.monotonic()
        views = []
        for name in campaign_names(self.engine):
            hit = self._figures.get(name)
            if hit is None:  # the first look: count now
                hit = (mono, gather(self.engine, name, self.cfg, now))
                self._figures[name] = hit
                views.append(hit[1])
                continue
            if mono - hit[0] >= FIGURES_S and name not in self._recounting:
                # recount the report in the background: no push waits for it
                self._recounting.add(name)
                threading.Thread(target=self._recount, args=(name,), daemon=True).start()
            status, agents, live = live_floor(self.engine, name, now)
            views.append(dataclasses.replace(hit[1], status=status, agents=agents, live=live))
        ranking = []
        for v in views:
            for login, a in (v.report.get("agents") or {}).items():
                ranking.append({"campaign": v.name, "login": login, **a})
        ranking.sort(key=lambda a: (-(a.get("revenue") or 0), -(a.get("sales") or 0), a["login"]))
        from dialer.service.monitor import connected_calls

        calls = connected_calls(self.engine) if who.may(Permission.RECORDING_PLAY) else []  # (issue 29) to join
        return {"views": views, "ranking": ranking, "now": now, "tz": ZoneInfo(self.cfg.schedules.timezone),
                "calls": calls, "may_listen": who.may(Permission.RECORDING_PLAY) and who.may(
                    Permission.CAMPAIGN_COMMAND),
                "may_command": who.may(Permission.CAMPAIGN_COMMAND), "modes": ["preview", "progressive", "power",
                                                                               "predictive"]}

    def fragment(self, kind: str, who: Principal, key: str, lang: str) -> str:
        """The live region of a page; pushes share one rendering per interval per (view, key, language)."""
        # the permission check comes first, every time: a cached rendering is shared only by those who may see it
        if kind == "agent":
            auth.require(self.engine, who, Permission.AGENT_CONSOLE, agent_login=key)
        else:
            auth.require(self.engine, who, Permission.MONITOR_READ)
        cache_key = (kind, key, lang)
        hit = self._cache.get(cache_key)
        mono = time.monotonic()
        if hit is not None and mono - hit[0] < self.push_s * 0.5:
            return hit[1]
        html = self.render_live(kind, who, key, lang)
        self._cache[cache_key] = (mono, html)
        return html

    def render_live(self, kind: str, who: Principal, key: str, lang: str) -> str:
        """The live region of KIND rendered now (no cache): the page's first paint and the push loop's renderings."""
        now = datetime.now(UTC)
        if kind == "agent":
            return self.render(lang, "agent_live.html", **self.agent_context(who, key, now))
        template = "floor_live.html" if kind == "floor" else "wallboard_live.html"
        return self.render(lang, template, **self.floor_context(who, now))

    def calling_hours(self, campaign: str) -> CallingHours:
        """The campaign's hours and calendar; without a campaign the legal window with the centre's own
        closure days and the public holidays (a callback is never offered on a day the centre is shut)."""
        try:
            if campaign:
                return CampaignPolicy.of(self.cfg.campaign(campaign)).hours
        except ConfigError:
            pass
        legal = CallingHours.legal()
        return CallingHours.from_campaign((f"{legal.start:%H:%M}", f"{legal.end:%H:%M}"), "JP",
                                          closed_days=self.cfg.calendar.closed_days)


def create_app(cfg: Config, engine: Engine, *, secure_cookies: bool = True, push_s: float = 0.3) -> Starlette:
    web = Web(cfg, engine, secure_cookies=secure_cookies, push_s=push_s)

    def page(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        return HTMLResponse(web.render(web.lang(request), template, **ctx), status_code=status)

    async def who_is(request: Request) -> Principal | None:
        """The request's principal, read off the event loop: the session check reads (and once a minute writes)
        the store, which may wait out another process's lock; the loop meanwhile serves every other page."""
        return await run_in_threadpool(web.principal, request)

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        """A store that is busy past its wait, or down, is said on the page (503), never shown as a crash: the
        request changed nothing (its transaction did not commit), and the form is still there on Back. Any
        other database error is a defect and stays one (500)."""
        from dialer.service import store_outage

        if store_outage(exc) is None:
            raise exc
        return page(request, "error.html", status=503,
                    message=_("the store did not answer (busy or down): nothing was saved. Use the browser's "
                              "Back to keep what you typed, and send it again in a moment."),
                    back="/")

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def forbidden(request: Request, exc: Exception) -> HTMLResponse:
        return page(request, "error.html", status=403, message=str(exc))

    async def login_form(request: Request) -> Response:
        token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
        resp = page(request, "login.html", csrf=token, error="")
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=web.secure_cookies)
        return resp

    async def login_post(request: Request) -> Response:
        form = await request.form()
        client = request.client.host if request.client else "?"
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not same_origin(request) or not cookie or form.get("csrf") != cookie:
            return PlainTextResponse("cross-site request refused", status_code=403)
        if not web.limiter.allow(client):
            return page(request, "login.html", status=429, csrf=cookie,
                        error=_("too many log-in attempts from this address: wait a few minutes"))
        user, password = str(form.get("user", "")), str(form.get("password", ""))
        try:
            who = await run_in_threadpool(auth.login, engine, user, password, origin="web")
        except UserError:
            web.limiter.failed(client)
            return page(request, "login.html", status=401, csrf=cookie,
                        error=_("log-in refused: wrong user or password, or the user is locked"))
        resp = RedirectResponse("/", status_code=303)
        assert who.token is not None
        set_session_cookie(resp, who.token, secure=web.secure_cookies)
        resp.delete_cookie(LOGIN_CSRF_COOKIE)
        return resp

    async def logout(request: Request) -> Response:
        who = await who_is(request)
        form = await request.form()
        if who is not None and who.token and same_origin(request) and csrf_ok(who.token, str(form.get("csrf", ""))):
            await run_in_threadpool(auth.logout, engine, who)
        resp = to_login()
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    async def home(request: Request) -> Response:
        who = await who_is(request)
        if who is None:
            return to_login()
        if who.role is Role.AGENT:
            return RedirectResponse(f"/agent/{who.agent_login}", status_code=303)
        return RedirectResponse("/floor", status_code=303)

    async def set_lang(request: Request) -> Response:
        lang = request.path_params["lang"]
        resp = RedirectResponse(request.headers.get("referer") or "/", status_code=303)
        if lang in i18n.LANGUAGES:
            resp.set_cookie("lang", lang, samesite="strict", secure=web.secure_cookies)
        return resp

    async def agent_page(request: Request) -> Response:
        who = await who_is(request)
        if who is None or who.token is None:
            return to_login()
        login = request.path_params["login"]
        lang = web.lang(request)
        try:
            live = await run_in_threadpool(web.fragment, "agent", who, login, lang)
        except (PermissionDenied, UserError) as exc:
            return forbidden(request, exc)
        return page(request, "agent.html", who=who, login=login, live=live, csrf=csrf_for(who.token),
                    pause_reasons=list(PAUSE_REASONS.values()))

    async def calendar_page(request: Request) -> Response:
        who = await who_is(request)
        if who is None or who.token is None:
            return to_login()
        login = request.path_params["login"]
        try:
            week = max(0, min(8, int(request.query_params.get("week", "0"))))
        except ValueError:
            week = 0
        try:
            ctx = await run_in_threadpool(web.calendar_context, who, login, datetime.now(UTC), week)
        except (PermissionDenied, UserError) as exc:
            return forbidden(request, exc)
        return page(request, "callbacks.html", who=who, csrf=csrf_for(who.token), **ctx)

    async def floor_page(request: Request, template: str = "floor.html") -> Response:
        who = await who_is(request)
        if who is None or who.token is None:
            return to_login()
        lang = web.lang(request)
        kind = "wallboard" if template == "wallboard.html" else "floor"
        try:
            live = await run_in_threadpool(web.fragment, kind, who, "", lang)
        except PermissionDenied as exc:
            return forbidden(request, exc)
        return page(request, template, who=who, live=live, csrf=csrf_for(who.token))

    async def wallboard_page(request: Request) -> Response:
        return await floor_page(request, "wallboard.html")

    async def events(request: Request) -> Response:
        """SSE: the live region of one view, pushed when it changes (checked every `push_s`)."""
        who = await who_is(request)
        if who is None:
            return PlainTextResponse("log in first", status_code=401)
        kind = request.path_params["kind"]
        key = request.query_params.get("login", "") if kind == "agent" else ""
        if kind not in ("agent", "floor", "wallboard"):
            return PlainTextResponse("no such view", status_code=404)
        lang = web.lang(request)
        try:
            first = await run_in_threadpool(web.fragment, kind, who, key, lang)
        except PermissionDenied as exc:
            return PlainTextResponse(str(exc), status_code=403)

        async def stream() -> AsyncIterator[bytes]:
            # the push loop renders the view once per change for every watcher; this stream only waits for a new
            # version, re-checks its session (before each push and at least every SESSION_S) and sends the bytes
            from dialer.web.push import SESSION_S

            hub = web.hub
            view_key = hub.key(kind, key, lang, who)
            view = hub.watch(view_key, who, first)
            sent, checked, quiet = first, time.monotonic(), 0.0
            try:
                yield ("event: update\n" + "".join(f"data: {ln}\n" for ln in first.splitlines()) + "\n").encode()
                while True:
                    waiting = view.changed
                    try:
                        await asyncio.wait_for(waiting.wait(), timeout=SESSION_S)
                    except TimeoutError:
                        quiet += SESSION_S
                    if await request.is_disconnected():
                        return
                    html = view.html
                    if html != sent or time.monotonic() - checked >= SESSION_S:
                        # the session is re-checked before a push: a disabled user's page stops updating
                        current = await run_in_threadpool(web.principal, request)
                        checked = time.monotonic()
                        if current is None:
                            yield b"event: ended\ndata: session ended\n\n"
                            return
                        if not current.may(Permission.AGENT_CONSOLE if kind == "agent" else Permission.MONITOR_READ,
                                           agent_login=key or None) or current.role is not who.role:
                            return
                    if html != sent:
                        sent, quiet = html, 0.0
                        yield ("event: update\n" + "".join(f"data: {ln}\n" for ln in html.splitlines())
                               + "\n").encode()
                    elif quiet >= 15.0:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
            finally:
                hub.leave(view_key, view)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _posted(request: Request) -> tuple[Principal, dict[str, str]] | Response:
        who = await who_is(request)
        if who is None or who.token is None:
            return to_login()
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not same_origin(request) or not csrf_ok(who.token, form.get("csrf", "")):
            return PlainTextResponse("cross-site request refused", status_code=403)
        return who, form

    def posted(handler: Callable[[Request, Principal, dict[str, str]], Awaitable[Response]]
               ) -> Callable[[Request], Awaitable[Response]]:
        """A state-changing route: logged in, same origin, the form's CSRF token; then HANDLER(request, who, form)."""
        async def checked(request: Request) -> Response:
            got = await _posted(request)
            if isinstance(got, Response):
                return got
            return await handler(request, *got)
        return checked

    @posted
    async def agent_state(request: Request, who: Principal, form: dict[str, str]) -> Response:
        login = request.path_params["login"]
        try:
            await run_in_threadpool(seat_action, who, login, form.get("action", ""), form.get("reason", ""))
        except PermissionDenied as exc:
            return forbidden(request, exc)
        return RedirectResponse(f"/agent/{login}", status_code=303)

    def seat_action(who: Principal, login: str, action: str, reason: str) -> None:
        now = datetime.now(UTC)
        agent, _disposed = console.snapshot(engine, who, login, None)
        state = agent["state"]
        busy = state in BUSY
        if action == "ready":
            if busy:
                console.set_after_call(engine, who, login, "")
            elif state != AgentState.READY:
                console.set_idle_state(engine, who, login, state, "ready", now)
        elif action == "pause":
            reason = reason if reason in PAUSE_REASONS.values() else "other"
            if busy:
                console.set_after_call(engine, who, login, "paused")
            elif state != AgentState.LOGGED_OUT:
                console.set_idle_state(engine, who, login, state, "paused", now, reason)
        elif action == "logout":
            if busy:
                console.set_after_call(engine, who, login, "logged_out")
            elif state != AgentState.LOGGED_OUT:
                console.set_idle_state(engine, who, login, state, "logged_out", now)
        else:
            raise UserError(f"unknown action {action!r}")

    @posted
    async def agent_preview(request: Request, who: Principal, form: dict[str, str]) -> Response:
        login = request.path_params["login"]
        try:
            entry = int(form.get("entry_id", "0"))
            if form.get("action") == "dial":
                await run_in_threadpool(console.preview_dial, engine, who, login, entry)
            else:
                await run_in_threadpool(console.preview_skip, engine, who, login, entry, form.get("reason", ""))
        except (PermissionDenied, ValueError) as exc:
            return forbidden(request, exc)
        return RedirectResponse(f"/agent/{login}", status_code=303)

    @posted
    async def agent_dispose(request: Request, who: Principal, form: dict[str, str]) -> Response:
        login = request.path_params["login"]
        from dialer.service.forms import FormError, parse_amount, parse_callback

        def save() -> str:
            now = datetime.now(UTC)
            attempt_id = int(form.get("attempt_id", "0"))
            pop = console.screen_pop(engine, who, login, attempt_id)
            if pop is None:
                raise UserError("no such call")
            agent, _disposed = console.snapshot(engine, who, login, None)
            outcome = form.get("outcome", "")
            if outcome not in OUTCOMES:
                raise FormError(_("choose an outcome"))
            if outcome == Disposition.REFUSED and form.get("reason", "") not in REFUSAL_REASONS:
                raise FormError(_("reason code must be one of") + " " + ", ".join(REFUSAL_REASONS))
            when = None
            if outcome == Disposition.CALLBACK:
                when = parse_callback(form.get("when", ""), now, web.cfg.schedules.timezone,
                                      web.calling_hours(str(pop.get("campaign", ""))))
            fields = {"attempt_id": attempt_id, "agent_id": agent["id"], "customer_id": pop["customer_id"],
                      "campaign_id": pop.get("campaign_id"), "outcome": outcome,
                      "amount": parse_amount(form["amount"]) if form.get("amount") else 0.0,
                      "sku": str(pop.get("sku") or ""),
                      "reason_code": form.get("reason", "") if outcome == Disposition.REFUSED else "",
                      "voc_text": form.get("voc", ""), "callback_at": when, "source": "web", "created_at": now}
            return str(console.dispose(engine, who, login, fields))

        try:
            await run_in_threadpool(save)
        except PermissionDenied as exc:
            return forbidden(request, exc)
        except (FormError, UserError, ValueError) as exc:
            return page(request, "error.html", status=400, message=str(exc), back=f"/agent/{login}")
        return RedirectResponse(f"/agent/{login}?saved=1", status_code=303)

    @posted
    async def floor_command(request: Request, who: Principal, form: dict[str, str]) -> Response:
        if form.get("confirm") != "yes":
            return page(request, "error.html", status=400, message=_("not sent: confirm the command first"),
                        back="/floor")
        try:
            await run_in_threadpool(floor.send_command, engine, who, form.get("campaign", ""), form.get("command", ""),
                                    form.get("argument", ""), origin="web")
        except PermissionDenied as exc:
            return forbidden(request, exc)
        except UserError as exc:
            return page(request, "error.html", status=400, message=str(exc), back="/floor")
        return RedirectResponse("/floor", status_code=303)

    @posted
    async def floor_listen(request: Request, who: Principal, form: dict[str, str]) -> Response:
        """(issue 29) Join a call in progress on the supervisor's own phone: listen, whisper or barge."""
        from dialer.service.listen import join_call

        try:
            attempt_id = int(form.get("attempt", ""))
        except ValueError:
            return page(request, "error.html", status=400, message=_("not a call"), back="/floor")
        try:
            await run_in_threadpool(join_call, engine, who, attempt_id,
                                    form.get("mode", ""), form.get("phone", ""), origin="web")
        except PermissionDenied as exc:
            return forbidden(request, exc)
        except UserError as exc:
            return page(request, "error.html", status=400, message=str(exc), back="/floor")
        return RedirectResponse("/floor", status_code=303)

    async def recordings_page(request: Request) -> Response:
        """(issue 29) Search recordings (customer, agent, date, outcome) and play them: supervisors only."""
        from datetime import timedelta

        from dialer.service.recordings import find

        who = await who_is(request)
        if who is None or who.token is None:
            return to_login()
        q = {k: request.query_params.get(k, "").strip() for k in ("customer", "agent", "date", "outcome")}
        tz = ZoneInfo(web.cfg.schedules.timezone)
        since = until = None
        if q["date"]:
            try:
                since = datetime.fromisoformat(q["date"]).replace(tzinfo=tz)
            except ValueError:
                return page(request, "error.html", status=400, message=_("not a date: {d}").format(d=q["date"]),
                            back="/recordings")
            until = since + timedelta(days=1)
        try:
            rows = await run_in_threadpool(find, engine, who, customer=q["customer"], agent=q["agent"], since=since,
                                           until=until, outcome=q["outcome"])
        except PermissionDenied as exc:
            return forbidden(request, exc)
        return page(request, "recordings.html", who=who, csrf=csrf_for(who.token), rows=rows, q=q, tz=tz)

    async def recording_file(request: Request) -> Response:
        """One recording as audio/wav, after the permission check (and the audit) of the service."""
        from starlette.responses import FileResponse

        from dialer.service.recordings import playback_path

        who = await who_is(request)
        if who is None or who.token is None:
            return PlainTextResponse("log in first", status_code=401)
        try:
            path = await run_in_threadpool(playback_path, engine, who, int(request.path_params["attempt_id"]),
                                           web.cfg.telephony.recordings_dir)
        except PermissionDenied as exc:
            return forbidden(request, exc)
        except UserError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang/{lang}", set_lang),
        Route("/agent/{login}", agent_page),
        Route("/agent/{login}/callbacks", calendar_page),
        Route("/agent/{login}/state", agent_state, methods=["POST"]),
        Route("/agent/{login}/preview", agent_preview, methods=["POST"]),
        Route("/agent/{login}/disposition", agent_dispose, methods=["POST"]),
        Route("/floor", floor_page),
        Route("/floor/command", floor_command, methods=["POST"]),
        Route("/floor/listen", floor_listen, methods=["POST"]),
        Route("/wallboard", wallboard_page),
        Route("/recordings", recordings_page),
        Route("/recordings/{attempt_id:int}.wav", recording_file),
        Route("/events/{kind}", events),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    from dialer.service import STORE_ERRORS

    app = Starlette(routes=routes, exception_handlers=dict.fromkeys(STORE_ERRORS, store_unavailable))
    app.add_middleware(SecurityHeaders)
    app.state.web = web
    return app
