"""The typed result row (canonlib.state.row): labels read in one place, a failure's cause
recorded where it was caught, and rows that read and write back byte for byte.

Real parts: real sweeps on real git repos in tmp_path, a real registry (SQLite), a real
harness child process."""

from __future__ import annotations

import errno
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from canonlib.evidence.report import HELD_OUTCOMES, OUTCOMES, outcome
from canonlib.state.registry import RESULT_FIELDS, SCHEMA_VERSION, Registry
from canonlib.state.row import (
    FAILING,
    Cause,
    Outcome,
    ResultRow,
    legacy_cause,
    parse_label,
    row_cause,
)
from canonlib.sweep import policy
from canonlib.sweep.harness import EnvironmentFault, rung_status_of
from canonlib.sweep.orchestrate import sweep
from canonlib.sweep.promote import errno_of
from canonlib.sweep.runner import ColdResult
from tests.workspace import Workspace

FIXTURES = Path(__file__).parent / "fixtures"

# -- labels: the one reader ------------------------------------------------------------------

LABELS = [
    # label, outcome, words, failing, skipped, promoted
    ("PASS (promoted)", Outcome.PASS, "promoted", False, False, True),
    ("FAIL (level 2/5)", Outcome.FAIL, "level 2/5", True, False, False),
    ("FAIL (timeout)", Outcome.FAIL, "timeout", True, False, False),
    ("ERROR (cold run: x (y))", Outcome.ERROR, "cold run: x (y)", True, False, False),
    ("SKIP (no-new-version)", Outcome.SKIP, "no-new-version", False, True, False),
    ("SKIP (known-red)", Outcome.SKIP, "known-red", False, True, False),
    ("HELD (host access)", Outcome.HELD, "host access", True, False, False),
    (
        "GREEN-NOT-PROMOTED (tag moved)",
        Outcome.GREEN_NOT_PROMOTED,
        "tag moved",
        False,
        False,
        False,
    ),
    ("GREEN-BUT-PROMOTE-FAILED", Outcome.GREEN_BUT_PROMOTE_FAILED, "", True, False, False),
    ("PLAN (run 1.0.0+1, base skip)", Outcome.PLAN, "run 1.0.0+1, base skip", False, False, False),
    ("ERROR(x)", Outcome.ERROR, "x", True, False, False),
    # what canon never writes has no outcome: not failing, not a skip, not promoted
    ("FAILED", None, "", False, False, False),
    ("SKIPPED (x)", None, "", False, False, False),
    ("GREEN", None, "", False, False, False),
    ("", None, "", False, False, False),
    (None, None, "", False, False, False),
]


@pytest.mark.parametrize(("text", "head", "words", "failing", "skipped", "promoted"), LABELS)
def test_parse_label(text, head, words, failing, skipped, promoted):
    label = parse_label(text)
    assert (label.outcome, label.words) == (head, words)
    assert (label.failing, label.skipped, label.promoted) == (failing, skipped, promoted)
    assert str(label) == ("" if text is None else text)


def test_failing_outcomes_are_the_four_that_fail_a_week():
    assert FAILING == {Outcome.FAIL, Outcome.ERROR, Outcome.GREEN_BUT_PROMOTE_FAILED, Outcome.HELD}


GREEN = dict(green=True, level=5, tested_version="2.0.0+1", tested_commit="b" * 40)
TURNS = [
    (policy.Turn("run", **GREEN), ("2.0.0+1", "b" * 40), "PASS (promoted)", Outcome.PASS),
    (
        policy.Turn("run", **GREEN),
        ("1.0.0+1", "a" * 40),
        "GREEN-BUT-PROMOTE-FAILED",
        Outcome.GREEN_BUT_PROMOTE_FAILED,
    ),
    (
        policy.Turn("run", **GREEN, gate="untagged"),
        (None, None),
        "GREEN-NOT-PROMOTED (untagged)",
        Outcome.GREEN_NOT_PROMOTED,
    ),
    (policy.Turn("run", green=False, level=3), (None, None), "FAIL (level 3/5)", Outcome.FAIL),
    (policy.Turn("run", green=False, timed_out=True), (None, None), "FAIL (timeout)", Outcome.FAIL),
    (policy.Turn(policy.SKIP_NO_NEW), (None, None), "SKIP (no-new-version)", Outcome.SKIP),
    (policy.Turn(policy.HELD_HOST), (None, None), "HELD (host access)", Outcome.HELD),
    (policy.Turn("run", error="sync: gone"), (None, None), "ERROR (sync: gone)", Outcome.ERROR),
]


