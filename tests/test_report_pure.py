"""The report's pure parts, table-tested: cells, outcomes, reasons, canonical changes, which recipe
to investigate, and the live-progress tail over a real file."""

from __future__ import annotations

import json
import math

import pytest

from canonlib.evidence import figures, investigate, report
from canonlib.evidence.manifest import Statement
from canonlib.evidence.progress import SweepTail
from canonlib.evidence.records import type_problem
from canonlib.evidence.report import (
    cell,
    human_bytes,
    label_head,
    outcome,
    reason,
    sweep_rows,
    verdict_line,
)
from canonlib.state.row import ResultRow


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, "-"),
        (math.nan, "-"),
        ("", "-"),
        ([], "-"),
        (5.0, "5"),
        (9, "9"),
        (2.25, "2.2"),
        (True, "yes"),
        (["a", "b"], "a; b"),
        ("x" * 300, "x" * 300),
    ],
)
def test_cell(value, shown):
    assert cell(value) == shown


@pytest.mark.parametrize(
    "label, kind",
    [
        ("PASS (promoted)", "PASS"),
        ("GREEN-BUT-PROMOTE-FAILED (x)", "GREEN-BUT-PROMOTE-FAILED"),
        ("GREEN-NOT-PROMOTED (tag incident)", "GREEN-NOT-PROMOTED"),
        ("FAIL (level 3/5)", "FAIL"),
        ("ERROR (sync: x)", "ERROR"),
        ("SKIP (held)", "SKIP"),
        (None, "?"),
        ("FAILURE", "?"),
    ],
)
def test_outcome(label, kind):
    assert outcome(label) == kind


@pytest.mark.parametrize(
    "row, words",
    [
        (
            {"label": "FAIL (level 1/5)", "rungs": {"install": "pass", "upgrade": "fail"}},
            "L2 upgrade failed",
        ),
        (
            {"label": "FAIL (timeout)", "rungs": {"install": "fail"}},
            "the harness timed out in L1 install",
        ),
        ({"label": "ERROR (sync: gone)", "error": "sync: gone"}, "sync: gone"),
        (
            {"label": "FAIL (level 1/5)", "reason": "L2 upgrade: exit 3", "error": None},
            "L2 upgrade: exit 3",
        ),
        (
            {
                "label": "SKIP (no-new-version)",
                "decision": "skip:no-new-version",
                "canonical_before": "1.0.0",
            },
            "no release newer than the canonical 1.0.0",
        ),
        (
            {"label": "GREEN-NOT-PROMOTED (tag incident)", "gate": "tag moved"},
            "not promoted: tag moved",
        ),
        ({"label": "PASS (promoted)", "latest": "2.0.0"}, "2.0.0 is the canonical now"),
    ],
)
def test_reason_in_words(row, words):
    assert reason(row) == words


def test_a_long_label_defers_to_its_reason_only_when_the_reason_says_it():
    err = {
        "label": "ERROR (sync: gone: cannot fetch from /somewhere/far/away)",
        "error": "sync: gone: cannot fetch from /somewhere/far/away",
    }
    assert label_head(err) == "ERROR (see reason)"
    odd = {"label": "ERROR (something the reason does not say at all)", "error": "other"}
    assert label_head(odd) == odd["label"]
    assert label_head({"label": "FAIL (level 1/5)"}) == "FAIL (level 1/5)"


def test_missing_to_missing_is_not_a_change():
    rows = [
        {"recipe": "a", "canonical_before": None, "canonical_after": None},
        {"recipe": "b", "canonical_after": None},
        {"recipe": "c", "canonical_before": None, "canonical_after": "1.0.0"},
        {"recipe": "d", "canonical_before": "1.0.0", "canonical_after": "1.0.0"},
    ]
    v = report.View("r", "weekly", "", "", "PASSED", "PASSED", None, False, {}, [], {}, rows=rows)
    values = report.page_values(v, links={}, figures={})
    assert values["changes"] == [
        ["a", "-", "-", "no"],
        ["b", "-", "-", "no"],
        ["c", "-", "1.0.0", "yes"],
        ["d", "1.0.0", "1.0.0", "no"],
    ]
    assert values["change_styles"] == ["", "", "font-weight:bold", ""]


