"""Recipe-shaped repos as a new operator meets them, end to end through the sweep.

Upstreams built here with real git: annotated and lightweight tags, a `master`
default branch, `refs/pull/*`, untagged commits past the latest tag, and a repo
that is no recipe at all (no compose.yml).  Real harness processes, a real
registry.  What travels: every row's reason and warnings; what is remembered: a
red verdict (known-red), and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest

from canonlib.demo.fleet import recipe_files
from canonlib.state.registry import Registry
from canonlib.sweep import policy
from canonlib.sweep.orchestrate import sweep
from tests import cli
from tests.gitrepo import Upstream, git
from tests.need import need
from tests.workspace import META, Workspace

LABEL = "coop-cloud.${STACK_NAME}.version"
NO_LABEL = f"C002 compose.yml:4: service app carries no {LABEL} label"
NO_LABEL_COMPOSE = """\
---
version: "3.8"
services:
  app:
    image: nginx:1.27
    deploy:
      labels:
        - "traefik.enable=true"
"""


# every canon here runs on a terminal 400 columns wide: no table cell is cut
canon = partial(cli.canon, env_extra={"COLUMNS": "400"})


def add_recipe(ws: Workspace, name: str, branch: str = "main") -> Upstream:
    """An upstream with ``branch`` as its default, and its fleet dir with the demo's tests."""
    Upstream(ws.root / "upstream" / name, branch)  # HEAD on `branch` before the workspace's init
    up = ws.recipe(name)
    assert git("symbolic-ref", "HEAD", cwd=up.path).strip() == f"refs/heads/{branch}"
    return up


@pytest.fixture
def fleet(tmp_path):
    """lintred: lint-red (no version label); crate: no compose.yml (a Rust crate, master,
    lightweight v tags); nonote: green but no release note, master default, refs/pull/*."""
    ws = Workspace(tmp_path)
    up = add_recipe(ws, "lintred")
    up.commit(recipe_files("lintred", "1.0.0+2.0", extra={"compose.yml": NO_LABEL_COMPOSE}))
    up.tag("1.0.0+2.0")  # annotated
    up.commit(msg="untagged work on main after 1.0.0")
    pr = up.commit(msg="a contributor's pull request")
    git("update-ref", "refs/pull/7/head", pr, cwd=up.path)
    git("reset", "-q", "--hard", "HEAD~1", cwd=up.path)
    crate = add_recipe(ws, "crate", branch="master")
    crate.commit(
        {
            "Cargo.toml": '[package]\nname = "crate"\nversion = "0.1.0"\n',
            "src/lib.rs": "pub fn f() {}\n",
        },
        "crate 0.1.0",
    )
    crate.tag("v0.1.0", annotated=False)
    nonote = add_recipe(ws, "nonote", branch="master")
    nonote.commit(recipe_files("nonote", "1.2.0+3.0", release_note=False))
    nonote.tag("1.2.0+3.0")
    git("update-ref", "refs/pull/1/head", nonote.commit(msg="pr"), cwd=nonote.path)
    git("reset", "-q", "--hard", "HEAD~1", cwd=nonote.path)
    git("init", "-q", "-b", "main", str(ws.fleet))  # the operator's fleet is a git repo
    git("add", "-A", cwd=ws.fleet)
    git("commit", "-q", "-m", "fleet: enrol three recipes", cwd=ws.fleet)
    return ws


def rows_by_recipe(rows):
    return {r["recipe"]: r for r in rows}


