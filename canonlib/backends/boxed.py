"""Running a recipe's own code in the box (:mod:`canonlib.box`), and telling when it tried to
write outside its slot.

How an attempt is seen, and why this way: each of canon's paths is covered by a *decoy*, a
throw-away host directory holding an empty copy of that path's first two levels (directories
as directories, files as empty files), bound writable over it.  A hook that writes a marker
into a sibling slot, touches ``canon.db`` or replaces a key writes into the decoy, and canon
compares the decoy with what it made once the command is over: a new, changed or removed
entry is an attempt, named by its real path.  This does not depend on what the hook prints
(``2>/dev/null || true`` hides nothing) nor on a checksum of live state that other processes
change meanwhile, and nothing of the real paths is visible: the decoy's files are empty.
Anywhere else the filesystem is read-only; a write there fails with EROFS, and a
``...: Read-only file system`` in the output names the path too (a second signal: a hook can
silence it, but then its write failed all the same).

A missing ``bwrap``, or one that cannot start a box (user namespaces disabled, a container
without the rights), is :class:`~canonlib.backends.common.BackendUnavailable`: the cold run
gives no verdict, and recipe code never runs outside the box.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from canonlib import box
from canonlib.backends.base import BackendError
from canonlib.backends.common import BackendUnavailable, run_command

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`)"
SKELETON_DEPTH = 2
SKELETON_CAP = 4096  # entries copied into one decoy; a path with more keeps only the first
WALK_CAP = 10000  # entries read back from one decoy; more is an attempt all the same
SOCKETS = ("/run/docker.sock", "/var/run/docker.sock", "/run/containerd/containerd.sock")
_EROFS = re.compile(r"(/[^\s'\"`:]*)['\"`’]?: Read-only file system")
_started: dict[str, str] = {}  # bwrap path -> "" when it starts a box, else why not


class OutsideSlot(BackendError):
    """Recipe code tried to write outside its slot: a red step, never retried."""


def find_bwrap(step: str, environ: Mapping[str, str] | None = None) -> str:
    """The ``bwrap`` on PATH that can start a box here (checked once per process), else
    :class:`BackendUnavailable` naming bwrap and how to install it."""
    env = os.environ if environ is None else environ
    bwrap = shutil.which("bwrap", path=env.get("PATH", os.defpath))
    if not bwrap:
        raise BackendUnavailable(
            step,
            "bubblewrap (bwrap) is not on PATH, and the local backend runs a recipe's own "
            f"code only in its box; {INSTALL_HINT}",
        )
    if bwrap not in _started:
        _started[bwrap] = box_problem(bwrap)
    if _started[bwrap]:
        raise BackendUnavailable(
            step,
            f"bubblewrap ({bwrap}) cannot start a box here: {_started[bwrap]}; the local "
            "backend runs a recipe's own code only in its box; allow user namespaces "
            f"(sysctl kernel.unprivileged_userns_clone=1) or run canon as root, or {INSTALL_HINT}",
        )
    return bwrap


def box_problem(bwrap: str) -> str:
    """Why ``bwrap`` cannot start a box here ("" when it can)."""
    try:
        r = subprocess.run(  # noqa: S603 -- our own argv
            box.probe_argv(bwrap),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if r.returncode:
        return (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return ""


Plan = tuple[tuple[str, bool], ...]  # a decoy's entries: (path relative to it, a directory?)


def skeleton_plan(real: Path) -> Plan | None:
    """What the decoy of ``real`` holds: its first :data:`SKELETON_DEPTH` levels (directories
    and regular files, no links), at most :data:`SKELETON_CAP` entries; None for a file."""
    if not real.is_dir():
        return None
    out: list[tuple[str, bool]] = []
    todo = [(real, "", 1)]
    while todo:
        s, rel, depth = todo.pop()
        try:
            entries = sorted(os.scandir(s), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if len(out) >= SKELETON_CAP:
                return tuple(out)
            if e.is_dir(follow_symlinks=False):
                out.append((rel + e.name, True))
                if depth < SKELETON_DEPTH:
                    todo.append((Path(e.path), rel + e.name + "/", depth + 1))
            elif e.is_file(follow_symlinks=False):
                out.append((rel + e.name, False))
    return tuple(out)


class Decoy:
    """One of canon's paths as the box shows it: an empty copy of its first levels, made on
    the host at ``host``."""

    def __init__(self, real: Path, host: Path, plan: Plan | None):
        self.real, self.host, self.plan = real, host, plan
        if plan is None:
            host.touch()
        else:
            host.mkdir()
            for rel, is_dir in plan:  # a directory comes before its entries in a plan
                if is_dir:
                    (host / rel).mkdir()
                else:
                    (host / rel).touch()
        self.made = _listing(host)

    def written(self, nested: Iterable[Path]) -> list[Path]:
        """The real paths the command created, changed or removed through this decoy; the
        mount points bwrap made for ``nested`` paths are not the command's.  When there are
        none, what is there now (those mount points) is the decoy's next baseline."""
        points = set()
        for path in nested:
            if path != self.real and self.real in path.parents:
                rel = path.relative_to(self.real)
                points |= {rel, *list(rel.parents)[:-1]}
        now = _listing(self.host)
        changed = {rel for rel, st in now.items() if self.made.get(rel) != st}
        changed = (changed | (set(self.made) - set(now))) - points
        if not changed:
            self.made = now
        return sorted(self.real / rel for rel in changed)

    def discard(self) -> None:
        if self.host.is_dir() and not self.host.is_symlink():
            shutil.rmtree(self.host, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                self.host.unlink()


class DecoyPool:
    """Decoys kept between the commands of one process: a decoy nothing wrote into, of a path
    whose first levels are as they were, serves the next command too (making one is a few
    dozen mkdirs, slow on a busy disk).  A decoy a command wrote into is thrown away.  A
    command takes its decoys out of the pool, so two at once never share one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: dict[Path, Decoy] = {}
        self.root: Path | None = None
        self.made = 0

    def take(self, real: Path) -> Decoy:
        plan = skeleton_plan(real)
        with self.lock:
            if self.root is not None and not self.root.is_dir():  # its TMPDIR was removed
                self.root, self.free = None, {}
            old = self.free.pop(real, None)
            if old is not None and old.plan == plan:
                return old
            if self.root is None:
                self.root = Path(tempfile.mkdtemp(prefix="canon-box-"))
                atexit.register(shutil.rmtree, self.root, True)
            self.made += 1
            host = self.root / str(self.made)
        if old is not None:
            old.discard()
        return Decoy(real, host, plan)

    def give_back(self, decoy: Decoy, clean: bool) -> None:
        with self.lock:
            if clean and decoy.real not in self.free:
                self.free[decoy.real] = decoy
                return
        decoy.discard()


POOL = DecoyPool()


def _listing(host: Path) -> dict[Path, tuple[int, int, int]]:
    """Every entry under ``host`` (or ``host`` itself when it is a file): (mode, size, mtime)."""
    if not host.is_dir():
        st = host.lstat()
        return {Path("."): (st.st_mode, st.st_size, st.st_mtime_ns)}
    out: dict[Path, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(host):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            # a directory's own size and mtime change with its entries, which are listed
            out[p.relative_to(host)] = (
                (st.st_mode, 0, 0)
                if stat.S_ISDIR(st.st_mode)
                else (st.st_mode, st.st_size, st.st_mtime_ns)
            )
            if len(out) >= WALK_CAP:
                return out
    return out


def read_only_writes(output: str, slot_dir: Path) -> list[str]:
    """Paths outside the slot that the output says a write failed on (EROFS)."""
    found = []
    for path in _EROFS.findall(output):
        p = Path(path)
        if p != slot_dir and slot_dir not in p.parents and path not in found:
            found.append(path)
    return found


def run_boxed(
    cmd: str,
    *,
    slot_dir: Path,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    step: str,
    guarded: Sequence[Path],
    what: str,
) -> subprocess.CompletedProcess[str]:
    """``sh -c cmd`` in the box with only ``slot_dir`` writable and ``guarded`` (canon's own
    paths) behind decoys.  :class:`OutsideSlot` (``what`` tried to write outside its slot,
    naming the paths) when it tried to write anywhere else, whatever its exit code."""
    bwrap = find_bwrap(step)
    slot_dir = slot_dir.resolve()
    real = sorted({p.resolve() for p in guarded if p.exists()})  # a missing one: read-only
    home = os.path.realpath(os.path.expanduser("~"))
    hide = tuple(h for h in [home] if box._coverable(h) and Path(h).is_dir())
    blank = tuple(sorted({os.path.realpath(s) for s in SOCKETS if os.path.exists(s)}))
    decoys = [POOL.take(p) for p in real]
    spec = box.BoxSpec(
        slot=str(slot_dir),
        cwd=str(cwd.resolve()),
        decoys=tuple((str(d.real), str(d.host)) for d in decoys),
        hide=hide,
        blank=blank,
    )
    failed: BackendError | None = None
    try:
        r = run_command(
            cmd,
            cwd=None,
            env=env,
            timeout=timeout,
            step=step,
            wrap=lambda command: box.argv(bwrap, command, spec),
        )
    except BackendError as e:  # a timeout: what it wrote before is still named
        failed = e
    finally:
        nested = [slot_dir, *real]
        by_decoy = [(d, [str(p) for p in d.written(nested)]) for d in decoys]
        for d, paths in by_decoy:
            POOL.give_back(d, clean=not paths)
    written = [p for _, paths in by_decoy for p in paths]
    if failed is not None:
        if written:
            why = str(failed).removeprefix(step + ": ")
            raise OutsideSlot(step, f"{what} {words(written)} ({why})") from None
        raise failed
    written += [p for p in read_only_writes(r.stdout, slot_dir) if p not in written]
    if written:
        said = r.stdout[-300:].strip()
        raise OutsideSlot(
            step, f"{what} {words(written)}" + (f"; it printed: {said}" if said else "")
        )
    return r


def words(written: Sequence[str]) -> str:
    """The row's words for an attempt to write outside the slot."""
    shown = ", ".join(written[:5]) + (f" and {len(written) - 5} more" if len(written) > 5 else "")
    return f"tried to write outside its slot ({shown}); the box kept it out"
