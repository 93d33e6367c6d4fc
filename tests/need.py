"""What a test needs from the machine: outside CI, skip and say why; in CI (``CI=true``) fail.

CI runs on a machine like the developers' (``.ci/run`` installs what is missing), so a
check that silently skips there would be a green that tested nothing.
"""

from __future__ import annotations

import os

import pytest


def need(problem: str | None) -> None:
    """Go on when ``problem`` is None; else skip (fail in CI) saying what is missing."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to run this: {problem}")
    pytest.skip(problem)
