"""Words the views show for the store's codes (outcomes, refusal reasons, states, pause reasons), marked for
translation; `label()` translates at render time in the UI's language. Japanese uses supervisors' terms."""

from __future__ import annotations

from dialer.i18n import N_, _

OUTCOMES = {"sale": N_("sale"), "upsell": N_("upsell"), "cross_sell": N_("cross-sell"),
            "callback": N_("callback"), "refused": N_("refused"), "dnc": N_("do-not-call"),
            "wrong_number": N_("wrong number"), "machine": N_("answering machine"),
            "machine_message_left": N_("message left"), "no_interest": N_("no interest"), "other": N_("other"),
            "abandoned": N_("abandoned"), "no_answer": N_("no answer"), "busy": N_("busy"),
            "congestion": N_("congestion"), "invalid": N_("invalid number"), "failed": N_("failed"),
            "answered": N_("answered"), "interrupted": N_("interrupted"),
            # (issue 24) the network announced the number; 非通知拒否; a codec we did not offer
            "unreachable": N_("unreachable (network announcement)"), "anonymous_rejected": N_("refused: number withheld"),
            "failed_codec": N_("codec mismatch"), "bad_number": N_("bad number (reported to the CRM)"),
            "in_flight": N_("in flight")}  # (issue 27) a report's attempts without an outcome yet
REFUSALS = {"price": N_("price"), "no_effect_felt": N_("no effect felt"), "still_has_stock": N_("still has stock"),
            "switched_product": N_("switched product"), "too_many_calls": N_("too many calls"),
            "instructions_unclear": N_("instructions unclear"), "health_or_life_change": N_("health or life change"),
            "dislikes_phone_sales": N_("dislikes phone sales"), "other": N_("other")}
STATES = {"on_call": N_("on call"), "reserved": N_("reserved"), "wrap_up": N_("wrap-up"), "ready": N_("ready"),
          "paused": N_("paused"), "unavailable": N_("unavailable"), "unreachable": N_("unreachable"),
          "logged_out": N_("logged out"), "refusing": N_("refusing calls"),
          "idle": N_("idle"), "preview": N_("preview")}
PAUSES = {"break": N_("break"), "lunch": N_("lunch"), "meeting": N_("meeting"), "training": N_("training"),
          "admin": N_("admin"), "other": N_("other")}
SEGMENTS = {"dormant": N_("dormant"), "pre_churn": N_("pre-churn"), "upsell": N_("upsell"),
            "cross_sell": N_("cross-sell"), "callback": N_("callback")}

SKIPS = {"not_now": N_("not now"), "bad_data": N_("bad data"), "contacted_recently": N_("contacted recently"),
         "other": N_("other"), "": N_("next")}

CAMPAIGN_STATES = {"running": N_("running"), "paused": N_("paused"), "stopped": N_("stopped"),
                   "draining": N_("draining")}
MODES = {"preview": N_("preview"), "progressive": N_("progressive"), "power": N_("power"),
         "predictive": N_("predictive")}
# the abandon windows every figure is shown for (reports.abandon_windows keys)
WINDOWS = {"now": N_("now"), "1h": N_("last hour"), "24h": N_("last 24 h"), "window": N_("window")}

_TABLES = {"skip": SKIPS, "outcome": OUTCOMES, "refusal": REFUSALS, "state": STATES, "pause": PAUSES,
           "segment": SEGMENTS, "campaign_state": CAMPAIGN_STATES, "mode": MODES, "window": WINDOWS}


def label(kind: str, code: str) -> str:
    """The word for a code in the UI's language; unknown codes show as they are."""
    word = _TABLES[kind].get(code)
    return _(word) if word else code


def state_counts(counts: dict[str, int]) -> str:
    """Agents by state in words of the UI's language ("ready 8, on call 2"), in the monitor's order: the
    headless runner's status line printed the enum's repr before (issue 27)."""
    order = list(STATES)
    items = sorted(((str(k), n) for k, n in counts.items() if n), key=lambda kv: (
        order.index(kv[0]) if kv[0] in order else len(order), kv[0]))
    return ", ".join(f"{label('state', k)} {n}" for k, n in items) or _("none")
