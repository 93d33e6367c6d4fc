"""Evidence outlives the canon that wrote it: every dir verifies, pages included, under any later
canon.  tests/fixtures/evidence/<commit>/ are evidence dirs written by canon at that commit (its own
`canon evidence run investigate` on its own demo workspace) and never regenerated: when a change
breaks one, that change needs a new evidence format, not new fixtures (see the README there)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import NotRequired, Required, TypedDict

import pytest

from canonlib.evidence.manifest import ENVELOPE, EVIDENCE_FORMAT, LOG_PROOF, MANIFEST, sha256_file
from canonlib.evidence.records import (
    RECORD_MIME,
    declared_problems,
    dir_records,
    record,
    record_output,
    type_problem,
)
from canonlib.evidence.report import RENDERERS
from tests.cli import canon

FIXTURES = Path(__file__).parent / "fixtures" / "evidence"
# each canon that wrote evidence format 1 (no format in its manifest), with pages of its own
FORMAT_1 = ["69e593b", "cbc0eaf"]
# the canon that wrote evidence format 2 last (its pages frozen in templates/2)
FORMAT_2 = ["d3d45ba"]
# the first canon that wrote evidence format 3 (host access in the manifest; templates/3)
FORMAT_3 = ["15fc868"]


def verify(d: Path) -> tuple[int, str]:
    rc, out, _ = canon(None, "verify", d, in_process=True)
    return rc, out


def copy(commit: str, tmp_path: Path) -> Path:
    d = tmp_path / commit
    shutil.copytree(FIXTURES / commit, d)
    return d


def rewrite(d: Path, name: str, old: str, new: str) -> None:
    """Edit file ``name`` of dir ``d`` and its sha256 in the manifest, as a forger would."""
    text = (d / name).read_text()
    assert old in text, (name, old)
    (d / name).write_text(text.replace(old, new, 1))
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["files"][name] = sha256_file(d / name)
    (d / MANIFEST).write_text(json.dumps(m, indent=1))


@pytest.mark.parametrize("commit", FORMAT_1)
def test_a_dir_an_older_canon_wrote_verifies_pages_included(commit, tmp_path):
    m = json.loads((FIXTURES / commit / MANIFEST).read_text())
    assert "format" not in m["predicate"]["canon"]  # written before the field: format 1
    rc, out = verify(copy(commit, tmp_path))
    assert rc == 0, out
    for page in ("summary.md", "index.html"):
        line = f"ok    report {page}: rendered from the recorded values"
        assert f"{line} (format 1, as canon {commit} wrote it)" in out, out
    assert "ok    investigate: records as format 1 declares them" in out


@pytest.mark.parametrize("commit", FORMAT_2)
def test_a_format_2_dir_verifies_pages_included(commit, tmp_path):
    """Written by canon at d3d45ba, before the manifest recorded host access (format 3): its
    pages re-render with format 2's frozen templates, and no host-access record is asked of it."""
    m = json.loads((FIXTURES / commit / MANIFEST).read_text())
    assert m["predicate"]["canon"]["format"] == 2 and "host_access" not in m["predicate"]["canon"]
    rc, out = verify(copy(commit, tmp_path))
    assert rc == 0, out
    for page in ("summary.md", "index.html"):
        assert f"ok    report {page}: rendered from the recorded values (format 2)" in out, out
    assert "ok    investigate: records as format 2 declares them" in out
    assert "host access" not in out


@pytest.mark.parametrize("commit", FORMAT_3)
def test_a_format_3_dir_verifies_pages_and_host_access_included(commit, tmp_path):
    """Written by the first canon of format 3: the manifest records host access (the demo's
    swarm-cronjob mounts the docker socket, accepted), verify re-derives it from the bundle."""
    m = json.loads((FIXTURES / commit / MANIFEST).read_text())
    assert m["predicate"]["canon"]["format"] == 3 and "host_access" in m["predicate"]["canon"]
    rc, out = verify(copy(commit, tmp_path))
    assert rc == 0, out
    for page in ("summary.md", "index.html"):
        assert f"ok    report {page}: rendered from the recorded values (format 3)" in out, out
    assert "ok    investigate: records as format 3 declares them" in out
    assert "ok    host access recorded is the bundled registry's" in out, out


@pytest.mark.parametrize("commit", FORMAT_2 + FORMAT_3)
def test_an_edited_page_of_a_format_2_dir_fails_naming_its_line(commit, tmp_path):
    d = copy(commit, tmp_path)
    rewrite(d, "index.html", "lasuite-docs", "lasuite-dogs")
    rc, out = verify(d)
    assert rc == 1, out
    bad = [line for line in out.splitlines() if line.startswith("FAIL  report")]
    assert len(bad) == 1 and bad[0].startswith(f"FAIL  report index.html: {d / 'index.html'}: says")