def test_human_bytes():
    assert [human_bytes(n) for n in (None, 10, 2048, 5 << 20)] == [
        "-",
        "10 B",
        "2.0 KiB",
        "5.0 MiB",
    ]


def test_sweep_rows_lay_the_recorded_values_over_the_bundled_rows():
    results = [
        {
            "run_id": "r1",
            "recipe": "a",
            "label": "PASS (promoted)",
            "reason": None,
            "warnings": ["w"],
        },
        {"run_id": "r0", "recipe": "a", "label": "old"},
    ]
    run, rows = sweep_rows(
        {"sweep": {"sweep_run_id": "r1", "sweep_rows": [{"recipe": "a", "label": "X"}]}}, results
    )
    assert run == "r1" and rows == [
        {"run_id": "r1", "recipe": "a", "label": "X", "reason": None, "warnings": ["w"]}
    ]
    assert sweep_rows({}, results) == (None, [])


def test_a_record_of_the_wrong_type_is_left_out_never_a_crash(tmp_path):
    """records.json is JSON from the dir: a record of a type other than the declared one is shown
    as not recorded, and the rest of the pages as they are.  (The manifest reaches the pages
    only as a Statement of its declared types: verify's ``manifest types`` claim checks it.)"""
    recs = {
        "sweep": {"sweep_run_id": "s1", "sweep_rows": [{"recipe": "a", "level": "high"}]},
        "disk_budget": {
            "disk": {"rows": "none"},
            "claims": [{"name": "c", "ok": True, "detail": "d"}],
        },
        "investigate": {"investigated": 5},
        "samever": "not an object",
    }
    (tmp_path / "records.json").write_text(json.dumps(recs))
    row = {"run_id": "s1", "recipe": "a", "label": "PASS (promoted)", "latest": "1.0.0"}
    canon = {
        "type": "canon-evidence/v1",
        "run_id": "r1",
        "suite": "weekly",
        "files": {},
        "notebooks": [{"name": "sweep"}],
        "results": [row, {**row, "run_id": "s0", "recipe": "b"}],
    }
    stmt = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "fleet", "digest": {"gitCommit": "a" * 40}}],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {"result": "FAILED", "canon": canon},
    }
    assert type_problem(stmt, Statement) is None
    v = report.report_view(tmp_path, stmt)
    assert (v.run_id, v.suite, v.fleet_commit, v.code) == ("r1", "weekly", None, None)
    assert v.rows == [row]  # the sweep's bundled row: the recorded rows hold a level in words
    assert v.claims == [{"notebook": "disk_budget", "name": "c", "ok": True, "detail": "d"}]
    assert (v.disk, v.investigate, v.host_access, v.outside) == (None, None, None, None)
    assert v.verdict_line == "FAILED"
    md = report.pages(v, links={}, figures={})[report.SUMMARY]
    assert "| a | PASS (promoted) | 1.0.0 is the canonical now |" in md
    assert "## Host access" not in md and "## Disk" not in md


def test_verdict_line_names_the_failing_recipes():
    canon = {
        "verdict": {
            "failed_notebooks": ["sweep"],
            "failing_rows": [
                {"recipe": "b", "label": "ERROR (x)"},
                {"recipe": "a", "label": "FAIL (level 1/5)"},
            ],
        }
    }
    assert (
        verdict_line(canon, "FAILED")
        == "FAILED: notebook sweep failed; a FAIL (level 1/5); b ERROR (x)"
    )
    assert verdict_line({}, "PASSED") == "PASSED"


