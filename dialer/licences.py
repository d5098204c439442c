"""What licence a distributed tsunagu build carries, read from the installed distributions' own metadata.

tsunagu's code is GPL-2.0-or-later. A build that ships with its dependencies cannot stay GPL-2.0: psycopg is
LGPL-3.0-only and several packages (phonenumbers, budoux, sortedcontainers, ...) are Apache-2.0, and neither is
compatible with GPL-2.0-only. Both are compatible with GPL-3.0, so a distributed build is conveyed under
**GPL-3.0-or-later** (the "or later" of our own licence allows it). This module walks the runtime dependency
closure and classifies every package, so a new dependency with an unknown or incompatible licence is caught by
the test (and `dialer doctor`) instead of by a customer's lawyer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import PackageNotFoundError, distribution


class Compat(StrEnum):
    """How a licence sits with GPL-3.0-or-later (what a distributed build carries)."""

    PERMISSIVE = "permissive"  # MIT, BSD, ISC, PSF, Apache-2.0, ...: fine under GPL-3.0
    WEAK_COPYLEFT = "weak copyleft"  # LGPL-3.0, MPL-2.0: fine under GPL-3.0
    GPL = "GPL"  # GPL-2.0-or-later / GPL-3.0: the build's own licence family
    UNKNOWN = "unknown"  # no metadata we can read: must be looked at by a person
    INCOMPATIBLE = "incompatible"  # GPL-2.0-only, proprietary, SSPL, ...


DISTRIBUTED_LICENCE = "GPL-3.0-or-later"

# packages whose metadata carries no licence field, checked by hand against their source distribution
KNOWN = {
    "pjsua2-python": ("GPL-2.0-or-later", "pjproject COPYING: GPL v2 or later (or PJSIP's commercial licence)"),
}

_RULES: tuple[tuple[str, Compat], ...] = (
    (r"GPL-2\.0-only|GPLv2 only|SSPL|Commons Clause|proprietary|Business Source", Compat.INCOMPATIBLE),
    (r"\bLGPL|Lesser General Public|MPL|Mozilla Public", Compat.WEAK_COPYLEFT),
    (r"\bGPL|General Public License", Compat.GPL),
    (r"MIT|BSD|ISC|Apache|PSF|Python Software Foundation|0BSD|Zlib|CC0|Unlicense|HPND|MIT-CMU|"
     r"Historical Permission|Dual License|Kiwi", Compat.PERMISSIVE),
)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licence: str
    compat: Compat


def _name(req: str) -> tuple[str, tuple[str, ...], str]:
    """`psycopg[binary]>=3.1 ; extra == "postgres"` -> ("psycopg", ("binary",), 'extra == "postgres"')."""
    head, _, marker = req.partition(";")
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[([^\]]*)\])?", head)
    if m is None:
        return head.strip(), (), marker.strip()
    extras = tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
    return m.group(1), extras, marker.strip()


def licence_of(name: str) -> tuple[str, str]:
    """(licence text as declared, version) from the distribution's metadata, SPDX expression first."""
    dist = distribution(name)
    md = dist.metadata
    text = md["License-Expression"] or ""
    if not text:
        lic = (md["License"] or "").strip()
        classifiers = [c.split("::")[-1].strip() for c in (md.get_all("Classifier") or []) if c.startswith("License ::")]
        # a License field holding the whole licence text is useless to classify; the classifiers say it better
        text = lic if lic and len(lic) < 80 and "\n" not in lic else "; ".join(classifiers) or lic[:80]
    if not text and md["Name"] in KNOWN:
        text = KNOWN[md["Name"]][0]
    return text, md["Version"]


def classify(text: str) -> Compat:
    for pattern, compat in _RULES:
        if re.search(pattern, text, re.IGNORECASE):
            return compat
    return Compat.UNKNOWN


def runtime_closure(root: str = "tsunagu", extras: tuple[str, ...] = ("postgres",)) -> list[Package]:
    """Every installed package tsunagu needs at run time (its extras named, test tools not), once each."""
    seen: dict[str, Package] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, want = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        if name != root:
            text, version = licence_of(name)
            seen[key] = Package(dist.metadata["Name"], version, text, classify(text))
        for req in dist.requires or []:
            dep, dep_extras, marker = _name(req)
            if "extra" in marker and not any(f'"{e}"' in marker or f"'{e}'" in marker for e in want):
                continue
            # a dependency for another interpreter or platform is simply not installed here (skipped above)
            todo.append((dep, dep_extras))
    return sorted(seen.values(), key=lambda p: p.name.lower())


def problems(packages: list[Package]) -> list[str]:
    """Lines naming every package whose licence is unknown or does not fit GPL-3.0-or-later."""
    return [f"{p.name} {p.version}: {p.licence or 'no licence metadata'} ({p.compat.value})"
            for p in packages if p.compat in (Compat.UNKNOWN, Compat.INCOMPATIBLE)]
