"""`scripts/demo --compare` run for real, short: the A/B is only evidence if it was fair, so this checks the
fairness it prints (not any speed figure): both runs dialled the same numbers in the same order, every outcome,
ring and talk time the dialer recorded is what the per-number rule says, the simulated agents behaved the same
way in both runs, and the table shows both modes, the ratio and the simulator's prediction for the same world."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dialer.demo import demo_lines
from dialer.demo_compare import RING_STEP_S, TALK_STEP_S, WRAP_S, attempts_of, carrier_outcome
from tests.conftest import run_env
from tests.sipp import free_udp_port

AGENTS, SECONDS = 4, 75
# two timed runs of SECONDS plus list builds and start-ups: the test may take as long as its own subprocess bound
pytestmark = [pytest.mark.sip, pytest.mark.slow, pytest.mark.timeout(8 * SECONDS + 300)]


def test_compare_runs_both_modes_on_one_world(tmp_path: Path) -> None:
    work = tmp_path / "ab"
    carrier = free_udp_port(7000, 7499)
    agents = free_udp_port(7500, 7899, span=AGENTS + 2)
    sip = free_udp_port(7900, 7990, span=2 * AGENTS)
    r = subprocess.run([sys.executable, "-m", "dialer.demo", "--headless", "--compare", "progressive,predictive",
                        "--for", f"{SECONDS}s", "--agents", str(AGENTS), "--work", str(work),
                        "--carrier-port", str(carrier), "--agent-port-base", str(agents), "--sip-port-base", str(sip)],
                       cwd=tmp_path, env=run_env(), capture_output=True, text=True, timeout=8 * SECONDS + 240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    table = out[out.index("live A/B"):]
    header = table.splitlines()[1].split()
    assert header[:4] == ["metric", "progressive", "predictive", "ratio"] and "sim" in header, table
    for label in ("occupancy", "talk min / agent-hour", "abandon", "dials per connect"):
        assert any(line.startswith(label) for line in table.splitlines()), (label, table)
    doc = json.loads((work / "compare.json").read_text())
    assert doc["modes"] == ["progressive", "predictive"]
    # the prediction is for the live parameters, not the simulator's defaults
    w = doc["world"]
    assert (w["agents"], w["shift_s"], w["trunks"], w["wrap"]["value"]) == (AGENTS, SECONDS, demo_lines(AGENTS),
                                                                            WRAP_S)
    occ = doc["rows"]["occupancy"]
    assert all(0 < x <= 1 for x in occ["live"] + occ["sim"]) and occ["live_ratio"] == pytest.approx(
        occ["live"][1] / occ["live"][0])

    # same numbers, same order: the shorter run is the longer run's beginning
    seqs = {m: [a["phone"] for a in attempts_of(f"sqlite:///{work / m / 'tsunagu.db'}")] for m in doc["modes"]}
    prog, pred = seqs["progressive"], seqs["predictive"]
    assert len(prog) >= 10 and len(pred) >= 10
    n = min(len(prog), len(pred))
    assert set(prog[:n]) == set(pred[:n]), "the runs dialled different numbers"
    same = doc["fairness"]["same_numbers"]
    assert same["shorter_in_longer_head"] == same["shorter"] == n

    for mode in doc["modes"]:
        fair = doc["fairness"][mode]
        rule = fair["carrier_rule"]
        # every outcome the dialer recorded is the one the rule gives the number (the dialer's own stop aside)
        assert rule["mismatch"] == 0, rule["mismatches"]
        assert rule["match"] + rule["ended_by_dialer"] == rule["attempts"] == len(seqs[mode])
        assert rule["ended_by_dialer"] <= demo_lines(AGENTS)  # only calls still up when the run stopped
        kinds = {carrier_outcome(p)[0] for p in seqs[mode]}
        assert {"human", "no_answer"} <= kinds
        # ring and talk time follow the rule to well under one step of it (0.9 s ring, 3.3 s talk)
        assert rule["ring_checked"] > 0 and rule["talk_checked"] > 0
        assert -0.05 <= rule["ring_dev_s"][0] and rule["ring_dev_s"][1] < 0.75 * RING_STEP_S, rule
        assert -0.05 <= rule["talk_dev_s"][0] and rule["talk_dev_s"][1] < 0.5 * TALK_STEP_S, rule
        # the simulated agents: answer every leg offered, never hang up first, never busy
        ag = fair["agents"]
        assert ag["offered"] == ag["answered"] > 0 and ag["hung_up_by_agent"] == 0 and ag["rejected_busy"] == 0
        rep = json.loads((work / mode / "report.json").read_text())
        assert ag["answered"] == rep["connected_to_agent"]
        assert fair["sip"]["invites"] == len(seqs[mode])
