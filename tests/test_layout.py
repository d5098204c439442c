"""The layout's rules (dialer/README.md), checked on the source so a new import that breaks them fails here."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ORM = ("sqlmodel", "sqlalchemy")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if ".venv" not in p.parts)


def test_only_the_store_imports_the_orm() -> None:
    offenders = []
    for path in _modules("dialer"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("dialer/store/"):
            continue
        for name in _imports(path):
            if name.split(".")[0] in ORM:
                offenders.append(f"{rel} imports {name}")
    assert not offenders, "SQL belongs in dialer/store/: " + "; ".join(offenders)


def test_the_check_sees_an_orm_import(tmp_path: Path) -> None:
    """The scan above must catch both import forms, or it would pass on anything."""
    probe = tmp_path / "probe.py"
    probe.write_text("import sqlalchemy.engine\nfrom sqlmodel import Session\nfrom . import x\n", encoding="utf-8")
    assert [n.split(".")[0] for n in _imports(probe)] == ["sqlalchemy", "sqlmodel"]


def test_domain_is_pure() -> None:
    """dialer/domain/: no store, no config files, no telephony, no views, no clock."""
    banned = ("dialer.store", "dialer.config", "dialer.telephony", "dialer.views", "dialer.commands",
              "dialer.campaign", "dialer.settings", *ORM)
    clock = ("datetime.now(", "time.time(", "date.today(", "time.monotonic(", "datetime.utcnow(")
    problems = []
    for path in _modules("dialer/domain"):
        rel = path.relative_to(REPO).as_posix()
        problems += [f"{rel} imports {n}" for n in _imports(path) if n.startswith(banned)]
        text = path.read_text(encoding="utf-8")
        problems += [f"{rel} reads the clock ({c})" for c in clock if c in text]
    assert not problems, "; ".join(problems)


def test_pacing_and_lists_never_import_the_dialer() -> None:
    problems = []
    for folder in ("pacing", "lists"):
        for path in _modules(folder):
            problems += [f"{path.relative_to(REPO)} imports {n}" for n in _imports(path)
                         if n == "dialer" or n.startswith("dialer.")]
    assert not problems, "; ".join(problems)
