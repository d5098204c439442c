"""Build the UI catalogs with Babel: extract every `_()`/`N_()` from dialer/ into tsunagu.pot, merge it into
each language's .po (keeping translations), compile .po to .mo. `python -m dialer.i18n_catalogs [--check]`.

The .mo files are committed (a fresh checkout works without a build step); `--check` (run by the tests)
fails when a .po has an untranslated or stale message or a .mo does not match its .po.
"""

from __future__ import annotations

import argparse
import io
import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from dialer.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

SRC = Path(__file__).resolve().parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


def template() -> Catalog:
    # a fixed creation date: rebuilding must not change the header (every rebuild would conflict on merge)
    cat = Catalog(project="tsunagu", domain=DOMAIN, creation_date=datetime(2026, 11, 29, tzinfo=UTC))
    for filename, lineno, message, comments, context in extract_from_dir(
            str(SRC), method_map=[("**.py", "dialer.i18n:extract_ast"),
                                  ("web/templates/**.html", "jinja2.ext:babel_extract")],  # the browser pages
            options_map={"web/templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}},
            keywords=KEYWORDS):
        cat.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    for text in cli_texts():
        if text not in cat:
            cat.add(text, None, [("dialer/cli.py", 0)])
    return cat


def cli_texts() -> list[str]:
    """Every description and help text of the `dialer` command tree (they are plain strings in the command
    modules; dialer.cli translates them when help is shown), and argparse's own words."""
    import argparse as ap

    from dialer.cli import ARGPARSE_WORDS, DESCRIPTION, build_parser

    out: list[str] = [*ARGPARSE_WORDS, DESCRIPTION]

    def walk(p: ap.ArgumentParser) -> None:
        if p.description:
            out.append(p.description)
        for a in p._actions:
            if a.help and a.help is not ap.SUPPRESS:
                out.append(a.help)
            if isinstance(a, ap._SubParsersAction):
                out.extend(c.help for c in a._choices_actions if c.help)
                for child in dict.fromkeys(a.choices.values()):
                    walk(child)

    walk(build_parser(full=True))
    return list(dict.fromkeys(out))


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def load(lang: str) -> Catalog:
    p = po_path(lang)
    if not p.exists():
        return Catalog(locale=lang, domain=DOMAIN, project="tsunagu")
    with p.open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


def mo_bytes(cat: Catalog) -> bytes:
    buf = io.BytesIO()
    write_mo(buf, cat)
    return buf.getvalue()


def problems(lang: str, tmpl: Catalog) -> list[str]:
    cat = load(lang)
    out = []
    for msg in tmpl:
        if not msg.id:
            continue
        have = cat.get(msg.id)
        if have is None:
            out.append(f"{lang}: missing {msg.id!r}")
        elif lang != "en" and (not have.string or have.fuzzy):
            out.append(f"{lang}: untranslated {msg.id!r}")
    mo = po_path(lang).with_suffix(".mo")
    if not mo.exists() or mo.read_bytes() != mo_bytes(cat):
        out.append(f"{lang}: {mo} is not compiled from its .po (run python -m dialer.i18n_catalogs)")
    return out


def build() -> None:
    tmpl = template()
    for lang in LANGUAGES:
        cat = load(lang)
        cat.update(tmpl, no_fuzzy_matching=True)
        if lang == "en":  # English: the message ids are the text
            for msg in cat:
                if msg.id and not msg.string:
                    msg.string = msg.id
        p = po_path(lang)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            write_po(fh, cat, omit_header=False, no_location=True, sort_output=True, ignore_obsolete=True)
        cat = load(lang)
        p.with_suffix(".mo").write_bytes(mo_bytes(cat))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dialer.i18n_catalogs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report what is missing or stale instead of writing")
    a = ap.parse_args(argv)
    if a.check:
        tmpl = template()
        found = [p for lang in LANGUAGES for p in problems(lang, tmpl)]
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    build()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
