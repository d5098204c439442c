"""The dialer's rules, pure: no SQL, no config files, no clock (callers pass the time).

| module | holds |
|---|---|
| `vocabulary` | one `StrEnum` per closed set of words (modes, outcomes, dispositions, entry/agent states, ...) |
| `legal` | the law's numbers: 08:00-21:00, 3 %, 15 s ring, 72 h lock |
| `policy` | `CampaignPolicy`: a campaign's rules, parsed once from config and frozen |
| `calling_hours` | contact time zones, holidays, the daily window |
| `retry` | when and on which number to try again |
| `entry` | a call-list entry's life: dialable or why not; what a result or a disposition does |
| `callbacks` | reading and checking a promised callback time against the campaign's hours |
| `dtmf` | the softphone disposition codes |
| `durations` | '30m' -> seconds |
"""
