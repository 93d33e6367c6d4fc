"""What several commands share: the config, the registry-behind checks, the lock."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from canonlib.backends import make_backend
from canonlib.config import Config, load_config
from canonlib.errors import CanonError
from canonlib.state import registry_guard
from canonlib.state.registry import utcnow
from canonlib.sweep.orchestrate import sweep_lock

EXIT_CODES = """\
exit codes:
  0   everything ran as expected
  1   some recipe is FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED (with --plan: ERROR), a check
      failed, or `history` of a recipe canon does not know
  2   usage or configuration error (including a fleet with no enrolled recipe)
  3   nothing found (versions latest: no release among the tags)
  75  another sweep holds the lock on this state dir (try again later)
  a bug in canon exits 1 with one line naming the log that holds the traceback
  130 interrupted (SIGINT), 143 terminated (SIGTERM): the run is marked interrupted
"""


def config_of(args: argparse.Namespace) -> Config:
    """The canon.toml that --config (else $CANON_CONFIG, else ./canon.toml) names."""
    return load_config(args.config)


def warn_if_behind(config) -> None:
    """Read-only commands still work on a registry that is behind; they say so."""
    warning = registry_guard.behind_warning(config.db_path, make_backend(config))
    if warning:
        print(warning, file=sys.stderr)


def require_current(config, doing: str) -> None:
    """Mutating commands refuse (exit 2) on a registry behind the deployed canonicals."""
    registry_guard.require_current(config.db_path, make_backend(config), doing)


def registry_lock(config, what: str):
    return sweep_lock(config.lock_path, f"pid={os.getpid()} {what} started={utcnow()}")


def state_dir_of(args: argparse.Namespace) -> Path | None:
    """The configured state dir, for the guard's messages and crash logs (None if unknown)."""
    try:
        return load_config(getattr(args, "config", None)).state_dir
    except CanonError:
        return None
