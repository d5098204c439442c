"""A distributed build's licence (issue 28): every runtime dependency, as installed, fits GPL-3.0-or-later."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialer.licences import DISTRIBUTED_LICENCE, Compat, classify, problems, runtime_closure

REPO = Path(__file__).resolve().parents[1]


def test_every_installed_runtime_dependency_fits_the_distributed_licence() -> None:
    packages = runtime_closure()
    names = {p.name.lower() for p in packages}
    # the closure is real: the direct dependencies and their own dependencies are all in it
    assert {"numpy", "scipy", "sqlalchemy", "pjsua2-python", "psycopg", "httpx", "httpcore"} <= names
    assert problems(packages) == [], "\n".join(problems(packages))
    by_name = {p.name.lower(): p for p in packages}
    # the two reasons the build cannot stay GPL-2.0: both are read from the metadata, not assumed
    assert "LGPL-3.0" in by_name["psycopg"].licence
    assert by_name["phonenumbers"].licence.startswith("Apache")


@pytest.mark.parametrize(("text", "compat"), [
    ("MIT", Compat.PERMISSIVE), ("BSD-3-Clause AND 0BSD", Compat.PERMISSIVE), ("Apache-2.0", Compat.PERMISSIVE),
    ("LGPL-3.0-only", Compat.WEAK_COPYLEFT), ("MPL-2.0", Compat.WEAK_COPYLEFT),
    ("GPL-2.0-or-later", Compat.GPL), ("GPL-2.0-only", Compat.INCOMPATIBLE),
    ("SSPL-1.0", Compat.INCOMPATIBLE), ("Other/Proprietary License", Compat.INCOMPATIBLE), ("", Compat.UNKNOWN),
    ("Some Custom Terms", Compat.UNKNOWN),
])
def test_classification_fails_closed(text: str, compat: Compat) -> None:
    assert classify(text) is compat


def test_readme_and_licence_say_what_a_distributed_build_carries() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert DISTRIBUTED_LICENCE in readme
    assert "GNU GENERAL PUBLIC LICENSE" in (REPO / "LICENSE").read_text(encoding="utf-8")