@pytest.mark.slow
def test_reasons_warnings_and_known_red_across_three_sweeps(fleet):
    ws = fleet
    # -- sweep 1: every FAIL says why, in the table; the release-note warning is there too
    r1 = canon(ws, "sweep")
    assert r1.returncode == 1, r1.stderr
    table = {line.split()[0]: line for line in r1.stdout.splitlines() if line.split()}
    assert f"L5 lint: {NO_LABEL}" in table["lintred"]
    assert "FAIL (level 4/5)" in table["lintred"]
    assert (
        "L1 install: not a recipe: no compose.yml" in table["crate"]
        and "FAIL (level 0/5)" in table["crate"]
    )
    assert "PASS (promoted)" in table["nonote"]
    assert "warning: L5 C004 release/1.2.0+3.0: no release note" in table["nonote"]
    assert "following its default branch 'master'" in table["nonote"]  # the mirror's warning
    with Registry.open(ws.config.db_path) as reg:
        (run1,) = reg.runs("sweep")
        stored = rows_by_recipe([r.to_dict() for r in reg.results(run1["run_id"])])
    assert stored["lintred"]["reason"] == f"L5 lint: {NO_LABEL}"
    assert stored["lintred"]["verdict"] == stored["crate"]["verdict"] == "red"
    assert stored["nonote"]["verdict"] == "green"
    assert any("release/1.2.0+3.0" in w for w in stored["nonote"]["warnings"])
    assert stored["lintred"]["tag_commit"] == ws.upstreams["lintred"].head("1.0.0+2.0^{commit}")
    assert (
        stored["lintred"]["fleet_tests"].startswith("sha256:")
        and "canon" in stored["lintred"]["harness"]
    )
    hist = canon(ws, "history", "lintred")
    assert hist.returncode == 0 and f"L5 lint: {NO_LABEL}" in hist.stdout
    hist_json = json.loads(canon(ws, "history", "crate", "--json").stdout)
    assert hist_json["results"][0]["reason"].startswith("L1 install: not a recipe: no compose.yml")

    # -- sweep 2: nothing changed, so no harness runs at all; the red ones are known-red
    r2 = canon(ws, "sweep", "--json")
    assert r2.returncode == 0, r2.stderr
    rows2 = rows_by_recipe(json.loads(r2.stdout))
    for name in ("lintred", "crate"):
        assert rows2[name]["decision"] == "skip:known-red"
        assert rows2[name]["label"] == "SKIP (known-red)"
        assert rows2[name]["known_red_run"] == run1["run_id"]
        assert rows2[name]["reason"].startswith(f"red in run {run1['run_id']}: L")
    assert rows2["nonote"]["label"] == "SKIP (no-new-version)"
    assert all(r["tested_commit"] is None and r["log_path"] is None for r in rows2.values())
    with Registry.open(ws.config.db_path) as reg:
        run2 = reg.runs("sweep")[-1]["run_id"]
    assert not (ws.config.runs_dir / run2 / "logs").exists()  # no harness wrote a log

    # -- sweep 3: the fleet's tests for lintred changed: exactly lintred runs again
    test_file = ws.fleet / "tests" / "lintred" / "test_lintred.py"
    test_file.write_text(test_file.read_text() + "\n\ndef test_one_more():\n    assert True\n")
    git("add", "-A", cwd=ws.fleet)
    git("commit", "-q", "-m", "fleet: one more lintred test", cwd=ws.fleet)
    rows3 = rows_by_recipe(sweep(ws.config).rows)
    assert {n for n, r in rows3.items() if r["decision"] == "run"} == {"lintred"}
    assert rows3["lintred"]["label"] == "FAIL (level 4/5)"
    assert rows3["crate"]["label"] == "SKIP (known-red)"


@pytest.mark.slow
def test_retry_a_new_commit_on_the_tag_and_a_new_canon_run_it_again(fleet, monkeypatch):
    ws = fleet
    only = ["crate"]
    (first,) = sweep(ws.config, only=only).rows
    assert first["verdict"] == "red"
    (row,) = sweep(ws.config, only=only).rows
    assert row["decision"] == "skip:known-red"
    (row,) = sweep(ws.config, only=only, retry=["crate"]).rows  # canon sweep --retry crate
    assert row["decision"] == "run" and row["label"] == "FAIL (level 0/5)"
    # a new canon (version or commit) is a new harness: the verdict is not its own
    import canonlib.sweep.orchestrate as sweep_mod

    real = sweep_mod.code_identity
    monkeypatch.setattr(sweep_mod, "code_identity", lambda: {**real(), "code_version": "9.9.9"})
    (row,) = sweep(ws.config, only=only).rows
    assert row["decision"] == "run" and "canon 9.9.9" in row["harness"]
    (row,) = sweep(ws.config, only=only).rows
    assert row["decision"] == "skip:known-red"
    # upstream moves the tag to a new commit: a new commit is tested
    crate = ws.upstreams["crate"]
    new = crate.commit({"src/lib.rs": "pub fn g() {}\n"}, "fix")
    crate.tag("v0.1.0", annotated=False, force=True)
    (row,) = sweep(ws.config, only=only).rows
    assert row["decision"] == "run" and row["tested_commit"] == new
    # and --retry of a recipe not in the fleet is a usage error
    r = canon(ws, "sweep", "--retry", "nosuch")
    assert r.returncode == 2 and "--retry: not in the fleet" in r.stderr


