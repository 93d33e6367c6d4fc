"""``canon status``, ``canon pins`` and ``canon history``."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import sys
from dataclasses import asdict

from canonlib.cli.common import config_of, warn_if_behind
from canonlib.cli.style import (
    add_json,
    print_json,
    print_table,
)
from canonlib.config import Config
from canonlib.errors import CanonError
from canonlib.ops.status import redundant_pins, status_rows
from canonlib.recipe.fleet import discover
from canonlib.state.registry import Registry
from canonlib.tables import why


def cmd_status(args: argparse.Namespace) -> int:
    config = config_of(args)
    warn_if_behind(config)
    rows = status_rows(config)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
    else:
        print_table(
            rows,
            [
                "recipe",
                "enrolled",
                "canonical",
                "commit",
                "age_days",
                *(["server"] if config.backend.get("servers") else []),
                "hold",
                "pin",
                "last_label",
                "incident",
            ],
        )
    return 0


def cmd_pins(args: argparse.Namespace) -> int:
    pins = redundant_pins(config_of(args))
    if args.json:
        print_json(pins)
        return 0
    for p in pins:
        print(
            f"{p['recipe']}: UPGRADE_BASE_VERSION = {p['pin']!r} equals the canonical; "
            f"remove it from {p['meta']} (the dynamic base now gives the same)"
        )
    if not pins:
        print("no redundant upgrade-base pins")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    config = config_of(args)
    warn_if_behind(config)
    if not config.db_path.exists():
        return _unknown_recipe(args.recipe, config, None)
    with Registry.open(config.db_path, create=False) as reg:
        promos = [asdict(p) for p in reg.history(args.recipe)]
        rows = reg.results(recipe=args.recipe)
        if not promos and not rows:
            return _unknown_recipe(args.recipe, config, reg)
    results = [r.to_dict() for r in rows]  # as ``--json`` prints them and the table shows them
    if args.json:
        print(json.dumps({"promotions": promos, "results": results}, indent=1, sort_keys=True))
        return 0
    for p in promos:
        p["commit"] = p["commit"][:12]
    print_table(
        promos,
        ["id", "promoted_at", "version", "commit", "previous_version", "deployment", "run_id"],
    )
    print()
    for r in results:
        r["reason"] = why(r) or None
    print_table(results, ["run_id", "decision", "latest", "level", "label", "reason"])
    return 0


def _unknown_recipe(
    recipe: str, config: Config, reg: Registry | None
) -> int:  # reg None: no registry yet
    """``history`` of a recipe with no rows: exit 1, naming the closest known recipe."""
    known = set()
    if reg is not None:
        known = {p.recipe for p in reg.history()} | {r.recipe for r in reg.results()}
    with contextlib.suppress(CanonError):  # no fleet here: the registry's names are all we know
        known |= {r.name for r in discover(config.fleet).recipes}
    if recipe in known:
        print(f"{recipe}: no promotion or sweep result yet in {config.db_path}")
        return 0
    close = difflib.get_close_matches(recipe, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    print(
        f"canon: unknown recipe {recipe!r}: not in the fleet nor in {config.db_path}{hint}",
        file=sys.stderr,
    )
    return 1


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("status", help="the canonicals, their age, holds and pins")
    add_json(st, "one row per recipe, a list")
    st.set_defaults(func=cmd_status)

    pi = sub.add_parser(
        "pins",
        help="upgrade-base pins the canonical now makes redundant",
        description="List recipes whose UPGRADE_BASE_VERSION equals their canonical: "
        "the pin can go.",
    )
    add_json(pi, "the redundant pins, a list")
    pi.set_defaults(func=cmd_pins)

    hi = sub.add_parser("history", help="a recipe's promotions and sweep results")
    hi.add_argument("recipe", help="the recipe (its directory name under the fleet's tests/)")
    add_json(hi, "{promotions, results}")
    hi.set_defaults(func=cmd_history)
