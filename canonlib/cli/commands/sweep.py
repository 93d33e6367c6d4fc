"""``canon sweep``: the weekly job, and ``--plan``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap

from canonlib import term
from canonlib.cli.common import config_of
from canonlib.cli.guard import say
from canonlib.cli.style import (
    EXIT_CODES,
    add_json,
    print_lines,
    print_table,
)
from canonlib.state.row import Outcome
from canonlib.sweep.orchestrate import canonical_incidents, raise_interrupted, sweep
from canonlib.sweep.words import plan_notes
from canonlib.tables import SWEEP_COLUMNS, why


def cmd_sweep(args: argparse.Namespace) -> int:
    config = config_of(args)
    signal.signal(signal.SIGTERM, raise_interrupted)
    result = sweep(
        config,
        only=args.recipe or None,
        plan=args.plan,
        retry=args.retry or None,
        progress=not args.json and term.smart_tty(sys.stderr),
    )
    for note in result.notes:
        say(note)
    if args.json:
        print(json.dumps(result.rows, indent=1, sort_keys=True))
    else:
        print_table(
            [{**r, "reason": why(r) or None} for r in result.rows], [*SWEEP_COLUMNS, "reason"]
        )
        if result.fleet.excluded:
            print_lines(f"excluded: {name}: {why_}" for name, why_ in result.fleet.excluded)
        for recipe, incident, acked in canonical_incidents(result.results):
            then = (
                "acknowledged by its HOLD"
                if acked
                else "the sweep exits 1 until you set HOLD "
                "in its recipe_meta.py or a new release is promoted"
            )
            print_lines([f"INCIDENT {recipe}: {incident}; {then}"])
        for row in result.results:
            if row.error and not result.plan:
                print(term.visible(f"{row.recipe}: {row.error}"), file=sys.stderr)
        if result.plan:
            print_lines(plan_notes(result.results))
        else:
            print_lines(
                [
                    f"run {result.run_id}: {result.status}; "
                    f"results in {result.run_dir / 'results.jsonl'}"
                ]
            )
    if result.plan:  # a plan fails only where a recipe could not even be planned
        return 1 if any(r.outcome is Outcome.ERROR for r in result.results) else 0
    return result.exit_code


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sw = sub.add_parser(
        "sweep",
        help="the weekly job: sync, decide, cold-test, gate, promote, label",
        description=textwrap.fill(
            "Sweep every enrolled recipe of the fleet: mirror it from upstream, find its newest "
            "release tag, and when that is newer than the canonical, cold-test exactly that tag "
            "and promote it if it is green and the tested commit is the tag's commit. One "
            "recipe's failure is its own row; the others go on. Labels come from the registry, "
            "not exit codes.",
            78,
        ),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sw.add_argument(
        "--plan",
        action="store_true",
        help="only say what each recipe would do (syncs the mirrors, nothing else)",
    )
    sw.add_argument("--recipe", action="append", metavar="R", help="only this recipe (repeatable)")
    sw.add_argument(
        "--retry",
        action="append",
        metavar="R",
        help="cold-test R's latest tag even if it is known-red (repeatable)",
    )
    add_json(sw, "the result rows, a list")
    sw.set_defaults(func=cmd_sweep)
