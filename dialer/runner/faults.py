"""Agents' phones that fail: an agent leg that fails or dies under a customer, refusing phones and their probes,
OPTIONS reachability (issues 13 and 25)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dialer.domain.vocabulary import AgentState, AttemptState, RunnerEvent
from dialer.runner.state import Live, utc
from dialer.telephony import CallEvent
from dialer.telephony.events import EventKind

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class AgentFaults:
    """Why: a phone that does not answer, refuses or drops must never cost the customer (another agent takes
    them) and must leave routing until it proves it takes calls again; all the ways in and out of that live here."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def on_agent_failed(self, call: Live, ev: CallEvent) -> None:
        if call.agent_id is not None and call.standby:
            # the pause stands: back to it (not ready, not checked), and not offered another call in it
            self.r._event("agent_standby_failed", f"agent leg to agent {call.agent_id} (on standby) failed: "
                                                f"{ev.detail}; back to paused", "warning")
            at = utc(ev.at)
            if self.r.board.set_state(call.agent_id, AgentState.PAUSED, at) == AgentState.PAUSED:
                self.r.standby_failed[call.agent_id] = at
            call.agent_id, call.standby = None, False
        elif call.agent_id is not None:
            # (issue 13) 404/480/410/604: the phone is not registered: unreachable until OPTIONS answers
            gone = ev.sip_status in (404, 410, 480, 604)
            if not gone and ev.sip_status is not None and ev.sip_status >= 400:
                self.agent_refused(call.agent_id, ev)
            else:
                self.r._event("agent_unreachable" if gone else "agent_unavailable",
                              f"agent leg to agent {call.agent_id} failed: {ev.detail}", "warning")
                self.r.board.set_state(call.agent_id, AgentState.UNREACHABLE if gone else AgentState.UNAVAILABLE,
                                       utc(ev.at))
            call.agent_id = None
        if call.attempt_id not in self.r.waiting:
            self.r.waiting.insert(0, call.attempt_id)
        self.r.routing.route_waiting(ev.at)

    def on_agent_lost(self, call: Live, ev: CallEvent) -> None:
        """(issue 25) The agent's leg died under the customer (answered and dropped at once, or went silent): the
        customer is still up, unbridged, with a fresh connect limit. Another ready agent takes them; the lost
        agent is out of routing (nailed: until the leg is up again; per-call: as a phone that did not answer)."""
        lost = call.agent_id if call.agent_id is not None else ev.agent_id
        a = self.r.board.agents.get(lost) if lost is not None else None
        login = a.login if a is not None else str(lost)
        self.r._event(RunnerEvent.AGENT_LEG_LOST, f"attempt {call.attempt_id}: agent {login}: {ev.detail}; the "
                                                "customer is handed to another agent", "warning")
        self.r._count("agent_lost")
        call.notes.append(f"agent {login} lost: {ev.detail}")
        if a is not None and a.state in (AgentState.ON_CALL, AgentState.RESERVED):
            self.r.board.set_state(a.id, AgentState.UNREACHABLE if self.r.legs is not None else AgentState.UNAVAILABLE,
                                   utc(ev.at), force=True)
        call.agent_id, call.connected, call.standby = None, None, False
        self.r.writes.update_attempt(call.attempt_id, state=AttemptState.ANSWERED.value)
        if call.attempt_id not in self.r.waiting:
            self.r.waiting.insert(0, call.attempt_id)
        self.r.routing.route_waiting(ev.at)

    def probe_refusing(self) -> None:
        """(issue 25) OPTIONS 200 is no proof, a real call is: each `refusing_probe_s` a refusing agent's phone is
        called once (a session-leg call, no auto-answer: the phone rings). Nailed legs need none: their own
        re-dial after a drop is that call."""
        every = self.r.cfg.telephony.refusing_probe_s
        login = getattr(self.r.tel, "agent_login", None)
        if every <= 0 or self.r.legs is not None or not callable(login):
            return
        now = time.monotonic()
        for a in self.r.board.agents.values():
            if a.state != AgentState.REFUSING:
                self.r.next_probe.pop(a.id, None)
                continue
            due = self.r.next_probe.setdefault(a.id, now + every)
            if a.id not in self.r.probing and now >= due:
                self.r.probing[a.id] = False
                self.r.next_probe[a.id] = now + every
                login(a.id, a.sip_uri)

    def on_probe(self, ev: CallEvent) -> None:
        """A probe call's news: answered -> hang it up, and once it is gone the agent is ready; refused or not
        answered -> stop it (no re-dial) and wait for the next probe."""
        aid = ev.agent_id
        if aid is None or aid not in self.r.probing:
            return
        if ev.kind == EventKind.AGENT_LEG_UP:
            self.r.probing[aid] = True
            self.r.tel.agent_logout(aid)  # agent_leg_down "logged out" follows once the leg is gone
            return
        answered = self.r.probing.pop(aid)
        self.r.tel.agent_logout(aid)  # a refused probe is not dialled again by the leg's own back-off
        a = self.r.board.agents.get(aid)
        if answered and a is not None and a.state == AgentState.REFUSING:
            self.r._event(RunnerEvent.AGENT_BACK, f"agent {a.login}: the phone took a call again; ready")
            self.r.board.set_state(aid, AgentState.READY, utc(ev.at))
            self.r.next_probe.pop(aid, None)
        else:
            self.r._count("probe_refused")

    def agent_refused(self, agent_id: int, ev: CallEvent) -> None:
        """(issue 25) The phone said no to a real call (486/603/600 -- DND behind a PBX, which still answers
        OPTIONS 200): the agent is `refusing` -- out of routing and of the pacer's agents at once, and no OPTIONS
        answer brings them back; the agent's own `r` on the console (or logging in again) does."""
        a = self.r.board.agents.get(agent_id)
        login = a.login if a is not None else str(agent_id)
        self.r._event(RunnerEvent.AGENT_REFUSING, f"agent {login}: the phone refused a call ({ev.sip_status} "
                                                f"{ev.detail}); out of routing until the agent is ready again "
                                                "on the console or the phone takes a call", "warning")
        self.r._count("agent_refused")
        if a is not None and a.state in (AgentState.RESERVED, AgentState.READY):  # not if the console moved them
            self.r.board.set_state(agent_id, AgentState.REFUSING, utc(ev.at), force=True)

    def check_agents(self, *, wait: bool) -> None:
        """OPTIONS to the phones of idle agents (results come back as agent_reachable/unreachable events)."""
        self.r.last_agent_check = self.r.mono()
        check = getattr(self.r.tel, "check_agents", None)
        if not self.r.cfg.telephony.agent_check_s or not callable(check) or self.r.legs is not None:
            return  # nailed-up legs: the agent's session leg itself says whether the phone is there
        uris = {a.id: a.sip_uri for a in self.r.board.agents.values()
                if a.state in (AgentState.READY, AgentState.UNAVAILABLE, AgentState.UNREACHABLE)}
        check(uris, wait=wait)

    def reachability(self, ev: CallEvent) -> None:
        a = self.r.board.agents.get(ev.agent_id) if ev.agent_id is not None else None
        if a is None:
            return
        if ev.kind == EventKind.AGENT_UNREACHABLE and a.state in (AgentState.READY, AgentState.UNAVAILABLE):
            self.r._event("agent_unreachable", f"agent {a.login}: {ev.detail}", "warning")
            self.r.board.set_state(a.id, AgentState.UNREACHABLE, utc(ev.at))
        elif ev.kind == EventKind.AGENT_REACHABLE and a.state in (AgentState.UNREACHABLE, AgentState.UNAVAILABLE):
            self.r._event("agent_reachable", f"agent {a.login} reachable again: {ev.detail}")
            self.r.board.set_state(a.id, AgentState.READY, utc(ev.at))
