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


def _table_classes() -> set[str]:
    """Every ORM table class the store defines (`class X(SQLModel, table=True)` in any dialer/store module)."""
    names = set()
    for path in _modules("dialer/store"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                    k.arg == "table" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords):
                names.add(node.name)
    return names


def _store_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each name imported from dialer.store or one of its modules ("" for `import x`)."""
    out: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
                node.module == "dialer.store" or node.module.startswith("dialer.store.")):
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name == "dialer.store" or a.name.startswith("dialer.store.")]
    return out


def test_no_table_class_outside_the_store() -> None:
    """(issue 28) Rows leave the store as plain data or read-only Protocols (dialer.store.rows): no module outside
    dialer/store imports dialer.store.models or a table class, so no one else can build or write a row."""
    tables = _table_classes()
    assert {"Attempt", "Disposition", "User"} <= tables  # the scan finds them, or this test would pass on anything
    offenders = []
    for path in _modules("dialer"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("dialer/store/"):
            continue
        for module, name in _store_imports(path):
            if module == "dialer.store.models":
                offenders.append(f"{rel} imports dialer.store.models")
            elif name in tables:
                offenders.append(f"{rel} imports the table class {name} from {module}")
    assert not offenders, "; ".join(offenders)


def test_views_and_web_never_import_the_store() -> None:
    """(issue 28) Screens call the service layer (dialer/service), which checks permissions; never the store."""
    offenders = []
    for folder in ("dialer/views", "dialer/web"):
        for path in _modules(folder):
            offenders += [f"{path.relative_to(REPO).as_posix()} imports {m}" for m, _ in _store_imports(path)]
    assert not offenders, "views and the web go through dialer/service: " + "; ".join(offenders)


def test_the_store_package_exports_no_table_or_session() -> None:
    """`dialer.store` gives the shell a handle and how to open it; tables and sessions stay inside."""
    import dialer.store

    exported = set(dialer.store.__all__) | {n for n in vars(dialer.store) if not n.startswith("_")}
    assert not exported & (_table_classes() | {"session_scope", "Session", "utcnow"}), exported
    assert {"Engine", "get_engine", "init_db", "StoreError"} <= set(dialer.store.__all__)


def test_the_store_scan_sees_every_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import dialer.store.models\nfrom dialer.store import attempts\n"
                     "from dialer.store.users import User\nfrom dialer.storefront import x\n", encoding="utf-8")
    assert _store_imports(probe) == [("dialer.store.models", ""), ("dialer.store", "attempts"),
                                     ("dialer.store.users", "User")]
