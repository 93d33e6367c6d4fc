"""Files, both ways: the one atomic write, and reading small untrusted files safely.

Writing: :func:`write_atomic` is how canon writes every file it keeps (markers,
state, results, manifests, keys): a temp file beside the target, fsync, rename
over the target, fsync the directory.  A crash, a signal or a full disk leaves
the old file or the new one, never half of one.  :func:`replace_durably` is the
last two steps, for a temp file someone else filled (an SQLite backup).

Reading: the small files an operator or an upstream hands canon: canon.toml,
recipe_meta.py, and a recipe's own compose files, .env.sample and abra.sh.

Such a file must be a regular file under a size cap: a FIFO must not hang
canon, a link to ``/dev/zero`` must not eat its memory, a directory is named as
what it is.  :func:`read_small_file` checks before it reads and reads at most
``cap + 1`` bytes, so a file that grows meanwhile is caught too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


class FileProblem(Exception):
    """Why the file cannot be used, in words that fit after its path."""


class NotJSON(FileProblem):
    """The file was read, but is not UTF-8 JSON; ``why`` is the parser's own words."""

    def __init__(self, words: str, why: str) -> None:
        super().__init__(words)
        self.why = why


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: str | os.PathLike[str], cap: int) -> int:
    """An fd of ``path``, checked before and after the open to be a regular file of at most
    ``cap`` bytes (opened non-blocking: a FIFO swapped in after the stat cannot hang the open).

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise FileProblem(f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"is {_kind(st.st_mode)}; it must be a regular file")
    if st.st_size > cap:
        raise FileProblem(f"is {st.st_size} bytes; the limit is {cap}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
    except OSError as e:
        os.close(fd)
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FileProblem(f"is {_kind(st.st_mode)}; it must be a regular file")
    return fd


def _chunks(fd: int, cap: int, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of ``fd`` in chunks; :class:`FileProblem` once it has more than ``cap``
    (a file that grew after its stat is caught too, and nothing past ``cap + 1`` is read)."""
    total = 0
    while total <= cap:
        try:
            chunk = os.read(fd, min(size, cap + 1 - total))
        except OSError as e:
            raise FileProblem(f"cannot read: {e.strerror or e}") from None
        if not chunk:
            return
        total += len(chunk)
        if total > cap:
            break
        yield chunk
    raise FileProblem(f"is more than {cap} bytes; the limit is {cap}")


