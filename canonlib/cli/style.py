"""One style for every ``canon`` command: the parser, tables, claim lines, ``--json``.

- :class:`CanonParser` answers a mistyped subcommand or choice with "did you mean";
- :func:`print_table` fits a table to the terminal and colours outcomes (only on a
  TTY, never with ``NO_COLOR``), while ``--json`` prints the rows whole;
- :func:`print_claims` prints claims with ``--quiet`` (the count only) and
  ``--failed-only`` (failed claims and the count).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence

from canonlib import term
from canonlib.claims import Claim, claim_lines
from canonlib.tables import format_table

EXIT_CODES = """\
exit codes:
  0   everything ran as expected
  1   some recipe is FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED (with --plan: ERROR), a check
      failed, or `history` of a recipe canon does not know
  2   usage or configuration error (including a fleet with no enrolled recipe)
  3   nothing found (versions latest: no release among the tags)
  75  another sweep holds the lock on this state dir (try again later)
  a bug in canon exits 1 with one line naming the log that holds the traceback
  a reader that stops reading (`canon history R | head -1`) ends canon quietly, exit 0; a
      closed stdout or stderr (`>&-`) is /dev/null: canon runs and exits with its own code
  130 interrupted (SIGINT), 143 terminated (SIGTERM): the run is marked interrupted
"""


class CanonParser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for an invalid choice (subcommands included)."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(
                action,
                f"invalid choice: {value!r}{term.did_you_mean(str(value), choices)} "
                f"(choose from {', '.join(choices)})",
            )
        super()._check_value(action, value)


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument(
        "--json", action="store_true", help=f"print {what} as JSON (whole, never cut)"
    )


def add_quiet_failed(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--failed-only`` for a command that prints claims."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only the count line (the exit code says the rest)",
    )
    g.add_argument(
        "--failed-only", action="store_true", help="print only the failed lines and the count"
    )


def print_json(value: object) -> None:
    print(json.dumps(value, indent=1, sort_keys=True, default=str))


def print_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> None:
    """``rows`` as a table: cut to the terminal's width on a TTY, outcomes coloured there."""
    print(
        format_table(
            rows, columns, max_width=term.width(sys.stdout), paint=term.use_colour(sys.stdout)
        )
    )


def print_lines(lines: Iterable[str]) -> None:
    print(term.lines(lines, paint=term.use_colour(sys.stdout)))


def print_claims(claims: Sequence[Claim], args: argparse.Namespace | None = None) -> int:
    """Claims as lines (or JSON), filtered by ``--quiet`` / ``--failed-only``.

    The exit code: 0 when all hold.
    """
    claims = list(claims)
    if args is not None and getattr(args, "json", False):
        print(json.dumps([c.to_dict() for c in claims], indent=1))
    else:
        lines = claim_lines(claims)
        if args is not None and getattr(args, "quiet", False):
            lines = lines[-1:]
        elif args is not None and getattr(args, "failed_only", False):
            lines = [ln for ln, c in zip(lines[:-1], claims, strict=True) if not c.ok] + lines[-1:]
        print_lines(lines)
    return 0 if all(c.ok for c in claims) else 1
