"""Process groups: every child canon starts runs in its own session, and dies with it."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def kill_group(pgid: int, grace_s: float = 5.0) -> None:
    """SIGTERM the group, give it ``grace_s`` to exit (e.g. to tear a slot down), then SIGKILL."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
