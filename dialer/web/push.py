"""Live pushes shared by every open page (issue 29): one rendering per view per change, whoever watches.

A `View` is one live region (an agent's console, the floor, the wallboard) in one language for one role. One
loop (`Hub.run`) renders each watched view once per interval in the thread pool and bumps the view's version
when its HTML changed; every open stream of that view only waits for the version and sends the shared bytes.
Agent consoles are re-rendered only when their row or reservation changed (`floor.console_signatures`, one
read for the floor) or every `AGENT_REFRESH_S`; the floor and wallboard figures come from `Web.floor_context`,
the terminal monitor's functions. So fifty agents and two wallboards cost a read and a few renderings per
interval instead of fifty-two renderings, and a change reaches every page within an interval plus a render.

Permission: a stream is opened only after the viewer's own check (its first rendering is the viewer's), a view
is rendered as a token-less copy of a viewer of that role, and each stream re-checks its session before every
push and at least every `SESSION_S` (a disabled user's page stops updating).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dialer.service import floor
from dialer.service.auth import Principal

if TYPE_CHECKING:
    from dialer.web.app import Web

AGENT_REFRESH_S = 3.0  # an unchanged console is re-rendered this often anyway (talk script, customer history)
SESSION_S = 2.0  # a quiet stream re-checks its session this often

Key = tuple[str, str, str, str]  # kind, agent login ("" for floor/wallboard), language, role ("" for agents)


@dataclasses.dataclass
class View:
    """One live region as every watcher of it sees it."""

    renderer: Principal  # a token-less viewer of the right role: checks were done per stream
    html: str = ""
    version: int = 0
    rendered_at: float = 0.0
    signature: tuple[Any, ...] | None = None
    watchers: int = 0
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def publish(self, html: str) -> None:
        if html != self.html:
            self.html = html
            self.version += 1
            old, self.changed = self.changed, asyncio.Event()
            old.set()


class Hub:
    """The views being watched and the one loop that renders them."""

    def __init__(self, web: Web, push_s: float) -> None:
        self.web, self.push_s = web, push_s
        self.views: dict[Key, View] = {}
        self.task: asyncio.Task[None] | None = None
        self.renders = 0  # how many renderings the loop made (the bench reports it)

    @staticmethod
    def key(kind: str, login: str, lang: str, who: Principal) -> Key:
        return (kind, login, lang, "" if kind == "agent" else who.role.value)

    def watch(self, key: Key, who: Principal, first: str) -> View:
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = View(dataclasses.replace(who, token=None), html=first,
                                          rendered_at=time.monotonic())
        view.watchers += 1
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())
        return view

    def leave(self, key: Key, view: View) -> None:
        view.watchers -= 1
        if view.watchers <= 0 and self.views.get(key) is view:
            del self.views[key]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def publish(key: Key, html: str) -> None:
            loop.call_soon_threadsafe(self._publish, key, html)

        while self.views:
            started = time.monotonic()
            try:
                # each rendering is handed to its watchers as soon as it is made, not at the end of the pass
                await asyncio.to_thread(self.render_due, dict(self.views), publish)
            except Exception:  # noqa: BLE001 - a store hiccup: pages keep their last rendering, retry next tick
                pass
            await asyncio.sleep(max(0.0, self.push_s - (time.monotonic() - started)))

    def _publish(self, key: Key, html: str) -> None:
        view = self.views.get(key)
        if view is not None:
            view.publish(html)

    def render_due(self, views: dict[Key, View], publish: Callable[[Key, str], object] | None = None
                   ) -> dict[Key, str]:
        """(thread) Render the views due: consoles on a change of their row (first: they are cheap), the floor
        and wallboards every interval; PUBLISH is called with each rendering as it is made."""
        from dialer.errors import UserError
        from dialer.service.roles import PermissionDenied

        mono = time.monotonic()
        signatures = floor.console_signatures(self.web.engine) if any(k[0] == "agent" for k in views) else {}
        out: dict[Key, str] = {}
        for key, view in sorted(views.items(), key=lambda kv: kv[0][0] != "agent"):
            kind, login, lang, _role = key
            if kind == "agent":
                sig = signatures.get(login)
                if sig == view.signature and mono - view.rendered_at < AGENT_REFRESH_S:
                    continue
                view.signature = sig
            try:
                out[key] = self.web.render_live(kind, view.renderer, login, lang)
            except (PermissionDenied, UserError):
                continue
            view.rendered_at = mono
            self.renders += 1
            if publish is not None:
                publish(key, out[key])
        return out
