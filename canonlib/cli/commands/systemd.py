"""``canon systemd render|verify``: the weekly service and timer."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from canonlib.cli.common import config_of
from canonlib.cli.style import (
    add_json,
    add_quiet_failed,
    print_claims,
    print_json,
)
from canonlib.ops.systemd import UnitOptions, render, verify_units


def cmd_systemd_render(args: argparse.Namespace) -> int:
    if args.fleet:  # the unit's CCCI_REPO; the config may rely on it for the fleet
        os.environ["CCCI_REPO"] = str(Path(args.fleet).resolve())
    o = UnitOptions(
        path=args.path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        on_calendar=args.on_calendar,
        randomized_delay=args.delay,
        fleet=Path(args.fleet) if args.fleet else None,
        working_directory=Path(args.working_directory) if args.working_directory else None,
        user=args.user,
        on_failure=args.on_failure,
    )
    written = render(config_of(args), Path(args.output), o)
    if args.json:
        print_json({"written": [str(p) for p in written]})
        return 0
    for p in written:
        print(p)
    print(
        f"install: sudo cp {args.output}/canon-sweep.* /etc/systemd/system/ && "
        "sudo systemctl daemon-reload && sudo systemctl enable --now canon-sweep.timer"
    )
    return 0


def cmd_systemd_verify(args: argparse.Namespace) -> int:
    return print_claims(verify_units(Path(args.dir)), args)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sd = sub.add_parser("systemd", help="render and verify the weekly service + timer")
    sdsub = sd.add_subparsers(dest="systemd_command", metavar="ACTION", required=True)
    sr = sdsub.add_parser(
        "render",
        help="write canon-sweep.service and canon-sweep.timer for this install",
        description="Write the oneshot service (runs `canon evidence run weekly` from this "
        "checkout with this config, the fleet in CCCI_REPO and the CI runner's PATH) and the "
        "weekly timer (Persistent=true, randomised delay). Use the global --config to name the "
        "operator's canon.toml.",
    )
    sr.add_argument(
        "--output", default="systemd", help="directory to write the units into (default: systemd)"
    )
    sr.add_argument(
        "--path", help="PATH for the service: the CI runner's (default: this shell's PATH)"
    )
    sr.add_argument("--fleet", help="fleet root for CCCI_REPO (default: the config's fleet)")
    sr.add_argument(
        "--working-directory", help="the operator's checkout (default: this canon checkout)"
    )
    sr.add_argument(
        "--on-calendar", default="Sun *-*-* 02:30:00", help="when (default: Sunday 02:30)"
    )
    sr.add_argument("--delay", default="1h", help="RandomizedDelaySec (default: 1h)")
    sr.add_argument("--user", help="User= for the service (default: none, i.e. root)")
    sr.add_argument(
        "--on-failure",
        metavar="UNIT",
        help="OnFailure= unit to start when the week is FAILED or the run breaks, "
        "e.g. canon-notify@%%n.service",
    )
    add_json(sr, "the files written")
    sr.set_defaults(func=cmd_systemd_render)
    sv = sdsub.add_parser(
        "verify", help="systemd-analyze verify the units and check the calendar is weekly"
    )
    sv.add_argument(
        "dir",
        nargs="?",
        default="systemd",
        help="the directory holding the rendered units (default: systemd)",
    )
    add_quiet_failed(sv)
    add_json(sv, "the claims, a list")
    sv.set_defaults(func=cmd_systemd_verify)
