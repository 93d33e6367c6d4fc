"""Host access by consent and the release cooldown, through the real sweep.

Real upstream repos, the real harness as a child process, a real registry; the abra case
against the FAKE `abra` of tests/test_abra.py (the one stand-in of the suite).  A release
whose compose file newly asks for ``/:/host`` is HELD: its code never runs (its post-install
hook would write a file on the host), no slot is made, the canonical stays, the sweep fails.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from canonlib.demo.fleet import compose_yml, demo_image, recipe_files
from canonlib.state.registry import Registry
from canonlib.sweep.admission import host_gate
from canonlib.sweep.orchestrate import sweep
from tests.cli import canon
from tests.test_abra import FAKE_ABRA, install_abra
from tests.workspace import META, Workspace

OLD, NEW, LATER = "1.0.0+1.0", "1.1.0+1.1", "1.2.0+1.2"


def asking(recipe: str, tag: str, *volumes: str) -> str:
    """The demo recipe's compose.yml with ``volumes`` added to app (short syntax)."""
    text = compose_yml(recipe, tag, demo_image(recipe, tag))
    extra = "".join(f"      - {v}\n" for v in volumes)
    return text.replace(
        f"      - data:/var/lib/{recipe}\n", f"      - data:/var/lib/{recipe}\n{extra}"
    )


def release(ws, recipe, tag, *volumes, marker=None):
    files = recipe_files(recipe, tag)
    files["compose.yml"] = asking(recipe, tag, *volumes)
    if marker is not None:  # the release's own code: run by the install steps on deploy
        files["post-install.sh"] = f'#!/bin/sh\necho ran > "$CANON_DATA_DIR/{marker}"\n'
    up = ws.upstreams[recipe]
    commit = up.commit(files, f"release {tag}")
    up.tag(tag)
    return commit


def ran(ws, marker: str) -> bool:
    """Whether a release's hook ran: the file it leaves in a slot's data dir.  A boxed hook can
    write nowhere else, and a held release that slipped through would be promoted (it is green
    otherwise), so its canonical slot would keep the file."""
    return bool(list(ws.config.slots_dir.glob(f"*/data/{marker}")))


def slots(ws) -> set[str]:
    d = ws.config.slots_dir
    return {p.name for p in d.iterdir()} if d.exists() else set()


def canonical(ws, recipe):
    with Registry.open(ws.config.db_path) as reg:
        c = reg.read_registry(recipe)
    return c.version if c else None


def row_of(rows, recipe):
    (row,) = [r for r in rows if r["recipe"] == recipe]
    return row


