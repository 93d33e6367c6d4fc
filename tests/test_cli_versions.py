"""`canon versions` through the real console entry point, as a child process."""

from __future__ import annotations

from tests.cli import canon


def test_sort_prints_oldest_first_and_names_non_versions():
    tags = "6.0.1+28.0.2-fpm\n5.0.3+27.0.1-fpm\n1.13.4~1\n5.0.2+27.0.1-fpm\n"
    r = canon(None, "versions", "sort", input=tags)
    assert r.returncode == 0
    assert r.stdout.split() == ["5.0.2+27.0.1-fpm", "5.0.3+27.0.1-fpm", "6.0.1+28.0.2-fpm"]
    assert "1.13.4~1" in r.stderr


def test_latest_and_prerelease_flag():
    tags = "1.0.0\n1.1.0-rc.1\n"
    assert canon(None, "versions", "latest", input=tags).stdout.strip() == "1.0.0"
    assert (
        canon(None, "versions", "latest", "--allow-prerelease", input=tags).stdout.strip()
        == "1.1.0-rc.1"
    )


def test_latest_exits_3_when_no_release():
    r = canon(None, "versions", "latest", input="1.14.1-rootless\nfoo\n")
    assert r.returncode == 3
    assert r.stdout == ""
    assert "no release" in r.stderr and "2 tag(s)" in r.stderr


def test_help_lists_exit_codes():
    r = canon(None, "--help")
    assert r.returncode == 0 and "75" in r.stdout and "versions" in r.stdout
