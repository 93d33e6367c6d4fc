"""``canon`` — the command line.  Thin: parse arguments, call canonlib, print.

Exit codes: 0 ok, 1 a recipe failed or a check failed, 2 usage or config,
3 nothing to report (``versions latest`` found no release), 75 another sweep
holds the lock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import CanonError
from .versions import is_version, latest_release, sort_versions

EXIT_CODES = """\
exit codes:
  0   everything ran as expected
  1   some recipe FAILed or ERRORed, or a check failed
  2   usage or configuration error
  3   nothing found (versions latest: no release among the tags)
  75  another sweep holds the lock on this state dir (try again later)
"""


def _read_tags(stream) -> list[str]:
    return [line.strip() for line in stream if line.strip()]


def cmd_versions_sort(args: argparse.Namespace) -> int:
    tags = _read_tags(sys.stdin)
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
        return 3
    print(latest)
    return 0


def cmd_harness(args: argparse.Namespace) -> int:
    from .harness import main as harness_main

    return harness_main()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
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

    v = sub.add_parser("versions", help="order recipe tags (read one per line from stdin)")
    vsub = v.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    vs = vsub.add_parser(
        "sort", help="print the recipe versions oldest first",
        description="Read tags one per line from stdin; print the recipe versions among them, "
        "oldest first, by semver precedence of the recipe part, then the app part. "
        "Tags that are not versions are named on stderr.",
    )  # fmt: skip
    vs.set_defaults(func=cmd_versions_sort)
    vl = vsub.add_parser(
        "latest", help="print the newest release",
        description="Read tags one per line from stdin; print the newest release tag. "
        "Exit 3 when there is none.",
    )  # fmt: skip
    vl.add_argument(
        "--allow-prerelease", action="store_true", help="count prereleases (1.0.0-rc1) as releases"
    )
    vl.set_defaults(func=cmd_versions_latest)
    h = sub.add_parser(
        "harness", help="the built-in cold-run harness (started by canon sweep)",
        description="Deploy $CCCI_RECIPE_DIR through the configured backend into a throw-away "
        "slot, climb the rungs (L1 install, L2 upgrade from $CCCI_UPGRADE_BASE, L3 backup/restore, "
        "L4 functional tests from the fleet, L5 lint), write $CCCI_RESULT_FILE and tear the slot "
        "down. Exit 0 when green.",
    )  # fmt: skip
    h.set_defaults(func=cmd_harness)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except CanonError as e:
        print(f"canon: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
