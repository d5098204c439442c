"""Personal data stays private: phone numbers never reach a log in full, and data files are the dialer's own (0600)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

_DIGITS = re.compile(r"\+?\d[\d\- ]{6,}\d")


def mask_phone(number: str, keep: int = 3) -> str:
    """'+819012345678' -> '+81*******678'. Non-numbers pass through untouched."""
    if not number:
        return number
    prefix = ""
    body = number
    if number.startswith("+"):
        # keep the country code visible: it is what an operator needs to read a trunk problem
        cc = 2 if number[1:3] in {"81", "44", "33", "49", "86", "82", "61", "65", "66", "39"} else 1
        prefix, body = number[: 1 + cc], number[1 + cc :]
    if len(body) <= keep:
        return prefix + "*" * len(body)
    return prefix + "*" * (len(body) - keep) + body[-keep:]


def mask_text(text: str) -> str:
    """Mask every phone-like run of digits in a free-text line (SIP URIs, error messages)."""
    return _DIGITS.sub(lambda m: mask_phone(re.sub(r"[\- ]", "", m.group(0))), text)


# --- files (issue 28) -------------------------------------------------------------------------------------
# The store, its WAL, the list caches (customers.parquet: names, phones, e-mails), exports and recordings are
# personal data: readable by the dialer's own Unix user only, whatever umask the shell or the service had.
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077


def private_umask() -> int:
    """Set the process umask so every file the program (and its worker processes) creates is private."""
    return os.umask(PRIVATE_UMASK)


def tighten(path: Path) -> None:
    """Make an existing data file (or directory) private; a file we do not own is left alone."""
    try:
        st = path.lstat()
    except OSError:
        return
    if st.st_uid != os.getuid() or stat.S_ISLNK(st.st_mode):
        return
    want = PRIVATE_DIR if stat.S_ISDIR(st.st_mode) else PRIVATE_FILE
    if stat.S_IMODE(st.st_mode) & ~want:
        with contextlib.suppress(OSError):
            os.chmod(path, want)


def tighten_sqlite(db: Path) -> None:
    """The SQLite file and its -wal/-shm (SQLite gives those the main file's mode, so an old 0644 store would
    keep creating readable WALs)."""
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        tighten(p)
