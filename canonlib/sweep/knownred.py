"""Known-red memory: the inputs ``policy.known_red`` compares, computed from the world.

A verdict is about one tag at one commit, tested by the fleet's tests for the
recipe with one harness.  This module computes the last two parts: a content
digest of ``<fleet>/tests/<recipe>/`` (committed or not) and the harness
identity (canon's version and commit, and the harness command).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# written by running the tests, not part of them
_IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")


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
            else:
                with open(path, "rb") as f:
                    body = f.read()
            executable = b"x" if not link and os.access(path, os.X_OK) else b"-"
            h.update(f"{len(rel)}:{rel}:".encode() + executable + f":{len(body)}:".encode())
            h.update(body)
    return "sha256:" + h.hexdigest()


def harness_identity(code: Mapping[str, Any], command: Sequence[str]) -> str:
    """``canon <version> <commit12>[+dirty]; <command>``: a new canon or command is a new harness."""
    ident = f"canon {code.get('code_version')}"
    if code.get("code_commit"):
        ident += f" {str(code['code_commit'])[:12]}" + ("+dirty" if code.get("code_dirty") else "")
    return f"{ident}; {shlex.join(command)}"
