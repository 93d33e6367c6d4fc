"""``canon investigate``: why a recipe fails, as evidence."""

from __future__ import annotations

import argparse

from canonlib.cli.common import config_of
from canonlib.cli.style import (
    add_json,
    print_json,
    print_lines,
)
from canonlib.errors import UsageError
from canonlib.evidence import investigate
from canonlib.evidence.progress import stderr_out
from canonlib.evidence.report import INDEX
from canonlib.evidence.run import notebooks_dir, run_suite
from canonlib.state.registry import Registry
from canonlib.term import did_you_mean


def cmd_investigate(args: argparse.Namespace) -> int:
    config = config_of(args)
    if not config.db_path.exists():
        raise UsageError(f"no registry at {config.db_path}: run `canon sweep` first")
    with Registry.open(config.db_path) as reg:
        rows = reg.results()
    known = sorted({r.recipe for r in rows})
    if args.recipe and args.recipe not in known:
        raise UsageError(
            f"{args.recipe}: no results in {config.db_path}{did_you_mean(args.recipe, known)}"
        )
    recipe = investigate.pick(rows, args.recipe)
    if recipe is None:
        if args.json:
            print_json({"recipe": None})
        else:
            print(
                "nothing to investigate: no recipe has a failing result; "
                "name one: canon investigate RECIPE"
            )
        return 0
    streak = next((s for s in investigate.failing_streaks(rows) if s.recipe == recipe), None)
    why = f" (failing since run {streak.since_run}, {streak.runs} run(s))" if streak else ""
    err = stderr_out()
    err(f"investigating {recipe}{why}")
    ev = run_suite(
        config,
        "investigate",
        params={"recipe": recipe},
        out=err,
        notebooks=[notebooks_dir() / "investigate.ipynb"],
    )
    rec = next((n.records for n in ev.notebooks if n.name == "investigate"), {})
    if args.json:
        print_json(
            {
                "recipe": recipe,
                "reason": rec.get("investigate_reason"),
                "dir": str(ev.dir),
                "index": str(ev.dir / INDEX),
                "ok": ev.ok,
            }
        )
        return 0 if ev.ok else 1
    if rec.get("investigate_reason"):
        print_lines([f"{recipe}: {rec['investigate_reason']}"])
    print(ev.dir)
    print(ev.dir / INDEX)
    return 0 if ev.ok else 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inv = sub.add_parser(
        "investigate",
        help="why a recipe fails: its history, rungs and last log, as evidence",
        description="Execute the investigate notebook for RECIPE into its own evidence dir, "
        "without a sweep: no mirror is fetched, no registry row is written. With no RECIPE, the "
        "recipe that has been failing longest. Prints the reason, the dir and its index.html.",
    )
    inv.add_argument("recipe", nargs="?", help="the recipe (default: the one failing longest)")
    add_json(inv, "the recipe, reason, dir and page")
    inv.set_defaults(func=cmd_investigate)