def rows_of(*weeks):
    return [
        ResultRow(r, run_id=f"w{i}", label=label, decision=dec)
        for i, week in enumerate(weeks)
        for r, (label, dec) in week.items()
    ]


P, E, F = ("PASS (promoted)", "run"), ("ERROR (sync: x)", "run"), ("FAIL (level 1/5)", "run")
KR = ("SKIP (known-red)", "skip:known-red")


def test_pick_the_recipe_failing_longest_not_the_last_to_fail():
    rows = rows_of({"a": P, "b": E, "c": F}, {"a": F, "b": E, "c": P}, {"a": F, "b": E, "c": P})
    assert [s.recipe for s in investigate.failing_streaks(rows)] == ["b", "a"]
    assert investigate.pick(rows) == "b"
    assert investigate.pick(rows, "c") == "c"


def test_a_known_red_skip_keeps_the_streak_and_a_pass_ends_it():
    rows = rows_of({"a": F, "b": P}, {"a": KR, "b": E}, {"a": KR, "b": E})
    (a, b) = investigate.failing_streaks(rows)
    assert (a.recipe, a.since_run, a.runs) == ("a", "w0", 3) and (b.recipe, b.since_run) == (
        "b",
        "w1",
    )
    fixed = rows_of({"a": F}, {"a": P})
    assert investigate.failing_streaks(fixed) == [] and investigate.pick(fixed) == "a"
    assert investigate.pick(rows_of({"a": P})) is None


def test_investigation_names_the_reason_and_the_log_tail(tmp_path):
    log = tmp_path / "a.log"
    log.write_text("x" * 5000 + "\nE   AssertionError: app.conf is broken\n")
    rows = [
        {"run_id": "w0", "recipe": "a", "label": "PASS (promoted)", "rungs": {"install": "pass"}},
        {
            "run_id": "w1",
            "recipe": "a",
            "label": "FAIL (level 0/5)",
            "rungs": {"install": "fail"},
            "log_path": str(log),
        },
    ]
    inv = investigate.investigation("a", [ResultRow.from_dict(r) for r in rows])
    assert inv["investigate_reason"] == "FAIL (level 0/5) in run w1: L1 install failed"
    assert (
        inv["investigate_log_tail"].endswith("app.conf is broken\n")
        and len(inv["investigate_log_tail"]) == 3000
    )
    assert inv["investigate_rungs"] == [
        {"run_id": "w0", "install": "pass"},
        {"run_id": "w1", "install": "fail"},
    ]
    assert inv["investigate_failing_since"] == "w1"
    skipped = rows + [
        {"run_id": "w2", "recipe": "a", "label": "SKIP (known-red)", "decision": "skip:known-red"}
    ]
    inv = investigate.investigation(
        "a", [ResultRow.from_dict(r) for r in skipped]
    )  # the reason and log are the failing run's, not the skip's
    assert (
        inv["investigate_reason"].startswith("FAIL (level 0/5) in run w1")
        and inv["investigate_failing_runs"] == 2
    )


def test_progress_tail_prints_whole_lines_of_new_runs_only(tmp_path):
    old = tmp_path / "old-run" / "results.jsonl"
    old.parent.mkdir()
    # written a moment ago, by the notebook before this one: still not this notebook's
    old.write_text(json.dumps({"recipe": "stale", "label": "PASS"}) + "\n")
    lines: list[str] = []
    tail = SweepTail(tmp_path, lines.append)
    new = tmp_path / "new-run" / "results.jsonl"
    new.parent.mkdir()
    row = json.dumps({"recipe": "a", "decision": "run", "label": "FAIL (level 1/5)"})
    new.write_text(row + "\n" + row[:10])  # a line still being written
    tail.poll()
    assert lines == ["    new-run: a: run -> FAIL (level 1/5)"]
    with open(new, "a") as f:
        f.write(row[10:] + "\n")
    tail.poll()
    assert len(lines) == 2 and "stale" not in "".join(lines)
    with open(old, "a") as f:  # a run that was there before goes on: only its new rows
        f.write(json.dumps({"recipe": "b", "decision": "run", "label": "PASS (promoted)"}) + "\n")
    tail.poll()
    assert lines[2:] == ["    old-run: b: run -> PASS (promoted)"]
    run = tmp_path / "next-run"
    run.mkdir()  # a turn that has started and not ended: its event shows, before any row
    (run / "progress.jsonl").write_text(
        json.dumps({"recipe": "c", "event": "cold-testing 2.0.0"}) + "\n"
    )
    (run / "results.jsonl").write_text(row + "\n")
    tail.poll()
    assert lines[3:] == [
        "    next-run: c: cold-testing 2.0.0 ...",
        "    next-run: a: run -> FAIL (level 1/5)",
    ]