@pytest.mark.parametrize(("turn", "record", "text", "head"), TURNS)
def test_a_label_written_reads_back_as_its_outcome(turn, record, text, head):
    written = policy.label(turn, *record)
    assert written == text  # the words stay exactly as every canon wrote them
    assert parse_label(written).outcome is head  # the outcome, named here, not by policy
    assert policy.outcome(turn, *record) is head


@pytest.mark.parametrize(
    ("text", "plain", "held"),
    [
        ("HELD (host access)", "?", "HELD"),  # format 2 pages had no HELD: shown as "?"
        ("PLAN (skip:held)", "?", "?"),
        ("GREEN-BUT-PROMOTE-FAILED", "GREEN-BUT-PROMOTE-FAILED", "GREEN-BUT-PROMOTE-FAILED"),
        ("FAIL (level 1/5)", "FAIL", "FAIL"),
        ("FAILED", "?", "?"),
    ],
)
def test_a_page_names_the_outcome_its_format_knows(text, plain, held):
    assert (outcome(text, OUTCOMES), outcome(text, HELD_OUTCOMES)) == (plain, held)


# -- causes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "cause"),
    [
        ({"verdict": "red", "reason": "L2 upgrade: 3 failed"}, Cause.VERDICT),
        (
            {"verdict": "red", "reason": "L1 install: [Errno 28] No space left on device"},
            Cause.FULL_DISK,
        ),
        ({"verdict": None, "error": "cold run: database or disk is full"}, Cause.FULL_DISK),
        ({"error": "sync: upstream gone"}, Cause.ENVIRONMENT),
        ({"verdict": "green"}, None),
        ({"decision": "skip:known-red", "reason": "red in run r: no space left on device"}, None),
        ({}, None),
    ],
)
def test_legacy_cause_of_a_row_from_before_causes(row, cause):
    assert legacy_cause(row) is cause
    assert row_cause(row) is cause  # no cause recorded: the old rule, read


@pytest.mark.parametrize(
    ("row", "cause"),
    [
        # a recorded cause is the cause, whatever the words say
        (
            {"verdict": "red", "reason": "no space left on device", "cause": "verdict"},
            Cause.VERDICT,
        ),
        ({"verdict": "red", "reason": "L1 install: x", "cause": "full-disk"}, Cause.FULL_DISK),
        ({"error": "x", "cause": "environment"}, Cause.ENVIRONMENT),
        ({"error": "x", "cause": "a-cause-from-a-newer-canon"}, None),
    ],
)
def test_a_recorded_cause_wins_over_the_words(row, cause):
    assert row_cause(row) is cause


def test_known_red_reads_the_cause():
    key = policy.RedKey("2.0.0+1", "c" * 40, "sha256:t", "h")
    red = {
        "recipe": "r",
        "decision": "run",
        "latest": key.tag,
        "tested_commit": key.commit,
        "fleet_tests": key.fleet_tests,
        "harness": key.harness,
        "verdict": "red",
        "reason": "L4 functional: 1 failed",
    }
    row = ResultRow.from_dict(red)
    assert policy.known_red([row], key) is row
    assert policy.known_red([ResultRow.from_dict({**red, "cause": "full-disk"})], key) is None
    # the words say full disk, the recorded cause says the tests: it is red
    said = {**red, "reason": "L4: no space left on device (a test's own message)"}
    assert policy.known_red([ResultRow.from_dict({**said, "cause": "verdict"})], key) is not None
    assert policy.known_red([ResultRow.from_dict(said)], key) is None  # an old row: its words


@pytest.mark.parametrize(
    ("result", "cause"),
    [
        (ColdResult("r", "1", "c", green=True), None),
        (ColdResult("r", "1", "c", green=False), Cause.VERDICT),
        (ColdResult("r", "1", "c", timed_out=True), Cause.TIMEOUT),
        (ColdResult("r", "1", "c", error="runner: killed"), Cause.ENVIRONMENT),
        (ColdResult("r", "1", "c", error="runner: x", errno=errno.ENOSPC), Cause.FULL_DISK),
        (ColdResult("r", "1", "c", error="runner: x", errno=errno.EDQUOT), Cause.FULL_DISK),
        (ColdResult("r", "1", "c", error="runner: x", errno=errno.EACCES), Cause.ENVIRONMENT),
        (ColdResult("r", "1", "c", error="runner: almost full", full_disk=True), Cause.FULL_DISK),
    ],
)
def test_a_cold_run_decides_its_cause(result, cause):
    assert result.cause is cause


def test_the_harness_keeps_the_errno_of_what_failed():
    with pytest.raises(EnvironmentFault) as full, rung_status_of("L1 install: "):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (full.value.errno, full.value.full_disk) == (errno.ENOSPC, True)
    with pytest.raises(EnvironmentFault) as denied, rung_status_of():
        raise OSError(errno.EACCES, "Permission denied")
    assert (denied.value.errno, denied.value.full_disk) == (errno.EACCES, False)
    # a child's words (git, docker) carry no errno: its words say it
    assert EnvironmentFault("git: fatal: No space left on device").full_disk
    assert not EnvironmentFault("the backend did not answer").full_disk


