"""`canon init DIR`: a working start, and `canon meta keys`.

The scaffold points at the real upstream (https://git.coopcloud.tech/…). Tests
never reach the network: a HOME whose .gitconfig rewrites that URL (git's own
`url.<base>.insteadOf`) sends git to a local repo, or to nowhere.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from canonlib import git
from canonlib.demo.fleet import recipe_files
from canonlib.ops.init import EXAMPLE_RECIPE, init, meta_sample
from canonlib.recipe.builder import UpstreamRepo
from canonlib.recipe.meta import KEYS, load_meta, parse_meta
from tests.cli import canon

COOPCLOUD = "https://git.coopcloud.tech/coop-cloud/"


def newcomer_env(tmp_path: Path, upstreams: Path) -> dict[str, str]:
    """A fresh user: no git identity, the coopcloud URL rewritten to ``upstreams``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".gitconfig").write_text(f'[url "{upstreams}/"]\n\tinsteadOf = {COOPCLOUD}\n')
    bindir = str(Path(sys.executable).parent)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "CANON_", "CCCI_"))},
        "HOME": str(home),
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "NO_COLOR": "1",
    }


def custom_html_upstream(root: Path) -> UpstreamRepo:
    up = UpstreamRepo(root / "custom-html.git")
    up.commit({"README.md": "# custom-html\n"}, "init: recipe skeleton")
    for tag in ("1.7.1+1.27.2", "1.13.0+1.31.1"):
        up.commit(recipe_files("custom-html", tag), f"chore: publish {tag} release")
        up.tag(tag)
    return up


def test_init_writes_a_committed_fleet_with_an_enrolled_example(tmp_path):
    s = init(tmp_path / "ops")
    meta = load_meta(s.meta.parent)
    assert meta.recipe == EXAMPLE_RECIPE and meta.enrolled
    assert list(meta.values) == ["WARM_CANONICAL"]  # every other key is there, commented
    status = git.run(["status", "--porcelain"], cwd=s.fleet).stdout
    assert status == "" and git.run(["log", "--oneline"], cwd=s.fleet).stdout.count("\n") == 1
    assert s.test.name == "test_custom_html.py" and "def test_" in s.test.read_text()
    assert 'upstream = "https://git.coopcloud.tech/coop-cloud/{recipe}.git"' in s.config.read_text()


def test_every_key_is_in_the_sample_and_each_commented_example_is_valid():
    text = meta_sample("x")
    for name in KEYS:
        assert f"# {name} (" in text, name
    examples = [ln[2:] for ln in text.splitlines() if ln.startswith("# ") and " = " in ln]
    assert {line.split(" = ")[0] for line in examples} == set(KEYS) - {"WARM_CANONICAL"}
    values = parse_meta("\n".join(examples) + "\nWARM_CANONICAL = True\n", Path("recipe_meta.py"))
    assert set(values) == set(KEYS)


def test_init_never_overwrites(tmp_path):
    s = init(tmp_path / "ops")
    before = s.config.read_text()
    s.config.write_text(before + "# mine\n")
    env = newcomer_env(tmp_path, tmp_path / "nowhere")
    r = canon(None, "init", str(s.root), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr and str(s.config) in r.stderr
    assert "Traceback" not in r.stderr and s.config.read_text().endswith("# mine\n")
    (tmp_path / "afile").write_text("x")
    r = canon(None, "init", str(tmp_path / "afile"), env=env, cwd=tmp_path)
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr


def test_plan_offline_is_a_clear_per_recipe_error(tmp_path):
    env = newcomer_env(tmp_path, tmp_path / "unreachable")  # nothing there: like no network
    assert canon(None, "init", "ops", env=env, cwd=tmp_path).returncode == 0
    r = canon(None, "--config", "ops/canon.toml", "sweep", "--plan", env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stderr  # a plan with an ERROR row fails (#13)
    assert "Traceback" not in r.stdout + r.stderr
    note = next(ln for ln in r.stdout.splitlines() if ln.startswith("custom-html: "))
    assert "cannot plan: sync: custom-html: cannot fetch from " + COOPCLOUD in note
    assert "ERROR (sync:" in r.stdout


def test_plan_explains_what_a_sweep_would_do(tmp_path):
    custom_html_upstream(tmp_path / "upstreams")
    env = newcomer_env(tmp_path, tmp_path / "upstreams")
    out = canon(None, "init", "ops", env=env, cwd=tmp_path)
    assert "sweep --plan" in out.stdout
    r = canon(None, "--config", "ops/canon.toml", "sweep", "--plan", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # canon init sets a 3-day release cooldown: a tag canon has just seen for the first time waits
    toml = tmp_path / "ops" / "canon.toml"
    assert 'min_release_age = "3d"' in toml.read_text()
    assert (
        "custom-html: 1.13.0+1.31.1 is cooling (release cooldown): 1.13.0+1.31.1 first seen by "
        "canon's mirror " in r.stdout
    )
    toml.write_text(toml.read_text().replace('min_release_age = "3d"', 'min_release_age = "0"'))
    r = canon(None, "--config", "ops/canon.toml", "sweep", "--plan", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (
        "custom-html: would cold-test 1.13.0+1.31.1 (no upgrade base yet, so L2 is skipped) "
        "and promote it if green" in r.stdout
    )
    assert not (tmp_path / "ops" / "state" / "slots").exists()  # a plan deploys nothing


@pytest.mark.parametrize("as_json", [False, True])
def test_meta_keys_prints_every_key(tmp_path, as_json):
    env = newcomer_env(tmp_path, tmp_path)
    r = canon(None, "meta", "keys", *(["--json"] if as_json else []), env=env, cwd=tmp_path)
    assert r.returncode == 0
    if as_json:
        assert [row["key"] for row in json.loads(r.stdout)] == list(KEYS)
    else:
        for name, key in KEYS.items():
            assert f"{name}  ({key.type_name}; default {key.default!r})" in r.stdout
