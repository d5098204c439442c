"""Routing answered calls to agents: the preview agent first, then a ready agent of the segment, then standby."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialer.agents import AgentView
from dialer.domain.vocabulary import AgentState, RunnerEvent
from dialer.runner.state import utc

if TYPE_CHECKING:
    from dialer.campaign import CampaignRunner


class Routing:
    """Why: an answered customer waits in `runner.waiting` until an agent's leg is set up; who takes them (the
    agent who dialled in preview, a ready agent, an agent who paused after the call was dialled) is one rule."""

    def __init__(self, r: CampaignRunner) -> None:
        self.r = r

    def route_waiting(self, now: float) -> None:
        for attempt_id in list(self.r.waiting):
            call = self.r.live.get(attempt_id)
            if call is None or call.abandoned:
                self.r.waiting.remove(attempt_id)
                continue
            if call.agent_id is not None:
                continue
            own = self.r.board.agents.get(call.preview_agent) if call.preview_agent is not None else None
            if own is not None and own.id not in call.tried_agents and own.state in (AgentState.RESERVED,
                                                                                       AgentState.READY):
                agent: AgentView | None = own
            else:
                agent = self.r.board.choose(call.segment)
            standby = agent is None
            if agent is None:  # nobody ready: someone who paused after this call was dialled takes it
                agent = self.r.board.standby(utc(call.dialed), utc(now), self.standby_window_s(),
                                             exclude=call.tried_agents | self.standby_spent())
            if agent is None:
                continue  # a later call may have been dialled before somebody's pause
            if agent.state != AgentState.RESERVED:  # a preview agent is reserved from its dial on
                try:
                    self.r.board.set_state(agent.id, "reserved", utc(now), attempt_id=attempt_id)
                except ValueError as exc:  # the console moved the agent since this tick's refresh
                    self.r._event("agent_moved", f"attempt {attempt_id} not routed: {exc}", "warning")
                    self.r.board.refresh()
                    continue
            if call.tried_agents:  # (issue 25) an agent's phone failed this customer: another one takes them
                self.r._event(RunnerEvent.AGENT_REROUTED, f"attempt {attempt_id} re-routed to agent {agent.login} "
                                                        f"({len(call.tried_agents)} agent(s) failed before)")
                self.r._count("rerouted")
            call.agent_id = agent.id
            call.tried_agents.add(agent.id)
            call.standby = standby
            if standby:
                self.r._event("agent_standby", f"agent {agent.login} on standby took attempt {attempt_id}, "
                                             "dialled before their pause (back to the pause after the call)")
            self.r.writes.update_attempt(attempt_id, agent_id=agent.id)
            self.r.tel.connect_agent(attempt_id, agent.id, agent.sip_uri, rescue_s=self.r.cfg.telephony.agent_rescue_s,
                                     silence_s=self.r.cfg.telephony.agent_silence_s)

    def standby_window_s(self) -> float:
        """How long a paused agent stays on standby: no call dialled before the pause can still wait longer
        (ring timeout, the AMD's listening when on, then the connect limit)."""
        amd = self.r.cc.amd_budget_s if self.r.cc.amd == "detect" else 0.0
        return float(self.r.policy.ring_timeout_s + amd + self.r.policy.connect_limit_s)

    def standby_spent(self) -> set[int]:
        """Agents whose standby call failed to reach them, still in the pause the runner put them back in."""
        for agent_id, since in list(self.r.standby_failed.items()):
            a = self.r.board.agents.get(agent_id)
            if a is None or a.state != AgentState.PAUSED or a.state_since != since:
                del self.r.standby_failed[agent_id]
        return set(self.r.standby_failed)
