"""The return-call world of the pacing simulator (issue 30): calls are conserved both ways, a world where nobody calls
back is the outbound world draw for draw, and the aware pacer is fed what the live runner feeds it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.pacing.inbound import InboundSim, Returns, _Aware, main, make, run_one, scenario
from bench.pacing.run import run_once
from pacing.inbound import InboundLoad, Priority


def test_nobody_calling_back_is_the_outbound_world() -> None:
    sc = scenario(6, 3600.0)
    base = run_once(sc, "predictive", 3)
    pol = make("predictive", sc, Returns(rate=0.0))
    r, inb = InboundSim(sc, 3, pol, Returns(rate=0.0)).run_all()
    assert (r.dials, r.connects, r.abandons, r.outcomes) == (base.dials, base.connects, base.abandons, base.outcomes)
    assert inb.arrivals == 0


def test_return_calls_are_conserved_and_take_agents() -> None:
    sc = scenario(6, 5400.0)
    ret = Returns(rate=0.4, mean_s=900.0)
    pol = make("predictive-inbound", sc, ret)
    sim = InboundSim(sc, 1, pol, ret)
    assert isinstance(pol.pacer, _Aware)
    pol.pacer.sim = sim
    seen: list[InboundLoad] = []
    decide = pol.pacer.pacer.decide

    def spy(snap):  # type: ignore[no-untyped-def]
        seen.append(snap.inbound)
        return decide(snap)

    pol.pacer.pacer.decide = spy  # type: ignore[method-assign]
    r, inb = sim.run_all()
    assert inb.arrivals > 10
    assert inb.arrivals == inb.answered + inb.gave_up + inb.unfinished
    assert len(inb.waits) == inb.answered + inb.gave_up and max(inb.waits) <= ret.max_wait_s + 1e-9
    assert r.dials == sum(r.outcomes.values())
    assert r.outcomes["human"] == r.connects + r.abandons + r.fn_drops
    assert 0.0 < inb.busy_s <= r.busy_s <= r.avail_s
    # the pacer saw the load: an arrival rate from the unanswered calls, a reserve, callers queued
    assert max(x.arrivals_per_s for x in seen) > 0.0 and max(x.reserve for x in seen) >= 1
    assert sim.returned == inb.arrivals and len(sim.open_calls) < len(sim.unanswered)


def test_outbound_first_serves_the_outbound_answer_first() -> None:
    sc = scenario(6, 3600.0)
    first = run_one(sc, "predictive-inbound", 2, Returns(rate=0.4, mean_s=900.0))
    last = run_one(sc, "predictive-inbound", 2, Returns(rate=0.4, mean_s=900.0, priority=Priority.OUTBOUND_FIRST))
    assert first["inbound_calls"] > 0 and last["inbound_calls"] > 0
    assert last["inbound_wait_mean_s"] >= first["inbound_wait_mean_s"]


def test_the_cli_writes_both_pacers(tmp_path: Path) -> None:
    out = tmp_path / "inbound.json"
    assert main(["--agents", "4", "--seeds", "1", "--shift-h", "0.5", "--procs", "1", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert set(d["results"]["4"]) == {"predictive", "predictive-inbound"}
    assert d["returns"]["priority"] == "inbound_first" and d["seeds"] == 1
