"""Named crash points, for tests that SIGKILL canon at an exact step.

``CANON_CRASH_AT=promote:recorded`` makes canon send itself SIGKILL when it
reaches that point: no handler, no ``finally``, no flush, the same as the
kernel's OOM killer or a power cut for everything canon itself wrote.  With
``CANON_CRASH_HOW=fill-disk`` it fills the filesystem of ``CANON_FILL_DIR``
instead (a real file, written until the kernel says ENOSPC) and goes on, so
every later write fails the way a full disk fails it.  The tests in
``tests/test_crash_points.py`` do both at the points in :data:`POINTS` and
check that the next sweep finds one live canonical per recipe, repairs or
reaps what the failed one left, and loses no data.  Unset (always, outside
those tests), a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "CANON_CRASH_AT"

# in the order a promoting sweep reaches them
POINTS = (
    "promote:marked-next",  # the new slot exists, marked next
    "promote:deployed",  # deployed into the new slot
    "promote:undeployed",  # snapshot taken, undeployed, nothing recorded
    "registry:mid-record",  # inside the promotion's transaction: history row in, canonical not
    "promote:recorded",  # the registry names the new slot, its marker still says next
    "promote:marked-canonical",  # marker canonical, canonicals.json not yet rewritten
    "promote:state-written",  # canonicals.json rewritten, the old canonical not yet retired
    "promote:old-marked-retired",  # the old slot marked retired, not yet torn down
    "sweep:row-recorded",  # the recipe's row is in the registry, not yet in results.jsonl
)


FILLER = ".canon-fault-filler"


def point(name: str) -> None:
    """SIGKILL this process (or fill the disk) here when ``CANON_CRASH_AT`` names ``name``."""
    if os.environ.get(ENV) != name:
        return
    if os.environ.get("CANON_CRASH_HOW") == "fill-disk":
        fill(Path(os.environ["CANON_FILL_DIR"]))
        return
    os.kill(os.getpid(), signal.SIGKILL)


def fill(directory: Path) -> None:
    """Write ``directory/FILLER`` until the filesystem is full (ENOSPC)."""
    with open(directory / FILLER, "ab", buffering=0) as f:
        for size in (1 << 20, 4096, 1):  # big blocks, then what is left, to the last byte
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                continue
