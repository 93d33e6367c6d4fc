"""policy.py: pure decisions, as tables."""

from __future__ import annotations

import itertools

import pytest

from canonlib.state.row import ResultRow
from canonlib.sweep.policy import (
    RedKey,
    Turn,
    gate_reason,
    is_green,
    known_red,
    label,
    level,
    plan_label,
    rung_list,
    sweep_decision,
    upgrade_base,
)


@pytest.mark.parametrize(
    "latest, canon, hold, expected",
    [
        (None, None, None, "skip:never-released"),
        (None, "1.0.0+1", None, "skip:never-released"),
        ("1.0.0+1", None, None, "run"),
        ("1.1.0+1", "1.0.0+1", None, "run"),
        ("1.0.0+1", "1.0.0+1", None, "skip:no-new-version"),
        (
            "5.0.3+27.0.1-fpm",
            "6.0.1+28.0.2-fpm",
            None,
            "skip:no-new-version",
        ),  # upstream went backwards
        ("1.1.0+1.15.3", "1.1.0+1.15", None, "run"),  # app part tie-break
        ("2.0.0+1", "1.0.0+1", "waiting on upstream #12", "skip:held"),
        ("1.10.0+1", "1.9.0+1", None, "run"),
    ],
)
def test_sweep_decision(latest, canon, hold, expected):
    assert sweep_decision(latest, canon, hold) == expected


def test_should_promote_only_when_every_condition_holds():
    for enrolled, green, cold, is_ref, tagged in itertools.product([True, False], repeat=5):
        want = enrolled and green and cold and not is_ref and tagged
        reason = gate_reason(
            enrolled=enrolled, green=green, cold=cold, is_ref=is_ref, tagged=tagged
        )
        assert (reason is None) is want


ALL_OK = dict(enrolled=True, green=True, cold=True, is_ref=False, tagged=True)


# The reason a user reads in `GREEN-NOT-PROMOTED (<reason>)`; the first failing check names it.
@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(enrolled=False), "not enrolled"),
        (dict(green=False), "not green"),
        (dict(cold=False), "not a cold run"),
        (dict(is_ref=True), "ref build"),
        (dict(tagged=False), "untagged: tested commit is not the tag's commit"),
        (dict(enrolled=False, green=False, tagged=False), "not enrolled"),
        (dict(cold=False, is_ref=True, tagged=False), "not a cold run"),
        (dict(is_ref=True, tagged=False), "ref build"),
    ],
)
def test_gate_reason_names_the_first_failed_check(change, reason):
    assert gate_reason(**{**ALL_OK, **change}) == reason
    outcome = Turn(**{**RUN_GREEN, "gate": gate_reason(**{**ALL_OK, **change})})
    assert label(outcome, None, None) == f"GREEN-NOT-PROMOTED ({reason})"


def test_rung_list_names_unmentioned_rungs_unverified():
    assert rung_list({"install": "pass", "backup": "skip"}) == [
        "pass",
        "unverified",
        "skip",
        "unverified",
        "unverified",
    ]
    assert rung_list({}) == ["unverified"] * 5


@pytest.mark.parametrize(
    "rungs, tests, lvl, green",
    [
        (
            {
                "install": "pass",
                "upgrade": "pass",
                "backup": "pass",
                "functional": "pass",
                "lint": "pass",
            },
            3,
            5,
            True,
        ),
        (
            {
                "install": "pass",
                "upgrade": "skip",
                "backup": "pass",
                "functional": "fail",
                "lint": "pass",
            },
            3,
            3,
            False,
        ),
        (
            {
                "install": "pass",
                "upgrade": "skip",
                "backup": "skip",
                "functional": "pass",
                "lint": "pass",
            },
            1,
            5,
            True,
        ),
        (
            {
                "install": "pass",
                "upgrade": "pass",
                "backup": "pass",
                "functional": "pass",
                "lint": "pass",
            },
            0,
            5,
            False,
        ),
        ({"install": "fail"}, 0, 0, False),
        ({"install": "pass", "upgrade": "unverified", "backup": "pass"}, 2, 1, False),
        (
            {
                "install": "skip",
                "upgrade": "skip",
                "backup": "skip",
                "functional": "skip",
                "lint": "skip",
            },
            4,
            0,
            False,
        ),
        (
            {"install": "pass", "upgrade": "pass", "backup": "pass", "functional": "pass"},
            2,
            4,
            False,
        ),  # lint missing
    ],
)
def test_level_and_green(rungs, tests, lvl, green):
    assert level(rungs) == lvl
    assert is_green(rungs, tests) is green


TAGS = ["1.0.0+1", "1.1.0+1", "1.2.0+1"]


@pytest.mark.parametrize(
    "head, canon, pin, kind, version",
    [
        ("1.2.0+1", "1.1.0+1", None, "canonical", "1.1.0+1"),
        ("1.2.0+1", "1.2.0+1", None, "step-back", "1.1.0+1"),
        ("1.0.0+1", "1.0.0+1", None, "skip", None),
        ("1.2.0+1", None, None, "skip", None),
        ("1.2.0+1", "1.1.0+1", "1.0.0+1", "pin", "1.0.0+1"),
    ],
)
def test_upgrade_base(head, canon, pin, kind, version):
    base = upgrade_base(head, canon, TAGS, pin)
    assert (base.kind, base.version) == (kind, version)
    assert base.reason