@pytest.mark.parametrize("commit", FORMAT_1)
@pytest.mark.parametrize("page", ["summary.md", "index.html"])
def test_an_edited_page_of_an_old_dir_fails_naming_its_line_and_column(commit, page, tmp_path):
    d = copy(commit, tmp_path)
    rewrite(d, page, "lasuite-docs", "lasuite-dogs")
    rc, out = verify(d)
    assert rc == 1, out
    # (the log proof, when the dir has one, was over the manifest before its hash was rewritten)
    bad = [line for line in out.splitlines() if line.startswith("FAIL  report")]
    assert len(bad) == 1 and bad[0].startswith(f"FAIL  report {page}: {d / page}: says"), out
    assert "edited after the run" in bad[0] and ", column " in bad[0] and "dogs" in bad[0]
    other = "index.html" if page == "summary.md" else "summary.md"
    assert (
        f"ok    report {other}: rendered from the recorded values (format 1, as canon {commit}"
        in out
    )


@pytest.mark.parametrize("commit", FORMAT_1)
def test_a_dir_of_a_newer_format_says_so_in_one_line_and_exits_2(commit, tmp_path):
    d = copy(commit, tmp_path)
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["format"] = EVIDENCE_FORMAT + 1
    (d / MANIFEST).write_text(json.dumps(m, indent=1))
    for name in (ENVELOPE, LOG_PROOF):  # over the old manifest's bytes: a newer canon re-signs
        (d / name).unlink(missing_ok=True)
    rc, out = verify(d)
    lines = out.splitlines()
    want = (
        f"written by a newer canon (format {EVIDENCE_FORMAT + 1}): upgrade canon to check its pages"
    )
    assert rc == 2 and lines.count(want) == 1, out
    assert not [line for line in lines if line.startswith("FAIL")], out  # not a tamper
    assert "ok    file hashes" in out and "ok    verdict re-derived" in out  # the rest checked
    assert "report summary.md" not in out


def test_a_newer_format_dir_that_is_also_tampered_exits_1(tmp_path):
    d = copy(FORMAT_1[-1], tmp_path)
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["format"] = EVIDENCE_FORMAT + 1
    (d / MANIFEST).write_text(json.dumps(m, indent=1))
    (d / "records.json").write_text("{}")
    rc, out = verify(d)
    assert rc == 1 and "written by a newer canon" in out, out


def test_a_record_the_format_does_not_declare_fails_naming_it(tmp_path):
    """A notebook output that records `bogus` (shown as it should be, hashes rewritten): the
    dir's format declares no such record for the notebook."""
    d = copy(FORMAT_1[-1], tmp_path)
    nb = json.loads((d / "investigate.ipynb").read_text())
    data, metadata = record_output("bogus", 1)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    code[-1]["outputs"].append({"output_type": "display_data", "data": data, "metadata": metadata})
    (d / "investigate.ipynb").write_text(json.dumps(nb, indent=1))
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["files"]["investigate.ipynb"] = sha256_file(d / "investigate.ipynb")
    (d / MANIFEST).write_text(json.dumps(m, indent=1))
    rc, out = verify(d)
    assert rc == 1, out
    bad = [line for line in out.splitlines() if "records as format 1 declares" in line]
    assert bad == [
        "FAIL  investigate: records as format 1 declares them: record 'bogus' is not one "
        "format 1 declares for investigate"
    ], out


V, S = {"verified": "d", "claims": []}, {"sweep_rows": [], "canonicals_before_after": []}


