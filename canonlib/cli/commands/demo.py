"""``canon demo``: build the demo fleet and run canon's main job on it."""

from __future__ import annotations

import argparse

from canonlib.demo.fleet import run_demo
from canonlib.errors import UsageError


def cmd_demo(args: argparse.Namespace) -> int:
    if args.servers > 1 and args.backend != "swarm":
        raise UsageError("--servers needs --backend swarm")
    return run_demo(
        args.dir, evidence=not args.no_evidence, backend=args.backend, servers=args.servers
    )


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    de = sub.add_parser(
        "demo",
        help="build the demo fleet in DIR and run canon's main job on it",
        description="Build a workspace in DIR (default ./demo) with real git: upstream repos "
        "shaped like Co-op Cloud recipes with their real tag histories, a fleet tree and "
        "canon.toml; then sweep it week by week, print the results and where the evidence is. "
        "Running it again starts afresh.",
    )
    de.add_argument("dir", nargs="?", default="demo", help="where to build it (default: ./demo)")
    de.add_argument("--no-evidence", action="store_true", help="run the sweeps only, no notebooks")
    de.add_argument(
        "--backend",
        choices=("local", "swarm"),
        default="local",
        help="local (embedded, no docker) or swarm (the local docker engine's swarm: "
        "scripts/swarm-up; recipe images are built locally)",
    )
    de.add_argument(
        "--servers",
        type=int,
        default=1,
        metavar="N",
        help="swarm: spread the demo over N servers, the docker contexts canon-s1 .. canon-sN "
        "that scripts/swarm-up --servers N makes (default: 1, the local engine)",
    )
    de.set_defaults(func=cmd_demo)
