"""files.read_json_file / read_inside: the one way to read JSON canon did not just write.

Real FIFOs, real symlinks to /dev/zero and out of the dir, real nesting bombs: each is one
FileProblem naming what it is, and none hangs or eats memory (a FIFO read would block
forever, so a hang here is a failed test run, not a slow one).
"""

from __future__ import annotations

import json
import os

import pytest

from canonlib import files


def test_regular_json_reads(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"a": [1, {"b": 2}]}))
    assert files.read_json_file(tmp_path / "m.json", 1000) == {"a": [1, {"b": 2}]}
    assert files.read_json_file("m.json", 1000, within=tmp_path) == {"a": [1, {"b": 2}]}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: os.mkfifo(p), "a FIFO"),
        (lambda p: os.symlink("/dev/zero", p), "a character device"),
        (lambda p: p.mkdir(), "a directory"),
        (lambda p: p.write_bytes(b"x" * 2000), "the limit is 1000"),
        (lambda p: p.write_bytes(b"[" * 900 + b"]" * 900), "nested deeper than 64"),
        (lambda p: p.write_bytes(b"[" * 100_000), "nested deeper than 64"),
        (lambda p: p.write_bytes(b"\xff\xfe{}"), "not UTF-8"),
        (lambda p: p.write_text("{nope"), "not valid JSON"),
    ],
)
def test_hostile_json_is_one_problem(tmp_path, make, words):
    p = tmp_path / "m.json"
    make(p)
    cap = 1000 if "limit" in words else 1 << 20
    with pytest.raises(files.FileProblem) as e:
        files.read_json_file(p, cap)
    assert words in str(e.value)


def test_depth_limit_is_exact():
    assert files.parse_json("[" * 64 + "]" * 64) is not None
    with pytest.raises(files.FileProblem, match="deeper than 64"):
        files.parse_json("[" * 65 + "]" * 65)


def test_symlink_out_of_dir_is_refused(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    d = tmp_path / "d"
    d.mkdir()
    (d / "m.json").symlink_to(outside)
    with pytest.raises(files.FileProblem, match="symlink out of"):
        files.read_json_file("m.json", 1000, within=d)
    # a link that stays inside is followed
    (d / "real.json").write_text("[1]")
    (d / "alias.json").symlink_to("real.json")
    assert files.read_json_file("alias.json", 1000, within=d) == [1]


def test_missing_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        files.read_json_file(tmp_path / "nope.json", 10)


# -- streaming: hash, copy, a range; the tree's listing -----------------------------------------


def test_hash_file_streams_a_regular_file(tmp_path):
    import hashlib

    data = os.urandom(3 << 20) + b"tail"  # more than one 1 MiB chunk
    (tmp_path / "big").write_bytes(data)
    assert files.hash_file(tmp_path / "big", len(data)) == hashlib.sha256(data).hexdigest()
    assert files.hash_file("big", len(data), within=tmp_path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(files.FileProblem, match=f"the limit is {len(data) - 1}"):
        files.hash_file(tmp_path / "big", len(data) - 1)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: os.mkfifo(p), "is a FIFO"),
        (lambda p: os.symlink("/dev/zero", p), "is a symlink to /dev/zero"),
        (lambda p: p.mkdir(), "is a directory"),
        (
            lambda p: os.symlink("loop", p.parent / "loop") or os.symlink("loop", p),
            "symbolic links",
        ),
    ],
)
def test_hash_and_copy_refuse_what_is_not_a_regular_file_inside(tmp_path, make, words):
    """A FIFO would block a read forever and /dev/zero never ends: each is one FileProblem."""
    d = tmp_path / "d"
    d.mkdir()
    make(d / "f")
    with pytest.raises(files.FileProblem, match=words):
        files.hash_file("f", 1 << 20, within=d)
    with pytest.raises(files.FileProblem, match=words):
        files.copy_file("f", tmp_path / "copy", 1 << 20, within=d)
    assert not (tmp_path / "copy").exists()


def test_a_device_is_refused_without_within_too(tmp_path):
    with pytest.raises(files.FileProblem, match="a character device"):
        files.hash_file("/dev/zero", 1 << 20)
    with pytest.raises(files.FileProblem, match="a character device"):
        files.read_range("/dev/zero", 0, 10)


def test_copy_file_copies_and_refuses_over_the_cap(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    files.copy_file(tmp_path / "a", tmp_path / "b", 100)
    assert (tmp_path / "b").read_bytes() == b"x" * 100
    with pytest.raises(files.FileProblem, match="the limit is 99"):
        files.copy_file(tmp_path / "a", tmp_path / "c", 99)
    assert not (tmp_path / "c").exists()


def test_read_range_reads_a_tail_or_a_slice(tmp_path):
    (tmp_path / "log").write_bytes(b"0123456789")
    assert files.read_range(tmp_path / "log", -4, 4) == b"6789"
    assert files.read_range(tmp_path / "log", -40, 40) == b"0123456789"
    assert files.read_range(tmp_path / "log", 2, 3) == b"234"
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(files.FileProblem, match="a FIFO"):
        files.read_range(tmp_path / "fifo", -4, 4)


def test_list_tree_names_every_non_directory_without_following_links(tmp_path):
    d = tmp_path / "d"
    (d / "a" / "b").mkdir(parents=True)
    (d / "a" / "b" / "f").write_text("x")
    (d / "top").write_text("x")
    os.mkfifo(d / "fifo")
    (d / "up").symlink_to(tmp_path)  # a link to a directory: listed, never walked
    assert files.list_tree(d, 10) == ["a/b/f", "fifo", "top", "up"]
    with pytest.raises(files.FileProblem, match="more than 3 files"):
        files.list_tree(d, 3)


def test_not_json_keeps_the_parsers_words():
    with pytest.raises(files.NotJSON) as e:
        files.parse_json("{nope")
    assert e.value.why.startswith("Expecting property name")
    assert str(e.value).startswith("is not valid JSON (Expecting")


# -- readers converted to files.py: a FIFO where a file should be never hangs them -------------


def _in_child(code: str) -> str:
    """Run ``code`` in a child Python; the timeout only guards this test run (a FIFO opened
    for reading blocks forever on the old code)."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return r.stdout.strip()


def test_git_fast_path_leaves_a_fifo_to_git(tmp_path):
    repo = tmp_path / "mirror.git"
    (repo / "objects").mkdir(parents=True)
    (repo / "HEAD").write_text("ref: refs/heads/main\n")
    os.mkfifo(repo / "packed-refs")
    code = f"from canonlib import git; print(git.read_refs_files({str(repo)!r}, ['refs/tags/']))"
    assert _in_child(code) == "None"  # None: ask git itself


def test_a_log_tail_of_a_fifo_is_empty(tmp_path):
    os.mkfifo(tmp_path / "run.log")
    code = (
        "from canonlib.evidence.investigate import log_tail; "
        f"print(repr(log_tail({str(tmp_path / 'run.log')!r})))"
    )
    assert _in_child(code) == "''"