@pytest.mark.parametrize(
    "notebook, recorded, problems",
    [
        ("verify", {**V, "complete": True}, []),
        ("verify", {**V, "verify_ok": "yes"}, ["record 'verify_ok' holds text, not true/false"]),
        (
            "sweep",
            {**S, "sweep_run_id": 5},
            ["record 'sweep_run_id' holds a whole number, not text"],
        ),
        ("sweep", S, ["record 'sweep_run_id' is missing"]),
        (
            "disk_budget",
            {"disk": {}, "claims": [], "labels": {}},
            [
                "record 'labels' is not one format 1 declares for disk_budget",
                "record 'disk': budget_bytes is missing",
            ],
        ),
        # inside a record: where, and what it holds instead
        (
            "sweep",
            {**S, "sweep_run_id": "r", "sweep_rows": [{"recipe": "a"}, {"level": "5"}]},
            ["record 'sweep_rows': [1].level holds text, not a whole number or null"],
        ),
        (
            "sweep",
            {**S, "sweep_run_id": "r", "sweep_rows": [{"host_access": [{"line": 3.5}]}]},
            ["record 'sweep_rows': [0].host_access[0].line holds a number, not a whole number"],
        ),
        (
            "verify",
            {**V, "claims": [{"name": "n", "ok": "yes", "detail": "d"}]},
            ["record 'claims': [0].ok holds text, not true/false"],
        ),
        (
            "verify",
            {**V, "claims": [{"name": "n", "ok": True}]},
            ["record 'claims': [0].detail is missing"],
        ),
        (
            "investigate",
            {"investigate_rungs": [{"run_id": "r", "clone": 1}]},
            "record 'investigate_rungs': [0]['clone'] holds a whole number, not text or null",
        ),
        (
            "investigate",
            {"investigate_failing_runs": True},
            "record 'investigate_failing_runs' holds true/false, not a whole number",
        ),
        ("nope", {}, ["format 1 declares no notebook 'nope'"]),
    ],
)
def test_declared_records(notebook, recorded, problems):
    got = declared_problems(1, notebook, recorded)
    if isinstance(problems, str):  # one of the problems (the other records are missing)
        assert problems in got
    else:
        assert got == problems


def test_the_fixtures_stay_small():
    for commit in FORMAT_1 + FORMAT_2 + FORMAT_3:
        size = sum(p.stat().st_size for p in (FIXTURES / commit).rglob("*") if p.is_file())
        assert size < 300_000, (commit, size)


def test_the_record_mime_is_what_the_fixtures_hold():
    """The fixtures were written with this record type: changing it is a new format."""
    text = (FIXTURES / FORMAT_1[0] / "investigate.ipynb").read_text()
    assert RECORD_MIME in text


def test_a_notebook_cannot_record_a_name_no_notebook_declares():
    with pytest.raises(ValueError, match="record 'bogus' is declared by no notebook"):
        record("bogus", 1)


@pytest.mark.slow
def test_the_wheel_ships_every_formats_templates(tmp_path):
    """An installed canon (pipx install .) must find the templates of every format it verifies."""
    root, src = Path(__file__).resolve().parent.parent, tmp_path / "src"
    # a clean copy: a build/ or *.egg-info left in the tree would ship what it listed before
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(root / "canonlib", src / "canonlib", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("canon-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for r in RENDERERS:
        for page in ("summary.md.j2", "index.html.j2", "macros.md.j2", "macros.html.j2"):
            assert f"canonlib/evidence/templates/{r.folder}/{page}" in names, (r, page)


def test_dir_records_keeps_only_what_holds_its_declared_type():
    """What a report or verify reads of a dir's records: a record of the wrong type, an
    undeclared one, or a notebook that is not an object is left out (verify's declared-records
    claim names it); what holds its type is kept as it was."""
    good_rows = [{"recipe": "a", "level": 5, "label": "PASS (promoted)"}]
    raw = {
        "sweep": {
            "sweep_run_id": "r1",
            "sweep_rows": good_rows,
            "canonicals_before_after": [{"recipe": "a", "changed": "yes"}],  # not a bool
            "labels": {"a": "PASS"},  # declared by no notebook
        },
        "verify": ["not", "an", "object"],
        7: {"complete": True},
    }
    got = dir_records(raw)
    assert got == {"sweep": {"sweep_run_id": "r1", "sweep_rows": good_rows}}
    assert got["sweep"]["sweep_rows"] is good_rows  # kept, not copied or rebuilt
    assert dir_records([raw]) == {} and dir_records(None) == {}


class _Marked(TypedDict):
    a: str
    b: NotRequired[int]


class _MarkedOptional(TypedDict, total=False):
    c: Required[str]
    d: int


@pytest.mark.parametrize(
    "value, tp, problem",
    [
        ({"a": "x"}, _Marked, None),  # b: NotRequired, though __required_keys__ says otherwise
        ({}, _Marked, "a is missing"),
        ({"a": "x", "b": "y"}, _Marked, "b holds text, not a whole number"),
        ({"d": 1}, _MarkedOptional, "c is missing"),  # c: Required in a total=False dict
        ({"c": "x"}, _MarkedOptional, None),
    ],
)
def test_type_problem_reads_required_marks_from_the_hints(value, tp, problem):
    """With string annotations (this module's `from __future__ import annotations`) Python 3.11
    gets a TypedDict's required keys wrong for Required/NotRequired marks: type_problem reads
    the marks itself."""
    assert type_problem(value, tp) == problem
