"""Small formatting helpers shared by the views, and a non-blocking key reader.

The views are rich renderables redrawn by `rich.live.Live`; keys come from a cbreak-mode stdin polled with
select, which is all the interaction needs (single keys and short line fields). That keeps the views
plain functions of the store that tests can render to a recording Console, without Textual's app loop.
"""

from __future__ import annotations

import codecs
import io
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from dialer.i18n import nfkc

BLOCKS = "▁▂▃▄▅▆▇█"


class PipeConsole(Console):
    """A Console whose closed pipe (`| head`) raises BrokenPipeError for the CLI to end on quietly with exit 0
    (rich's own handler exits 1, which our exit codes reserve for "a check found a problem")."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def console(width: int = 0) -> Console:
    """The console a command prints to; `width` 0 means the terminal's (or, piped, the data's: see reports)."""
    return PipeConsole(width=width) if width else PipeConsole()


def wide_enough(renderable: RenderableType, floor: int = 80, cap: int = 400) -> int:
    """The width a renderable needs to print without truncation (piped output has no terminal to ask)."""
    from rich.measure import Measurement

    probe = Console(width=cap, file=io.StringIO(), color_system=None)
    return max(floor, min(cap, Measurement.get(probe, probe.options, renderable).maximum))


def row(table: Table, *cells: RenderableType) -> None:
    """Add a table row whose strings are shown as text, never parsed as rich markup.

    Names, notes and reasons come from the store (a customer may well be called `[/]` or `[bold]`).
    """
    table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))


def sparkline(values: list[float | None], top: float) -> str:
    """One block per value scaled to `top` (values above it show as a full block); gaps show as '·'."""
    out = []
    for v in values:
        if v is None:
            out.append("·")
            continue
        frac = 0.0 if top <= 0 else min(1.0, max(0.0, v / top))
        out.append(BLOCKS[min(len(BLOCKS) - 1, int(frac * (len(BLOCKS) - 1) + 0.5))])
    return "".join(out)


def pct(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def dur(seconds: float | None) -> str:
    """mm:ss below an hour, h:mm:ss above; '—' when unknown."""
    if seconds is None:
        return "—"
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def yen(v: float | None) -> str:
    return "—" if v is None else f"¥{v:,.0f}"


def num(v: float | None, digits: int = 1) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def local(dt: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    d = aware(dt)
    return "—" if d is None else d.astimezone(ZoneInfo(tz)).strftime(fmt)


def last4(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return f"…{digits[-4:]}" if digits else "—"


# ------------------------------------------------------------------------------------------------ keys

_ESC_SEQ = {"[A": "up", "[B": "down", "[C": "right", "[D": "left", "[Z": "backtab", "OA": "up", "OB": "down",
            "OC": "right", "OD": "left", "[3~": "delete", "[5~": "pgup", "[6~": "pgdn", "[H": "home", "[1~": "home",
            "OH": "home"}


def parse_keys(text: str) -> list[str]:
    """Turn raw terminal input into key names: 'enter', 'esc', 'backspace', 'tab', arrows, or the character."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            rest = text[i + 1:]
            for seq, name in _ESC_SEQ.items():
                if rest.startswith(seq):
                    keys.append(name)
                    i += 1 + len(seq)
                    break
            else:
                keys.append("esc")
                i += 1
            continue
        if ch in "\r\n":
            keys.append("enter")
        elif ch in "\x7f\x08":
            keys.append("backspace")
        elif ch == "\t":
            keys.append("tab")
        elif ch == "\x15":
            keys.append("ctrl-u")
        elif ch >= " ":
            # NFKC: an IME left in 全角 mode types ｐ, １, ：, ￥ — the same keys as p, 1, :, ¥
            keys.extend(nfkc(ch))
        i += 1
    return keys


class KeyReader:
    """Reads whatever keys are waiting on a terminal fd without blocking longer than the timeout."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read(self, timeout_s: float) -> list[str]:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if not ready:
            return []
        data = os.read(self.fd, 4096)
        if not data:
            raise EOFError("terminal closed")
        return parse_keys(self.decoder.decode(data))


@contextmanager
def cbreak_keys() -> Iterator[KeyReader]:
    """Keys one at a time without echo; Ctrl-C still interrupts. Restores the terminal on the way out."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield KeyReader(fd)
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield KeyReader(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class LineField:
    """A one-line text field for forms: printable keys append, backspace/ctrl-u edit."""

    def __init__(self, initial: str = "") -> None:
        self.text = initial

    def key(self, k: str) -> bool:
        """Apply an editing key; False if the key is not an editing key (enter, esc, ...)."""
        if k == "backspace":
            self.text = self.text[:-1]
        elif k == "ctrl-u":
            self.text = ""
        elif len(k) == 1:
            self.text += k
        else:
            return False
        return True


# ------------------------------------------------------------------------------------------------ wrapping

_budoux_parser: Any = None


def wrap_japanese(text: str, width: int, keep: tuple[str, ...] = ()) -> list[str]:
    """Lines of at most `width` cells, broken only between phrases (BudouX) and never inside a `keep` string
    (the business's and the agent's names): the opening script must not read 「Agent⏎05」."""
    global _budoux_parser
    if _budoux_parser is None:
        import budoux

        _budoux_parser = budoux.load_default_japanese_parser()
    phrases: list[str] = list(_budoux_parser.parse(text)) or [text]
    # boundaries inside a kept name are no boundaries
    protected: set[int] = set()
    for name in keep:
        if not name:
            continue
        start = text.find(name)
        while start >= 0:
            protected.update(range(start + 1, start + len(name)))
            start = text.find(name, start + 1)
    merged: list[str] = []
    pos = 0
    for ph in phrases:
        if merged and pos in protected:
            merged[-1] += ph
        else:
            merged.append(ph)
        pos += len(ph)
    lines: list[str] = []
    cur = ""
    for ph in merged:
        if cell_len(cur + ph) <= width:
            cur += ph
            continue
        if cur:
            lines.append(cur.rstrip())
            cur = ""
        ph = ph.lstrip()
        while cell_len(ph) > width:  # a phrase longer than a line: fold it by characters
            cut = 1
            while cut < len(ph) and cell_len(ph[:cut + 1]) <= width:
                cut += 1
            lines.append(ph[:cut])
            ph = ph[cut:]
        cur = ph
    if cur:
        lines.append(cur.rstrip())
    return lines
