"""`dialer inbound run` refuses, before answering anyone, a config whose numbers lead nowhere: a DID mapped to
no configured campaign (callers would get nobody's pop), or no number to answer at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import run_env

HEAD = """
[database]
url = "sqlite:///{db}"

[[trunks]]
name = "loop"
proxy = "sip:127.0.0.1:5999"
sandbox = true
{trunk_cid}
[[campaigns]]
name = "winback"
trunk = "loop"
segments = ["dormant"]
{inbound}
"""


def _run(tmp: Path, trunk_cid: str, inbound: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp / "tsunagu.toml"
    cfg.write_text(HEAD.format(db=tmp / "t.db", trunk_cid=trunk_cid, inbound=inbound), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "dialer", "inbound", "run", "--config", str(cfg)], cwd=tmp,
                          env=run_env(), capture_output=True, text=True, timeout=60)


def test_a_did_mapped_to_no_campaign_is_refused(tmp_path: Path) -> None:
    r = _run(tmp_path, 'caller_id = "0312345678"', '[inbound]\ndids = { "+81501234567" = "dormant" }\n')
    assert r.returncode != 0
    assert "dormant" in r.stderr and "winback" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_no_number_to_answer_is_refused(tmp_path: Path) -> None:
    r = _run(tmp_path, "", "")
    assert r.returncode != 0 and "no number to answer" in r.stderr and "Traceback" not in r.stderr, r.stderr
