"""A hostile upstream recipe: files that are links out of the checkout, to /dev/zero or to the
host's own files.  Real git upstreams (the links are committed), the real harness and local
backend: the sweep ends promptly with a FAIL that names the file and the link, reads nothing
through it, and the canonical stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canonlib.backends import BackendError
from canonlib.backends.compose import abra_sh_exports, app_env, parse_compose_files
from canonlib.sweep.orchestrate import sweep
from tests.gitrepo import git
from tests.workspace import Workspace

pytestmark = pytest.mark.slow


def plant(ws: Workspace, recipe: str, tag: str, links: dict[str, str]) -> None:
    """Commit ``links`` (name -> target) as symlinks into ``recipe``'s upstream and tag it."""
    up = ws.upstreams[recipe]
    for name, target in links.items():
        (up.path / name).unlink(missing_ok=True)
        os.symlink(target, up.path / name)
    git("add", "-A", cwd=up.path)
    git("commit", "-q", "-m", f"release {tag}", cwd=up.path)
    up.tag(tag)


def test_links_out_of_the_recipe_are_refused_by_name(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, target in {
        "compose.yml": "/dev/zero",
        ".env.sample": "/etc/passwd",
        "abra.sh": "../x",
    }.items():
        os.symlink(target, tree / name)
    with pytest.raises(
        BackendError, match=r"\.env\.sample is a link out of the recipe \(/etc/passwd\)"
    ):
        app_env(tree, {})
    with pytest.raises(BackendError, match=r"abra\.sh is a link out of the recipe \(\.\./x\)"):
        abra_sh_exports(tree)
    with pytest.raises(BackendError, match="not a recipe: no compose.yml"):  # /dev/zero is no file
        parse_compose_files(tree, {}, "1.0.0")
    os.unlink(tree / "compose.yml")
    os.symlink("/etc/hostname", tree / "compose.yml")
    with pytest.raises(
        BackendError, match="COMPOSE_FILE entry 'compose.yml' is outside the recipe"
    ):
        parse_compose_files(tree, {}, "1.0.0")


def test_a_sweep_of_a_recipe_linking_to_dev_zero_and_etc_passwd_fails_fast_and_keeps_the_canonical(
    tmp_path,
):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.0")
    assert {r["label"] for r in sweep(ws.config).rows} == {"PASS (promoted)"}
    plant(
        ws, "custom-html", "1.1.0+1.0", {"compose.yml": "/dev/zero", ".env.sample": "/etc/passwd"}
    )
    (row,) = sweep(ws.config).rows
    assert row["label"] == "FAIL (level 0/5)" and row["canonical_after"] == "1.0.0+1.0", row
    assert row["rungs"]["lint"] == "fail"
    log = Path(row["log_path"]).read_text()
    assert "compose.yml is a link out of the recipe (/dev/zero); refused" in log, log[-2000:]
    assert "root:" not in log  # nothing of /etc/passwd was read into the log
