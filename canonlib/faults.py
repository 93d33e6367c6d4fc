"""Named crash points, for tests that SIGKILL canon at an exact step.

``CANON_CRASH_AT=promote:record`` makes canon send itself SIGKILL when it
reaches that point: no handler, no ``finally``, no flush, the same as the
kernel's OOM killer or a power cut for everything canon itself wrote.  The
tests in ``tests/test_crash_points.py`` kill a real sweep at every point in
:data:`POINTS` and check that the next sweep finds one live canonical per
recipe, repairs or reaps what the dead one left, and loses no data.
Unset (always, outside those tests), a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

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


def point(name: str) -> None:
    """SIGKILL this process here when ``CANON_CRASH_AT`` names ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
