"""``canon doctor``: check what the timer will see."""

from __future__ import annotations

import argparse
from pathlib import Path

from canonlib.cli.style import (
    add_json,
    add_quiet_failed,
    print_claims,
)
from canonlib.ops.doctor import doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    return print_claims(doctor(args.config, Path(args.unit) if args.unit else None), args)


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