@pytest.mark.slow
def test_disk_full_and_a_killed_harness_are_errors_never_known_red(fleet):
    ws = fleet
    # disk full, for real: the harness runs in its own mount namespace where the slots dir is a
    # full tmpfs (cold slot names are unique to each run now: nothing can be planted ahead)
    unshare = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    need(
        f"unshare -rm (user + mount namespace) is not permitted here: {unshare.stderr.strip()}"
        if unshare.returncode
        else None
    )
    toml = ws.root / "canon.toml"
    plain = toml.read_text()
    harness = f'command = ["{sys.executable}", "-m", "canonlib", "harness"]'
    assert harness in plain
    full = (
        f"mount -t tmpfs -o size=8k tmpfs {ws.config.slots_dir} && "
        f'(cat /dev/zero > {ws.config.slots_dir}/fill 2>/dev/null; exec "$0" -m canonlib harness)'
    )
    ws.config.slots_dir.mkdir(parents=True, exist_ok=True)
    toml.write_text(
        plain.replace(
            harness,
            f'command = ["unshare", "-rm", "sh", "-c", {json.dumps(full)}, "{sys.executable}"]',
        )
    )
    (row,) = sweep(ws.config, only=["lintred"]).rows
    assert row["label"].startswith("ERROR (cold run: harness: install:"), row["label"]
    assert "No space left on device" in row["reason"] and row["verdict"] is None
    toml.write_text(plain)
    # a harness killed from outside: the fleet test SIGKILLs its parent, the harness
    kill = ws.fleet / "tests" / "lintred" / "test_kill.py"
    kill.write_text(
        "import os, signal\n\ndef test_kill_the_harness():\n"
        "    os.kill(os.getppid(), signal.SIGKILL)\n"
    )
    (row,) = sweep(ws.config, only=["lintred"]).rows
    assert row["label"] == "ERROR (cold run: the harness was killed by SIGKILL)", row["label"]
    assert row["verdict"] is None
    # neither was a verdict: with the fault gone, the tag is tested, then known-red
    kill.unlink()
    (row,) = sweep(ws.config, only=["lintred"]).rows
    assert row["decision"] == "run" and row["label"] == "FAIL (level 4/5)"
    (row,) = sweep(ws.config, only=["lintred"]).rows
    assert row["decision"] == "skip:known-red"


def test_a_backend_that_cannot_start_is_an_error_never_known_red(fleet):
    ws = fleet
    toml = ws.root / "canon.toml"
    toml.write_text(
        toml.read_text() + '[backend]\nkind = "abra"\nservers = ["swarm1"]\n'
        'abra = "abra-is-not-installed"\n'
    )
    (row,) = sweep(ws.config, only=["nonote"]).rows
    assert row["label"].startswith("ERROR (cold run: harness: install: provision: abra not found")
    assert row["verdict"] is None
    with Registry.open(ws.config.db_path) as reg:
        earlier = reg.results(recipe="nonote")
    key = policy.RedKey("1.2.0+3.0", row["tag_commit"], row["fleet_tests"], row["harness"])
    assert policy.known_red(earlier, key) is None


def test_exit_codes_plan_error_doctor_broken_meta_history_unknown(fleet):
    ws = fleet
    meta = ws.fleet / "tests" / "crate" / "recipe_meta.py"
    meta.write_text(META + "WARM_CANONICAL = (True\n")  # a syntax error on the last line
    line = len(META.splitlines()) + 1
    r = canon(ws, "sweep", "--plan")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ERROR (meta:" in r.stdout and "PLAN (run 1.0.0+2.0" in r.stdout
    d = canon(ws, "doctor", "--json")
    claims = {c["name"]: c for c in json.loads(d.stdout)}
    broken = claims["every recipe_meta.py loads"]
    assert d.returncode == 1 and not broken["ok"]
    assert f"{meta}:{line}:" in broken["detail"]
    h = canon(ws, "history", "lintrde")
    assert h.returncode == 1 and "did you mean 'lintred'" in h.stderr
    assert canon(ws, "history", "lintred").returncode == 0  # known, just no rows yet
