"""Known-red memory: the inputs ``policy.known_red`` compares, computed from the world.

A verdict is about one tag at one commit, tested by the fleet's tests for the
recipe with one harness.  This module computes the last two parts: a content
digest of ``<fleet>/tests/<recipe>/`` (committed or not) and the harness
identity (canon's version, a digest of its own source files, and the harness command).

And whether a failure is a verdict at all: :func:`disk_room` finds a filesystem the
run writes to that is almost full (``policy.nearly_full``); a failure there is no
verdict (a full disk is canon's environment, not the recipe), so it is never remembered.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from canonlib.files import FileProblem, read_small_file
from canonlib.sweep import policy
from canonlib.tables import human_bytes

# written by running the tests, not part of them
_IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")
FLEET_FILE_CAP = 256 << 20  # a fleet test file; a bigger one is digested by its size alone
_CANONLIB = Path(__file__).resolve().parents[1]


def tests_digest(tests_dir: Path) -> str:
    """``sha256:<hex>`` over every file's relative path, mode bit and bytes under ``tests_dir``."""
    h = hashlib.sha256()
    root = os.fspath(Path(tests_dir))  # plain strings, not Paths: this runs once per recipe a week
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_DIRS)
        prefix = dirpath[len(root) + 1 :] + "/" if dirpath != root else ""
        for name in sorted(filenames):
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            rel = prefix + name
            link = os.path.islink(path)
            if link:
                body = b"link:" + os.readlink(path).encode()
            else:  # the operator's fleet: a FIFO or device is named in the digest, never read
                try:
                    body = read_small_file(path, FLEET_FILE_CAP)
                except FileProblem as e:
                    body = f"unreadable:{e}".encode()
            executable = b"x" if not link and os.access(path, os.X_OK) else b"-"
            h.update(f"{len(rel)}:{rel}:".encode() + executable + f":{len(body)}:".encode())
            h.update(body)
    return "sha256:" + h.hexdigest()


def source_digest(package: Path = _CANONLIB) -> str:
    """``sha256:<hex>`` over canon's own Python sources: sorted relative paths and their bytes.

    This, not canon's git commit, is what tells one harness from another: an install from a
    wheel or an sdist has no ``.git``, and a checkout's ``+dirty`` says nothing of which edit
    is in it.  Only ``*.py`` files count (no ``__pycache__``, no tool's files beside them).
    """
    root = os.fspath(package)
    h = hashlib.sha256()
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
        rel = os.path.relpath(dirpath, root)
        paths += [os.path.normpath(os.path.join(rel, n)) for n in filenames if n.endswith(".py")]
    for rel in sorted(p.replace(os.sep, "/") for p in paths):
        with open(os.path.join(root, rel), "rb") as f:
            body = f.read()
        h.update(f"{len(rel)}:{rel}:{len(body)}:".encode())
        h.update(body)
    return "sha256:" + h.hexdigest()


@functools.cache
def own_source_digest() -> str:
    """The running canon's :func:`source_digest`, computed once per process."""
    return source_digest(_CANONLIB)


def harness_identity(
    code: Mapping[str, object], command: Sequence[str], source: str | None = None
) -> str:
    """``canon <version> src:<digest12>; <command>``: new canon code or command is a new harness.

    ``source`` is canon's :func:`source_digest` (this process's own by default).  The git
    commit is not part of it: a commit that leaves canonlib alone (docs, tests) is the same
    harness, and an uncommitted edit is a new one each time the code changes.
    """
    digest = (source or own_source_digest()).removeprefix("sha256:")
    return f"canon {code.get('code_version')} src:{digest[:12]}; {shlex.join(command)}"


def disk_room(paths: Iterable[str | os.PathLike[str] | None]) -> str | None:
    """The one line for the first of ``paths`` whose filesystem is almost full, else None.

    A path that does not exist (any more) is checked at its nearest existing parent; each
    filesystem is checked once.  Cheap (a ``statvfs`` each): it runs only after a failure.
    """
    seen = set()
    for path in paths:
        if not path:
            continue
        where = Path(path)
        while not where.exists() and where.parent != where:
            where = where.parent
        try:
            dev = where.stat().st_dev
            st = os.statvfs(where)
        except OSError:
            continue
        if dev in seen:
            continue
        seen.add(dev)
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        if policy.nearly_full(free, total):
            return (
                f"{Path(path)}: disk almost full "
                f"({human_bytes(free)} free of {human_bytes(total)}); "
                "free space on that filesystem and re-run"
            )
    return None
