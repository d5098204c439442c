"""Files and endpoints closed by default (issue 28): data files 0600 in 0700 directories whatever the shell's
umask, older loose stores tightened, and `dialer doctor` naming what is still open."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, run_env

CONFIG = """
[database]
url = "sqlite:///var/tsunagu.db"

[telephony]
recordings_dir = "var/recordings"

[outcomes]
webhook_url = "http://127.0.0.1:9/hook"
allow_insecure_loopback = true

[[trunks]]
name = "carrier"
proxy = "sip:198.51.100.7:5060"
caller_id = "+81312345678"
"""


def dialer(*args: str, cwd: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child started with a loose umask, as a shell with the Debian default would."""
    def loose() -> None:
        os.umask(umask)
    return subprocess.run([sys.executable, "-m", "dialer", *args], cwd=cwd, env=run_env(), text=True,
                          capture_output=True, timeout=120, preexec_fn=loose)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_store_and_directories_are_private_under_a_loose_umask(tmp_path: Path) -> None:
    (tmp_path / "tsunagu.toml").write_text(CONFIG, encoding="utf-8")
    r = dialer("db", "init", "--config", "tsunagu.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    db = tmp_path / "var" / "tsunagu.db"
    assert mode(db) == 0o600 and mode(db.parent) == 0o700
    # files SQLite made next to it follow the main file's mode
    for side in (db.with_name("tsunagu.db-wal"), db.with_name("tsunagu.db-shm")):
        if side.exists():
            assert mode(side) == 0o600, side


def test_an_older_world_readable_store_is_tightened_on_open(tmp_path: Path) -> None:
    (tmp_path / "tsunagu.toml").write_text(CONFIG, encoding="utf-8")
    assert dialer("db", "init", "--config", "tsunagu.toml", cwd=tmp_path).returncode == 0
    db = tmp_path / "var" / "tsunagu.db"
    os.chmod(db, 0o644)
    r = dialer("report", "compliance", "--config", "tsunagu.toml", cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert mode(db) == 0o600


def test_doctor_names_what_is_open_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "tsunagu.toml").write_text(CONFIG, encoding="utf-8")
    assert dialer("db", "init", "--config", "tsunagu.toml", cwd=tmp_path).returncode == 0
    rec = tmp_path / "var" / "recordings"
    rec.mkdir(mode=0o755)
    os.chmod(rec, 0o755)
    (rec / "call-1.wav").write_bytes(b"RIFF")
    os.chmod(rec / "call-1.wav", 0o644)
    r = dialer("doctor", "--config", "tsunagu.toml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert "call-1.wav is mode 0644" in out and "recordings is mode 0755" in out
    assert "webhook_url is plain http" in out
    assert "no users" in out and "dialer user add" in out
    assert "trunk carrier: SIP over udp without TLS" in out
    if any(p.name.startswith("libcrypto") and ".so.1.0" in p.name
           for p in Path(sys.prefix).glob("lib/python3*/site-packages/pjsua2_python.libs/*")):
        assert "OpenSSL 1.0.2" in out and "scripts/build-pjsua2" in out
    assert "Traceback" not in r.stderr


def test_program_umask_is_private_in_its_children(tmp_path: Path) -> None:
    """Worker processes inherit the program's umask: a file made by a child of `dialer` is private too."""
    code = ("import os, sys; from dialer.privacy import private_umask; private_umask(); "
            "import subprocess; subprocess.run(['touch', sys.argv[1]], check=True)")
    target = tmp_path / "made-by-child"
    subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, check=True, timeout=60,
                   preexec_fn=lambda: os.umask(0o022))
    assert mode(target) == 0o600
