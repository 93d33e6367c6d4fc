"""The base errors, and the one line for a state problem.

Every failure a user can act on is a :class:`CanonError` (the CLI prints its
message, without a traceback, and exits with its ``exit_code``): a
:class:`UsageError` (exit 2) for a bad command line or configuration, a
:class:`StateError` (exit 2) for a state dir canon cannot use.  Each module
raises its own subclass, named for what failed (``SyncError``, ``MetaError``,
``RegistryBehind``, ``BackendError`` ...; docs/architecture.md lists them), with a
message that says what is wrong and what to do.

The one line for a state problem (a full disk, a read-only or misplaced
state dir, a registry SQLite cannot write): :func:`os_error_message` and
:func:`sqlite_state_message`, used by the registry and by the top-level guard.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path


class CanonError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""

    exit_code = 1


class UsageError(CanonError):
    """Bad command line or configuration."""

    exit_code = 2


class StateError(CanonError):
    """canon's state dir cannot be used as it is (full, read-only, misplaced)."""

    exit_code = 2


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_SHAPE = {errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG}

_SQLITE_FULL = ("database or disk is full", "disk i/o error")
_SQLITE_DENIED = ("readonly database", "unable to open database file")
_SQLITE_BROKEN = ("malformed", "file is not a database", "database is locked")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line (whitespace squeezed), cut at ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def os_error_message(e: OSError, state_dir: Path | None) -> str | None:
    """The one line for an OSError the operator can fix, or None (then it is a bug)."""
    where = e.filename or state_dir
    what = e.strerror or one_line(e)
    if e.errno in _FULL:
        return (
            f"{where or 'a file canon writes'}: {what}; free space on that filesystem "
            "(or raise the quota / file size limit) and re-run"
        )
    if e.errno in _DENIED and e.filename:
        return (
            f"{e.filename}: {what}; make it writable for this user, or point state_dir / "
            "$CANON_STATE (or the path in canon.toml) at a directory canon may write"
        )
    if e.errno in _SHAPE and e.filename:
        return (
            f"{e.filename}: {what}; a file stands where canon needs a directory (or the "
            "reverse): fix that path in canon.toml or on disk"
        )
    return None


def sqlite_state_message(e: sqlite3.DatabaseError, db: Path | None) -> str | None:
    """The one line for a registry that cannot be written (disk full, read-only), or None."""
    text = str(e).lower()
    db = db or Path("the registry (canon.db)")
    if any(s in text for s in _SQLITE_FULL):
        return f"registry {db}: {e}; free space on the filesystem of {db.parent} and re-run"
    if any(s in text for s in _SQLITE_DENIED):
        return (
            f"registry {db}: {e}; make {db.parent} and its files writable for this user, "
            "or point state_dir / $CANON_STATE at a writable directory"
        )
    return None


def sqlite_message(e: sqlite3.DatabaseError, db: Path | None) -> str | None:
    """:func:`sqlite_state_message`, or the line for a damaged registry, or None (a bug)."""
    if any(s in str(e).lower() for s in _SQLITE_BROKEN):
        where = db or "the registry (canon.db)"
        return f"registry {where}: {e}; restore it from a backup, or move it aside to inspect it"
    return sqlite_state_message(e, db)
