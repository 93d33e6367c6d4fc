"""The few errors a user can hit.  Each message says what is wrong and what to do."""

from __future__ import annotations


class CanonError(Exception):
    """A failure the user can act on; the CLI prints it without a traceback."""

    exit_code = 1


class UsageError(CanonError):
    """Bad command line or configuration."""

    exit_code = 2


class StateError(CanonError):
    """canon's state dir cannot be used as it is (full, read-only, misplaced)."""

    exit_code = 2
