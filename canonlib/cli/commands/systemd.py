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
from canonlib.config import resolve_path
from canonlib.errors import UsageError
from canonlib.files import FileProblem, read_small_file
from canonlib.ops.systemd import SERVICE, TIMER, UNIT_CAP, UnitOptions, render, verify_units
from canonlib.term import visible


def _resolved(flag: str, value: str | None) -> Path | None:
    """``value`` as an absolute path with its symlinks resolved (:func:`.config.resolve_path`)."""
    return resolve_path(value, named=f"{flag} {value}") if value else None


UNIT_VALUES = ("path", "on_calendar", "delay", "fleet", "working_directory", "user", "on_failure")


def _require_utf8(args: argparse.Namespace) -> None:
    """A unit file is UTF-8: a value that is not (bytes from argv) is exit 2, not a crash."""
    for flag in UNIT_VALUES:
        value = getattr(args, flag, None)
        try:
            (value or "").encode()
        except UnicodeEncodeError:
            name = "--" + flag.replace("_", "-")
            shown = visible(str(value))
            raise UsageError(f"{name} {shown}: not UTF-8; a systemd unit is") from None


def cmd_systemd_render(args: argparse.Namespace) -> int:
    _require_utf8(args)
    fleet = _resolved("--fleet", args.fleet)
    if fleet:  # the unit's CCCI_REPO; the config may rely on it for the fleet
        os.environ["CCCI_REPO"] = str(fleet)
    o = UnitOptions(
        path=args.path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        on_calendar=args.on_calendar,
        randomized_delay=args.delay,
        fleet=fleet,
        working_directory=_resolved("--working-directory", args.working_directory),
        user=args.user,
        on_failure=args.on_failure,
    )
    config = config_of(args)
    if config.path is None:  # the unit must name the canon.toml it runs with
        raise UsageError(
            "no canon.toml here: render the units with --config pointing at the operator's "
            "canon.toml (or $CANON_CONFIG)"
        )
    output = Path(args.output)
    if (output.is_symlink() or output.exists()) and not output.is_dir():
        raise UsageError(f"--output {output}: not a directory; name a new or existing directory")
    try:
        written = render(config, output, o)
    except OSError as e:
        raise UsageError(f"--output {output}: cannot write the units there ({e})") from None
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
    d = Path(args.dir)
    for unit in (d / SERVICE, d / TIMER):  # systemd-analyze must not be handed a FIFO or a device
        try:
            read_small_file(unit, UNIT_CAP)
        except FileNotFoundError:
            continue  # verify_units says it is missing
        except FileProblem as e:
            raise UsageError(f"{unit} {e}") from None
    return print_claims(verify_units(d), args)


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
