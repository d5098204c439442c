"""`dialer telephony capacity`: how many lines this host can carry with the installed pjsua build."""

from __future__ import annotations

import argparse
import json

from dialer.commands._common import add_config_arg, config_from, group
from dialer.errors import UserError


def _capacity(args: argparse.Namespace) -> int:
    from dialer.telephony import Telephony, TelephonyError
    from dialer.telephony.capacity import host_capacity

    cfg = config_from(args)
    # one worker is enough to read the build's calls per process (pjsua_call_get_max_count)
    tc = cfg.telephony.model_copy(update={"lines": 1, "workers": 1})
    tel = Telephony(cfg.model_copy(update={"telephony": tc, "trunks": []}))
    try:
        tel.start()
        per_process = tel.worker_capacity
    except TelephonyError as exc:
        raise UserError(f"cannot start a telephony worker to measure: {exc}") from None
    finally:
        tel.stop()
    h = host_capacity(per_process, cfg.telephony.agent_leg_ratio, configured=cfg.telephony.max_lines_per_host)
    over = cfg.telephony.lines > h.max_lines
    if args.json:
        print(json.dumps({"cores": h.cores, "calls_per_process": h.calls_per_process,
                          "lines_per_process": h.lines_per_process, "max_lines_per_host": h.max_lines,
                          "source": h.source, "configured_lines": cfg.telephony.lines, "over": over}))
    else:
        print(h.describe())
        print(f"configured lines = {cfg.telephony.lines}"
              + (f": MORE than this host carries; telephony will clamp to {h.max_lines}" if over else ": fits"))
    return 1 if over else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = group(sub, "telephony", "telephony: what this host can carry")
    p = g.add_parser("capacity", help="lines this host can carry (cores x the pjsua build's calls per process)",
                     description="Start one telephony worker to read the pjsua build's calls per process, then "
                                 "print the most lines this host should carry (or [telephony] max_lines_per_host). "
                                 "Exits 1 when the configured lines are more than that.")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_capacity)
