"""(issue 27) Every `--help` page in the chosen language, and a CLI that imports only the command it runs."""

from __future__ import annotations

import argparse
import gettext
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialer.cli import _translate_argparse, build_parser, listed_help
from dialer.i18n import _, set_language
from tests.conftest import run_env


def _dialer(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=run_env() | env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture()
def japanese() -> Iterator[None]:
    set_language("ja")
    _translate_argparse()
    yield
    set_language("en")
    argparse._ = gettext.gettext  # type: ignore[attr-defined]


def _parsers(p: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for child in dict.fromkeys(a.choices.values()):
                yield from _parsers(child)


def test_every_help_page_is_japanese(japanese: None) -> None:
    pages = list(_parsers(build_parser(full=True)))
    assert len(pages) > 40
    for p in pages:
        page = p.format_help()
        assert page.startswith("使い方: "), page[:40]
        texts = [a.help for a in p._actions if a.help and a.help is not argparse.SUPPRESS]
        texts += [p.description] if p.description else []
        for t in texts:
            assert _(t) != t or not t.isascii(), f"{p.prog}: untranslated help {t!r}"
        assert "show this help message and exit" not in page and "options:" not in page


def test_help_in_japanese_from_lang_and_from_config(tmp_path: Path) -> None:
    r = _dialer("-m", "dialer", "config", "check", "--help", cwd=tmp_path, env={"LANG": "ja_JP.UTF-8"})
    assert r.returncode == 0 and "設定ファイル(既定" in r.stdout and "使い方: dialer config check" in r.stdout
    cfg = tmp_path / "t.toml"
    cfg.write_text('[ui]\nlanguage = "ja"\n', encoding="utf-8")
    r = _dialer("-m", "dialer", "schedule", "show", "--help", "--config", str(cfg), cwd=tmp_path,
                env={"LANG": "C.UTF-8", "LC_ALL": ""})
    assert r.returncode == 0 and "プログラム向けの出力" in r.stdout and "使い方: " in r.stdout, r.stdout
    r = _dialer("-m", "dialer", "schedule", "show", "--help", cwd=tmp_path, env={"LANG": "C.UTF-8", "LC_ALL": ""})
    assert "machine-readable output" in r.stdout and "usage: " in r.stdout
    r = _dialer("-m", "dialer", "nosuch", cwd=tmp_path, env={"LANG": "ja_JP.UTF-8"})
    assert r.returncode == 2 and "エラー" in r.stderr and "無効な選択" in r.stderr


def test_top_level_help_lists_every_command_from_source_without_importing_them(tmp_path: Path) -> None:
    full = build_parser(full=True)
    sub = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    for ca in sub._choices_actions:  # what the lazy listing reads from source is what the module registers
        assert listed_help(ca.dest) == ca.help, ca.dest
    r = _dialer("-X", "importtime", "-m", "dialer", "--help", cwd=tmp_path, env={"LANG": "C.UTF-8"})
    assert r.returncode == 0 and all(ca.dest in r.stdout for ca in sub._choices_actions)
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert not {"sqlalchemy", "scipy", "pydantic", "dialer.store", "dialer.views.monitor"} & imported
    probe = ("import sys\nfrom dialer.cli import main\ntry:\n    main(['config', 'check', '--help'])\n"
             "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m.startswith('dialer.commands.')))")
    r = _dialer("-c", probe, cwd=tmp_path, env={})
    assert r.stdout.strip().splitlines()[-1] == "['dialer.commands.config']", r.stdout


def test_every_subcommand_help_opens_with_what_it_does(japanese: None) -> None:
    """(issue 27) A leaf's `--help` had a usage line and options only: the text `dialer GROUP --help` lists it
    with is its description too, in the UI's language."""
    pages = list(_parsers(build_parser(full=True)))
    bare = [p.prog for p in pages if not p.description]
    assert bare == [], bare
    stop = next(p for p in pages if p.prog == "dialer campaign stop")
    lines = stop.format_help().splitlines()
    assert lines[2] and not lines[2].isascii() and "stop a running campaign" not in stop.format_help(), lines[:4]
