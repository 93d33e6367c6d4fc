"""The local backend on real directories and real child processes."""

from __future__ import annotations

import os

import pytest

from canonlib.backends import BackendError
from canonlib.backends.common import render_env
from canonlib.backends.local import LocalBackend, copy_recipe_tree
from canonlib.git import InvalidRef
from canonlib.recipe.meta import RecipeMeta
from canonlib.recipe.mirror import Mirror


def test_symlink_out_of_the_recipe_tree_is_refused(tmp_path):
    src = tmp_path / "recipe"
    src.mkdir()
    (src / "compose.yml").write_text("x")
    (src / "inside").symlink_to("compose.yml")
    copy_recipe_tree(src, tmp_path / "ok", "r")
    assert os.readlink(tmp_path / "ok" / "inside") == "compose.yml"
    (src / "escape").symlink_to("/etc")
    with pytest.raises(BackendError, match="escape is a symlink out of the recipe tree"):
        copy_recipe_tree(src, tmp_path / "bad", "r")
    (src / "escape").unlink()
    (src / "up").symlink_to("../../")
    with pytest.raises(BackendError, match="symlink out of the recipe tree"):
        copy_recipe_tree(src, tmp_path / "bad2", "r")


def test_dotdot_recipe_and_slot_names_are_refused(tmp_path):
    with pytest.raises(InvalidRef):
        Mirror("../../etc", tmp_path / "m", "x")
    with pytest.raises(BackendError, match="invalid slot name"):
        LocalBackend(tmp_path).teardown("../outside")


def test_env_overlay_and_data_survive_redeploy(tmp_path):
    src = tmp_path / "recipe"
    src.mkdir()
    (src / ".env.sample").write_text("TYPE=x\nDOMAIN=x.example.com\n#SMTP_HOST=\n")
    (src / "compose.yml").write_text("services:\n  app:\n    image: x\n")
    b = LocalBackend(tmp_path / "slots")
    meta = RecipeMeta(
        "x", tmp_path / "recipe_meta.py", {"ENV_OVERLAY": {"SMTP_HOST": "mail", "EXTRA": "1"}}
    )
    b.provision("s1", src, meta)
    b.deploy("s1", src, meta, version="1.0.0", commit="a" * 40)
    (tmp_path / "slots" / "s1" / "data" / "keep").write_text("data")
    b.deploy("s1", src, meta, version="1.1.0", commit="b" * 40)
    env = b.slot_env("s1")
    assert env["SMTP_HOST"] == "mail" and env["EXTRA"] == "1" and env["STACK_NAME"] == "s1"
    assert (tmp_path / "slots" / "s1" / "data" / "keep").read_text() == "data"
    assert b.deployed("s1")["version"] == "1.1.0"
    assert b.disk_usage("s1") > 0


def test_render_env_uncomments_overlay_keys():
    out = render_env("A=1\n#B=\n# a comment\n", {"B": "2", "C": "3"})
    assert out == "A=1\nB=2\n# a comment\nC=3\n"
