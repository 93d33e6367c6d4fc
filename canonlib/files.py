"""Reading the small files an operator or an upstream hands canon, safely: canon.toml,
recipe_meta.py, and a recipe's own compose files, .env.sample and abra.sh.

Such a file must be a regular file under a size cap: a FIFO must not hang
canon, a link to ``/dev/zero`` must not eat its memory, a directory is named as
what it is.  :func:`read_small_file` checks before it reads and reads at most
``cap + 1`` bytes, so a file that grows meanwhile is caught too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileProblem(Exception):
    """Why the file cannot be used, in words that fit after its path."""


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


def read_small_file(path: str | os.PathLike[str], cap: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``cap`` bytes.

    Raises :class:`FileNotFoundError` when it is missing (callers say what to do)
    and :class:`FileProblem` for anything else that makes it unusable.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"is {_kind(st.st_mode)}; it must be a regular file")
    if st.st_size > cap:
        raise FileProblem(f"is {st.st_size} bytes; the limit is {cap}")
    try:
        # O_NONBLOCK: had the file been swapped for a FIFO since the stat, open must not hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(f"is {_kind(st.st_mode)}; it must be a regular file")
        chunks, size = [], 0
        while size <= cap:
            chunk = os.read(fd, cap + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise FileProblem(f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > cap:
        raise FileProblem(f"is more than {cap} bytes; the limit is {cap}")
    return b"".join(chunks)


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
