"""Is a process gone? For tests that kill process trees for real."""

from __future__ import annotations

import time
from pathlib import Path


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie is dead, waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def settled_dead(pids: list[int], timeout: float = 5.0) -> bool:
    """Whether every pid is gone within ``timeout``: a kill is asynchronous, so give the kernel a
    moment (waiting for the event, not a fixed sleep)."""
    end = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True