def test_figures_carry_alt_text_naming_the_failures():
    rows = [
        {"recipe": "a", "label": "ERROR (sync: gone)", "error": "sync: gone", "duration_s": 0.0},
        {"recipe": "b", "label": "PASS (promoted)", "latest": "1.0.0", "duration_s": 3.5},
    ]
    fig, alt = figures.sweep_figure(rows, "run-1", "2026-11-27T21:57:27Z")
    ax = fig.axes[0]
    assert "run-1" in ax.get_title() and "2026-11-27 21:57 UTC" in ax.get_title()
    assert ax.get_xlabel().startswith("seconds") and ax.get_ylabel() == "recipe"
    colours = {p.get_facecolor()[:3] for p in ax.patches}
    assert len(colours) == 2  # ERROR is not coloured like PASS
    assert "a ERROR (sync: gone): sync: gone" in alt and "run-1" in alt
    disk = {
        "rows": [
            {
                "recipe": "b",
                "mirror_bytes": 3 << 20,
                "slot_bytes": 2 << 20,
                "snapshot_bytes": 1 << 20,
            }
        ],
        "shared": {"evidence": 1 << 20, "state (registry, runs, logs)": 4096},
        "total_bytes": 6 << 20,
        "budget_bytes": 100 << 20,
    }
    fig, alt = figures.disk_figure(disk, recipes=["a", "b"])
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == [
        "a",
        "b",
    ]  # a has no mirror: still drawn
    assert left.get_xlabel() == "MiB" and right.get_xlabel() == "MiB"
    assert any(line.get_label() == "budget" for line in right.get_lines())
    assert "6.0 MiB of a 100.0 MiB budget (within budget)" in alt and "evidence 1.0 MiB" in alt
    figures.png_bytes(fig)


def test_progress_lines_are_plain_off_a_tty_and_coloured_on_one(monkeypatch):
    import io
    import os

    from canonlib.evidence.progress import stderr_out

    monkeypatch.delenv("NO_COLOR", raising=False)
    plain = io.StringIO()
    stderr_out(plain)("    run-1: a: run -> ERROR (sync: x)")
    assert plain.getvalue() == "    run-1: a: run -> ERROR (sync: x)\n"
    master, slave = os.openpty()
    with open(slave, "w") as tty:
        stderr_out(tty)("    run-1: a: run -> ERROR (sync: x)")
    seen = os.read(master, 4096).decode()
    os.close(master)
    assert "\033[31mERROR\033[0m" in seen


# -- upstream text in the pages: data, never markup ------------------------------------

PAYLOAD = "<script>alert(document.domain)</script><svg/onload=alert(1)><img src=x onerror=alert(2)>"


