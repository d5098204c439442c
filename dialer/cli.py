"""`dialer`: one entry point; each command group lives in its own module under `dialer/commands/`.

A module there defines `register(subparsers)` and sets `func` on its parsers; it is picked up by name (the
module `commands/report.py` is the command `report`), so adding a command group never touches this file.
Known failures print one clear message instead of a traceback, with an exit code a script can act on:

    0 ok · 1 a check found a problem (e.g. compliance) · 2 usage error · 3 config or store error

A closed pipe (`dialer report ... | head`) and a missing stdin (`echo | dialer monitor`) end quietly.

Lazy (issue 27): a command imports only its own module. The others are listed from their source (the help
text of their `group(sub, NAME, HELP)` / `sub.add_parser(NAME, help=HELP)` call, read with `ast`), so
`dialer --help` and `dialer config check` no longer import the store, SciPy, the views and every command.

Help in the UI's language (issue 27): every parser uses `_Formatter`, which passes descriptions and help
texts through gettext when they are shown, and argparse's own words (usage, options, errors) go through the
same catalog. `python -m dialer.i18n_catalogs` extracts the help texts by walking the whole parser.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import os
import pkgutil
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dialer.commands
from dialer import __version__
from dialer.errors import UserError
from dialer.i18n import _, set_language
from dialer.privacy import private_umask

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3

DESCRIPTION = "tsunagu: outbound predictive dialer for LTV campaigns (pacing, lists, SIP dialing)."

# argparse's own words: translated through our catalog (extracted by dialer.i18n_catalogs)
ARGPARSE_WORDS = (
    "usage: ", "positional arguments", "options", "show this help message and exit",
    "show program's version number and exit", "%(prog)s: error: %(message)s\n",
    "the following arguments are required: %s", "unrecognized arguments: %s",
    "invalid choice: %(value)r (choose from %(choices)s)", "expected one argument", "invalid %(type)s value: %(value)r",
    "not allowed with argument %s", "ambiguous option: %(option)s could match %(matches)s",
)


def _quiet_stdout() -> None:
    """After a reader closed the pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _Formatter(argparse.HelpFormatter):
    """Help text through gettext at the moment it is shown (the UI language may be chosen after the parser
    was built); the English text is the message id."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(_(text) if text else text)

    def _split_lines(self, text: str, width: int) -> list[str]:
        if text.isascii():
            return super()._split_lines(text, width)
        return _wrap_wide(text, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.isascii():
            return super()._fill_text(text, width, indent)
        return "\n".join(indent + line for line in _wrap_wide(text, width))

    def _expand_help(self, action: argparse.Action) -> str:
        text = action.help
        if text and text is not argparse.SUPPRESS:
            action = copy.copy(action)
            action.help = _(text)
        return super()._expand_help(action)


def _wrap_wide(text: str, width: int) -> list[str]:
    """Japanese help wrapped by display cells between phrases (argparse counts characters: a 70-character
    Japanese line is 140 columns wide and a terminal breaks it mid-word)."""
    from dialer.views.render import wrap_japanese

    return wrap_japanese(" ".join(text.split()), max(width, 20))


class _Parser(argparse.ArgumentParser):
    """Every parser of the tree (subparsers inherit the class) formats its help with `_Formatter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _translate_argparse() -> None:
    """argparse looks its words up with `argparse._` (gettext, domain 'argparse'): ours answer instead."""
    argparse._ = _  # type: ignore[attr-defined]


def command_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(dialer.commands.__path__) if not m.name.startswith("_"))


def listed_help(module: str) -> str:
    """The help text a command module registers its command with, read from its source (nothing imported)."""
    path = Path(dialer.commands.__path__[0]) / f"{module}.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        consts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if name == "group" and len(consts) >= 2 and consts[0] == module:
            return consts[1]
        if name == "add_parser" and consts[:1] == [module]:
            for kw in node.keywords:
                if kw.arg == "help" and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    return kw.value.value
    return ""


def _chosen_command(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """The command named by ARGV (its first word when that is a command), else None."""
    for word in argv:
        if word.startswith("-"):
            return None  # `dialer --help`, `dialer --version`
        return word if word in names else None
    return None


def build_parser(argv: Sequence[str] | None = None, *, full: bool = False) -> argparse.ArgumentParser:
    """The parser: the chosen command's module imported and registered, the others listed by name and help.

    FULL (or no ARGV given) imports every command module: for the catalog extraction and tests."""
    parser = _Parser(prog="dialer", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tsunagu {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = command_modules()
    chosen = None if full or argv is None else _chosen_command(argv, names)
    for name in names:
        if full or argv is None or name == chosen:
            importlib.import_module(f"dialer.commands.{name}").register(sub)
        else:
            stub = sub.add_parser(name, help=listed_help(name), add_help=False)
            stub.set_defaults(_parser=stub)
    _describe_leaves(parser)
    return parser


def _describe_leaves(parser: argparse.ArgumentParser) -> None:
    """(issue 27) A subcommand's `--help` opens with what it does: a parser registered with `help=` only gets
    that text as its description (translated by `_Formatter` like every help text)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None and isinstance(helps.get(name), str):
                    child.description = helps[name]
                _describe_leaves(child)


def _language_from_config(argv: Sequence[str]) -> str | None:
    """`[ui] language` of the config this command will read, found without validating the whole file (for
    `--help`, which must not fail on a config problem); None when unset or unreadable."""
    path: str | None = None
    for i, word in enumerate(argv):
        if word == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif word.startswith("--config="):
            path = word.split("=", 1)[1]
    path = path or os.environ.get("TSUNAGU_CONFIG") or ("config/tsunagu.toml" if Path("config/tsunagu.toml").exists()
                                                        else None)
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            lang = tomllib.load(fh).get("ui", {}).get("language", "")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return lang if isinstance(lang, str) and lang else None


def main(argv: Sequence[str] | None = None) -> int:
    # every file the dialer and its workers create (store, caches, exports, recordings, journals) is private,
    # whatever umask the shell or the service manager gave us (issue 28); restored on return only for callers
    # that run commands in-process, such as tests
    previous = private_umask()
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # e.g. `dialer --help | head`
        _quiet_stdout()
        return EXIT_OK
    finally:
        os.umask(previous)


def _main(argv: list[str]) -> int:
    set_language(_language_from_config(argv))
    _translate_argparse()
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without its subcommand: show that group's help rather than a traceback
        target = getattr(args, "_parser", parser)
        target.print_help()
        return EXIT_USAGE
    try:
        rc = func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except EOFError:
        print("dialer: input closed (this command reads keys from a terminal)", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dialer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - sorted below: known failures are one line, the rest re-raised
        return _known_failure(exc)
    return int(rc or 0)


def _known_failure(exc: Exception) -> int:
    """One line and an exit code for the failures a person can fix; anything else is a bug: re-raised."""
    from dialer.config import ConfigError, UnknownNameError

    if isinstance(exc, UserError | UnknownNameError):
        print(f"dialer: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store_error: tuple[type[BaseException], ...] = ()
    if "dialer.store.db" in sys.modules:  # a StoreError can only come from a store that was imported
        from dialer.store.db import StoreError

        store_error = (StoreError,)
    if isinstance(exc, (ConfigError, *store_error)):
        print(f"dialer: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    raise exc


if __name__ == "__main__":
    raise SystemExit(main())
