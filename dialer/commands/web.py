"""`dialer web`: the browser console for agents and the floor for supervisors (see README: Browser)."""

from __future__ import annotations

import argparse

from dialer.commands._common import Subcommands, add_config_arg, config_from
from dialer.errors import UserError


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from dialer.service.auth import has_users
    from dialer.store.opening import open_existing
    from dialer.web.app import create_app

    cfg = config_from(args)
    engine, where = open_existing(cfg.database.url)
    if not has_users(engine):
        # a browser page reachable by others must never run as the local admin
        raise UserError(f"no users in the store {where}: add one first (`dialer user add LOGIN --role admin`)")
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not args.behind_tls_proxy:
        raise UserError(f"refusing to serve on {args.host} in the clear: bind to 127.0.0.1 and put a TLS proxy in "
                        "front (README: Browser), then pass --behind-tls-proxy")
    # cookies are Secure unless this is plain http on loopback (a browser on the same machine, or tests)
    secure = args.behind_tls_proxy or not args.insecure_loopback_cookies
    app = create_app(cfg, engine, secure_cookies=secure, push_s=args.push_s)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=args.behind_tls_proxy,
                forwarded_allow_ips="127.0.0.1" if args.behind_tls_proxy else None, server_header=False)
    return 0


def register(sub: Subcommands) -> None:
    p = sub.add_parser("web", help="browser console (agents) and floor/wallboard (supervisors)",
                       description="Serves the browser pages on 127.0.0.1 by default; put a TLS proxy in front "
                                   "for other machines (README: Browser).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--behind-tls-proxy", action="store_true",
                   help="a TLS-terminating proxy on this host forwards to us (trust its X-Forwarded-* headers)")
    p.add_argument("--insecure-loopback-cookies", action="store_true",
                   help="plain-http cookies for a browser on this machine (tests); never with a proxy")
    p.add_argument("--push-s", type=float, default=0.3, help="how often live views are re-checked (seconds)")
    add_config_arg(p)
    p.set_defaults(func=_run)
