"""`dialer doctor`: what this install leaves open, each with the fix (issue 28).

Why: a call centre's store holds names, phone numbers, refusals and recordings; the dangers are rarely a bug
and mostly a default nobody looked at — a world-readable database, a webhook over http, a console anyone may
open, an old OpenSSL, SIP in the clear. The checks read the config, the files and the installed packages;
they change nothing. Exit code 1 when anything is open, so a deployment script can stop on it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from dialer.config import Config
from dialer.endpoints import is_insecure
from dialer.licences import problems, runtime_closure
from dialer.privacy import PRIVATE_DIR, PRIVATE_FILE
from dialer.store import Engine


class Area(StrEnum):
    FILES = "files"
    ENDPOINTS = "endpoints"
    USERS = "users"
    TLS = "tls"
    SIP = "sip"
    LICENCE = "licence"


@dataclass(frozen=True)
class Finding:
    area: Area
    what: str
    fix: str


def loose_modes(roots: list[Path], limit: int = 50) -> list[Finding]:
    """Files readable or writable by group/others, and directories others may enter, under the data roots."""
    out: list[Finding] = []
    for root in roots:
        if not root.exists():
            continue
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            try:
                mode = stat.S_IMODE(path.lstat().st_mode)
            except OSError:
                continue
            if path.is_symlink():
                continue
            want = PRIVATE_DIR if path.is_dir() else PRIVATE_FILE
            if mode & ~want & 0o077:
                out.append(Finding(Area.FILES, f"{path} is mode {mode:04o}",
                                   f"chmod {want:04o} {path} (tsunagu creates its files {PRIVATE_FILE:04o} in "
                                   f"{PRIVATE_DIR:04o} directories; older files keep their mode)"))
            if len(out) >= limit:
                return out
    return out


def data_roots(cfg: Config, db_path: Path | None) -> list[Path]:
    roots = [Path(cfg.telephony.recordings_dir), Path(cfg.database.journal_dir), Path(cfg.schedules.list_out)]
    if db_path is not None:
        roots += [db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")]
        roots.append(db_path.parent / "table_cache")
    seen: list[Path] = []
    for r in roots:
        if r not in seen:
            seen.append(r)
    return seen


def endpoint_findings(cfg: Config) -> list[Finding]:
    out = []
    for what, url in (("[outcomes] webhook_url", cfg.outcomes.webhook_url), ("[sms] endpoint", cfg.sms.endpoint),
                      ("[sms] status_url", cfg.sms.status_url)):
        if url and is_insecure(url):
            out.append(Finding(Area.ENDPOINTS, f"{what} is plain http ({url}), allowed for loopback testing",
                               "use an https:// endpoint and remove allow_insecure_loopback before going live"))
    return out


def bundled_openssl() -> str | None:
    """The OpenSSL the installed pjsua2 carries, when it is the PyPI wheel's own (1.0.2k: end of life 2019)."""
    try:
        files = distribution("pjsua2-python").files or []
    except PackageNotFoundError:
        return None
    for f in files:
        name = Path(str(f)).name
        if name.startswith(("libcrypto", "libssl")) and ".so.1.0" in name:
            return name.split(".so.", 1)[1]
    return None


def sip_findings(cfg: Config) -> list[Finding]:
    out = []
    ssl = bundled_openssl()
    if ssl is not None:
        out.append(Finding(Area.TLS, f"pjsua2 is the PyPI wheel with its bundled OpenSSL {ssl} (unsupported since 2019)",
                           "install the site build (`scripts/build-pjsua2`, linked against the system OpenSSL 3)"))
    for t in cfg.trunks:
        if not t.sandbox and not t.proxy.startswith("sips:"):
            out.append(Finding(Area.SIP, f"trunk {t.name}: SIP over {t.transport} without TLS (signalling and "
                                         "caller ID in the clear)",
                               "use a sips: proxy where the carrier offers TLS, or a private line / VPN to it"))
    return out


def user_findings(engine: Engine | None) -> list[Finding]:
    from dialer.service.auth import has_users

    if engine is None:
        return []
    if not has_users(engine):
        return [Finding(Area.USERS, "no users: every console and the monitor run as the local admin",
                        "add users with `dialer user add LOGIN --role admin|supervisor|agent`")]
    return []


def licence_findings() -> list[Finding]:
    return [Finding(Area.LICENCE, line, "check its terms against GPL-3.0-or-later before distributing a build")
            for line in problems(runtime_closure())]


def examine(cfg: Config, engine: Engine | None, db_path: Path | None) -> list[Finding]:
    return [*loose_modes(data_roots(cfg, db_path)), *endpoint_findings(cfg), *user_findings(engine),
            *sip_findings(cfg), *licence_findings()]


def umask_is_private() -> bool:
    current = os.umask(0o077)
    os.umask(current)
    return current & 0o077 == 0o077
