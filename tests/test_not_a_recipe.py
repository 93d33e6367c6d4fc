"""Any backend: a tag with no compose.yml is not a recipe, and a compose file that does not
parse fails L1 on the local backend too (it parses what it would deploy)."""

from __future__ import annotations

import pytest

from tests.test_runner import run
from tests.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


def test_a_tag_without_compose_yml_fails_install_as_not_a_recipe(ws):
    up = ws.recipe("notes")
    up.commit({"README.md": "# just notes\n", ".env.sample": "TYPE=notes\n"}, "no recipe here")
    up.tag("1.0.0+1")
    r = run(ws, "notes", "1.0.0+1")
    assert r.rungs["install"] == "fail"
    assert "not a recipe: no compose.yml at 1.0.0+1" in r.reasons["install"]
    assert (r.green, r.level) == (False, 0)


def test_a_compose_file_that_does_not_parse_fails_install_on_the_local_backend(ws):
    ws.recipe("broken")
    ws.release("broken", "1.0.0+1", extra={"compose.yml": "services: [unclosed\n"})
    r = run(ws, "broken", "1.0.0+1")
    assert r.rungs["install"] == "fail"
    assert "compose.yml at 1.0.0+1 does not parse" in r.reasons["install"]


def test_compose_file_names_a_missing_file(ws):
    ws.recipe("multi")
    sample = "TYPE=multi\nCOMPOSE_FILE=compose.yml:compose.smtp.yml\n"
    ws.release("multi", "1.0.0+1", extra={".env.sample": sample})
    r = run(ws, "multi", "1.0.0+1")
    assert r.rungs["install"] == "fail"
    assert (
        "COMPOSE_FILE names compose.smtp.yml but 1.0.0+1 has no such file" in r.reasons["install"]
    )
