"""L2 upgrades from what is deployed: the canonical's commit, not whatever its tag says now.

Real upstreams and mirrors, the real harness and local backend.  Upstream
deletes the canonical's tag (the commit stays in history), or force-pushes it
away and the mirror is garbage-collected (the commit is gone for good).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from tests import test_canonical_safety as safety
from tests.cli import canon
from tests.gitrepo import git
from tests.test_canonical_safety import rows_of

# the two swept recipes (conftest.py, built once a session), each test on its own copy
# (the ws fixture of test_canonical_safety)
ws = safety.ws

pytestmark = pytest.mark.slow


def row(r, recipe: str) -> dict:
    return {x["recipe"]: x for x in json.loads(r.stdout)}[recipe]


def test_canonical_tag_deleted_upstream_then_a_release_upgrades_from_the_deployed_commit(ws):
    with Registry.open(ws.config.db_path) as reg:
        deployed = reg.read_registry("custom-html").commit
    ws.upstreams["custom-html"].delete_tag("1.7.1+1.27.2")
    assert canon(ws.root, "sweep").returncode == 1  # the incident
    ws.release("custom-html", "1.7.2+1.27.3")
    r = canon(ws.root, "sweep", "--json", "--recipe", "custom-html")
    got = row(r, "custom-html")
    assert got["label"] == "PASS (promoted)", got
    assert (got["upgrade_base_kind"], got["upgrade_base"]) == ("canonical", "1.7.1+1.27.2")
    assert got["rungs"]["upgrade"] == "pass"
    result = json.loads(Path(got["log_path"]).with_suffix(".result.json").read_text())
    assert (result["upgrade_base"], result["upgrade_base_commit"]) == ("1.7.1+1.27.2", deployed)
    assert r.returncode == 0, r.stderr  # the new canonical ends the incident


def test_canonical_commit_gone_from_the_mirror_is_an_error_naming_the_way_out_not_a_red(ws):
    up = ws.upstreams["nextcloud"]
    with Registry.open(ws.config.db_path) as reg:
        before = reg.read_registry("nextcloud")
    up.delete_tag("6.0.1+28.0.2-fpm")
    # history rewritten (a new root, force-pushed): the canonical's commit is in no history now
    git("checkout", "-q", "--orphan", "rewritten", cwd=up.path)
    up.commit()
    git("branch", "-M", "rewritten", "main", cwd=up.path)
    assert canon(ws.root, "sweep", "--recipe", "nextcloud").returncode == 1  # the incident
    mirror = ws.config.mirror_path("nextcloud")
    git("reflog", "expire", "--expire=now", "--all", cwd=mirror)
    git("gc", "--quiet", "--prune=now", cwd=mirror)
    gone = subprocess.run(["git", "cat-file", "-e", before.commit], cwd=mirror, check=False)
    assert gone.returncode != 0, "the gc kept the commit: the test would prove nothing"
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    r = canon(ws.root, "sweep", "--json", "--recipe", "nextcloud")
    assert r.returncode == 1
    got = row(r, "nextcloud")
    assert got["label"].startswith("ERROR ("), got
    assert (
        f"upgrade base canonical 6.0.1+28.0.2-fpm ({before.commit[:12]}) is not in the mirror"
        in (got["label"])
    )
    assert "set UPGRADE_BASE_VERSION in nextcloud's recipe_meta.py" in got["label"]
    assert got["verdict"] != "red" and got["known_red_run"] is None
    with Registry.open(ws.config.db_path) as reg:
        assert reg.read_registry("nextcloud") == before  # the canonical stays recorded
    assert (ws.config.slots_dir / before.deployment).is_dir()  # and deployed
    # an ERROR is never remembered: the next sweep tries again
    again = canon(ws.root, "sweep", "--json", "--recipe", "nextcloud")
    assert rows_of(again)["nextcloud"].startswith("ERROR (")
