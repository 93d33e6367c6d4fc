"""mirror.py against real upstream repos.  Oracle: after every scenario the mirror's
branch and tags equal upstream's `git ls-remote`, byte for byte."""

from __future__ import annotations

import os
import shutil

import pytest

from canonlib.git import InvalidRef
from canonlib.recipe.mirror import Mirror, SyncError
from tests.gitrepo import Upstream, fast_import_tags, git, ls_remote


def mirror_for(up: Upstream, tmp_path, **kw) -> Mirror:
    return Mirror("recipe", tmp_path / "state" / "mirrors" / "recipe.git", up.url, **kw)


def assert_faithful(m: Mirror, up: Upstream, branch: str = "main"):
    assert ls_remote(m.path, branch) == up.ls_remote(branch)
    # and no other refs are kept
    refs = git("for-each-ref", "--format=%(refname)", cwd=m.path).split()
    assert all(r == f"refs/heads/{branch}" or r.startswith("refs/tags/") for r in refs)


def test_first_sync_then_no_change_skips_fetch(upstream, tmp_path):
    upstream.tag("1.0.0+1.0", annotated=True)
    c2 = upstream.commit()
    upstream.tag("1.1.0+1.0", annotated=False)
    m = mirror_for(upstream, tmp_path)
    r1 = m.sync()
    assert r1.fetched and sorted(r1.added) == ["1.0.0+1.0", "1.1.0+1.0"]
    assert r1.tags["1.1.0+1.0"] == c2
    # annotated tags are peeled to their commit
    assert r1.tags["1.0.0+1.0"] == upstream.head("1.0.0+1.0^{commit}")
    assert_faithful(m, upstream)
    mtime = os.stat(
        m.path / "packed-refs" if (m.path / "packed-refs").exists() else m.path / "refs"
    ).st_mtime_ns
    r2 = m.sync()
    assert not r2.fetched, "an unchanged upstream must not be fetched"
    assert r2.tags == r1.tags and not r2.added and not r2.incidents
    assert "fetch skipped" in r2.summary()
    after = os.stat(
        m.path / "packed-refs" if (m.path / "packed-refs").exists() else m.path / "refs"
    ).st_mtime_ns
    assert mtime == after
    assert_faithful(m, upstream)


def test_new_deleted_and_moved_tags(upstream, tmp_path):
    upstream.tag("1.0.0+1", annotated=True)
    upstream.tag("1.0.1+1", annotated=False)
    upstream.tag("2.0.0+1", annotated=True)
    m = mirror_for(upstream, tmp_path)
    m.sync()
    old_1 = upstream.head("1.0.1+1^{commit}")
    old_2 = upstream.head("2.0.0+1^{commit}")
    new = upstream.commit()
    upstream.tag("1.0.1+1", annotated=False, force=True)  # lightweight tag moved
    upstream.tag("2.0.0+1", annotated=True, force=True)  # annotated tag moved
    upstream.delete_tag("1.0.0+1")
    upstream.tag("2.1.0+1")
    r = m.sync()
    assert r.fetched
    assert r.added == ["2.1.0+1"]
    assert list(r.deleted) == ["1.0.0+1"]
    assert r.moved == {"1.0.1+1": (old_1, new), "2.0.0+1": (old_2, new)}
    assert len(r.incidents) == 3 and any("1.0.1+1 moved" in i for i in r.incidents)
    assert m.tag_commit("2.0.0+1") == new and m.tag_commit("1.0.0+1") is None
    assert_faithful(m, upstream)


def test_force_pushed_branch_is_followed_and_reported(upstream, tmp_path):
    base = upstream.head()
    upstream.commit()
    m = mirror_for(upstream, tmp_path)
    m.sync()
    old = upstream.head()
    upstream.reset_hard(base)
    new = upstream.commit({"other.txt": "rewritten history\n"})
    r = m.sync()
    assert (r.branch_old, r.branch_new, r.fast_forward) == (old, new, False)
    assert "FORCED" in r.summary()
    assert_faithful(m, upstream)
    upstream.commit()
    r = m.sync()
    assert r.fast_forward is True
    assert_faithful(m, upstream)


def test_upstream_renamed_its_branch(tmp_path):
    up = Upstream(tmp_path / "up", branch="master")
    up.commit()
    up.tag("1.0.0+1")
    m = mirror_for(up, tmp_path)
    r = m.sync()
    assert r.branch == "master" and any(
        "following its default branch 'master'" in w for w in r.warnings
    )
    assert_faithful(m, up, "master")
    git("branch", "-m", "master", "main", cwd=up.path)
    r = m.sync()
    assert r.branch == "main" and r.fetched
    assert_faithful(m, up, "main")


def test_unknown_branch_without_a_default_is_a_clear_error(tmp_path):
    up = Upstream(tmp_path / "up", branch="trunk")
    up.commit()
    git("branch", "other", cwd=up.path)
    git("symbolic-ref", "HEAD", "refs/heads/gone", cwd=up.path)
    m = mirror_for(up, tmp_path)
    with pytest.raises(SyncError, match="no branch 'main'.*other, trunk"):
        m.sync()
    assert not m.path.exists()


