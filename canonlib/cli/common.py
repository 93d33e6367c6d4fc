"""What several commands share: the config, the registry-behind checks, the lock."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager

from canonlib.backends import make_backend
from canonlib.config import Config, load_config
from canonlib.state import registry_guard
from canonlib.state.registry import utcnow
from canonlib.sweep.orchestrate import sweep_lock
from canonlib.term import visible


def config_of(args: argparse.Namespace) -> Config:
    """The canon.toml that --config (else $CANON_CONFIG, else ./canon.toml) names."""
    return load_config(args.config)


def warn_if_behind(config: Config) -> None:
    """Read-only commands still work on a registry that is behind; they say so."""
    warning = registry_guard.behind_warning(config.db_path, make_backend(config))
    if warning:
        print(visible(warning, keep=chr(10)), file=sys.stderr)


def require_current(config: Config, doing: str) -> None:
    """Mutating commands refuse (exit 2) on a registry behind the deployed canonicals."""
    registry_guard.require_current(config.db_path, make_backend(config), doing)


def registry_lock(config: Config, what: str) -> AbstractContextManager[None]:
    return sweep_lock(config.lock_path, f"pid={os.getpid()} {what} started={utcnow()}")
