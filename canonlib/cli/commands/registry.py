"""``canon registry backup|restore|rebuild``: the way out of a registry that is behind."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from canonlib.backends import make_backend
from canonlib.cli.common import config_of, registry_lock
from canonlib.cli.style import (
    add_json,
    print_json,
    print_lines,
)
from canonlib.state.registry_guard import backup, backups_dir, rebuild, restore


def cmd_registry_backup(args: argparse.Namespace) -> int:
    config = config_of(args)
    dest = Path(args.file) if args.file else backups_dir(config.state_dir) / f"manual-{_stamp()}.db"
    with registry_lock(config, "registry backup"):
        copy = backup(config.db_path, dest)
    print_json({"backup": str(copy)}) if args.json else print(copy)
    return 0


def cmd_registry_restore(args: argparse.Namespace) -> int:
    config = config_of(args)
    with registry_lock(config, "registry restore"):
        notes = list(restore(config.db_path, Path(args.file), make_backend(config)))
    print_json({"notes": notes}) if args.json else print_lines(notes)
    return 0


def cmd_registry_rebuild(args: argparse.Namespace) -> int:
    config = config_of(args)
    with registry_lock(config, "registry rebuild"):
        notes = rebuild(
            config.db_path,
            make_backend(config),
            base=Path(args.from_file) if args.from_file else None,
        )
    print_json({"notes": list(notes)}) if args.json else print_lines(notes)
    return 0


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rg = sub.add_parser(
        "registry",
        help="back up, restore or rebuild the registry (state/canon.db)",
        description="The registry must never be behind the deployed canonicals. A sweep refuses "
        "(exit 2) when it is missing, empty, damaged, rolled back or lost rows; these are the "
        "way out.",
    )
    rgsub = rg.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    b = rgsub.add_parser(
        "backup",
        help="a consistent copy (SQLite online backup) to FILE",
        description="Copy the registry with SQLite's online backup API (default FILE: "
        "state/backups/manual-<time>.db). A sweep also keeps its last 5 automatic backups there.",
    )
    b.add_argument(
        "file", nargs="?", help="where to write the copy (default: state/backups/manual-<time>.db)"
    )
    add_json(b, "the backup's path")
    b.set_defaults(func=cmd_registry_backup)
    r = rgsub.add_parser(
        "restore",
        help="replace the registry with FILE, after checking it",
        description="Check FILE (sound, promotion chain intact, this canon instance's, naming "
        "only slots that exist here, not behind the slots' verified markers) and replace the "
        "registry with it atomically; the replaced registry is kept in state/backups. Every "
        "refusal names FILE.",
    )
    r.add_argument("file", help="the backup to restore (a registry .db file)")
    add_json(r, "what was done")
    r.set_defaults(func=cmd_registry_restore)
    rb = rgsub.add_parser(
        "rebuild",
        help="recreate the canonicals from the slots' markers",
        description="Start from --from FILE, else the current registry when its chain checks, else "
        "an empty one; add a `rebuild` row to the promotion chain for every verified canonical "
        "slot the registry does not name; re-mark the slots. A marker is verified when canon "
        "recorded its promotion (the registry's chain, a backup's, or canonicals.json) and the "
        "mirror holds its tag at its commit; any other is listed `unverified marker: not "
        "adopted`. Two verified canonical slots of one recipe stop it, naming both. The "
        "replaced registry is kept in state/backups.",
    )
    rb.add_argument("--from", dest="from_file", metavar="FILE", help="a backup to start from")
    add_json(rb, "what was done")
    rb.set_defaults(func=cmd_registry_rebuild)
