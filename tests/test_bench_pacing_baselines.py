"""The bench's baselines: a faithful VICIdial (hand-checked trace), the fixed-ratio search, AMD errors."""

from __future__ import annotations

from typing import Any

import pytest

import bench.pacing.run as run
from bench.pacing.policies import VicidialPolicy
from bench.pacing.scenario import scenario_from_dict
from bench.pacing.sim import ON_CALL, PAUSED, READY, World

SC = scenario_from_dict({"name": "vici", "agents": 10, "shift_s": 3600, "abandon_limit": 0.03,
                         "outcomes": {"human": 0.3, "machine": 0.15, "busy": 0.1}})


class FakeSim:
    """Just the fields VICIdial's queries read: agent states, LIVE calls waiting, lines in progress."""

    def __init__(self, ready: int, on_call: int, paused: int, waiting: int = 0, ringing: int = 0):
        self.state = [READY] * ready + [ON_CALL] * on_call + [PAUSED] * paused
        self.ready = set(range(ready))
        self.on_call_n = on_call
        self.waiting = dict.fromkeys(range(waiting), 0.0)
        self.ringing = dict.fromkeys(range(ringing), 0.0)
        self.last_dialled = 0.0

    def logged(self) -> int:
        return len(self.ready) + self.on_call_n

    def in_progress(self) -> int:
        return len(self.ringing) + len(self.waiting) + self.on_call_n


def _tick(v: VicidialPolicy, sim: FakeSim, start: int, end: int) -> list[int]:
    return [v.decide(sim, float(t)) for t in range(start, end)]  # type: ignore[arg-type]


def test_level_moves_every_15_s_by_the_differential() -> None:
    # 4 ready, 0 waiting, 10 agents in total (2 paused count: the script tallies every live agent)
    v = VicidialPolicy(SC)
    sim = FakeSim(ready=4, on_call=4, paused=2)
    _tick(v, sim, 0, 15)
    assert v.level == 1.0                      # no update before the 15th loop
    _tick(v, sim, 15, 16)
    assert v.level == pytest.approx(1.4)       # 1.0 x (1 + (4 - 0) / 10)
    _tick(v, sim, 16, 30)
    assert v.level == pytest.approx(1.4)
    _tick(v, sim, 30, 31)
    assert v.level == pytest.approx(1.96)      # 1.4 x 1.4


def test_intensity_skews_up_and_down() -> None:
    up = VicidialPolicy(SC, intensity=40)
    _tick(up, FakeSim(ready=4, on_call=4, paused=2), 0, 16)
    assert up.level == pytest.approx(1.56)     # 1 + 40 % x 1.4
    down = VicidialPolicy(SC, intensity=40, start_level=2.0)
    _tick(down, FakeSim(ready=0, on_call=8, paused=2, waiting=2), 0, 16)
    assert down.level == pytest.approx(1.76)   # 2 x (1 - 20 % x |0.4 - 1|)


def test_daily_brake_counts_dials_not_answers() -> None:
    """51 dials, 10 answers, 1 drop (10 % of answers): the brake trips on dials (> 50), as in the script."""
    for dials, tripped in ((50, False), (51, True)):
        v = VicidialPolicy(SC, start_level=2.5)
        for _ in range(dials):
            v.on_dial(0.0)
        for _ in range(9):
            v.on_connect(1.0, 0.3)
        v.sim = FakeSim(0, 0, 0)  # type: ignore[assignment]
        v.on_abandon(2.0, 2.0)
        v.next_loop = 1.0          # the first drop refresh (at t = 0) saw nothing yet; next one at 60 s
        v.drop_updater = 60
        sim = FakeSim(ready=1, on_call=9, paused=0)
        _tick(v, sim, 1, 17)       # refresh drops at t = 1, level at the 16th loop (t = 16)
        assert (v.level == 1.0) is tripped, dials


