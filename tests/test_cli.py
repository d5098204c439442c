"""The CLI and the README commands, run as a user runs them (subprocesses, real files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import Session, create_engine, select

from dialer.store.db import SCHEMA_VERSION
from dialer.store.models import Meta
from tests.conftest import REPO, run_env


def dialer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dialer", *args], cwd=cwd, env=run_env(),
                          capture_output=True, text=True, timeout=120)


def test_help_lists_working_subcommands(tmp_path: Path) -> None:
    r = dialer("--help", cwd=tmp_path)
    assert r.returncode == 0
    for cmd in ("db", "config", "lists", "hopper", "schedule", "trunk", "campaign", "monitor", "agent", "report",
                "outcomes"):
        assert cmd in r.stdout


def test_db_init_on_empty_directory_then_again(tmp_path: Path) -> None:
    r = dialer("db", "init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "created" in r.stdout
    assert (tmp_path / "tsunagu.db").exists()
    r2 = dialer("db", "init", cwd=tmp_path)
    assert r2.returncode == 0 and "already up to date" in r2.stdout
    eng = create_engine(f"sqlite:///{tmp_path / 'tsunagu.db'}")
    with Session(eng) as s:
        assert s.exec(select(Meta).where(Meta.key == "schema_version")).one().value == str(SCHEMA_VERSION)


def test_db_init_honours_database_url_env(tmp_path: Path) -> None:
    env = run_env() | {"DIALER_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    r = subprocess.run([sys.executable, "-m", "dialer", "db", "init"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "other.db").exists() and not (tmp_path / "tsunagu.db").exists()


def test_config_check_good_and_bad(tmp_path: Path) -> None:
    r = dialer("config", "check", str(REPO / "config" / "tsunagu.toml"), cwd=tmp_path)
    assert r.returncode == 0 and "OK" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[campaigns]]\nname = 'x'\nmode = 'turbo'\n", encoding="utf-8")
    r = dialer("config", "check", str(bad), cwd=tmp_path)
    assert r.returncode == 3  # a config error, not a usage error
    assert "Traceback" not in r.stderr
    assert str(bad) in r.stderr and "mode" in r.stderr


def test_group_without_subcommand_prints_help(tmp_path: Path) -> None:
    r = dialer("db", cwd=tmp_path)
    assert r.returncode == 2 and "init" in r.stdout


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test" in ci
    readme = (REPO / "README.md").read_text()
    head = readme[: readme.index("## ", readme.index("scripts/test"))] if "## " in readme else readme
    assert "scripts/demo" in head and "scripts/test" in head


def test_exit_codes_usage_config_store(tmp_path: Path) -> None:
    assert dialer("report", "campaign", cwd=tmp_path).returncode == 2  # missing argument: usage
    assert dialer("monitor", "--bogus", cwd=tmp_path).returncode == 2
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n', encoding="utf-8")
    r = dialer("report", "campaign", "demo", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert r.returncode == 3 and "nope.toml" in r.stderr and "Traceback" not in r.stderr
    r = dialer("hopper", "preview", "--campaign", "nope", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and "no campaign named 'nope'" in r.stderr


def test_read_only_commands_never_create_a_store_and_name_it(tmp_path: Path) -> None:
    for argv in (("report", "campaign", "demo"), ("report", "compliance"), ("monitor", "--once"), ("agent", "a01",
                                                                                                 "--once")):
        r = dialer(*argv, cwd=tmp_path)
        assert r.returncode == 3, (argv, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and str(tmp_path / "tsunagu.db") in r.stderr, r.stderr
        assert "dialer db init" in r.stderr
        assert not (tmp_path / "tsunagu.db").exists(), argv
    # an empty store: each command says which store it opened, and compliance does not pass on nothing
    assert dialer("db", "init", cwd=tmp_path).returncode == 0
    r = dialer("report", "campaign", "demo", cwd=tmp_path)
    assert r.returncode == 2 and "no campaign named 'demo'" in r.stderr and str(tmp_path / "tsunagu.db") in r.stderr
    r = dialer("report", "compliance", cwd=tmp_path)
    assert r.returncode == 1 and "nothing to check" in r.stderr and str(tmp_path / "tsunagu.db") in r.stderr
    r = dialer("monitor", "--once", "--width", "100", cwd=tmp_path)
    assert r.returncode == 0 and str(tmp_path / "tsunagu.db") in r.stdout.replace("\n", "")


def test_closed_pipe_and_missing_stdin_end_quietly(tmp_path: Path) -> None:
    assert dialer("db", "init", cwd=tmp_path).returncode == 0
    for argv in (["--help"], ["monitor", "--once"]):
        # the reader is gone before the first byte is written (like `| head` after its first line)
        p = subprocess.Popen([sys.executable, "-m", "dialer", *argv], cwd=tmp_path, env=run_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        err = p.stderr.read().decode()
        assert p.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "BrokenPipe" not in err, err
    r = subprocess.run([sys.executable, "-m", "dialer", "monitor"], input="\n", cwd=tmp_path, env=run_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--once" in r.stderr, r.stderr
