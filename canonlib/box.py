"""The box a recipe's own code runs in on the local backend: bubblewrap's argv, from paths.

Pure: it takes the paths and returns the argv; finding ``bwrap``, making the decoys and
reading them afterwards is :mod:`canonlib.backends.boxed`.  Inside the box:

- the whole filesystem is read-only (``--ro-bind / /``), with a fresh ``/dev``, a ``/proc``
  of a pid namespace of its own and a private ``/tmp``;
- canon's own paths (state dir with the registry and the keys, the slots root, the evidence,
  the fleet, the config) are each covered by a *decoy*: an empty copy of their first two
  levels, writable, which canon reads after the command to see whether it tried to write
  there (a read of ``canon.db`` or the key finds an empty file);
- ``hide`` paths (the operator's home) are an empty tmpfs, ``blank`` paths (the docker
  socket) are ``/dev/null``;
- only the slot itself is bound writable, last, so it shows through whatever covers its
  parents;
- no capability is left, and the box dies with canon (``--die-with-parent``).

Mounts are applied parents first (by depth), so a path under another is mounted on top of
it, whatever order the caller gave them in.  The command is the pid namespace's init
(``--as-pid-1``): without it bwrap leaves its own init behind as a zombie for the host's init
to reap, and the process group outlives the command by up to seconds.  The box stays in
canon's process group (no
``--new-session``): the group kill of :mod:`canonlib.process` reaches every process in it,
and its stdin is never a terminal, so no input can be fed to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

BASE = (
    "--die-with-parent",
    "--unshare-pid",
    "--as-pid-1",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
)
# the order of mounts at one depth: a tmpfs, then a decoy over it, then the slot on top
_HIDE, _DECOY, _BLANK, _SLOT = range(4)


@dataclass(frozen=True)
class BoxSpec:
    """What one boxed command sees: ``slot`` writable, ``cwd`` its working directory,
    ``decoys`` as (canon's path, its decoy on the host), ``hide`` as empty tmpfs, ``blank``
    as /dev/null.  Paths are absolute and resolved (no symlink on the way)."""

    slot: str
    cwd: str
    decoys: tuple[tuple[str, str], ...] = ()
    hide: tuple[str, ...] = ()
    blank: tuple[str, ...] = ()


def _depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def _coverable(path: str) -> bool:
    """A path the box may cover: absolute, not ``/`` itself, nothing relative in it."""
    p = PurePosixPath(path)
    return p.is_absolute() and len(p.parts) > 1 and ".." not in p.parts


def mounts(spec: BoxSpec) -> list[str]:
    """The mount arguments after :data:`BASE`, parents first."""
    ops: list[tuple[int, int, list[str]]] = []
    for path in spec.hide:
        ops.append((_depth(path), _HIDE, ["--tmpfs", path]))
    for path, decoy in spec.decoys:
        ops.append((_depth(path), _DECOY, ["--bind", decoy, path]))
    for path in spec.blank:
        ops.append((_depth(path), _BLANK, ["--ro-bind", "/dev/null", path]))
    ops.append((_depth(spec.slot), _SLOT, ["--bind", spec.slot, spec.slot]))
    for _, _, args in ops:
        if not _coverable(args[-1]):
            raise ValueError(f"the box cannot cover {args[-1]!r}: not an absolute path below /")
    return [arg for _, _, args in sorted(ops, key=lambda op: op[:2]) for arg in args]


def argv(bwrap: str, command: Sequence[str], spec: BoxSpec) -> list[str]:
    """``command`` in the box: bwrap's argv."""
    return [
        bwrap,
        *BASE,
        *mounts(spec),
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--chdir",
        spec.cwd,
        "--",
        *command,
    ]


def probe_argv(bwrap: str) -> list[str]:
    """A box around ``true`` with the same namespaces: does bwrap start here at all?"""
    return [bwrap, *BASE, "--", "true"]