# The reason is what the evidence and the harness log show next to the base.
@pytest.mark.parametrize(
    "head, canon, pin, reason",
    [
        ("1.2.0+1", "1.1.0+1", "1.0.0+1", "UPGRADE_BASE_VERSION in recipe_meta.py"),
        ("1.2.0+1", None, None, "no canonical yet"),
        ("1.2.0+1", "1.1.0+1", None, "the current canonical"),
        ("1.2.0+1", "1.2.0+1", None, "canonical is 1.2.0+1: newest older release"),
        ("1.0.0+1", "1.0.0+1", None, "no release older than 1.0.0+1"),
    ],
)
def test_upgrade_base_reason(head, canon, pin, reason):
    assert upgrade_base(head, canon, TAGS, pin).reason == reason


PRE_TAGS = ["1.0.0+1", "1.1.0-rc.1+1", "1.1.0+1"]


@pytest.mark.parametrize(
    "allow, expected",
    [(False, "1.0.0+1"), (True, "1.1.0-rc.1+1")],
)
def test_step_back_skips_prereleases_unless_allowed(allow, expected):
    if allow:
        base = upgrade_base("1.1.0+1", "1.1.0+1", PRE_TAGS, allow_prerelease=True)
    else:
        base = upgrade_base("1.1.0+1", "1.1.0+1", PRE_TAGS)  # the default
    assert (base.kind, base.version) == ("step-back", expected)


def test_step_back_cannot_fire_when_sweep_runs():
    # a sweep runs only when latest > canonical, so the base is then always the canonical
    for canon, latest in itertools.permutations(TAGS, 2):
        if sweep_decision(latest, canon) == "run":
            assert upgrade_base(latest, canon, TAGS).kind == "canonical"


RUN_GREEN = dict(
    decision="run", green=True, level=5, tested_version="2.0.0+1", tested_commit="b" * 40
)


@pytest.mark.parametrize(
    "outcome, record, expected",
    [
        (Turn(**RUN_GREEN), ("2.0.0+1", "b" * 40), "PASS (promoted)"),
        # the child exited 0 but the registry does not hold it: the label must not say PASS
        (Turn(**RUN_GREEN), ("1.0.0+1", "a" * 40), "GREEN-BUT-PROMOTE-FAILED"),
        (Turn(**RUN_GREEN), (None, None), "GREEN-BUT-PROMOTE-FAILED"),
        (
            Turn(**RUN_GREEN),
            ("2.0.0+1", "c" * 40),
            "GREEN-BUT-PROMOTE-FAILED",
        ),  # same version, other commit
        (
            Turn(**{**RUN_GREEN, "gate": "tag moved"}),
            ("1.0.0+1", "a" * 40),
            "GREEN-NOT-PROMOTED (tag moved)",
        ),
        (Turn("run", green=False, level=3), ("1.0.0+1", "a" * 40), "FAIL (level 3/5)"),
        (Turn("run", green=False, level=0), ("1.0.0+1", "a" * 40), "FAIL (level 0/5)"),
        (Turn("run", green=False), (None, None), "FAIL (level 0/5)"),  # died before a level
        (Turn("run", green=False, level=0, timed_out=True), (None, None), "FAIL (timeout)"),
        (Turn("skip:no-new-version"), ("1.0.0+1", "a" * 40), "SKIP (no-new-version)"),
        (Turn("skip:never-released"), (None, None), "SKIP (never-released)"),
        (Turn("skip:held"), (None, None), "SKIP (held)"),
        (
            Turn("run", error="sync: upstream unreachable"),
            (None, None),
            "ERROR (sync: upstream unreachable)",
        ),
    ],
)
def test_label_comes_from_the_registry(outcome, record, expected):
    assert label(outcome, *record) == expected


# known_red says "or None", and sweep code tests `is None`; other rows never stop the search
RED_KEY = RedKey("2.0.0+1.0", "c" * 40, "sha256:tests", "canon; canon harness")


def red_row(run_id, verdict, commit=RED_KEY.commit):
    return {
        "run_id": run_id,
        "decision": "run",
        "latest": RED_KEY.tag,
        "tested_commit": commit,
        "fleet_tests": RED_KEY.fleet_tests,
        "harness": RED_KEY.harness,
        "verdict": verdict,
    }


@pytest.mark.parametrize(
    "earlier, want",
    [
        ([], None),
        ([red_row("r1", "red"), red_row("r2", "green")], None),
        ([red_row("r0", "red", commit="d" * 40), red_row("r1", "red")], "r1"),
        ([red_row("r0", "green", commit="d" * 40), red_row("r1", "red")], "r1"),
    ],
)
def test_known_red_none_and_search_past_other_keys(earlier, want):
    got = known_red([ResultRow.from_dict({"recipe": "r", **d}) for d in earlier], RED_KEY)
    if want is None:
        assert got is None
    else:
        assert got.run_id == want


@pytest.mark.parametrize(
    ("words", "want"),
    [
        ("run 2.0.0+1, base canonical", "PLAN (run 2.0.0+1, base canonical)"),
        ("skip:no-new-version", "PLAN (skip:no-new-version)"),
    ],
)
def test_plan_label(words, want):
    """``sweep --plan``'s label: PLAN and what the sweep would do, as the plan table shows it."""
    assert plan_label(words) == want
