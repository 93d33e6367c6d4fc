"""``canon doctor``: check what the timer will see."""

from __future__ import annotations

import argparse
from pathlib import Path

from canonlib.cli.style import (
    add_json,
    add_quiet_failed,
    print_claims,
)
from canonlib.errors import UsageError
from canonlib.files import FileProblem, read_small_file
from canonlib.ops.doctor import doctor
from canonlib.ops.systemd import UNIT_CAP, read_unit, unit_environment


def cmd_doctor(args: argparse.Namespace) -> int:
    unit = Path(args.unit) if args.unit else None
    if unit is not None:
        _check_unit(unit)
    return print_claims(doctor(args.config, unit), args)


def _check_unit(unit: Path) -> None:
    """--unit names a small regular file (not a FIFO, /dev/zero or a missing path), or exit 2."""
    try:
        read_small_file(unit, UNIT_CAP).decode()
        unit_environment(read_unit(unit))
    except UnicodeDecodeError:
        raise UsageError(f"--unit {unit} is not UTF-8 text; is it a systemd unit?") from None
    except ValueError as e:  # shlex: an Environment= line with an unclosed quote
        raise UsageError(f"--unit {unit}: an Environment= line cannot be read: {e}") from None
    except FileNotFoundError:
        raise UsageError(
            f"--unit {unit}: no such file; render one with `canon systemd render`"
        ) from None
    except FileProblem as e:
        raise UsageError(f"--unit {unit} {e}") from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dr = sub.add_parser(
        "doctor",
        help="check what the timer will see: config, fleet, tools on PATH, dirs, kernel, disk",
        description="One line per check, exit 1 if any fails. With --unit, use that unit's "
        "Environment= (CANON_CONFIG, CCCI_REPO, PATH) and WorkingDirectory= instead of "
        "this shell's.",
    )
    dr.add_argument("--unit", help="a rendered canon-sweep.service")
    add_quiet_failed(dr)
    add_json(dr, "the checks, a list")
    dr.set_defaults(func=cmd_doctor)
