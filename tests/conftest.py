from __future__ import annotations

import pytest

from canonlib.sweep import sweep
from tests.gitrepo import Upstream
from tests.workspace import Workspace


@pytest.fixture
def upstream(tmp_path):
    up = Upstream(tmp_path / "upstream" / "recipe")
    up.commit({"compose.yml": "version: '3.8'\n"}, "init")
    return up


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """Two recipes swept once: two canonicals, each slot holding a data file of the operator's.

    Built once per session and never changed: test_canonical_safety, test_crash_points and
    test_upgrade_base each work on a private copy of it (their ``ws`` fixture)."""
    w = Workspace(tmp_path_factory.mktemp("swept"))
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    w.recipe("nextcloud")
    w.release("nextcloud", "6.0.1+28.0.2-fpm")
    result = sweep(w.config)
    assert {r["label"] for r in result.rows} == {"PASS (promoted)"}, result.rows
    return w