def test_errno_of_follows_what_an_error_was_raised_from():
    assert errno_of(OSError(errno.ENOSPC, "full")) == errno.ENOSPC
    try:
        try:
            raise OSError(errno.EDQUOT, "quota")
        except OSError as e:
            raise RuntimeError("the backend failed") from e
    except RuntimeError as wrapped:
        assert errno_of(wrapped) == errno.EDQUOT
    assert errno_of(RuntimeError("no OSError")) is None


# -- the row: types and the byte-identical round trip ------------------------------------------


def test_the_row_declares_every_registry_column_in_order():
    from canonlib.state.row import _STORED

    assert tuple(_STORED) == RESULT_FIELDS


OLD_LINE = json.dumps(  # a row as canon wrote it before schema 5 (no host or server keys)
    {
        **dict.fromkeys(RESULT_FIELDS[: RESULT_FIELDS.index("host_access")]),
        "recipe": "ghost",
        "label": "FAIL (level 4/5)",
        "rungs": {"install": "pass", "upgrade": "pass", "functional": "fail"},
        "level": 3,
        "duration_s": 12.0,
        "verdict": "red",
        "reason": "L3 backup: [Errno 28] No space left on device",
        "warnings": ["caf\u00e9"],
    },
    sort_keys=True,
)


def test_an_old_line_reads_and_writes_back_the_same_bytes():
    row = ResultRow.from_json(OLD_LINE)
    assert row.to_json() == OLD_LINE
    assert (row.level, row.duration_s, row.outcome) == (3, 12.0, Outcome.FAIL)
    assert row.server is None and "server" not in row.to_dict()
    assert row.cause is Cause.FULL_DISK  # its words, read: not written back
    assert "cause" not in row.to_dict()


def test_keys_no_field_declares_are_kept():
    line = json.dumps({"recipe": "x", "label": "SKIP (held)", "run_id": "r1", "later": [1]})
    row = ResultRow.from_json(line)
    assert row.to_json() == json.dumps(json.loads(line), sort_keys=True)
    assert row.extra == {"later": [1]} and row.run_id == "r1"


def test_a_cause_this_canon_does_not_know_is_written_back_as_read():
    line = json.dumps({"recipe": "x", "error": "e", "cause": "a-cause-from-a-newer-canon"})
    row = ResultRow.from_json(line)
    assert row.cause is None  # no claim about it
    assert row.to_json() == json.dumps(json.loads(line), sort_keys=True)


def test_a_row_read_gives_its_keys_back_in_their_order():
    """The registry's rows (and the records made of them) keep their column order."""
    data = {"run_id": "r1", "recipe": "x", "verdict": "red", "label": "FAIL (level 1/5)"}
    data |= {"level": 1, "decision": "run", "rc": 1, "latest": "1.0.0+1", "cause": "verdict"}
    assert list(ResultRow.from_dict(data).to_dict()) == list(data)


@pytest.mark.parametrize(
    "line",
    [
        '{"recipe": "x", "level": "3"}',
        '{"recipe": "x", "level": true}',
        '{"recipe": "x", "rungs": ["install"]}',
        '{"recipe": "x", "warnings": "one"}',
        '{"label": "PASS (promoted)"}',
        "[1, 2]",
        "not json",
    ],
)
def test_a_row_of_the_wrong_shape_is_a_value_error(line):
    with pytest.raises(ValueError):
        ResultRow.from_json(line)


def _round_trip(path: Path) -> int:
    n = 0
    for line in path.read_text().splitlines():
        if line.strip():
            assert ResultRow.from_json(line).to_json() == line, (path, line)
            n += 1
    return n


def test_every_registry_row_in_the_fixtures_round_trips(tmp_path):
    """The evidence fixtures' bundled registries (written by older canons; the fixtures hold no
    results.jsonl, their rows are here): each row read as a
    ResultRow and recorded again stores the same values (a JSON column an older schema left
    NULL is stored as JSON's null: both read back as None, as every row recorded with one
    missing always was)."""
    dbs = sorted(FIXTURES.glob("evidence/*/bundle/registry.db"))
    assert dbs
    rows = 0
    for i, db in enumerate(dbs):
        copy = tmp_path / f"{i}.db"
        shutil.copy(db, copy)
        with Registry.open(copy) as old, Registry.open(tmp_path / f"{i}-again.db") as again:
            for run in old.runs():
                again.start_run(run["run_id"], run["kind"], now=run["started_at"])
            for row in old.results():
                assert row.run_id is not None
                again.record_result(row.run_id, row)
                rows += 1
            assert [r.to_dict() for r in again.results()] == [r.to_dict() for r in old.results()]
        assert _stored(copy) == _stored(tmp_path / f"{i}-again.db")
    assert rows


