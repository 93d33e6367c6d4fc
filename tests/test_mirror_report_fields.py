"""mirror.py: what a sync report and a checkout say about themselves, on a real upstream.

The sweep's rows, its log line and the evidence name the recipe, the upstream URL and the
branch from the report; checkouts land next to the mirrors (same filesystem, one place to
clean), named for the recipe.
"""

from __future__ import annotations

from canonlib.recipe.mirror import Mirror


def test_report_names_recipe_url_and_branch(upstream, tmp_path):
    upstream.tag("1.0.0+1.0")
    m = Mirror("gitea", tmp_path / "state" / "mirrors" / "gitea.git", upstream.url)
    r = m.sync()
    assert (r.recipe, r.url, r.branch) == ("gitea", upstream.url, "main")
    head = upstream.head("main")
    # a first sync is not a forced move from nothing
    assert r.summary() == f"gitea: fetched; main at {head[:12]} (first sync); +1 tag(s)"
    upstream.commit()
    r2 = m.sync()
    assert r2.summary().startswith("gitea: fetched; main ")
    assert r2.summary().endswith(" (fast-forward)")


def test_checkouts_land_beside_the_mirrors_named_for_the_recipe(upstream, tmp_path):
    upstream.tag("1.0.0+1.0")
    mirrors = tmp_path / "state" / "mirrors"
    m = Mirror("gitea", mirrors / "gitea.git", upstream.url)
    m.sync()
    with m.checkout("1.0.0+1.0") as co:
        assert co.path.parent == mirrors / "checkouts"
        assert co.path.name.startswith("gitea")
        assert (co.path / "compose.yml").is_file()
    assert list((mirrors / "checkouts").iterdir()) == []


def test_errors_name_gits_own_complaint(tmp_path):
    """A failed fetch or checkout ends with git's first "fatal:"/"error:" line, not a warning
    before it, nor the whole command line."""
    from canonlib.git import GitError
    from canonlib.recipe.mirror import Mirror, SyncError, _gist

    gone = Mirror("gone", tmp_path / "gone.git", str(tmp_path / "nope"))
    try:
        gone.sync()
    except SyncError as e:
        assert str(e) == (
            f"gone: cannot fetch from {tmp_path / 'nope'}: fatal: "
            f"'{tmp_path / 'nope'}' does not appear to be a git repository"
        )
    else:
        raise AssertionError("a missing upstream synced")
    warned = GitError("git fetch failed", stderr="warning: redirecting\nfatal: repository gone\n")
    assert _gist(warned) == "fatal: repository gone"
    assert _gist(GitError("git x failed", stderr="hint: one\nhint: two\n")) == "hint: one"
    assert _gist(GitError("git x failed (exit 128)")) == "git x failed (exit 128)"
