"""Mirror integrity and branches, on real upstream repos and real mirrors.

- a mirror whose objects are gone (refs intact) is noticed by a no-op sync and
  re-cloned with a warning;
- a branch set in canon.toml is honoured (missing upstream: that recipe's ERROR
  naming upstream's branches); only an unset branch follows upstream's default;
- the mirror's HEAD names the mirrored branch, so cloning it checks that out.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from canonlib import git as canon_git
from canonlib.recipe.mirror import Mirror, SyncError
from tests.cli import canon
from tests.gitrepo import Upstream, git, ls_remote


def mirror_for(up: Upstream, tmp_path, branch: str | None = None) -> Mirror:
    return Mirror("recipe", tmp_path / "state" / "mirrors" / "recipe.git", up.url, branch)


def assert_faithful(m: Mirror, up: Upstream, branch: str = "main") -> None:
    assert ls_remote(m.path, branch) == up.ls_remote(branch)


def object_files(repo) -> list:
    objects = repo / "objects"
    return [p for p in objects.rglob("*") if p.is_file() and p.parent.name not in ("info",)]


def loose_object(repo, oid: str):
    return repo / "objects" / oid[:2] / oid[2:]


@pytest.fixture
def released(upstream):
    upstream.tag("1.0.0+1", annotated=True)
    upstream.commit()
    upstream.tag("1.1.0+1", annotated=False)
    upstream.commit()
    return upstream


def test_mirror_without_its_objects_is_recloned_on_a_noop_sync(released, tmp_path):
    m = mirror_for(released, tmp_path)
    m.sync()
    refs_before = ls_remote(m.path)
    for p in object_files(m.path):
        p.unlink()
    assert ls_remote(m.path) == refs_before  # the refs still say all is well
    r = m.sync()
    assert r.fetched, "a mirror without its objects must be re-fetched"
    assert any(str(m.path) in w and "re-cloned" in w for w in r.warnings), r.warnings
    assert "re-cloned" in r.summary()
    assert_faithful(m, released)
    git("fsck", "--no-dangling", cwd=m.path)  # every object is back
    with m.checkout("1.0.0+1") as co:
        assert co.commit == released.head("1.0.0+1^{commit}")
    again = m.sync()
    assert not again.fetched and again.warnings == []  # healthy again: the no-op path


@pytest.mark.parametrize("lost", ["branch tip", "tag commit", "tag object", "tip tree"])
def test_one_missing_tip_object_is_noticed(released, tmp_path, lost):
    m = mirror_for(released, tmp_path)
    m.sync()
    tip = released.head("main")
    oid = {
        "branch tip": tip,
        "tag commit": released.head("1.1.0+1"),
        "tag object": git("rev-parse", "refs/tags/1.0.0+1", cwd=released.path).strip(),
        "tip tree": released.head("main^{tree}"),
    }[lost]
    path = loose_object(m.path, oid)
    assert path.exists(), "small fetches keep loose objects"
    path.unlink()
    r = m.sync()
    named = tip[:12] + "^{tree}" if lost == "tip tree" else oid[:12]
    assert r.fetched and any(named in w for w in r.warnings), r.warnings
    assert loose_object(m.path, oid).exists() or git("cat-file", "-t", oid, cwd=m.path)
    assert_faithful(m, released)


def test_broken_mirror_and_unreachable_upstream_is_an_error_not_a_silent_pass(released, tmp_path):
    m = mirror_for(released, tmp_path)
    m.sync()
    for p in object_files(m.path):
        p.unlink()
    shutil.move(released.path, tmp_path / "gone")
    with pytest.raises(SyncError, match="cannot fetch"):
        m.sync()


# -- branches ------------------------------------------------------------------


def test_explicit_branch_missing_upstream_is_an_error_naming_its_branches(tmp_path):
    up = Upstream(tmp_path / "up", branch="master")
    up.commit()
    git("branch", "stable", cwd=up.path)
    up.tag("1.0.0+1")
    with pytest.raises(SyncError) as e:
        mirror_for(up, tmp_path, branch="develop").sync()
    msg = str(e.value)
    assert "no branch 'develop'" in msg and "master, stable" in msg and "canon.toml" in msg
    # an explicit "main" is as explicit as any other name
    with pytest.raises(SyncError, match="no branch 'main'"):
        mirror_for(up, tmp_path, branch="main").sync()
    # unset: main is missing, so upstream's default is followed, with a warning
    r = mirror_for(up, tmp_path).sync()
    assert r.branch == "master" and any("following its default branch" in w for w in r.warnings)


def test_explicit_branch_is_followed_even_when_main_exists(tmp_path):
    up = Upstream(tmp_path / "up")
    up.commit()
    git("checkout", "-q", "-b", "develop", cwd=up.path)
    dev = up.commit()
    git("checkout", "-q", "main", cwd=up.path)
    r = mirror_for(up, tmp_path, branch="develop").sync()
    assert r.branch == "develop" and r.branch_new == dev and r.warnings == []
    assert_faithful(mirror_for(up, tmp_path, branch="develop"), up, "develop")


def _clone_stderr(mirror_path, dest) -> str:
    proc = subprocess.run(
        ["git", "clone", "--", str(mirror_path), str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("branch", ["main", "master"])
def test_mirror_head_names_the_mirrored_branch(tmp_path, branch):
    up = Upstream(tmp_path / "up", branch=branch)
    up.commit()
    up.tag("1.0.0+1")
    m = mirror_for(up, tmp_path)
    m.sync()
    assert (m.path / "HEAD").read_text().strip() == f"ref: refs/heads/{branch}"
    err = _clone_stderr(m.path, tmp_path / "clone")
    assert "remote HEAD refers to nonexistent ref" not in err
    assert git("rev-parse", "HEAD", cwd=tmp_path / "clone").strip() == up.head()


def test_noop_sync_repairs_a_dangling_mirror_head(released, tmp_path):
    m = mirror_for(released, tmp_path)
    m.sync()
    git("symbolic-ref", "HEAD", "refs/heads/master", cwd=m.path)  # as older canons left it
    r = m.sync()
    assert not r.fetched
    assert (m.path / "HEAD").read_text().strip() == "ref: refs/heads/main"
    assert "nonexistent ref" not in _clone_stderr(m.path, tmp_path / "clone")


def test_sweep_honours_the_configured_branch(tmp_path):
    """End to end: an explicit branch upstream lacks is that recipe's ERROR; the others go on."""
    from tests.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.recipe("app")
    ws.release("app", "1.0.0+1")
    ws.recipe("other")
    ws.release("other", "1.0.0+1")
    toml = ws.root / "canon.toml"
    toml.write_text(toml.read_text() + '\n[recipes.app]\nbranch = "develop"\n')
    r = canon(ws, "sweep", "--json", timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    rows = {row["recipe"]: row for row in json.loads(r.stdout)}
    assert rows["app"]["label"].startswith("ERROR (sync: ")
    assert (
        "no branch 'develop'" in rows["app"]["error"] and "branches: main" in rows["app"]["error"]
    )
    assert rows["other"]["label"] == "PASS (promoted)"


# -- the no-op sync reads the object store itself (git.missing_objects) ----------------------


def cat_file_missing(repo, oids: list[str], tip: str | None) -> list[str]:
    wanted = oids + ([f"{tip}^{{tree}}"] if tip else [])
    out = git("cat-file", "--batch-check", cwd=repo, input="".join(f"{w}\n" for w in wanted))
    return [ln.rsplit(" ", 1)[0] for ln in out.splitlines() if ln.endswith(" missing")]


def every_object(repo) -> list[str]:
    out = git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)", cwd=repo)
    return out.split()


