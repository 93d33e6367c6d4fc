"""``canon init`` and ``canon meta keys``: a working start, and the meta keys."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap

from canonlib.cli.style import (
    add_json,
    print_json,
)
from canonlib.ops.init import init, next_steps
from canonlib.recipe.meta import key_rows as meta_key_rows


def cmd_init(args: argparse.Namespace) -> int:
    scaffold = init(args.dir, force=args.force)
    if args.json:
        print_json({k: str(v) for k, v in vars(scaffold).items()})
        return 0
    print(next_steps(scaffold, "canon" if _on_path() else f"{sys.executable} -m canonlib"))
    return 0


def _on_path() -> bool:
    return shutil.which("canon") is not None


def cmd_meta_keys(args: argparse.Namespace) -> int:
    rows = meta_key_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['key']}  ({r['type']}; default {r['default']})")
        print(textwrap.fill(r["meaning"], 78, initial_indent="    ", subsequent_indent="    "))
        print(f"    e.g. {r['example']}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ini = sub.add_parser(
        "init",
        help="start a new install: canon.toml and a fleet with one example recipe",
        description="Write DIR/canon.toml and DIR/fleet (a git repo) holding one example "
        "recipe: its recipe_meta.py with every key commented and a functional test. Then "
        "`canon --config DIR/canon.toml sweep --plan` says what a sweep would do. Never "
        "overwrites an existing canon.toml or fleet.",
    )
    ini.add_argument("dir", metavar="DIR", help="directory to create the install in (new or empty)")
    ini.add_argument(
        "--force",
        action="store_true",
        help="write into DIR even when it is not empty or is a symlink (an existing canon.toml "
        "or fleet is still never overwritten)",
    )
    add_json(ini, "the paths written")
    ini.set_defaults(func=cmd_init)
    me = sub.add_parser("meta", help="the recipe_meta.py keys")
    mesub = me.add_subparsers(dest="meta_command", metavar="ACTION", required=True)
    mk = mesub.add_parser(
        "keys", help="print every recipe_meta.py key: type, default, meaning, example"
    )
    add_json(mk, "the keys")
    mk.set_defaults(func=cmd_meta_keys)
