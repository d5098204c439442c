"""`dialer config check`: validate a config file before a campaign trips over it."""

from __future__ import annotations

import argparse

from dialer.config import Config, ConfigError, load_config, secret_problems


def opening_problems(cfg: Config) -> tuple[list[str], list[str]]:
    """(errors, warnings) about what the legally required opening lines (特定商取引法 §16) need: the business
    name and complaints phone, and each agent's display name. Errors with a real trunk, warnings with sandbox
    trunks only (they reach no real person)."""
    problems = [f"{k} is not set (named in every call's opening, 特定商取引法 §16)" for k in cfg.business.missing()]
    problems += [f"agent {a.login!r} has no name (the opening introduces the agent by name)"
                 for a in cfg.agents if not a.name.strip()]
    real = [t.name for t in cfg.trunks if not t.sandbox]
    return (problems, []) if real else ([], problems)


def caller_id_problems(cfg: Config) -> list[str]:
    """(issue 24) A real trunk must present a number: without one the carrier shows 非通知 (or the account name),
    and Japanese customers refuse or ignore such calls. Each campaign on a real trunk needs its own `caller_id`
    or the trunk's `caller_id` / `from_user`."""
    out: list[str] = []
    for t in cfg.trunks:
        if t.sandbox:
            continue
        users = [c for c in cfg.campaigns if c.trunk == t.name or not c.trunk and t is cfg.trunks[0]]
        if t.caller_id.strip() or t.from_user.strip():
            continue
        if not users:
            out.append(f"trunk {t.name!r} has no caller_id (from_user): calls would go out without a number")
        for c in users:
            if not c.caller_id.strip():
                out.append(f"campaign {c.name!r} on trunk {t.name!r} presents no number: set caller_id on the "
                           "campaign or the trunk")
    return out


def notice_warnings(cfg: Config) -> list[str]:
    """(issue 29) A recording notice on a campaign that records nothing is still played, but says something
    untrue: the operator probably meant record_calls = true."""
    from dialer.i18n import _

    return [_("campaign {name!r}: recording_notice is set but record_calls is false: the notice is played on "
              "calls that are not recorded").format(name=c.name)
            for c in cfg.campaigns if c.recording_notice and not c.record_calls]


def program_problems(cfg: Config) -> list[str]:
    """Build what the programs build from the config (each campaign's rules, the scheduler's jobs) and return
    what fails: a config `check` passes is one `campaign run` and `schedule show` accept."""
    from dialer.domain.policy import CampaignPolicy
    from dialer.schedule import job_specs

    out: list[str] = []
    for cc in cfg.campaigns:
        try:
            CampaignPolicy.of(cc)
        except ValueError as exc:
            out.append(f"campaign {cc.name!r}: {exc}")
    try:
        job_specs(cfg, "")
    except (ConfigError, ValueError) as exc:
        out.append(str(exc).removeprefix(f"{cfg.source}: "))
    return out


def _check(args: argparse.Namespace) -> int:
    cfg = load_config(args.path)
    secret_errors, notes = secret_problems(cfg)
    opening, warnings = opening_problems(cfg)
    notices = notice_warnings(cfg)
    real = ", ".join(t.name for t in cfg.trunks if not t.sandbox)
    errors = secret_errors + [f"with the real trunk(s) {real}: {e}" for e in opening] + program_problems(cfg) \
        + caller_id_problems(cfg)
    print(
        f"{cfg.source}: {'NOT OK' if errors else 'OK'} — {len(cfg.trunks)} trunk(s), {len(cfg.agents)} agent(s), "
        f"{len(cfg.campaigns)} campaign(s)"
    )
    for note in notes:
        print(f"  note: {note}")
    for w in warnings:
        print(f"  warning: {w} (only sandbox trunks are configured)")
    for w in notices:
        print(f"  warning: {w}")
    if errors:
        raise ConfigError(f"{cfg.source}: " + "; ".join(errors))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = sub.add_parser("config", help="configuration: validate a config file")
    g.set_defaults(_parser=g)
    gs = g.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    p = gs.add_parser("check", help="validate a config file and explain any problem")
    p.add_argument("path", nargs="?", help="config file (default: $TSUNAGU_CONFIG or config/tsunagu.toml)")
    p.set_defaults(func=_check)