def test_hostile_tag_names_are_reported_never_used(upstream, tmp_path):
    for name in ["--upload-pack=touch", "-x", "$(id)", "a;b", "ünï"]:
        git("update-ref", f"refs/tags/{name}", "HEAD", cwd=upstream.path)
    upstream.tag("1.0.0+1")
    m = mirror_for(upstream, tmp_path)
    r = m.sync()
    assert sorted(r.invalid_tags) == sorted(["--upload-pack=touch", "-x"])
    assert "--upload-pack=touch" not in r.tags and "1.0.0+1" in r.tags
    assert {"$(id)", "a;b", "ünï"} <= set(r.not_releases)
    assert_faithful(m, upstream)  # the mirror is still faithful: canon just never uses them
    for bad in ["--upload-pack=touch", "-x", "../../x", "a\nb", "x\x1b[31m"]:
        with pytest.raises(InvalidRef), m.checkout(bad):
            pass
        with pytest.raises(InvalidRef):
            m.tag_commit(bad)
    assert not (tmp_path / "touch").exists()


def test_unreachable_upstream_is_a_sync_error_and_leaves_mirror_alone(upstream, tmp_path):
    upstream.tag("1.0.0+1")
    m = mirror_for(upstream, tmp_path)
    m.sync()
    before = ls_remote(m.path)
    shutil.move(upstream.path, tmp_path / "gone")
    with pytest.raises(SyncError) as e:
        m.sync()
    assert "recipe" in str(e.value) and str(upstream.path) in str(e.value)
    assert ls_remote(m.path) == before
    fresh = Mirror("other", tmp_path / "state" / "mirrors" / "other.git", str(tmp_path / "nowhere"))
    with pytest.raises(SyncError):
        fresh.sync()
    assert not fresh.path.exists()
    assert not [p for p in fresh.path.parent.iterdir() if p.name.startswith(".other")]


def test_corrupted_mirror_is_recloned_with_a_warning(upstream, tmp_path):
    upstream.tag("1.0.0+1")
    m = mirror_for(upstream, tmp_path)
    m.sync()
    shutil.rmtree(m.path / "objects")
    (m.path / "HEAD").write_text("garbage\n")
    r = m.sync()
    assert r.fetched and any("unusable" in w and "re-cloned" in w for w in r.warnings)
    assert_faithful(m, upstream)


def test_checkout_is_clean_detached_at_the_tag_and_removed(upstream, tmp_path):
    upstream.commit({"compose.yml": "v1\n"})
    upstream.tag("1.0.0+1", annotated=True)
    upstream.commit({"compose.yml": "untagged work\n"})
    m = mirror_for(upstream, tmp_path)
    m.sync()
    with m.checkout("1.0.0+1") as co:
        assert co.commit == upstream.head("1.0.0+1^{commit}")
        assert (co.path / "compose.yml").read_text() == "v1\n"
        assert co.state_problem() is None
        (co.path / "compose.yml").write_text("edited\n")
        assert "not clean" in co.state_problem()
        path = co.path
    assert not path.exists()


def test_push_to_ci_mirror_is_same_refs_with_tags_pruned(upstream, tmp_path):
    ci = tmp_path / "ci.git"
    git("init", "-q", "--bare", str(ci))
    upstream.tag("1.0.0+1")
    upstream.tag("0.9.0+1", annotated=False)
    m = mirror_for(upstream, tmp_path, push_url=str(ci))
    m.sync()
    assert ls_remote(ci) == upstream.ls_remote()
    upstream.delete_tag("0.9.0+1")
    upstream.commit()
    m.sync()
    assert ls_remote(ci) == upstream.ls_remote()


def test_two_thousand_tags(tmp_path):
    up = Upstream(tmp_path / "big")
    up.commit()
    tags = [(f"{i // 100}.{i % 100}.0+{i}.0", 1 + i % 200, i % 2 == 0) for i in range(2000)]
    fast_import_tags(up, 200, tags)
    m = mirror_for(up, tmp_path)
    r = m.sync()
    assert len(r.tags) == 2000 and len(r.added) == 2000
    assert_faithful(m, up)
    r2 = m.sync()
    assert not r2.fetched and len(r2.tags) == 2000


def test_ref_files_reader_agrees_with_git(upstream, tmp_path):
    from canonlib import git as canon_git

    upstream.tag("1.0.0+1", annotated=True)
    upstream.tag("1.0.1+1", annotated=False)
    m = mirror_for(upstream, tmp_path)
    m.sync()
    git("pack-refs", "--all", cwd=m.path)  # some refs packed ...
    upstream.commit()
    upstream.tag("1.1.0+1", annotated=True)  # ... and some loose
    upstream.tag("1.0.1+1", annotated=False, force=True)  # a loose ref overriding a packed one
    m.sync()
    by_git = canon_git.local_refs(m.path, ["refs/heads/", "refs/tags/"])[0]
    assert canon_git.read_refs_files(m.path, ["refs/heads/", "refs/tags/"]) == by_git
    (m.path / "refs" / "tags" / "1.1.0+1.lock").write_text("x")  # git is writing: ask git instead
    assert canon_git.read_refs_files(m.path, ["refs/heads/", "refs/tags/"]) is None