def test_brake_methods() -> None:
    def braked(method: str, hhmm: int) -> float:
        sc = scenario_from_dict({"agents": 10, "shift_s": 3600, "shift_start_hhmm": hhmm})
        v = VicidialPolicy(sc, method=method, start_level=2.0)
        v.stats = (10, 0.0, 100, 5.0)   # 100 dials today, drops 5 % of answers
        v.samples.extend([(2, 0, 10)] * 15)
        v._calculate_dial_level(0.0)
        return v.level
    assert braked("ADAPT_HARD_LIMIT", 900) == 1.0
    assert braked("ADAPT_AVERAGE", 900) == pytest.approx(1.2)          # 2 x 1.2 / 2
    assert braked("ADAPT_TAPERED", 900) == pytest.approx(2.4)          # 1200 hhmm left > 1000: rate 1
    assert braked("ADAPT_TAPERED", 1630) == pytest.approx(2.4 * 0.47)  # (2100 - 1630) / 1000
    assert braked("ADAPT_TAPERED", 2130) == 1.0                         # past adaptive_latest_server_time


def test_one_minute_rule_halves_on_dials() -> None:
    v = VicidialPolicy(SC, start_level=2.0)
    v.stats = (21, 51.0, 30, 0.0)
    v.samples.extend([(0, 0, 10)] * 15)
    v._calculate_dial_level(0.0)
    assert v.level == pytest.approx(1.0)       # 2.0 halved, floored at 1.0
    v = VicidialPolicy(SC, start_level=3.0)
    v.stats = (20, 90.0, 30, 0.0)              # only 20 calls: the rule needs more than 20
    v.samples.extend([(0, 0, 10)] * 15)
    v._calculate_dial_level(0.0)
    assert v.level == pytest.approx(3.0)


def test_dial_loop_counts_active_agents_or_ready_only() -> None:
    sim = FakeSim(ready=2, on_call=6, paused=2, ringing=3)
    v = VicidialPolicy(SC, start_level=1.5)
    assert v.decide(sim, 0.0) == round(1.5 * 8) - 9          # goal 12 minus 3 ringing + 6 on call
    assert v.decide(sim, 1.0) == 0                           # the dial loop runs every 2.5 s
    w = VicidialPolicy(SC, start_level=1.5, available_only=True)
    assert w.decide(sim, 0.0) == max(0, round(1.5 * 2) + 6 - 9)  # ready only, calls with agents added


def test_fixed_search_finds_the_largest_feasible_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake(sc: Any, names: list[str], seeds: int, procs: int) -> dict[str, dict[str, Any]]:
        out = {}
        for n in names:
            calls.append(n)
            r = float(n.split(":")[1])
            ab = round(0.1 * (r - 1.0), 9)
            out[n] = {"abandon_rate": ab, "seeds_over_limit": int(ab > 0.03), "occupancy": 0.5 + 0.1 * r}
        return out

    monkeypatch.setattr(run, "_agg_many", fake)
    cache: dict[str, dict[str, Any]] = {}
    best = run.search_fixed(SC, 2, 1, lambda a: a["seeds_over_limit"] == 0, cache)
    assert best == "fixed:1.3"                # abandon 0.1 (R - 1) <= 3 %: R <= 1.30 on the 0.05 grid
    assert len(calls) <= 8                    # bisection, not 61 evaluations
    cache.clear()
    assert run.search_fixed(SC, 2, 1, lambda a: a["abandon_rate"] <= 0.012, cache) == "fixed:1.1"


def test_amd_errors_follow_the_scenario() -> None:
    sc = scenario_from_dict({"agents": 2, "outcomes": {"human": 0.3, "machine": 0.3, "busy": 0.1},
                             "amd": {"false_positive": 0.2, "false_negative": 0.3, "delay_s": 1.5}})
    w = World(sc, 3)
    rows = [w.reported(i, 0.0) for i in range(20000)]
    people = [r for r in rows if r[2] == "human"]
    machines = [r for r in rows if r[2] == "machine"]
    fp = sum(1 for r in people if r[0] == "machine") / len(people)
    fn = sum(1 for r in machines if r[0] == "human") / len(machines)
    assert fp == pytest.approx(0.2, abs=0.02) and fn == pytest.approx(0.3, abs=0.02)
    # the verdict comes after the detection delay: same lead, same answer time + delay
    i = next(k for k, r in enumerate(rows) if r[2] == "human" and r[0] == "human")
    assert rows[i][1] == pytest.approx(w.outcome(i, 0.0)[1] + 1.5)