@pytest.mark.parametrize(
    "layout", ["loose", "packed", "packed, one lost", "pack without its index"]
)
def test_missing_objects_answers_as_git_does(released, layout):
    """Loose and packed objects, present and absent, named as cat-file names them."""
    repo, store = released.path, released.path / ".git"
    if layout != "loose":
        git("repack", "-a", "-d", "-q", cwd=repo)
        git("prune-packed", cwd=repo)
    objects = every_object(repo)
    tip = released.head("main")
    absent = ["0" * 40, "f" * 40, objects[0][:-1] + ("0" if objects[0][-1] != "0" else "1")]
    if layout == "packed, one lost":  # a second pack holding one object; then that pack goes
        extra = git("hash-object", "-w", "--stdin", cwd=repo, input="lost\n").strip()
        name = git(
            "pack-objects",
            "-q",
            str(store / "objects" / "pack" / "pack"),
            cwd=repo,
            input=extra + "\n",
        )
        git("prune-packed", cwd=repo)
        assert git("cat-file", "-t", extra, cwd=repo).strip() == "blob"
        (store / "objects" / "pack" / f"pack-{name.strip()}.pack").unlink()
        absent.append(extra)
    if layout == "pack without its index":
        for idx in (store / "objects" / "pack").glob("*.idx"):
            idx.rename(idx.with_suffix(".idx-gone"))
    oids = sorted(objects + absent)
    local = canon_git.missing_objects(store, oids, tree_of=tip)
    assert local is not None, "a plain files-backend repo is read without git"
    assert local == cat_file_missing(repo, oids, tip)
    assert set(absent) <= set(local)
    if layout == "pack without its index":
        assert len(local) == len(oids) + 1  # nothing is there, the tip's tree neither
    else:
        assert canon_git.missing_objects(store, objects, tree_of=tip) == []


def test_missing_objects_cannot_tell_hands_over_to_git(released, tmp_path):
    """Alternates (and a tip that is not a plain commit) are git's to answer: None, not a guess."""
    clone = tmp_path / "shared.git"
    git("clone", "-q", "--bare", "--shared", str(released.path), str(clone))
    tip = released.head("main")
    assert canon_git.missing_objects(clone, [tip], tree_of=tip) is None
    tag = git("rev-parse", "refs/tags/1.0.0+1", cwd=released.path).strip()  # a tag object
    assert canon_git.missing_objects(released.path / ".git", [tag], tree_of=tag) is None
    # and the mirror still answers right through git: nothing missing
    m = mirror_for(released, tmp_path)
    m.sync()
    (m.path / "objects" / "info" / "alternates").write_text(str(released.path / "objects") + "\n")
    assert not m.sync().fetched