JSON_COLUMNS = {"rungs", "incidents", "warnings", "host_access", "host_accepted"}


def _stored(db: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [
            {k: "null" if k in JSON_COLUMNS and v is None else v for k, v in dict(r).items()}
            for r in conn.execute("SELECT * FROM results ORDER BY run_id, recipe")
        ]
    finally:
        conn.close()


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    w.recipe("mailu")  # never released
    w.upstreams["mailu"].commit()
    return w


@pytest.mark.slow
def test_a_real_sweeps_results_round_trip(ws):
    """Two real sweeps (a promote, then a no-op week): what they wrote to results.jsonl reads
    back and writes back byte for byte, and equals what the registry holds."""
    first = sweep(ws.config)
    second = sweep(ws.config)
    lines = 0
    for result in (first, second):
        lines += _round_trip(result.run_dir / "results.jsonl")
        with Registry.open(ws.config.db_path) as reg:
            stored = {r.recipe: r for r in reg.results(result.run_id)}
        for row in result.results:
            assert stored[row.recipe].to_dict() == {**row.to_dict(), "run_id": result.run_id}
    assert lines == 4
    assert [r.label for r in first.results] == ["PASS (promoted)", "SKIP (never-released)"]
    assert [r.outcome for r in second.results] == [Outcome.SKIP, Outcome.SKIP]
    assert all(r.cause is None and r.errno is None for r in first.results + second.results)


@pytest.mark.slow
def test_a_harness_full_disk_is_recorded_as_its_cause(ws, tmp_path):
    """The harness decides the cause where it catches the error (canon harness writes it in its
    result file); the row carries it, so no later reader parses the words."""
    script = tmp_path / "full.py"
    script.write_text(
        "import json, os\n"
        "json.dump({'error': 'L1 install: cannot write the slot', 'errno': 28,\n"
        "           'cause': 'full-disk'}, open(os.environ['CCCI_RESULT_FILE'], 'w'))\n"
    )
    toml = ws.root / "canon.toml"
    toml.write_text(
        toml.read_text().replace(
            f'command = ["{sys.executable}", "-m", "canonlib", "harness"]',
            f'command = ["{sys.executable}", "{script}"]',
        )
    )
    (row,) = sweep(ws.config, only=["custom-html"]).results
    assert row.outcome is Outcome.ERROR and "cannot write the slot" in str(row.error)
    assert (row.cause, row.errno) == (Cause.FULL_DISK, errno.ENOSPC)


def test_a_sync_error_is_an_environment_cause(ws):
    ws.upstreams["custom-html"].path.rename(ws.root / "gone")
    (row,) = sweep(ws.config, only=["custom-html"]).results
    assert row.outcome is Outcome.ERROR and row.error and row.error.startswith("sync:")
    assert (row.cause, row.errno) == (Cause.ENVIRONMENT, None)


def test_migration_7_adds_cause_and_errno(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep")
        reg.record_result("r1", ResultRow("x", label="ERROR (x)", cause=Cause.FULL_DISK, errno=28))
        (got,) = reg.results("r1")
    assert (got.cause, got.errno) == (Cause.FULL_DISK, 28)
    assert SCHEMA_VERSION == 7


@pytest.mark.slow
def test_every_results_file_the_demo_writes_round_trips():
    """`canon demo`'s four sweeps (the cached demo of this code: tests/demo_evidence.py): every
    results.jsonl line, in the state dir and copied into the evidence, reads back and writes
    back byte for byte; the demo itself passed (its labels as designed, verify from cold)."""
    from tests.demo_evidence import demo_evidence

    demo = demo_evidence()
    assert demo.rc == 0, "\n".join(demo.lines[-30:])
    files = [*demo.state.glob("runs/*/results.jsonl"), *demo.evidence.glob("results/*.jsonl")]
    assert len(files) >= 5
    assert sum(_round_trip(f) for f in files) >= 4 * 15


def test_row_json_declares_each_field_with_its_type():
    """RowJSON (a row as JSON, what the notebooks record and verify reads) names every field of
    ResultRow with the same type (a cause as its text), so the two cannot drift apart."""
    import typing

    from canonlib.state.row import RowJSON

    fields = typing.get_type_hints(ResultRow)
    for internal in ("keys", "extra", "legacy_cause"):
        del fields[internal]
    fields["cause"] = str | None
    assert typing.get_type_hints(RowJSON) == fields
    assert list(typing.get_type_hints(RowJSON)) == list(fields)  # the same order, too