@pytest.mark.parametrize(
    "text, shown",
    [
        (PAYLOAD, PAYLOAD.replace("<", "&lt;").replace(">", "&gt;")),
        ("a|b", "a\\|b"),
        ("snake_case_name and /tmp/x_y", "snake_case_name and /tmp/x_y"),
        ("_em_ and *strong*", "\\_em\\_ and \\*strong\\*"),
        ("[click](javascript:alert(1)) ![x](y)", "\\[click\\](javascript:alert(1)) \\!\\[x\\](y)"),
        ("`code` ~~gone~~ # head", "\\`code\\` \\~\\~gone\\~\\~ \\# head"),
        ("a\nb\rc\x1bd", "a b c d"),
        ("&lt; stays text", "&amp;lt; stays text"),
        ("C:\\path", "C:\\\\path"),
    ],
)
def test_md_text_escapes_every_markdown_and_html_mark(text, shown):
    assert report.md_text(text) == shown


@pytest.mark.parametrize(
    "text, shown",
    [("run-1", "`run-1`"), ("a`b", "``a`b``"), ("`x", "`` `x ``"), ("a``b", "```a``b```")],
)
def test_md_code_fences_past_every_backtick_run(text, shown):
    assert report.md_code(text) == shown


def _hostile_view() -> report.View:
    row = {
        "recipe": "evil",
        "label": f"FAIL ({PAYLOAD})",
        "reason": PAYLOAD,
        "warnings": [PAYLOAD],
        "latest": PAYLOAD,
        "canonical_before": None,
        "canonical_after": PAYLOAD,
    }
    inv = {
        "investigated": PAYLOAD,
        "investigate_reason": PAYLOAD,
        "investigate_rows": [dict(row, run_id=PAYLOAD)],
        "investigate_rungs": [{"run_id": PAYLOAD, "install": PAYLOAD}],
        "investigate_log_tail": PAYLOAD,
    }
    return report.View(
        run_id="r1",
        suite="weekly",
        started="2026-11-27T21:57:27Z",
        finished="2026-11-27T21:59:27Z",
        result="FAILED",
        verdict_line=f"FAILED: evil FAIL ({PAYLOAD})",
        fleet_commit="abc",
        fleet_dirty=False,
        code={"code_version": PAYLOAD},
        notebooks=[{"name": "sweep", "ok": False, "problems": [PAYLOAD]}],
        records={},
        sweep_run_id="s1",
        rows=[row],
        claims=[{"notebook": "sweep", "name": PAYLOAD, "ok": False, "detail": PAYLOAD}],
        disk={
            "rows": [{"recipe": PAYLOAD, "mirror_bytes": 1, "slot_bytes": 2, "snapshot_bytes": 0}],
            "shared": {PAYLOAD: 1},
            "total_bytes": 4,
            "budget_bytes": 8,
        },
        investigate=inv,
        interrupted=PAYLOAD,
        outside={"log": PAYLOAD},
    )


def test_upstream_text_reaches_the_pages_of_this_format_only_as_text():
    pages = report.pages(
        _hostile_view(), links={"sweep": "sweep.html"}, figures={"sweep": ("QUJD", PAYLOAD)}
    )
    md, page = pages[report.SUMMARY], pages[report.INDEX]
    assert "<" not in md and ">" not in md
    assert md.count("&lt;script&gt;alert(document.domain)") >= 8
    for tag in ("<script", "<svg", "<img src=x"):
        assert tag not in page
    assert page.count("&lt;script&gt;alert(document.domain)&lt;/script&gt;") >= 10


def test_a_format_1_page_is_rendered_by_the_canon_that_wrote_it():
    """The frozen renderers differ where those canons differed (the 'Not checked here' part)."""
    old, new = (next(r for r in report.RENDERERS if r.name == n) for n in ("69e593b", "cbc0eaf"))
    v = _hostile_view()
    a = report.pages(v, links={}, figures={}, renderer=old)
    b = report.pages(v, links={}, figures={}, renderer=new)
    assert "## Not checked here" in b[report.SUMMARY] and "Not checked" not in a[report.SUMMARY]
    assert str(old) == "format 1, as canon 69e593b wrote it"
    assert report.renderers(1) == [old, new] and report.renderers(99) == []
