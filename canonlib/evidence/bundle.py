"""The bundle: what an evidence dir carries so ``canon verify DIR`` needs nothing else.

Taken at the end of the run, under ``bundle/``:

- ``registry.db``: a consistent copy of the registry (SQLite's online backup API,
  not a file copy), in rollback-journal mode so it is one file;
- ``refs.json``: each claimed recipe's upstream URL, branch, and its mirror's
  peeled tag -> commit map (``tags`` is null with an ``error`` when there is no
  readable mirror);
- ``config.json``: the configuration, secrets left out (URL credentials and
  backend keys that look like secrets).

The fleet commit and canon's version/commit are in the manifest itself.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import NotRequired, TypedDict
from urllib.parse import urlsplit, urlunsplit

from canonlib import git
from canonlib.config import Config
from canonlib.files import copy_file, write_atomic
from canonlib.state.registry import Registry, sqlite_backup

BUNDLE = "bundle"
REGISTRY = f"{BUNDLE}/registry.db"
REFS = f"{BUNDLE}/refs.json"
CONFIG = f"{BUNDLE}/config.json"
MANIFEST_CAP = 16 << 20  # manifest.json as read back (verify, the log): 72 KiB in the demo
SECRET_KEY = re.compile(r"secret|token|passw|key|credential|auth", re.IGNORECASE)


class RecipeRefs(TypedDict):
    """A claimed recipe's entry in ``refs.json``: its upstream (credentials left out), branch
    and its mirror's peeled tag -> commit map (None, with ``error``, when there is no readable
    mirror)."""

    upstream: str | None
    branch: str
    tags: dict[str, str] | None
    error: NotRequired[str]


class BundledConfig(TypedDict, total=False):
    """What ``canon verify`` reads of ``config.json`` (the whole configuration is there, secrets
    left out: :func:`config_record`)."""

    disk_budget_bytes: int


def backup_registry(src: Path, dest: Path) -> None:
    """SQLite online backup of ``src`` into ``dest``: the registry's one backup routine."""
    sqlite_backup(src, dest)


REGISTRY_CAP = 1 << 30  # a bundled registry a reviewer is handed: a few MiB in a real fleet


@contextmanager
def open_copy(db: Path, *, within: Path | None = None) -> Iterator[Registry]:
    """Open a private copy of a bundled registry: reading never writes into the evidence dir.

    The copy is a stream of a regular file under :data:`REGISTRY_CAP` (resolving inside
    ``within`` when given): a FIFO or a link to ``/dev/zero`` is a :class:`FileProblem`."""
    with tempfile.TemporaryDirectory(prefix="canon-verify-") as tmp:
        copy = Path(tmp) / "registry.db"
        if within is not None:
            copy_file(Path(db).relative_to(within), copy, REGISTRY_CAP, within=within)
        else:
            copy_file(db, copy, REGISTRY_CAP)
        with Registry.open(copy) as reg:
            yield reg


def scrub_url(url: str | None) -> str | None:
    """A URL without its user:password part."""
    if not url or "@" not in url:
        return url
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _scrub_object(value: dict[str, object]) -> dict[str, object]:
    return {k: ("(left out)" if SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()}


def _scrub(value: object) -> object:
    if isinstance(value, dict):
        return _scrub_object(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return scrub_url(value)
    return value


def config_record(config: Config) -> dict[str, object]:
    """The configuration as JSON, secrets left out."""
    return _scrub_object(
        {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    )


def recipe_refs(config: Config, recipe: str) -> RecipeRefs:
    entry = RecipeRefs(
        upstream=scrub_url(config.upstream_url(recipe)),
        branch=config.branch_for(recipe),
        tags=None,
    )
    mirror = config.mirror_path(recipe)
    if not mirror.is_dir():
        entry["error"] = f"no mirror at {mirror}"
        return entry
    try:
        refs, peeled = git.local_refs(mirror, ["refs/tags/"])
    except git.GitError as e:
        entry["error"] = f"mirror unreadable: {e}"
        return entry
    entry["tags"] = {
        ref.removeprefix("refs/tags/"): peeled.get(ref, oid) for ref, oid in sorted(refs.items())
    }
    return entry


def write_registry(config: Config, d: Path) -> None:
    """``bundle/registry.db``: first, so what the manifest claims is read from it."""
    backup_registry(config.db_path, d / REGISTRY)


def write_refs_and_config(config: Config, d: Path, recipes: Iterable[str]) -> None:
    """``bundle/refs.json`` for the claimed ``recipes`` and ``bundle/config.json``."""
    refs = {r: recipe_refs(config, r) for r in sorted(set(recipes))}
    write_atomic(d / REFS, json.dumps(refs, indent=1, sort_keys=True) + "\n")
    write_atomic(d / CONFIG, json.dumps(config_record(config), indent=1, sort_keys=True) + "\n")
