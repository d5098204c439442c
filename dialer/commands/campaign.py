"""`dialer campaign run`: the live campaign loop, with the manager's live view or headless."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from dialer.commands._common import add_config_arg, config_from, duration_arg, group
from dialer.config import Config, ConfigError, secret_problems
from dialer.errors import UserError
from dialer.store.db import get_engine, init_db
from dialer.views.labels import state_counts


def run_campaign(cfg: Config, name: str, *, duration_s: float | None, headless: bool, auto_login: bool = False,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    from dialer.campaign import CampaignRunner, RunnerBusy
    from dialer.telephony.switchboard import Switchboard

    cfg.campaign(name)  # a clear error for an unknown campaign before anything starts
    secret_errors, _notes = secret_problems(cfg)  # one line and exit 3, as `config check` says, not a traceback
    if secret_errors:
        raise ConfigError(f"{cfg.source}: " + "; ".join(secret_errors))
    init_db(cfg.database.url)
    engine = get_engine(cfg.database.url)
    logger = _state_logger()
    lines: list[str] = []
    switchboard = Switchboard(cfg)  # (issue 30) this process's telephony, above the campaign it runs
    runner = CampaignRunner(cfg, name, engine, auto_login=auto_login, state_logger=logger,
                            on_event=lines.append, switchboard=switchboard)
    view = None if headless else _live_view(cfg, name)
    last_print = [0.0]

    def stop_check() -> bool:
        now = time.monotonic()
        if view is not None:
            if view.update():
                return True  # q in the live view: stop the campaign cleanly
        elif now - last_print[0] >= 5:
            last_print[0] = now
            c = runner.counts
            d = runner.last_decision
            print(f"[{time.strftime('%H:%M:%S')}] " + status_line(d.mode if d else runner.mode, c, len(runner.live),
                                                                 runner.board.counts()), flush=True)
        while lines:
            msg = lines.pop(0)
            if view is None:
                print(f"  {msg}", flush=True)
        return bool(should_stop and should_stop())

    signals = _StopSignals()
    try:
        signals.install()
        if view is not None:
            view.start()
        return runner.run(duration_s, should_stop=lambda: stop_check() or signals.first,
                          hard_stop=lambda: signals.second)
    except RunnerBusy as exc:
        raise UserError(str(exc)) from None
    finally:
        switchboard.stop()  # the runner's leaving stopped it; this covers a run that failed before
        signals.restore()
        if view is not None:
            view.stop()


class _StopSignals:
    """(issue 25) The first SIGTERM / Ctrl-C drains (no new dials, calls end by themselves); a second one hangs
    up what is left. Installed only on the main thread (signal handlers cannot be set elsewhere)."""

    def __init__(self) -> None:
        self.count = 0
        self.old: dict[int, Any] = {}

    @property
    def first(self) -> bool:
        return self.count >= 1

    @property
    def second(self) -> bool:
        return self.count >= 2

    def _on(self, signum: int, _frame: Any) -> None:
        self.count += 1
        from dialer.i18n import _

        name = signal.Signals(signum).name
        what = _("signal {name}: draining: no new dials, calls end by themselves (again to hang up now)") \
            if self.count == 1 else _("signal {name}: hanging up the calls left")
        print("  " + what.format(name=name), file=sys.stderr, flush=True)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.old[sig] = signal.signal(sig, self._on)

    def restore(self) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)
        self.old.clear()


def status_line(mode: str, counts: dict[str, int], live: int, agents: dict[str, int]) -> str:
    """The headless runner's periodic line, in words of the UI's language (issue 27: it printed enum reprs)."""
    from dialer.i18n import _

    return _("mode {mode}  dialled {dialled}  answered {answered}  connected {connected}  abandoned {abandoned}  "
             "calls up {live}  agents: {agents}").format(
        mode=_(mode), dialled=counts.get("dialled", 0), answered=counts.get("answered", 0),
        connected=counts.get("connected", 0), abandoned=counts.get("abandoned", 0), live=live,
        agents=state_counts(agents))


def _state_logger() -> Any:
    from dialer.store.agents import log_agent_state

    return log_agent_state


class _LiveView:
    """The manager's dashboard (the same Monitor as `dialer monitor`) drawn in the runner's own terminal.

    Keys work here too: p/r/s/m/t write control commands that this runner applies on its next tick.
    """

    def __init__(self, cfg: Config, name: str) -> None:
        from rich.console import Console

        from dialer.views.monitor import Monitor

        self.console = Console()
        self.monitor = Monitor(get_engine(cfg.database.url), cfg, campaign=name)
        self.live: Any = None
        self.keys: Any = None
        self._keys_cm: Any = None
        self.last = 0.0

    def start(self) -> None:
        from rich.live import Live

        from dialer.views.render import cbreak_keys

        self.monitor.refresh()
        self._keys_cm = cbreak_keys()
        self.keys = self._keys_cm.__enter__()
        self.live = Live(self.monitor.render(self.console.width), console=self.console, screen=True,
                         auto_refresh=False)
        self.live.start()

    def update(self) -> bool:
        pressed = self.keys.read(0) if self.keys is not None else []
        for k in pressed:
            self.monitor.handle_key(k)
        now = time.monotonic()
        if pressed or now - self.last >= 0.5:
            self.last = now
            self.monitor.refresh()
            self.live.update(self.monitor.render(self.console.width), refresh=True)
        return bool(self.monitor.quit)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
        if self._keys_cm is not None:
            self._keys_cm.__exit__(None, None, None)


def _live_view(cfg: Config, name: str) -> _LiveView:
    return _LiveView(cfg, name)


def _run(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    duration = args.duration
    headless = args.headless or not sys.stdout.isatty()
    counts = run_campaign(cfg, args.name, duration_s=duration, headless=headless, auto_login=args.auto_login)
    print(f"campaign {args.name} stopped: {counts}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    """(issue 25) Ask the live runner of a campaign to stop: drain by default, hang up at once with --now."""
    from datetime import UTC, datetime

    from dialer.i18n import _
    from dialer.store import campaigns as campaigns_store
    from dialer.store.dashboard import live_runner
    from dialer.store.opening import open_existing

    cfg = config_from(args)
    cfg.campaign(args.name)
    engine, _where = open_existing(cfg.database.url)
    now = datetime.now(UTC)
    live, _beat = live_runner(engine, args.name, now)
    if not live:
        print(_("campaign {name}: no live runner; nothing to stop").format(name=args.name))
        return 1
    command = "stop_now" if args.now else "stop"
    cid = campaigns_store.request_command(engine, args.name, command, requested_by="cli", at=now)
    print(_("requested #{id}: {command} on {name}").format(id=cid, command=command, name=args.name))
    if not args.now:
        print(_("no new dials; calls and wrap-ups end by themselves (dialer campaign stop --now hangs up)"))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = group(sub, "campaign", "campaigns: run the live predictive loop")
    p = g.add_parser("run", help="run a campaign: pace, lease, dial, route answers to agents, record outcomes")
    p.add_argument("name", help="campaign name from the config")
    p.add_argument("--for", dest="duration", metavar="DURATION", type=duration_arg, help="stop after this long (e.g. 90s, 2m, 8h)")
    p.add_argument("--headless", action="store_true", help="no live view; a status line every 5 s")
    p.add_argument("--auto-login", action="store_true",
                   help="log every configured agent in as ready (for unattended softphones, e.g. the demo)")
    add_config_arg(p)
    p.set_defaults(func=_run)
    p = g.add_parser("stop", help="stop a running campaign: no new dials, calls end by themselves (--now hangs up)")
    p.add_argument("name", help="campaign name from the config")
    p.add_argument("--now", action="store_true", help="hang up the calls still up, conversations included")
    add_config_arg(p)
    p.set_defaults(func=_stop)


__all__ = ["ConfigError", "run_campaign"]
