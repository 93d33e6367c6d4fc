"""Files a release's code, a harness or a fleet could have made, read the one safe way.

A slot's ``.env`` and ``deployed.json`` (the slot is the one place boxed recipe code may
write), the harness's result file, a mirror's HEAD and the fleet's test files: a FIFO there
must not hang canon, a link to ``/dev/zero`` must not eat its memory.  Each of these hung or
read without bound before (a FIFO read blocks forever: a hang here is a failed run)."""

from __future__ import annotations

import os

import pytest

from canonlib.backends.base import BackendError
from canonlib.backends.common import read_env_file, read_record
from canonlib.sweep import knownred
from canonlib.sweep.runner import ColdResult, _read_result


def test_slot_env_missing_is_empty(tmp_path):
    assert read_env_file(tmp_path / ".env") == {}


def test_slot_env_reads_as_abra_does(tmp_path):
    (tmp_path / ".env").write_text("A=1\nB=${A}2\n")
    assert read_env_file(tmp_path / ".env") == {"A": "1", "B": "12"}


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (os.mkfifo, "a FIFO"),
        (lambda p: os.symlink("/dev/zero", p), "a character device"),
        (lambda p: p.write_bytes(b"A=" + b"x" * (2 << 20)), "the limit is"),
    ],
)
def test_hostile_slot_env_is_one_backend_error_naming_it(tmp_path, make, words):
    env = tmp_path / ".env"
    make(env)
    with pytest.raises(BackendError) as e:
        read_env_file(env, step="install")
    assert str(env) in str(e.value) and words in str(e.value)
    assert str(e.value).startswith("install: ")


def test_a_slot_record_keeps_only_the_keys_canon_writes_with_their_types(tmp_path):
    rec = tmp_path / "deployed.json"
    rec.write_text(
        '{"recipe": "x", "version": 3, "commit": "c", "deployed_at": 1.5, "deadline_s": 60,'
        ' "services": ["app", 1], "state": null, "extra": "y", "domain": true}'
    )
    assert read_record(rec) == {"recipe": "x", "commit": "c", "deployed_at": 1.5, "deadline_s": 60}
    rec.write_text('{"services": ["app", "db"]}')
    assert read_record(rec) == {"services": ["app", "db"]}
    rec.write_text('["not", "an", "object"]')
    assert read_record(rec) is None


@pytest.mark.parametrize(
    "make",
    [os.mkfifo, lambda p: os.symlink("/dev/zero", p), lambda p: p.write_text("[" * 5000)],
)
def test_hostile_result_file_is_an_error_not_a_hang(tmp_path, make):
    path = tmp_path / "result.json"
    make(path)
    result = ColdResult("r", "1.0.0", "c" * 40, rc=0)
    _read_result(result, path)
    assert result.error and str(path) in result.error and "unreadable" in result.error
    assert not result.green


def test_fleet_fifo_is_digested_by_what_it_is(tmp_path):
    (tmp_path / "test_app.py").write_text("def test_x(): pass\n")
    before = knownred.tests_digest(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    after = knownred.tests_digest(tmp_path)  # returns: the FIFO is named, never read
    assert after != before
    os.unlink(tmp_path / "pipe")
    assert knownred.tests_digest(tmp_path) == before


def test_evidence_progress_lines_show_control_characters_visibly():
    from canonlib.evidence.progress import row_line

    line = row_line("r1", {"recipe": "x\x1b[2J", "decision": "run", "label": "PASS\u202e"})
    assert "\x1b" not in line and "\u202e" not in line
    assert "^[" in line and "<U+202E>" in line
