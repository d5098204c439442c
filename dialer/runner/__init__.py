"""The feature handlers of the campaign runner (dialer.campaign.CampaignRunner, the tick loop).

One module per concern, each a class holding a reference to the runner (whose attributes are the one copy of
the live state: calls in flight, the waiting queue, wrap-ups, reservations):

- `state`: what is kept per call and per wrap-up (Live, Wrap), how late the loop runs (TickLag), the constants;
- `calls`: telephony events applied to the calls in flight (ringing ... hangup, and the end of a call);
- `routing`: answered calls to agents (preview agent, ready agent, standby);
- `faults`: agents' phones that fail, refuse or drop, their probes and OPTIONS reachability;
- `stopping`: drain, hard stop, shutdown and the last writes;
- `previews`: preview mode's reservations and the agents' dial/skip orders;
- `wrapup`: keypad and console dispositions (callbacks included) and the end of wrap-up;
- `commands`: the manager's commands;
- `writes`: the store writes a live call needs, journalled during a store outage;
- `report`: campaign events and the published status.

The hooks a multi-node runner overrides (`_event`, `publish`, `apply_commands`, `_apply_command`,
`_apply_disposition`, `_after_stop`, `dial`, `place`'s `_attempt_fields`/`_dial_token`/`_may_dial`,
`_callback_agent`) stay on the runner; handlers call them through it.
"""
