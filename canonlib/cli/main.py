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
from collections.abc import Callable, Sequence

from canonlib import __version__
from canonlib.cli.commands import (
    config,
    demo,
    doctor,
    evidence,
    harness,
    init,
    investigate,
    keys,
    registry,
    status,
    sweep,
    systemd,
    verify,
    versions,
)
from canonlib.cli.common import EXIT_CODES, state_dir_of
from canonlib.cli.guard import guarded
from canonlib.cli.style import CanonParser

# in the order `canon --help` lists them
COMMANDS = (
    versions,
    sweep,
    status,
    demo,
    evidence,
    investigate,
    verify,
    keys,
    systemd,
    doctor,
    config,
    registry,
    harness,
    init,
)


def build_parser() -> argparse.ArgumentParser:
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
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    return guarded(lambda: func(args), lambda: state_dir_of(args))
