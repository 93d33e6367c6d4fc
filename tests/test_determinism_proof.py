"""The determinism proof needs no exceptions: re-derived from a real registry file, it holds
when a second sweep re-tries only unfinished business, and fails when anything settled runs."""

from __future__ import annotations

import pytest

from canonlib.evidence.proofs import determinism_claims
from canonlib.state.registry import RESULT_FIELDS, Registry

C = "c" * 40


def row(recipe, decision, label, *, verdict=None, ran=False):
    return {
        **dict.fromkeys(RESULT_FIELDS),
        "recipe": recipe,
        "decision": decision,
        "label": label,
        "verdict": verdict,
        "latest": "2.0.0",
        "tested_commit": C if ran else None,
        "log_path": f"/logs/{recipe}.log" if ran else None,
        "warnings": [],
    }


FIRST = [
    row("promoted", "run", "PASS (promoted)", verdict="green", ran=True),
    row("red", "run", "FAIL (level 4/5)", verdict="red", ran=True),
    row("promote-failed", "run", "GREEN-BUT-PROMOTE-FAILED", verdict="green", ran=True),
    row("timed-out", "run", "FAIL (timeout)", ran=True),
    row("offline", None, "ERROR (sync: cannot fetch)"),
    row("held", "skip:held", "SKIP (held)"),
]
SECOND_OK = [
    row("promoted", "skip:no-new-version", "SKIP (no-new-version)"),
    row("red", "skip:known-red", "SKIP (known-red)"),
    row("promote-failed", "run", "PASS (promoted)", verdict="green", ran=True),  # promote retried
    row("timed-out", "run", "FAIL (timeout)", ran=True),  # no verdict the first time: tried again
    row("offline", None, "ERROR (sync: cannot fetch)"),
    row("held", "skip:held", "SKIP (held)"),
]


def registry(tmp_path, second, promoted=("promote-failed",)):
    reg = Registry.open(tmp_path / "canon.db")
    for run_id, rows in (
        ("20260101T000000Z-sweep-0001", FIRST),
        ("20260101T000100Z-sweep-0002", second),
    ):
        reg.start_run(run_id, "sweep", now=run_id[:16])
        for r in rows:
            reg.record_result(run_id, r)
    for recipe in promoted:
        reg.record_promotion(recipe, "2.0.0", "2.0.0", C, run_id="20260101T000100Z-sweep-0002")
    return reg


def test_a_second_sweep_that_only_finishes_business_holds_every_claim(tmp_path):
    with registry(tmp_path, SECOND_OK) as reg:
        claims = determinism_claims(reg, "20260101T000100Z-sweep-0002")
    assert [c for c in claims if not c.ok] == []
    detail = {c.name: c.detail for c in claims}
    assert "known-red: red" in detail["what the first sweep settled ran no harness"]
    assert (
        "promote-failed (was GREEN-BUT-PROMOTE-FAILED)"
        in detail["a harness ran only for unfinished business"]
    )


@pytest.mark.parametrize(
    ("recipe", "second_row", "promoted", "broken"),
    [
        (
            "red",
            row("red", "run", "FAIL (level 4/5)", verdict="red", ran=True),
            (),
            "what the first sweep settled ran no harness",
        ),
        (
            "promoted",
            row("promoted", "run", "PASS (promoted)", verdict="green", ran=True),
            ("promoted",),
            "no promotion written for a settled recipe",
        ),
        (
            "held",
            row("held", "skip:held", "FAIL (level 0/5)"),
            (),
            "rows that ran nothing are SKIP, HELD or a stage ERROR",
        ),
    ],
)
def test_anything_settled_that_runs_again_breaks_the_proof(
    tmp_path, recipe, second_row, promoted, broken
):
    second = [second_row if r["recipe"] == recipe else r for r in SECOND_OK]
    with registry(tmp_path, second, promoted=("promote-failed", *promoted)) as reg:
        failed = {
            c.name for c in determinism_claims(reg, "20260101T000100Z-sweep-0002") if not c.ok
        }
    assert broken in failed


def test_a_single_sweep_proves_nothing(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep")
        reg.record_result("r1", row("red", "run", "FAIL (level 4/5)", verdict="red", ran=True))
        claims = determinism_claims(reg, "r1")
    assert not claims[0].ok and claims[0].name == "the second sweep has rows, after a first"
