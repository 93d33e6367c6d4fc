"""Known-red memory as pure tables: ``policy.known_red``, ``sweep_decision(known_red=…)``,
``row_key`` and ``first_failure`` (the reason a FAIL row carries)."""

from __future__ import annotations

import pytest

from canonlib.state.row import ResultRow, names_full_disk
from canonlib.sweep import policy
from canonlib.sweep.policy import RUN, SKIP_HELD, SKIP_KNOWN_RED, SKIP_NEVER, SKIP_NO_NEW, RedKey

KEY = RedKey("2.0.0+1.0", "c" * 40, "sha256:tests-a", "canon 0.1.0; canon harness")


def as_row(data):
    """A table's row (a plain mapping, as results.jsonl holds it) as the typed row."""
    return ResultRow.from_dict({"recipe": "r", **data})


def row(
    run_id,
    verdict,
    *,
    decision=RUN,
    latest=KEY.tag,
    commit=KEY.commit,
    tests=KEY.fleet_tests,
    harness=KEY.harness,
):
    return {
        "run_id": run_id,
        "decision": decision,
        "latest": latest,
        "tested_commit": commit,
        "fleet_tests": tests,
        "harness": harness,
        "verdict": verdict,
    }


@pytest.mark.parametrize(
    ("earlier", "want"),
    [
        ([], None),
        ([row("r1", "red")], "r1"),
        ([row("r1", "green")], None),
        # the newest verdict decides; rows without a verdict (error, timeout) do not
        ([row("r1", "red"), row("r2", None)], "r1"),
        ([row("r1", "red"), row("r2", "green")], None),
        ([row("r1", "green"), row("r2", "red")], "r2"),
        ([row("r1", "red"), row("r2", "red")], "r2"),
        ([row("r1", None)], None),
        # only exactly this key counts
        ([row("r1", "red", commit="d" * 40)], None),  # the tag moved to a new commit
        ([row("r1", "red", tests="sha256:tests-b")], None),  # the fleet's tests changed
        ([row("r1", "red", harness="canon 0.2.0; canon harness")], None),  # a new canon
        ([row("r1", "red", latest="1.9.0+1.0")], None),  # another tag
        # a skip row carries the key but is no verdict of its own
        ([row("r1", "red"), row("r2", None, decision=SKIP_KNOWN_RED)], "r1"),
        ([row("r1", "red", decision=SKIP_NO_NEW)], None),
        # a row that tested nothing has no key
        ([row("r1", "red", commit=None)], None),
        # a red row whose reason names a full disk (an older canon's) is no verdict
        ([{**row("r1", "red"), "reason": "L2 upgrade: [Errno 28] No space left on device"}], None),
        ([row("r1", "red"), {**row("r2", "red"), "reason": "sh: disk quota exceeded"}], "r1"),
        ([{**row("r1", "red"), "reason": "L4 functional: pytest exited 1"}], "r1"),
        # an older canon called a full disk red, the re-run found it red for real: red
        (
            [
                {**row("r1", "red"), "reason": "L2 upgrade: [Errno 28] No space left on device"},
                {**row("r2", "red"), "reason": "L4 functional: pytest exited 1"},
            ],
            "r2",
        ),
    ],
)
def test_known_red(earlier, want):
    got = policy.known_red([as_row(r) for r in earlier], KEY)
    if want is None:
        assert got is None
    else:
        assert got.run_id == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (None, False),
        ("", False),
        ("L4 functional: pytest exited 1", False),
        ("sh: 1: echo: echo: I/O error", False),  # says nothing of space: disk_room decides
        ("[Errno 28] No space left on device: '/s/slots/x'", True),
        ("fatal: sha1 file '/s/.git/index.lock' write error. Out of diskspace", True),
        ("registry /s/canon.db: database or disk is full", True),
        ("cp: Disk quota exceeded", True),
        ("/s: disk almost full (8.0 KiB free of 1.0 MiB); free space ...", True),
    ],
)
def test_names_full_disk(text, want):
    assert names_full_disk(text) is want


KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(
    ("free", "total", "want"),
    [
        (0, 16 * MIB, True),
        (8 * KIB, MIB, True),
        (500 * KIB, 16 * MIB, True),  # 3 %
        (MIB, 16 * MIB, False),  # 6 %
        (GIB - 1, 1000 * GIB, True),  # a big disk: at most 1 GiB counts as almost full
        (GIB, 1000 * GIB, False),
        (40 * GIB, 1000 * GIB, False),  # 4 %, but 40 GiB left is room enough
        (4 * GIB, 100 * GIB, False),
        (0, 0, False),  # no size (a pseudo filesystem): nothing to say
        (1, 21, True),  # 4.8 % free: under 5 %, though 21 // 20 would say the bound is 1 byte
        (1, 20, False),  # exactly 5 % is not under 5 %
    ],
)
def test_nearly_full(free, total, want):
    assert policy.nearly_full(free, total) is want


@pytest.mark.parametrize(
    ("latest", "canon", "hold", "red", "want"),
    [
        ("2.0.0+1.0", None, None, None, RUN),
        ("2.0.0+1.0", None, None, "r1", SKIP_KNOWN_RED),
        ("2.0.0+1.0", "1.0.0+1.0", None, "r1", SKIP_KNOWN_RED),
        ("2.0.0+1.0", "1.0.0+1.0", None, None, RUN),
        # memory never turns another skip into a run, nor overrides them
        ("2.0.0+1.0", "2.0.0+1.0", None, "r1", SKIP_NO_NEW),
        ("1.0.0+1.0", "2.0.0+1.0", None, "r1", SKIP_NO_NEW),
        (None, None, None, "r1", SKIP_NEVER),
        ("2.0.0+1.0", None, "manual step", "r1", SKIP_HELD),
    ],
)
def test_sweep_decision_with_memory(latest, canon, hold, red, want):
    assert policy.sweep_decision(latest, canon, hold, known_red=red) == want


def test_known_red_skip_is_labelled_skip_known_red():
    assert policy.label(policy.Turn(SKIP_KNOWN_RED), None, None) == "SKIP (known-red)"


@pytest.mark.parametrize(
    ("r", "want"),
    [
        (row("r1", "red"), KEY),
        ({**row("r1", "red"), "fleet_tests": None}, None),  # rows from before the memory
        ({**row("r1", "red"), "harness": ""}, None),
    ],
)
def test_row_key(r, want):
    assert policy.row_key(as_row(r)) == want


P, F, S, U = policy.PASS, policy.FAIL, policy.SKIP, policy.UNVERIFIED


@pytest.mark.parametrize(
    ("statuses", "reasons", "want"),
    [
        ((P, P, P, P, P), {}, None),
        ((P, S, P, P, P), {"upgrade": "no base"}, None),
        (
            (P, P, P, P, F),
            {"lint": "no service carries the label x"},
            "L5 lint: no service carries the label x",
        ),
        (
            (F, S, U, U, F),
            {"install": "compose.yml missing", "lint": "compose.yml missing"},
            "L1 install: compose.yml missing",
        ),
        ((P, P, P, U, P), {}, "L4 functional: unverified"),
        (
            (P, P, F, F, P),
            {"backup": "after restore", "functional": "pytest exited 1"},
            "L3 backup: after restore",
        ),
    ],
)
def test_first_failure_is_the_lowest_rung_not_passed(statuses, reasons, want):
    rungs = dict(zip(("install", "upgrade", "backup", "functional", "lint"), statuses, strict=True))
    assert policy.first_failure(rungs, reasons) == want
