"""Real recipes as published: a tag re-annotated in place, and a back-port below the canonical.

Real upstream repos in tmp_path, real sweeps through the built-in harness.
"""

from __future__ import annotations

import pytest

from canonlib.state.registry import Registry
from canonlib.sweep import policy
from canonlib.sweep.orchestrate import sweep
from tests.gitrepo import git
from tests.workspace import Workspace


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("nextcloud")
    w.release("nextcloud", "5.0.2+27.0.1-fpm")
    w.release("nextcloud", "6.0.1+28.0.2-fpm", annotated=False)
    return w


def _reannotate(ws, tag: str, annotated: bool) -> None:
    up = ws.upstreams["nextcloud"]
    commit = up.head(f"{tag}^{{commit}}")
    git("tag", "-d", "--", tag, cwd=up.path)
    up.tag(tag, ref=commit, annotated=annotated)
    assert up.head(f"{tag}^{{commit}}") == commit


@pytest.mark.parametrize("annotated", [True, False], ids=["lightweight-to-annotated", "again"])
def test_a_tag_re_annotated_in_place_is_a_warning_and_runs_nothing(ws, annotated):
    (first,) = sweep(ws.config).rows
    assert first["label"] == "PASS (promoted)"
    if not annotated:  # annotated -> lightweight: first make it annotated, quietly
        _reannotate(ws, "6.0.1+28.0.2-fpm", annotated=True)
        sweep(ws.config)
    with Registry.open(ws.config.db_path) as reg:
        promotions = len(reg.history())
    _reannotate(ws, "6.0.1+28.0.2-fpm", annotated=annotated)
    (row,) = sweep(ws.config).rows
    change = "lightweight -> annotated" if annotated else "annotated -> lightweight"
    assert row["label"] == "SKIP (no-new-version)" and row["tested_commit"] is None
    assert row["incidents"] == []
    (warning,) = row["warnings"]
    assert warning.startswith(f"tag 6.0.1+28.0.2-fpm re-annotated in place ({change}, same commit")
    with Registry.open(ws.config.db_path) as reg:
        assert len(reg.history()) == promotions
    (again,) = sweep(ws.config).rows  # said once, in the sync that saw it
    assert again["warnings"] == [] and again["label"] == "SKIP (no-new-version)"


def test_a_tag_moved_to_another_commit_is_still_an_incident(ws):
    sweep(ws.config)
    up = ws.upstreams["nextcloud"]
    up.commit()
    up.tag("6.0.1+28.0.2-fpm", force=True)
    (row,) = sweep(ws.config).rows
    assert row["incidents"] and "moved" in row["incidents"][0]
    assert not any("re-annotated" in w for w in row["warnings"])


def test_a_backport_below_the_canonical_is_named_and_never_tested(ws):
    sweep(ws.config)
    ws.release("nextcloud", "5.0.3+27.0.1-fpm")  # published after 6.0.1 is canonical
    (row,) = sweep(ws.config).rows
    assert row["label"] == "SKIP (no-new-version)" and row["tested_commit"] is None
    assert row["latest"] == "6.0.1+28.0.2-fpm" and row["canonical_after"] == "6.0.1+28.0.2-fpm"
    assert row["reason"] == (
        "newer tag exists: 5.0.3+27.0.1-fpm (published since the last sweep) is lower than the "
        "canonical 6.0.1+28.0.2-fpm, so it is a back-port: not tested, not promoted"
    )
    (again,) = sweep(ws.config).rows  # next week it is old news
    assert again["reason"] is None


@pytest.mark.parametrize(
    ("added", "canonical", "expected"),
    [
        (["5.0.3+27.0.1-fpm"], "6.0.1+28.0.2-fpm", ["5.0.3+27.0.1-fpm"]),
        (["6.0.2+28.0.2-fpm"], "6.0.1+28.0.2-fpm", []),  # newer: a run, not a back-port
        (["6.0.1+28.0.2-fpm"], "6.0.1+28.0.2-fpm", []),  # the canonical itself
        (["5.0.4+1", "5.0.3+1", "not-a-version"], "6.0.0+1", ["5.0.3+1", "5.0.4+1"]),
        (["5.0.3-rc1+1"], "6.0.0+1", []),  # a prerelease is not a release
        (["5.0.3+1"], None, []),  # nothing promoted yet: nothing to be below
        ([], "6.0.0+1", []),
    ],
)
def test_backports_table(added, canonical, expected):
    assert policy.backports(added, canonical) == expected
