"""``canon`` — the command line: parse the arguments, dispatch to the command.

Each command lives in :mod:`canonlib.cli.commands` (one module per command:
``add_parser(sub)`` declares it, its ``cmd_*`` function runs it, and what it
computes lives in the library).  :func:`main` wraps the run in the top-level
guard (:mod:`canonlib.cli.guard`): every failure ends as one line on stderr.

Exit codes: 0 ok, 1 a recipe failed or a check failed, 2 usage or config,
3 nothing to report (``versions latest`` found no release), 75 another sweep
holds the lock.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from canonlib import __version__
from canonlib.cli.guard import QuietStream, guarded, open_std_streams
from canonlib.cli.style import EXIT_CODES, CanonParser
from canonlib.config import load_config
from canonlib.errors import CanonError, UsageError
from canonlib.git import RECIPE_NAME_RULE, InvalidRef, check_recipe_name
from canonlib.term import visible

# each command word -> its module in canonlib.cli.commands, in the order `canon --help` lists them
COMMANDS: dict[str, str] = {
    "versions": "versions",
    "sweep": "sweep",
    "status": "status",
    "pins": "status",
    "history": "status",
    "demo": "demo",
    "evidence": "evidence",
    "investigate": "investigate",
    "verify": "verify",
    "log": "log",
    "keys": "keys",
    "systemd": "systemd",
    "doctor": "doctor",
    "config": "config",
    "registry": "registry",
    "harness": "harness",
    "init": "init",
    "meta": "init",
}


def command_word(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, when it names a known one before anything else but --config."""
    args = iter(argv)
    for a in args:
        if a == "--config":
            next(args, None)
        elif not a.startswith("--config="):
            return a if a in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole ``canon`` parser, or (``only``) the top level plus that one command's module."""
    p = CanonParser(
        prog="canon",
        description="Keep a known-good canonical deployment of every Co-op Cloud recipe "
        "current, and prove it.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"canon {__version__}")
    p.add_argument(
        "--config", metavar="FILE", help="canon.toml to use (else $CANON_CONFIG, else ./canon.toml)"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    modules = [COMMANDS[only]] if only else dict.fromkeys(COMMANDS.values())
    for name in modules:
        importlib.import_module(f"canonlib.cli.commands.{name}").add_parser(sub)
    return p


def state_dir_of(args: argparse.Namespace) -> Path | None:
    """The configured state dir, for the guard's messages and crash logs (None if unknown)."""
    try:
        return load_config(getattr(args, "config", None)).state_dir
    except CanonError:
        return None


def check_recipe_names(args: argparse.Namespace) -> None:
    """A recipe named on the command line (``history R``, ``investigate R``, ``--recipe R``,
    ``--retry R``) is a recipe's directory name, or a usage error naming it visibly."""
    for dest in ("recipe", "retry"):
        value = getattr(args, dest, None)
        for name in [value] if isinstance(value, str) else value or []:
            try:
                check_recipe_name(name)
            except InvalidRef:
                option = f"--{dest} " if args.command == "sweep" else ""
                raise UsageError(
                    f"{option}{shown(name)} is not a recipe name: a recipe is the name of its "
                    f"directory under the fleet's tests/ ({RECIPE_NAME_RULE})"
                ) from None


def shown(name: str) -> str:
    """``name`` quoted, its control characters and bidi overrides visible (an empty one: '')."""
    return f"'{visible(name)}'"


def main(argv: Sequence[str] | None = None) -> int:
    open_std_streams()
    stderr = sys.stderr
    sys.stderr = QuietStream(stderr)  # a reader of stderr gone never ends the run
    try:
        return _main(argv)
    finally:
        sys.stderr = stderr


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parsed: list[argparse.Namespace] = []

    def run() -> int:
        parser = build_parser(only=command_word(argv))  # --help, no or an unknown command: all
        args = parser.parse_args(argv)
        parsed.append(args)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        check_recipe_names(args)
        return func(args)

    return guarded(run, lambda: state_dir_of(parsed[0]) if parsed else None)
