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
