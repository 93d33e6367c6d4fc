"""``canon versions sort|latest``: order recipe tags read from stdin."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from canonlib.cli.style import (
    add_json,
    print_json,
)
from canonlib.recipe.versions import is_version, latest_release, sort_versions


def _read_tags(stream: Iterable[str]) -> list[str]:
    return [line.strip() for line in stream if line.strip()]


def cmd_versions_sort(args: argparse.Namespace) -> int:
    tags = _read_tags(sys.stdin)
    if args.json:
        print_json(
            {
                "versions": sort_versions(tags),
                "not_versions": [t for t in tags if not is_version(t)],
            }
        )
        return 0
    for tag in sort_versions(tags):
        print(tag)
    for tag in tags:
        if not is_version(tag):
            print(f"canon: not a recipe version, left out: {tag!r}", file=sys.stderr)
    return 0


def cmd_versions_latest(args: argparse.Namespace) -> int:
    tags = _read_tags(sys.stdin)
    latest = latest_release(tags, allow_prerelease=args.allow_prerelease)
    if latest is None:
        kind = "release or prerelease" if args.allow_prerelease else "release"
        print(f"canon: no {kind} tag among {len(tags)} tag(s) read from stdin", file=sys.stderr)
        if args.json:
            print_json({"latest": None})
        return 3
    if args.json:
        print_json({"latest": latest})
        return 0
    print(latest)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    v = sub.add_parser("versions", help="order recipe tags (read one per line from stdin)")
    vsub = v.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    vs = vsub.add_parser(
        "sort",
        help="print the recipe versions oldest first",
        description="Read tags one per line from stdin; print the recipe versions among them, "
        "oldest first, by semver precedence of the recipe part, then the app part. "
        "Tags that are not versions are named on stderr.",
    )
    add_json(vs, "the versions and the tags that are not")
    vs.set_defaults(func=cmd_versions_sort)
    vl = vsub.add_parser(
        "latest",
        help="print the newest release",
        description="Read tags one per line from stdin; print the newest release tag. "
        "Exit 3 when there is none.",
    )
    vl.add_argument(
        "--allow-prerelease", action="store_true", help="count prereleases (1.0.0-rc1) as releases"
    )
    add_json(vl, "the newest release (null when none)")
    vl.set_defaults(func=cmd_versions_latest)