def read_small_file(path: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``cap`` bytes.

    Raises :class:`FileNotFoundError` when it is missing (callers say what to do)
    and :class:`FileProblem` for anything else that makes it unusable.
    """
    fd = _open_regular(path, cap)
    try:
        return b"".join(_chunks(fd, cap, cap + 1))
    finally:
        os.close(fd)


def read_range(path: str | os.PathLike[str], offset: int, n: int) -> bytes:
    """At most ``n`` bytes of ``path`` from ``offset`` (from the end when ``offset`` is
    negative), a regular file of any size: a log's tail, an object's header in a pack.

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    fd = _open_regular(path, 1 << 62)
    try:
        size = os.fstat(fd).st_size
        start = max(size + offset, 0) if offset < 0 else offset
        return os.pread(fd, n, start)
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


RECIPE_FILE_CAP = 1 << 20  # compose files, .env.sample, abra.sh: a few KiB in real recipes


def read_tree_file(tree: str | os.PathLike[str], name: str, cap: int = RECIPE_FILE_CAP) -> str:
    """A recipe file's text: inside the recipe tree (a link out of it, to ``/dev/zero`` or
    ``/etc/passwd``, is refused), a regular file, at most ``cap`` bytes.

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    root = Path(tree).resolve()
    path = Path(tree) / name
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        target = os.readlink(path) if path.is_symlink() else str(resolved)
        raise FileProblem(f"is a link out of the recipe ({target}); refused")
    return read_small_file(resolved, cap).decode(errors="replace")


def _inside(root: str | os.PathLike[str], name: str | os.PathLike[str]) -> str:
    """``root/name`` resolved, or :class:`FileProblem` when it resolves out of ``root``."""
    path = os.path.join(root, name)
    try:
        base = os.path.realpath(root)
        resolved = os.path.realpath(path)  # a symlink loop stays unresolved: stat says ELOOP
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        raise FileProblem(f"cannot be resolved: {getattr(e, 'strerror', None) or e}") from None
    if resolved != base and not resolved.startswith(base.rstrip(os.sep) + os.sep):
        if os.path.islink(path):
            raise FileProblem(
                f"is a symlink to {os.readlink(path)} (a symlink out of {base}); refused"
            )
        raise FileProblem(f"resolves to {resolved}, out of {base}; refused")
    return resolved


def read_inside(root: str | os.PathLike[str], name: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of ``root/name``: a regular file of at most ``cap`` bytes that resolves
    inside ``root`` (a symlink out of it, to ``/dev/zero`` or ``/etc/passwd``, is refused).

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    return read_small_file(_inside(root, name), cap)


def hash_file(
    path: str | os.PathLike[str], cap: int, *, within: str | os.PathLike[str] | None = None
) -> str:
    """The sha256 (hex) of a file canon did not just write, read as a stream: a regular file
    of at most ``cap`` bytes, and (with ``within``) resolving inside that directory.

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    fd = _open_regular(_inside(within, path) if within is not None else path, cap)
    try:
        h = hashlib.sha256()
        for chunk in _chunks(fd, cap):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def copy_file(
    path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    cap: int,
    *,
    within: str | os.PathLike[str] | None = None,
) -> None:
    """Copy a file canon did not just write to ``dest`` (a new private file), as a stream:
    a regular file of at most ``cap`` bytes, resolving inside ``within`` when given.

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise
    (``dest`` is then removed).
    """
    fd = _open_regular(_inside(within, path) if within is not None else path, cap)
    try:
        with open(dest, "xb") as out:
            try:
                for chunk in _chunks(fd, cap):
                    out.write(chunk)
            except BaseException:
                out.close()
                os.unlink(dest)
                raise
    finally:
        os.close(fd)


def list_tree(root: str | os.PathLike[str], limit: int) -> list[str]:
    """Every entry under ``root`` that is not a directory (files, links, FIFOs, devices), as
    sorted relative paths; directories are walked without following links and without
    recursion.  :class:`FileProblem` when there are more than ``limit`` of them, or a
    directory cannot be listed.
    """
    root = Path(root)
    out: list[str] = []
    todo = [""]
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(root / rel) as it:
                entries = list(it)
        except OSError as e:
            raise FileProblem(f"cannot list {rel or '.'}: {e.strerror or e}") from None
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                todo.append(name)
                continue
            out.append(name)
            if len(out) > limit:
                raise FileProblem(f"holds more than {limit} files; refused")
    return sorted(out)


JSON_DEPTH = 64  # canon's own JSON nests 5 deep; a manifest or marker deeper is not canon's


def json_depth(value: object) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
            deepest = max(deepest, d + 1)
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
            deepest = max(deepest, d + 1)
    return deepest


def parse_json(raw: bytes | str, depth: int = JSON_DEPTH) -> object:
    """JSON text that someone else wrote, as a value nested at most ``depth`` deep.

    Raises :class:`FileProblem` (words that fit after the file's name) when it is
    not UTF-8, not JSON, or nested deeper: the C parser's own recursion guard stops
    a ``[[[[…`` bomb before Python's stack does, and the walk after it is iterative.
    """
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        why = f"not UTF-8 text (byte {e.start})"
        raise NotJSON(f"is {why}", why) from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise FileProblem(f"is JSON nested deeper than {depth}; refused") from None
    except ValueError as e:
        raise NotJSON(f"is not valid JSON ({e})", str(e)) from None
    if json_depth(value) > depth:
        raise FileProblem(f"is JSON nested deeper than {depth}; refused")
    return value


def read_json_file(
    path: str | os.PathLike[str],
    cap: int,
    *,
    within: str | os.PathLike[str] | None = None,
    depth: int = JSON_DEPTH,
) -> object:
    """A JSON file canon did not just write: regular, at most ``cap`` bytes, nested at most
    ``depth`` deep, and (with ``within``) resolving inside that directory.

    Raises :class:`FileNotFoundError` when it is missing and :class:`FileProblem` otherwise.
    """
    raw = read_inside(within, path, cap) if within is not None else read_small_file(path, cap)
    return parse_json(raw, depth)


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (links not followed; files that vanish meanwhile: 0)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


# -- writing -------------------------------------------------------------------------


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would, for every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def fsync_dir(d: str | os.PathLike[str]) -> None:
    """Make a rename in ``d`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_durably(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """fsync ``tmp``, rename it over ``dest``, fsync ``dest``'s directory."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    fsync_dir(Path(dest).parent)


def temp_beside(dest: str | os.PathLike[str]) -> Path:
    """A new empty temp file in ``dest``'s directory (mode 0600), for :func:`replace_durably`."""
    dest = Path(dest)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


def write_atomic(
    path: str | os.PathLike[str],
    data: str | bytes,
    *,
    mode: int | None = None,
) -> None:
    """Write ``data`` to ``path`` atomically and durably: the old file or the new, never half.

    ``mode`` defaults to what a plain ``open(path, "w")`` would give (0666 less the
    umask); pass ``0o600`` for a secret, which then is never readable by others,
    not even for a moment.  The temp file is removed on any failure (a full disk
    included), and the error is raised.
    """
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask() if mode is None else mode)
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
