"""The owner of a host's telephony, above the campaigns (issue 30, first step).

Why it exists: a campaign runner used to build its own `Telephony` (`self.tel = telephony or Telephony(cfg)`),
so the workers, the trunks and every SIP message belonged to one campaign and nothing above the campaigns
could ever receive a call that belongs to none -- a customer calling back the number we presented (折り返し).
The switchboard is that owner: the process that runs campaigns (`dialer campaign run`, a node, the demo) makes
it, it builds the `Telephony` (workers, trunks) and hands it to each runner it attaches; the runner dials,
routes and hangs up through it but never constructs or owns it.

Today one switchboard serves one campaign at a time (a node keeps one per campaign, on the campaign's own
SIP/RTP port range, as before): the events of one `Telephony` are read by the loop of the one runner attached
(`Telephony` is not thread-safe: one thread drives it). Serving several campaigns from one `Telephony` needs the
events dispatched by owner (attempt id -> campaign, agent id -> campaign, trunk news -> all), which is the next
step; `attach` refuses a second campaign until then instead of letting two loops read one event stream.

`unowned` is where a call that belongs to no campaign is delivered (see its docstring).
"""

from __future__ import annotations

import logging
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING

from dialer.telephony.events import CallEvent

if TYPE_CHECKING:
    from dialer.config import Config
    from dialer.telephony.supervisor import Telephony

log = logging.getLogger(__name__)


class Switchboard:
    """Builds the host's `Telephony` once, starts it when the first runner runs, stops it when the last one leaves
    (or when the owner closes it), and is where calls that belong to no campaign arrive."""

    def __init__(self, cfg: Config, *, telephony: Telephony | None = None) -> None:
        self.cfg = cfg
        self._tel: Telephony | None = telephony
        self._stopped = False
        self.campaigns: list[str] = []
        # delivered to `unowned`, the latest kept for whoever takes them later
        self.unowned_events: deque[CallEvent] = deque(maxlen=1000)

    @property
    def tel(self) -> Telephony:
        """The telephony the attached runners share (built on first use: building it starts no process)."""
        if self._tel is None:
            from dialer.telephony.supervisor import Telephony

            self._tel = Telephony(self.cfg)
        return self._tel

    def attach(self, campaign: str) -> Telephony:
        """Hand CAMPAIGN's runner the telephony it dials through. A telephony stopped by an earlier runner (a node
        restarting a campaign after a failure) is replaced by a fresh one, as each runner used to build its own."""
        if self.campaigns and campaign not in self.campaigns:
            raise RuntimeError(f"switchboard already serves campaign {self.campaigns[0]!r}: one campaign per "
                               "switchboard until events are dispatched by owner (issue 30)")
        if self._stopped:
            self._tel, self._stopped = None, False
        if campaign not in self.campaigns:
            self.campaigns.append(campaign)
        return self.tel

    def start(self) -> None:
        """Start the workers (nothing if they run already). Called by a runner's `run` after it claimed its
        campaign, so a campaign another runner holds never starts workers."""
        self.tel.start()

    def detach(self, campaign: str) -> None:
        """CAMPAIGN's runner is leaving; the last one out stops the telephony (every call left is hung up)."""
        if campaign in self.campaigns:
            self.campaigns.remove(campaign)
        if not self.campaigns:
            self.stop()

    def stop(self) -> None:
        """Hang up everything, stop the workers. Safe to call twice, or when nothing was started."""
        if self._tel is not None and not self._stopped:
            self._stopped = True
            self._tel.stop()

    def unowned(self, ev: CallEvent) -> None:
        """Where a call that belongs to no campaign is delivered: this is the hook issue 30's inbound fills.

        A runner hands up every `incoming` event (an INVITE it did not place: dialer/runner/calls.py); today the
        campaign workers answer an incoming INVITE with 603 themselves and report none. The inbound step makes the
        INVITE (caller, called DID) such an event; from here the switchboard matches the caller to a customer and the
        most recent outbound attempt and offers the call to a campaign with a ready agent (the agent who last
        spoke to the customer first), or queues it. Until then an event handed here is logged (no number: the
        detail is already masked) and kept in `unowned_events`, never dropped silently."""
        self.unowned_events.append(ev)
        log.warning("switchboard: %s event belongs to no campaign: %s", ev.kind, ev.detail)

    def __enter__(self) -> Switchboard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["Switchboard"]
