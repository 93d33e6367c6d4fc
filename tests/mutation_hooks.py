"""A pytest plugin that `make mutate` loads (pyproject.toml [tool.mutmut]).

mutmut forks each mutant's test run from a process that already ran the clean
tests, so ``parse_version``'s ``lru_cache`` would hand a mutant the results the
unmutated code computed, and the mutant would survive without ever running.
Clearing it before every test makes each test compute what it checks.
"""

from __future__ import annotations

import pytest

from canonlib.recipe import versions


@pytest.fixture(autouse=True)
def _fresh_version_cache():
    versions.parse_version.cache_clear()
    yield
