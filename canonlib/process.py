"""Process groups: every child canon starts runs in its own session, and dies with it.

A child in a session of its own does not die with a SIGKILLed canon, so the
long-lived ones (the harness) watch their parent and end themselves when it is
gone (:func:`watch_parent`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
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


def watch_parent(poll_s: float = 0.5) -> threading.Thread:
    """End this process (SIGTERM to itself) soon after its parent dies.

    A harness runs in its own session, so a SIGKILLed canon cannot take it down
    with its group; this watch notices that the parent changed (the orphan was
    re-parented to init or a subreaper) and sends SIGTERM to this process, whose
    handler tears its slot down as on any other SIGTERM.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        atexit.register(_end_own_group)
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=watch, name="canon-parent-watch", daemon=True)
    t.start()
    return t


def _end_own_group() -> None:
    """At exit of an orphaned group leader: SIGTERM whatever of its group is left."""
    if os.getpgrp() != os.getpid():
        return  # not our group to end (e.g. run by hand from a shell)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgrp(), signal.SIGTERM)


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