def test_local_release_newly_asking_for_the_host_root_is_held_and_never_runs(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    release(ws, "custom-html", OLD)
    assert canon(ws, "sweep").returncode == 0
    assert canonical(ws, "custom-html") == OLD
    before = slots(ws)

    marker = "HOOK-OF-THE-HELD-RELEASE-RAN"
    release(
        ws,
        "custom-html",
        NEW,
        "/:/host",
        "/var/run/docker.sock:/var/run/docker.sock",
        marker=marker,
    )
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 1, r.stderr
    row = row_of(json.loads(r.stdout), "custom-html")
    assert row["label"] == "HELD (host access)"
    assert row["decision"] == "held:host-access"
    assert "bind:/ (compose.yml:14) reaches canon's state dir" in row["reason"]
    assert "bind:/var/run/docker.sock (compose.yml:15)" in row["reason"]
    assert 'HOST_ACCESS = ["bind:/var/run/docker.sock"]' in row["reason"]
    assert row["tested_commit"] is None and row["log_path"] is None  # no harness ran
    assert {a["item"]: (a["line"], a["accepted"]) for a in row["host_access"]} == {
        "bind:/": (14, False),
        "bind:/var/run/docker.sock": (15, False),
    }
    assert not ran(ws, marker)  # the release's code never ran
    assert slots(ws) == before  # no slot made
    assert canonical(ws, "custom-html") == OLD  # the canonical stays

    # remembered: the next sweep holds it again (same tag commit, same meta), still nothing runs
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 1
    again = row_of(json.loads(r.stdout), "custom-html")
    assert again["label"] == "HELD (host access)" and again["reason"] == row["reason"]
    assert not ran(ws, marker) and slots(ws) == before

    # the operator accepts the socket; / stays refused even when accepted
    meta = ws.fleet / "tests" / "custom-html" / "recipe_meta.py"
    meta.write_text(META + 'HOST_ACCESS = ["bind:/var/run/docker.sock", "bind:/"]\n')
    r = canon(ws, "sweep", "--json")
    row = row_of(json.loads(r.stdout), "custom-html")
    assert r.returncode == 1 and row["label"] == "HELD (host access)"
    assert "refused even if accepted: bind:/ (compose.yml:14)" in row["reason"]
    assert "asks the host for more" not in row["reason"]
    assert not ran(ws, marker) and canonical(ws, "custom-html") == OLD

    # a later release asks only for the accepted socket: deployed, with a warning in its row
    deployed = "HOOK-OF-THE-ACCEPTED-RELEASE-RAN"
    release(ws, "custom-html", LATER, "/var/run/docker.sock:/var/run/docker.sock", marker=deployed)
    r = canon(ws, "sweep", "--json")
    row = row_of(json.loads(r.stdout), "custom-html")
    assert r.returncode == 0, row
    assert ran(ws, deployed)  # the same kind of hook, deployed, leaves its trace: ran() can tell
    assert row["label"] == "PASS (promoted)"
    assert "host access (accepted in HOST_ACCESS): bind:/var/run/docker.sock" in row["warnings"]
    assert row["host_accepted"] == ["bind:/var/run/docker.sock", "bind:/"]
    assert [a["accepted"] for a in row["host_access"]] == [True]


def test_fake_abra_is_never_called_for_a_held_release(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    with (tmp_path / "canon.toml").open("a") as f:
        f.write('[backend]\nkind = "abra"\nservers = ["swarm1.example.org"]\n')
    install_abra(tmp_path, monkeypatch, FAKE_ABRA)
    log = tmp_path / "abra-argv.jsonl"
    monkeypatch.setenv("FAKE_ABRA_SECRETS", str(tmp_path / "inserted-secrets"))
    monkeypatch.setenv("FAKE_ABRA_LOG", str(log))
    monkeypatch.setenv("FAKE_ABRA_RECIPE", "custom-html")
    ws.recipe("custom-html")
    release(ws, "custom-html", NEW, "/:/host")
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 1, r.stderr
    row = row_of(json.loads(r.stdout), "custom-html")
    assert row["label"] == "HELD (host access)"
    assert "bind:/ (compose.yml:14)" in row["reason"]
    calls = [json.loads(x)["argv"] for x in log.read_text().splitlines()] if log.exists() else []
    assert not [a for a in calls if a[:2] in (["app", "new"], ["app", "deploy"])], calls
    assert not (ws.config.state_dir / "abra" / "canon-markers").exists()  # no slot made


def test_a_back_dated_tag_cools_from_when_canon_first_saw_it(tmp_path):
    ws = Workspace(tmp_path)
    with (tmp_path / "canon.toml").open("a") as f:
        f.write('[sweep]\nmin_release_age = "3d"\n')
    ws.recipe("custom-html")
    old_date = "2020-01-01T00:00:00Z"  # the tag and its commit claim to be six years old
    env = {"GIT_COMMITTER_DATE": old_date, "GIT_AUTHOR_DATE": old_date}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        release(ws, "custom-html", OLD)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    t0 = time.time()
    result = sweep(ws.config)
    row = row_of(result.rows, "custom-html")
    assert row["label"] == "SKIP (cooling)"
    assert result.exit_code == 0  # waiting is not failing
    assert "cooling until" in row["reason"] and "[sweep] min_release_age 3d" in row["reason"]
    first = json.loads(
        ws.config.mirror_path("custom-html").with_name("custom-html.first-seen.json").read_text()
    )[OLD]["first_seen"]
    assert t0 - 5 <= first <= time.time()  # first seen now, not in 2020
    assert canonical(ws, "custom-html") is None and not slots(ws)

    # the recipe's own MIN_RELEASE_AGE overrides canon.toml's: "0" turns it off
    meta = ws.fleet / "tests" / "custom-html" / "recipe_meta.py"
    meta.write_text(META + 'MIN_RELEASE_AGE = "0"\n')
    row = row_of(sweep(ws.config).rows, "custom-html")
    assert row["label"] == "PASS (promoted)"


@pytest.mark.parametrize("bad", ['"3 days"', '"-1d"'])
def test_a_bad_min_release_age_is_one_line(tmp_path, bad):
    ws = Workspace(tmp_path)
    with (tmp_path / "canon.toml").open("a") as f:
        f.write(f"[sweep]\nmin_release_age = {bad}\n")
    ws.recipe("custom-html")
    r = canon(ws, "sweep", "--plan")
    assert r.returncode == 2
    assert "sweep.min_release_age" in r.stderr and "Traceback" not in r.stderr


def test_first_sightings_survive_a_re_clone_and_a_re_pointed_tag_is_seen_anew(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    first_commit = release(ws, "custom-html", OLD)
    m = ws.mirror("custom-html")
    m.sync()
    seen = json.loads(m.first_seen_path.read_text())
    assert seen[OLD]["commit"] == first_commit
    # asking again, much later, answers the recorded sighting (not "now")
    assert (
        m.first_seen(OLD, first_commit, now=seen[OLD]["first_seen"] + 10 * 86400)
        == (seen[OLD]["first_seen"])
    )
    # upstream re-points the tag: a new release as far as the cooldown goes
    up = ws.upstreams["custom-html"]
    moved = up.commit(msg="re-pointed")
    up.tag(OLD, force=True)
    m.sync()
    again = json.loads(m.first_seen_path.read_text())
    assert again[OLD]["commit"] == moved != first_commit
    assert again[OLD]["first_seen"] >= seen[OLD]["first_seen"]
    # a re-cloned mirror (its directory lost) keeps the sightings beside it
    shutil.rmtree(m.path)
    m.sync()
    assert json.loads(m.first_seen_path.read_text()) == again


def test_a_host_link_into_the_state_dir_is_refused_even_when_accepted(tmp_path):
    ws = Workspace(tmp_path)
    link = tmp_path / "innocent-looking"
    ws.config.state_dir.mkdir(parents=True, exist_ok=True)
    link.symlink_to(ws.config.state_dir)
    ws.recipe("custom-html", meta=META + f'HOST_ACCESS = ["bind:{link}"]\n')
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, text in recipe_files("custom-html", OLD).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    (tree / "compose.yml").write_text(asking("custom-html", OLD, f"{link}:/x"))
    gate = host_gate(ws.config, ws.meta("custom-html"), tree, OLD)
    assert gate.held and not gate.new
    assert [(a.item, what) for a, what in gate.refused] == [(f"bind:{link}", "state dir")]
    # the same bind of a plain directory is accepted: nothing held
    link.unlink()
    link.mkdir()
    assert not host_gate(ws.config, ws.meta("custom-html"), tree, OLD).held
