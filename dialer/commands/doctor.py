"""`dialer doctor`: what this install leaves open (file modes, http endpoints, the local-admin console, the
pjsua2 wheel's OpenSSL, SIP without TLS, dependency licences), each with its fix; exit 1 if anything is."""

from __future__ import annotations

import argparse

from dialer.commands._common import Subcommands, add_config_arg, config_from


def _run(args: argparse.Namespace) -> int:
    from dialer.doctor import examine
    from dialer.store.db import resolve_url
    from dialer.store.opening import open_existing, sqlite_path

    cfg = config_from(args)
    url = resolve_url(cfg.database.url)
    path = sqlite_path(url)
    engine = None
    if path is None or path.exists():
        engine, _ = open_existing(cfg.database.url)
    findings = examine(cfg, engine, path)
    for f in findings:
        print(f"{f.area.value:9}  {f.what}\n           fix: {f.fix}")
    print(f"{len(findings)} thing(s) open" if findings else "nothing open")
    return 1 if findings else 0


def register(sub: Subcommands) -> None:
    p = sub.add_parser("doctor", help="list what this install leaves open (modes, http, users, TLS, licences)",
                       description="Reads the config, the data files and the installed packages; changes "
                                   "nothing. Exit 1 when anything is open.")
    add_config_arg(p)
    p.set_defaults(func=_run)
