"""(issue 27) After `scripts/demo`, the next command works: the demo says how the caller's shell reaches
`dialer` (it ran inside .venv; the shell that started it may not have .venv/bin on PATH)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dialer.demo import next_commands
from tests.conftest import REPO


def test_next_commands_say_how_to_activate_when_the_shell_cannot_reach_dialer(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    out = next_commands("/usr/bin:/bin", venv_bin)
    first = out.splitlines()[0].strip()
    assert first.startswith(". ") and first.split()[1].endswith("bin/activate")
    assert "dialer report campaign demo" in out
    # the printed line works from a shell whose PATH has no venv
    activate = first.split()[1]
    script = f". {activate} && dialer --version"
    r = subprocess.run(["bash", "-c", script], cwd=Path.cwd(), env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("tsunagu "), r.stderr


def test_next_commands_plain_when_dialer_is_on_the_callers_path() -> None:
    venv_bin = Path(sys.executable).parent
    if not (venv_bin / "dialer").exists():
        return  # not an installed venv: nothing to find
    out = next_commands(f"{venv_bin}:/usr/bin", venv_bin)
    assert out == "  dialer report campaign demo\n  dialer monitor"


def test_scripts_demo_hands_the_callers_path_to_the_demo() -> None:
    text = (REPO / "scripts" / "demo").read_text(encoding="utf-8")
    assert text.index("TSUNAGU_CALLER_PATH") < text.index("_setup")
