"""``canon harness``: the built-in cold-run harness (started by canon sweep)."""

from __future__ import annotations

import argparse

from canonlib.sweep.harness import main as harness_main


def cmd_harness(args: argparse.Namespace) -> int:
    return harness_main()


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = sub.add_parser(
        "harness",
        help="the built-in cold-run harness (started by canon sweep)",
        description="Deploy $CCCI_RECIPE_DIR through the configured backend into a throw-away "
        "slot, climb the rungs (L1 install, L2 upgrade from $CCCI_UPGRADE_BASE, L3 backup/restore, "
        "L4 functional tests from the fleet, L5 lint), write $CCCI_RESULT_FILE and tear the slot "
        "down. Exit 0 when green.",
    )
    h.set_defaults(func=cmd_harness)
