from __future__ import annotations

import pytest

from tests.gitrepo import Upstream


@pytest.fixture
def upstream(tmp_path):
    up = Upstream(tmp_path / "upstream" / "recipe")
    up.commit({"compose.yml": "version: '3.8'\n"}, "init")
    return up
