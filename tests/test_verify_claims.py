"""`canon verify`, claim by claim: the exact line a reviewer reads for each thing that can be
wrong with an evidence dir.

One real demo evidence dir (`canon demo`: real sweeps, real papermill) is built once per
version of canon's code and cached on disk (tests/demo_evidence.py); each test tampers
with a copy of it -- one thing -- and asserts the lines verify prints for it: the claim's
name, ok/FAIL, and its message.  Nothing but verify runs per test, so this file is also
what `make mutate MODULE=canonlib/evidence/verify.py` runs for each mutant.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from pathlib import Path

import nbformat
import pytest

from canonlib.demo.fleet import EXPECTED
from canonlib.evidence import signing
from canonlib.evidence.bundle import CONFIG, REFS, REGISTRY
from canonlib.evidence.log import parse_checkpoint
from canonlib.evidence.manifest import (
    ENVELOPE,
    EVIDENCE_FORMAT,
    LOG_PROOF,
    MANIFEST,
    canonical_json,
    hash_tree,
)
from canonlib.evidence.records import RECORD_MIME, RECORDS, record_output
from canonlib.evidence.suites import SUITES
from canonlib.evidence.verify import not_evidence, verify
from canonlib.state.registry import Registry
from tests.demo_evidence import copy_evidence, copy_state, demo_evidence
from tests.gitrepo import git

pytestmark = pytest.mark.slow  # the first session of a code version builds the demo (~2 min)

NOTEBOOKS = SUITES["all"]


@pytest.fixture(scope="session")
def demo():
    return demo_evidence()


@pytest.fixture
def ev(demo, tmp_path) -> Path:
    """A cold copy of the demo's evidence dir: the thing a reviewer is handed."""
    return copy_evidence(demo, tmp_path)


# counted from the demo's design (rows per sweep, recipes it promotes), not by hand: a recipe
# added to the demo leaves these tests as they are
ROWS = len(EXPECTED["week 3"])
CANONICALS = len(
    {r for w in ("week 1", "week 2", "week 3") for r, lb in EXPECTED[w].items() if "PASS" in lb}
)


def line(c) -> str:
    # `canon verify --json` prints ok as it is: a reviewer's tool reads true/false, never null
    assert isinstance(c.ok, bool), c
    return f"{'ok' if c.ok else 'FAIL'} {c.name}: {c.detail}"


def lines(claims) -> list[str]:
    return [line(c) for c in claims]


def failed(claims) -> list[str]:
    return [line(c) for c in claims if not c.ok]


def by_name(claims) -> dict[str, str]:
    return {c.name: line(c) for c in claims}


def manifest(d: Path) -> dict:
    return json.loads((d / MANIFEST).read_text())


def write_manifest(d: Path, m: dict) -> None:
    (d / MANIFEST).write_bytes(canonical_json(m))


def edit_manifest(d: Path, edit) -> None:
    m = manifest(d)
    edit(m)
    write_manifest(d, m)


def rehash(d: Path) -> None:
    """What a forger does after editing a file: recompute the manifest's file list."""
    edit_manifest(d, lambda m: m["predicate"]["canon"].__setitem__("files", hash_tree(d)))


def edit_records(d: Path, nb: str, key: str, edit) -> None:
    """Change what notebook ``nb`` recorded as ``key`` to ``edit(old value)`` everywhere it is
    kept -- the notebook's output re-rendered from it, records.json, the manifest -- then
    rehash: a careful forger, so only a re-derivation from the bundle can notice."""
    old = copy.deepcopy(records(d, nb).get(key))
    new = edit(copy.deepcopy(old))
    doc = nbformat.read(d / f"{nb}.ipynb", as_version=4)
    outputs = [
        o for c in doc.cells for o in c.get("outputs", []) if RECORD_MIME in o.get("data", {})
    ]
    mine = [o for o in outputs if key in o["data"][RECORD_MIME]]
    for o in mine:
        columns = (o.get("metadata", {}).get(RECORD_MIME) or {}).get("columns")
        o["data"], _ = record_output(key, new, columns)
    if not mine:  # a value the notebook never recorded: a new output after the last one
        data, meta = record_output(key, new)
        last = [c for c in doc.cells if c.cell_type == "code"][-1]
        last.outputs.append(nbformat.v4.new_output("display_data", data=data, metadata=meta))
    nbformat.write(doc, d / f"{nb}.ipynb")
    recs = json.loads((d / RECORDS).read_text())
    recs[nb][key] = new
    (d / RECORDS).write_text(json.dumps(recs))

    def in_manifest(m):
        for n in m["predicate"]["canon"]["notebooks"]:
            if n["name"] == nb:
                n["records"][key] = new

    edit_manifest(d, in_manifest)
    rehash(d)


def changed(fn):
    """An edit that changes a value in place and hands it back."""

    def edit(value):
        fn(value)
        return value

    return edit


def records(d: Path, nb: str) -> dict:
    return json.loads((d / RECORDS).read_text())[nb]


def sql(db: Path, statement: str, *args) -> None:
    with sqlite3.connect(db) as con:
        con.execute(statement, args)
    con.close()


def sweep_runs(d: Path) -> list[str]:
    return manifest(d)["predicate"]["canon"]["sweep_runs"]


# -- an untouched dir ---------------------------------------------------------------------------


def test_untouched_demo_evidence_verifies_claim_by_claim(demo, ev):
    assert demo.rc == 0, "\n".join(demo.lines)
    claims = verify(ev)
    assert failed(claims) == []
    m = manifest(ev)
    pred = m["predicate"]["canon"]
    with Registry.open(ev / REGISTRY) as reg:
        chain = reg.verify_chain()
        canon = reg.canonicals()
        rows = {rid: reg.results(rid) for rid in pred["sweep_runs"]}
        history = reg.results(recipe="lasuite-docs")
    first, second = pred["sweep_runs"]
    proof = json.loads((ev / LOG_PROOF).read_text())
    got = lines(claims)
    head = [
        f"ok manifest: run {pred['run_id']} suite all",
        "ok signature: unsigned (no manifest.dsse.json)",
        f"ok log entry is this run: run {pred['run_id']}, this manifest and chain",
        f"ok log inclusion proof: entry {proof['index']} of canon.invalid/evidence-log "
        f"({parse_checkpoint(proof['checkpoint']).short()})",
        f"ok file hashes: {len(pred['files'])} files match the manifest",
        f"ok suite all complete: {', '.join(NOTEBOOKS)}; nothing undeclared",
        f"ok report summary.md: rendered from the recorded values (format {EVIDENCE_FORMAT})",
        f"ok report index.html: rendered from the recorded values (format {EVIDENCE_FORMAT})",
    ]
    for nb in NOTEBOOKS:
        head += [
            f"ok notebook {nb}.ipynb: executed to completion",
            f"ok notebook {nb}: shows what it recorded: "
            "every recorded value is shown as rendered from it",
            f"ok notebook {nb}: records.json and manifest say what it recorded: same",
        ]
    head += [
        f"ok promotion chain intact (bundled registry): {chain.length} rows",
        f"ok recorded chain head is the bundled registry's: head {chain.head[:16]}",
        f"ok canonicals claimed are the bundled registry's: {len(canon)} canonicals",
        f"ok subjects are the canonicals: {len(canon)} subjects",
        "ok result rows claimed are the bundled registry's: "
        f"{sum(map(len, rows.values()))} rows of 2 sweep runs",
    ]
    host = pred["host_access"]  # format 3: each canonical's and deployed or held row's asks
    asked = [(e["recipe"], a) for e in host for a in e["asked"] or []]
    assert ("swarm-cronjob", "bind:/var/run/docker.sock") in {(r, a["item"]) for r, a in asked}
    head.append(
        f"ok host access recorded is the bundled registry's: {len(host)} canonicals and rows, "
        f"{len(asked)} items asked, {sum(bool(a['accepted']) for _, a in asked)} accepted, "
        f"{sum(e['role'] == 'held' for e in host)} held"
    )
    assert got[: len(head)] == head
    labels = [
        f"ok label of run {rid} recipe {r.recipe}: {r.label}; promotion history: "
        + ("promoted" if r.label == "PASS (promoted)" else "not promoted")
        for rid in (first, second)
        for r in rows[rid]
    ]
    assert got[len(head) : len(head) + len(labels)] == labels
    shown = got[len(head) + len(labels) :]
    assert shown[:3] == [
        f"ok sweep: rows shown for run {first}: {len(rows[first])} rows equal the bundled registry",
        f"ok sweep: canonicals before and after run {first}: {len(rows[first])} recipes",
        f"ok determinism: rows shown for run {second}: "
        f"{len(rows[second])} rows equal the bundled registry",
    ]
    assert (
        f"ok determinism: no promotion written for a settled recipe: holds: promotions in run "
        f"{second}: none (re-derived)" in shown
    )
    assert "ok samever: the three scratch sweeps shown: 3 rows" in shown
    assert (
        "ok tagged_promote: green-but-untagged did not promote: holds: gate: untagged: "
        "tested commit is not the tag's commit; promotions in that phase: 0 (re-derived)" in shown
    )
    assert (
        "ok disk_budget: budget shown is the configured one: "
        "shown 500,000,000, bundled config 500000000" in shown
    )
    assert (
        "ok investigate: history shown for lasuite-docs: "
        f"{len(history)} rows equal the bundled registry" in shown
    )
    assert "ok investigate: rungs shown for lasuite-docs: 0 runs" in shown
    for nb in NOTEBOOKS:  # every record is one the dir's format declares
        assert any(
            c.startswith(f"ok {nb}: records as format {EVIDENCE_FORMAT} declares") for c in shown
        )
    refs = json.loads((ev / REFS).read_text())
    tags = [
        f"ok canonical {c.recipe}: commit == tag: "
        f"{c.tag} is {refs[c.recipe]['tags'][c.tag][:12]} in the "
        f"bundled refs; claimed {c.commit[:12]}; in the bundled promotion history"
        for c in canon
    ]
    assert shown[-len(tags) - 1 : -1] == tags
    assert shown[-1].startswith(
        "ok verdict re-derived: FAILED: lasuite-docs ERROR (sync: lasuite-docs:"
    )
    assert shown[-1] == "ok verdict re-derived: FAILED: " + "; ".join(
        f"{r['recipe']} {r['label']}" for r in pred["verdict"]["failing_rows"][:1]
    )


# -- the manifest -------------------------------------------------------------------------------


def test_manifest_missing(ev):
    (ev / MANIFEST).unlink()
    assert lines(verify(ev)) == [f"FAIL manifest: {ev / MANIFEST}: missing"]


def test_manifest_not_json(ev):
    (ev / MANIFEST).write_text("{not json")
    [claim] = lines(verify(ev))
    assert claim.startswith(f"FAIL manifest: {ev / MANIFEST}: not JSON (Expecting property name")


def _drop(path):
    def edit(m):
        *parents, last = path
        for p in parents:
            m = m[p]
        del m[last]

    return edit


def _set(path, value):
    def edit(m):
        *parents, last = path
        for p in parents:
            m = m[p]
        m[last] = value

    return edit


@pytest.mark.parametrize(
    "edit, why",
    [
        (
            _set(["_type"], "https://in-toto.io/Statement/v0.1"),
            "_type is not https://in-toto.io/Statement/v1",
        ),
        (_drop(["_type"]), "_type is not https://in-toto.io/Statement/v1"),
        (_set(["subject"], []), "no subject"),
        (_set(["subject"], {"name": "x"}), "no subject"),
        (
            _set(["predicate"], []),
            "no canon-evidence/v1 predicate; no file list; no notebook list; no suite",
        ),
        (
            _set(["predicate", "canon"], "canon"),
            "no canon-evidence/v1 predicate; no file list; no notebook list; no suite",
        ),
        (
            _set(["predicate", "canon", "type"], "canon-evidence/v0"),
            "no canon-evidence/v1 predicate",
        ),
        (_set(["predicate", "canon", "files"], ["sweep.ipynb"]), "no file list"),
        (_set(["predicate", "canon", "notebooks"], {"sweep": {}}), "no notebook list"),
        (_set(["predicate", "canon", "suite"], ["all"]), "no suite"),
        (_set(["subject"], None), "no subject"),
    ],
)
def test_manifest_of_the_wrong_shape_names_every_missing_part(ev, edit, why):
    edit_manifest(ev, edit)
    assert lines(verify(ev)) == [
        f"FAIL manifest: {ev / MANIFEST}: not a canon evidence manifest ({why})"
    ]


def test_a_list_is_not_a_manifest(ev):
    (ev / MANIFEST).write_text("[]")
    assert lines(verify(ev)) == [
        f"FAIL manifest: {ev / MANIFEST}: not a canon evidence manifest (_type is not "
        "https://in-toto.io/Statement/v1; no subject; no canon-evidence/v1 predicate; "
        "no file list; "
        "no notebook list; no suite)"
    ]


# -- the signature ------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path):
    return signing.init_keys(tmp_path / "keys")


def sign(ev: Path, private: Path) -> None:
    envelope = signing.sign((ev / MANIFEST).read_bytes(), signing.load_private(private))
    signing.write_envelope(ev / ENVELOPE, envelope)


def signature(claims) -> list[str]:
    return [line(c) for c in claims if c.name == "signature"]


def test_unsigned_dir_with_a_key_or_a_required_signature_fails(ev, keys):
    assert signature(verify(ev, require_signature=True)) == [
        "FAIL signature: unsigned (no manifest.dsse.json): a signature is required"
    ]
    assert signature(verify(ev, key=keys.public)) == [
        "FAIL signature: unsigned (no manifest.dsse.json): a signature is required"
    ]


def test_signed_dir_without_a_key(ev, keys):
    sign(ev, keys.private)
    assert signature(verify(ev)) == [
        "ok signature: signed, not checked (pass --key PUBFILE to check it)"
    ]
    assert signature(verify(ev, require_signature=True)) == [
        "FAIL signature: signed, not checked: --require-signature needs --key PUBFILE"
    ]


def test_signed_dir_checked_with_its_key_and_with_another(ev, keys, tmp_path):
    sign(ev, keys.private)
    kid = signing.keyid(signing.load_public(keys.public))[:16]
    assert signature(verify(ev, key=keys.public, require_signature=True)) == [
        f"ok signature: ed25519 key {kid} signed this manifest (DSSE)"
    ]
    other = signing.init_keys(tmp_path / "other")
    [bad] = signature(verify(ev, key=other.public))
    assert bad.startswith("FAIL signature: no signature verifies with key")
    edit_manifest(
        ev, _set(["predicate", "result"], "PASSED")
    )  # signed bytes no longer the manifest's
    [bad] = signature(verify(ev, key=keys.public))
    assert bad.startswith("FAIL signature: ") and "not this manifest.json" in bad


def test_unreadable_envelope(ev, keys):
    (ev / ENVELOPE).write_text("{torn")
    [bad] = signature(verify(ev, key=keys.public))
    assert bad.startswith(f"FAIL signature: {ev / ENVELOPE}: unreadable (Expecting property name")


def test_key_file_that_is_not_a_key_is_a_failed_claim(ev, keys, tmp_path):
    sign(ev, keys.private)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    [bad] = signature(verify(ev, key=junk))
    assert bad.startswith("FAIL signature: cannot be checked: ")


# -- the files and the suite --------------------------------------------------------------------


def test_deleted_edited_and_extra_files_are_each_named(ev):
    (ev / "summary.md").unlink()
    (ev / "sweep.html").write_text("<p>all green</p>")
    (ev / "notes.txt").write_text("trust me\n")
    got = [s for s in failed(verify(ev)) if s.startswith("FAIL file ")]
    assert got == [
        f"FAIL file summary.md: {ev / 'summary.md'}: deleted",
        f"FAIL file sweep.html: {ev / 'sweep.html'}: sha256 differs from the manifest (edited)",
        f"FAIL file notes.txt: {ev / 'notes.txt'}: extra file, not in the manifest",
    ]
    assert (
        "FAIL suite all: file notes.txt: " + f"{ev / 'notes.txt'}: a file no suite writes"
        in failed(verify(ev))
    )


def test_suite_canon_does_not_declare(ev):
    edit_manifest(ev, _set(["predicate", "canon", "suite"], "nightly"))
    got = by_name(verify(ev))
    assert got["suite complete"] == (
        "FAIL suite complete: suite 'nightly' is not one canon declares "
        "(weekly, proofs, all, investigate, verify)"
    )
    # the notebooks the manifest lists are still each checked
    for nb in NOTEBOOKS:
        assert got[f"notebook {nb}.ipynb"] == f"ok notebook {nb}.ipynb: executed to completion"


def test_notebook_dropped_from_the_manifest_and_the_dir(ev):
    (ev / "samever.ipynb").unlink()

    def drop(m):
        nbs = m["predicate"]["canon"]["notebooks"]
        nbs[:] = [n for n in nbs if n["name"] != "samever"]

    edit_manifest(ev, drop)
    rehash(ev)
    bad = failed(verify(ev))
    assert (
        "FAIL suite all: notebook samever: samever.ipynb is missing from the dir or the manifest"
        in bad
    )
    assert not any(s.startswith("FAIL suite all: file samever.ipynb") for s in bad)


def test_notebook_only_left_out_of_the_manifest_list(ev):
    def drop(m):
        nbs = m["predicate"]["canon"]["notebooks"]
        nbs[:] = [n for n in nbs if n["name"] != "investigate"]

    edit_manifest(ev, drop)
    bad = [s for s in failed(verify(ev)) if s.startswith("FAIL suite")]
    assert bad == [
        "FAIL suite all: notebook investigate: "
        "investigate.ipynb is missing from the dir or the manifest"
    ]


def test_required_bundle_file_missing(ev):
    (ev / CONFIG).unlink()
    rehash(ev)
    claims = verify(ev)
    assert [s for s in failed(claims) if s.startswith("FAIL suite")] == [
        f"FAIL suite all: file bundle/config.json: {ev / CONFIG}: a required file is missing"
    ]
    assert failed(claims)[-1].startswith(
        f"FAIL bundle: {ev / 'bundle'}: refs or config unreadable ([Errno 2] No such file"
    )


def test_manifest_lists_a_notebook_the_suite_does_not_declare(ev):
    edit_manifest(
        ev, lambda m: m["predicate"]["canon"]["notebooks"].append({"name": "extra", "records": {}})
    )
    assert [s for s in failed(verify(ev)) if s.startswith("FAIL suite")] == [
        "FAIL suite all: notebook extra: the manifest lists a notebook the suite does not declare"
    ]


def test_extra_notebook_in_the_dir(ev):
    shutil.copy(ev / "sweep.ipynb", ev / "sweep2.ipynb")
    rehash(ev)
    assert [s for s in failed(verify(ev)) if s.startswith("FAIL suite")] == [
        f"FAIL suite all: file sweep2.ipynb: {ev / 'sweep2.ipynb'}: "
        "a notebook the suite does not declare"
    ]


# -- what each notebook recorded ----------------------------------------------------------------


def test_records_json_and_manifest_each_named_when_they_differ(ev):
    name = "notebook disk_budget: records.json and manifest say what it recorded"
    recs = json.loads((ev / RECORDS).read_text())
    recs["disk_budget"]["complete"] = False
    (ev / RECORDS).write_text(json.dumps(recs))
    rehash(ev)
    assert by_name(verify(ev))[name] == f"FAIL {name}: differs in records.json"
    edit_manifest(ev, lambda m: m["predicate"]["canon"]["notebooks"][4]["records"].clear())
    assert by_name(verify(ev))[name] == f"FAIL {name}: differs in records.json and the manifest"
    recs["disk_budget"]["complete"] = True
    (ev / RECORDS).write_text(json.dumps(recs))
    rehash(ev)
    assert by_name(verify(ev))[name] == f"FAIL {name}: differs in the manifest"


def test_records_json_unreadable(ev):
    (ev / RECORDS).write_text("{torn")
    rehash(ev)
    bad = failed(verify(ev))
    for nb in NOTEBOOKS:
        assert (
            f"FAIL notebook {nb}: records.json and manifest say what it recorded: "
            "differs in records.json" in bad
        )


def test_unreadable_notebook(ev):
    (ev / "investigate.ipynb").write_text("{torn")
    rehash(ev)
    got = by_name(verify(ev))
    assert got["notebook investigate.ipynb"].startswith(
        "FAIL notebook investigate.ipynb: unreadable: "
    )
    assert "notebook investigate: shows what it recorded" not in got
    assert got["verdict re-derived"].startswith(
        "ok verdict re-derived: FAILED: notebook investigate failed; lasuite-docs ERROR (sync: "
    )


def test_last_cell_never_ran(ev):
    nb = nbformat.read(ev / "determinism.ipynb", as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    last.execution_count = None
    last.outputs = []
    nbformat.write(nb, ev / "determinism.ipynb")
    rehash(ev)
    got = by_name(verify(ev))["notebook determinism.ipynb"]
    assert got.startswith("FAIL notebook determinism.ipynb: ") and "never ran" in got
    assert "completion marker" in got  # (was also test_evidence's tamper case: one test now)


# -- what the notebooks show, re-derived from the bundled registry --------------------------------


def _label(recipe, label):
    def edit(rows):
        for r in rows:
            if r["recipe"] == recipe:
                r["label"] = label
        return rows

    return edit


def test_sweep_row_with_an_edited_label(ev):
    first = sweep_runs(ev)[0]
    edit_records(ev, "sweep", "sweep_rows", _label("gitea", "PASS (promoted)"))
    name = f"sweep: rows shown for run {first}"
    assert by_name(verify(ev))[name] == (
        f"FAIL {name}: recipe gitea: notebook says label 'PASS (promoted)', "
        "bundled registry says 'SKIP (held)'"
    )


def test_sweep_row_left_out_and_row_made_up(ev):
    first = sweep_runs(ev)[0]
    name = f"sweep: rows shown for run {first}"
    edit_records(ev, "sweep", "sweep_rows", lambda rows: rows[1:])
    assert by_name(verify(ev))[name] == (
        f"FAIL {name}: recipe bluesky-pds: in the bundled registry, not shown"
    )
    edit_records(ev, "sweep", "sweep_rows", lambda rows: [*rows, {**rows[0], "recipe": "ghost"}])
    assert (
        by_name(verify(ev))[name]
        == f"FAIL {name}: recipe ghost: shown, not in the bundled registry"
    )


def test_sweep_rows_not_recorded(ev):
    first = sweep_runs(ev)[0]
    name = f"sweep: rows shown for run {first}"
    edit_records(ev, "sweep", "sweep_rows", lambda rows: {"rows": rows})
    assert by_name(verify(ev))[name] == f"FAIL {name}: no recorded rows"
    edit_records(ev, "sweep", "sweep_rows", lambda rows: ["gitea"])
    assert by_name(verify(ev))[name] == f"FAIL {name}: no recorded rows"


def test_sweep_rows_in_another_order(ev):
    first = sweep_runs(ev)[0]
    name = f"sweep: rows shown for run {first}"
    edit_records(ev, "sweep", "sweep_rows", lambda rows: rows[::-1])
    # the same rows, but not as the notebook shows them (sorted by recipe): it is not what ran
    assert by_name(verify(ev))[name] == f"FAIL {name}: same"


def test_canonicals_before_and_after_edited(ev):
    first = sweep_runs(ev)[0]

    def edit(rows):
        rows[0]["changed"] = not rows[0]["changed"]
        return rows

    edit_records(ev, "sweep", "canonicals_before_after", edit)
    name = f"sweep: canonicals before and after run {first}"
    assert by_name(verify(ev))[name] == f"FAIL {name}: differ from the bundled registry"


def test_determinism_rows_and_claims(ev):
    second = sweep_runs(ev)[1]
    edit_records(ev, "determinism", "determinism_rows", _label("keycloak", "PASS (promoted)"))
    got = by_name(verify(ev))
    name = f"determinism: rows shown for run {second}"
    assert got[name] == (
        f"FAIL {name}: recipe keycloak: notebook says label 'PASS (promoted)', "
        "bundled registry says 'SKIP (no-new-version)'"
    )


def _claim(name, **change):
    def edit(claims):
        for c in claims:
            if c["name"] == name:
                c.update(change)
        return claims

    return edit


def test_recorded_claim_that_re_derives_otherwise(ev):
    edit_records(
        ev, "disk_budget", "claims", _claim("disk within budget", detail="1 of 500,000,000 bytes")
    )
    got = by_name(verify(ev))["disk_budget: disk within budget"]
    assert got.startswith(
        "FAIL disk_budget: disk within budget: notebook says holds: 1 of 500,000,000 bytes; "
        "re-derived holds: "
    )
    edit_records(ev, "disk_budget", "claims", _claim("disk within budget", ok=False))
    got = by_name(verify(ev))["disk_budget: disk within budget"]
    assert got.startswith(
        "FAIL disk_budget: disk within budget: notebook says fails: 1 of 500,000,000 bytes; "
        "re-derived holds: "
    )


def test_recorded_claim_that_does_not_hold_is_shown_as_such(ev):
    """A notebook that recorded a failing claim, re-derived the same: verify agrees it fails."""
    d = manifest(ev)["predicate"]["canon"]
    disk = next(n for n in d["notebooks"] if n["name"] == "disk_budget")["records"]["disk"]

    def over(value):
        value["budget_bytes"] = 1
        return value

    cfg = json.loads((ev / CONFIG).read_text())
    cfg["disk_budget_bytes"] = 1
    (ev / CONFIG).write_text(json.dumps(cfg))
    edit_records(ev, "disk_budget", "disk", over)
    edit_records(
        ev,
        "disk_budget",
        "claims",
        _claim("disk within budget", ok=False, detail=f"{disk['total_bytes']:,} of 1 bytes"),
    )
    got = by_name(verify(ev))
    assert got["disk_budget: disk within budget"] == (
        "ok disk_budget: disk within budget: "
        f"DOES NOT HOLD: {disk['total_bytes']:,} of 1 bytes (re-derived)"
    )
    assert got["disk_budget: budget shown is the configured one"] == (
        "ok disk_budget: budget shown is the configured one: shown 1, bundled config 1"
    )


def test_claim_left_out_and_claim_made_up(ev):
    def edit(claims):
        kept = [c for c in claims if c["name"] != "disk figures add up"]
        return [*kept, {"name": "disk is fast", "ok": True, "detail": "trust me"}]

    edit_records(ev, "disk_budget", "claims", edit)
    got = by_name(verify(ev))
    assert got["disk_budget: disk figures add up"] == (
        "FAIL disk_budget: disk figures add up: re-derived but not recorded by the notebook"
    )
    assert got["disk_budget: disk is fast"] == (
        "FAIL disk_budget: disk is fast: recorded by the notebook, not re-derivable"
    )


def test_claims_not_a_list(ev):
    edit_records(ev, "samever", "claims", lambda claims: {"x": 1})
    bad = [s for s in failed(verify(ev)) if s.startswith("FAIL samever: ")]
    declared = f"FAIL samever: records as format {EVIDENCE_FORMAT} declares them: "
    assert bad.pop() == declared + "record 'claims' holds an object, not a list"
    assert bad and all(s.endswith("re-derived but not recorded by the notebook") for s in bad)
    assert len(bad) == 5


def test_budget_shown_is_not_the_configured_one(ev):
    cfg = json.loads((ev / CONFIG).read_text())
    cfg["disk_budget_bytes"] = 400_000_000
    (ev / CONFIG).write_text(json.dumps(cfg))
    rehash(ev)
    assert by_name(verify(ev))["disk_budget: budget shown is the configured one"] == (
        "FAIL disk_budget: budget shown is the configured one: "
        "shown 500,000,000, bundled config 400000000"
    )


def test_investigated_history_and_rungs(ev):
    name = "investigate: history shown for lasuite-docs"
    first = records(ev, "investigate")["investigate_rows"][0]
    edit_records(
        ev,
        "investigate",
        "investigate_rows",
        changed(lambda rows: rows[0].__setitem__("label", "PASS (promoted)")),
    )
    run = first["run_id"]
    assert by_name(verify(ev))[name] == (
        f"FAIL {name}: run_id {run}: notebook says label 'PASS (promoted)', "
        f"bundled registry says {first['label']!r}"
    )
    rungs = "investigate: rungs shown for lasuite-docs"
    edit_records(ev, "investigate", "investigate_rungs", lambda _: [{"run_id": run, "L1": "pass"}])
    assert by_name(verify(ev))[rungs] == f"FAIL {rungs}: differ from the bundled registry"


def test_history_is_compared_in_run_order_whatever_the_start_times_say(ev):
    """The notebook shows a recipe's history by run id; two runs whose start times disagree with
    their ids (a clock step, runs within one second) still verify, in the notebook's order."""
    runs = [r["run_id"] for r in records(ev, "investigate")["investigate_rows"]]
    assert runs == sorted(runs) and len(runs) >= 2
    sql(
        ev / REGISTRY,
        "UPDATE runs SET started_at = '2000-01-01T00:00:00.000000Z' WHERE run_id = ?",
        runs[-1],
    )
    rehash(ev)
    name = "investigate: history shown for lasuite-docs"
    assert by_name(verify(ev))[name] == f"ok {name}: {len(runs)} rows equal the bundled registry"


def test_scratch_sweeps_of_samever_edited(ev):
    edit_records(
        ev,
        "samever",
        "samever_rows",
        changed(lambda rows: rows[0].__setitem__("label", "SKIP (held)")),
    )
    got = by_name(verify(ev))
    assert got["samever: the three scratch sweeps shown"] == (
        "FAIL samever: the three scratch sweeps shown: differ from the scratch registry"
    )


def test_samever_proof_reads_only_its_own_recipe(ev):
    """Another recipe's rows and promotion in the proof's scratch registry (a second recipe in
    the same scratch sweeps) change none of what the proof says about its recipe."""
    f = records(ev, "samever")["samever"]
    db = ev / f["scratch_db"]
    third = f["runs"][2]
    sql(
        db,
        "INSERT INTO results (run_id, recipe, decision, label, upgrade_base_kind) "
        "VALUES (?, 'zzz', 'skip:held', 'SKIP (held)', 'skip')",
        third,
    )
    with Registry.open(db) as reg:
        reg.record_promotion("zzz", "9.0.0", "9.0.0", "9" * 40)
    rehash(ev)
    bad = [s for s in failed(verify(ev)) if s.startswith("FAIL samever: ")]
    # only the count of all rows checked for step-back moved (it reads every recipe's rows)
    assert len(bad) == 1 and bad[0].startswith("FAIL samever: no run ever had base kind step-back")


def test_scratch_registry_outside_the_dir(ev):
    edit_records(
        ev,
        "samever",
        "samever",
        changed(lambda f: f.__setitem__("scratch_db", "../../elsewhere.db")),
    )
    assert by_name(verify(ev))["what the notebooks show"] == (
        "FAIL what the notebooks show: cannot be checked: ValueError: scratch registry "
        "'../../elsewhere.db' is outside the evidence dir"
    )


def test_tagged_promote_scratch_registry_tampered(ev):
    sql(ev / "scratch" / "tagged_promote.db", "DELETE FROM promotions")
    sql(ev / "scratch" / "tagged_promote.db", "DELETE FROM canonicals")
    rehash(ev)
    got = by_name(verify(ev))
    name = "tagged_promote: the same commit, once tagged, promoted"
    assert got[name].startswith(f"FAIL {name}: notebook says holds: canonical now ")
    assert got[name].endswith("re-derived fails: canonical now None @ None")


def test_a_verify_record_points_at_its_target(ev):
    edit_records(ev, "investigate", "verify_ok", lambda _: True)
    edit_records(ev, "investigate", "verified", lambda _: "/srv/evidence/last-week")
    assert by_name(verify(ev))["investigate: verified /srv/evidence/last-week"] == (
        "ok investigate: verified /srv/evidence/last-week: its target is not in this dir: "
        "re-check it with `canon verify TARGET`"
    )


# -- the bundled registry and the labels ----------------------------------------------------------


def test_promotion_row_edited_in_the_bundled_registry(ev):
    with Registry.open(ev / REGISTRY) as reg:
        p = reg.history()[2]
    sql(ev / REGISTRY, "UPDATE promotions SET version = '9.9.9' WHERE id = ?", p.id)
    rehash(ev)
    got = by_name(verify(ev))
    assert got["promotion chain intact (bundled registry)"] == (
        "FAIL promotion chain intact (bundled registry): "
        f"promotions row {p.id} ({p.recipe} 9.9.9): "
        "hash mismatch, row was edited"
    )


def test_manifest_claims_other_canonicals_subjects_and_rows(ev):
    def edit(m):
        canon = m["predicate"]["canon"]
        canon["canonicals"][0]["version"] = "9.9.9"
        m["subject"][0]["digest"]["gitCommit"] = "0" * 40
        canon["results"][0]["label"] = "PASS (promoted)"

    edit_manifest(ev, edit)
    got = by_name(verify(ev))
    n = len(manifest(ev)["subject"])
    rows = len(manifest(ev)["predicate"]["canon"]["results"])
    assert got["canonicals claimed are the bundled registry's"] == (
        f"FAIL canonicals claimed are the bundled registry's: {n} canonicals"
    )
    assert got["subjects are the canonicals"] == f"FAIL subjects are the canonicals: {n} subjects"
    assert got["result rows claimed are the bundled registry's"] == (
        f"FAIL result rows claimed are the bundled registry's: {rows} rows of 2 sweep runs"
    )


def test_manifest_claims_another_sweep_run(ev):
    edit_manifest(ev, lambda m: m["predicate"]["canon"]["sweep_runs"].pop())
    got = by_name(verify(ev))
    rows = len(manifest(ev)["predicate"]["canon"]["results"]) // 2
    assert got["result rows claimed are the bundled registry's"] == (
        f"FAIL result rows claimed are the bundled registry's: {rows} rows of 1 sweep runs"
    )


def test_results_file_line_that_does_not_parse(ev):
    f = ev / "results" / f"{sweep_runs(ev)[0]}.jsonl"
    f.write_text(f.read_text() + "{torn\n\n")
    rehash(ev)
    name = f"label of run {f.stem} recipe ?"
    assert by_name(verify(ev))[name] == f"FAIL {name}: no such row in the registry"


def test_results_file_label_edited_and_rows_counted_once(ev):
    f = ev / "results" / f"{sweep_runs(ev)[0]}.jsonl"
    text = f.read_text()
    f.write_text(text.replace("SKIP (held)", "PASS (promoted)", 1) + text)
    rehash(ev)
    claims = verify(ev)
    name = f"label of run {f.stem} recipe gitea"
    assert [line(c) for c in claims if c.name == name] == [
        f"ok {name}: SKIP (held); promotion history: not promoted",
        f"FAIL {name}: evidence says 'PASS (promoted)', registry says 'SKIP (held)'",
    ]
    assert len([c for c in claims if c.name.startswith(f"label of run {f.stem}")]) == ROWS + 1


def test_commit_is_tag_when_the_bundled_refs_moved(ev):
    refs = json.loads((ev / REFS).read_text())
    m = manifest(ev)
    s = next(s for s in m["subject"] if s["name"] == "traefik")
    tag, commit = s["annotations"]["gitTag"], s["digest"]["gitCommit"]
    refs["traefik"]["tags"][tag] = "1" * 40
    (ev / REFS).write_text(json.dumps(refs))
    rehash(ev)
    assert by_name(verify(ev))["canonical traefik: commit == tag"] == (
        f"FAIL canonical traefik: commit == tag: {tag} is 111111111111 in the bundled refs; "
        f"claimed {commit[:12]}; in the bundled promotion history"
    )


def test_commit_is_tag_when_the_history_never_promoted_it(ev):
    s = next(s for s in manifest(ev)["subject"] if s["name"] == "gitea")
    tag, commit = s["annotations"]["gitTag"], s["digest"]["gitCommit"]
    sql(ev / REGISTRY, "UPDATE promotions SET tag = 'other' WHERE recipe = 'gitea'")
    rehash(ev)
    assert by_name(verify(ev))["canonical gitea: commit == tag"] == (
        f"FAIL canonical gitea: commit == tag: {tag} is {commit[:12]} in the bundled refs; "
        f"claimed {commit[:12]}; NOT in the bundled promotion history"
    )


def test_subject_without_a_tag_is_not_a_canonical(ev):
    edit_manifest(ev, lambda m: m["subject"][0]["annotations"].pop("gitTag"))
    names = [c.name for c in verify(ev)]
    first = manifest(ev)["subject"][0]["name"]
    assert f"canonical {first}: commit == tag" not in names
    assert len([n for n in names if n.endswith(": commit == tag")]) == CANONICALS - 1


# -- the verdict ----------------------------------------------------------------------------------


def test_verdict_the_manifest_says_is_not_the_re_derived_one(ev):
    edit_manifest(ev, _set(["predicate", "result"], "PASSED"))
    got = by_name(verify(ev))["verdict re-derived"]
    assert got.startswith(
        "FAIL verdict re-derived: manifest says PASSED, re-derived FAILED: lasuite-docs ERROR"
    )
    edit_manifest(ev, _set(["predicate", "result"], "FAILED"))
    edit_manifest(ev, _set(["predicate", "canon", "verdict", "result"], "PASSED"))
    got = by_name(verify(ev))["verdict re-derived"]
    assert got.startswith(
        "FAIL verdict re-derived: manifest says FAILED, re-derived FAILED: lasuite-docs ERROR"
    )


def test_interrupted_run_is_failed(ev):
    edit_manifest(ev, _set(["predicate", "canon", "interrupted"], "SIGTERM"))  # as a run says it
    got = by_name(verify(ev))["verdict re-derived"]
    assert got.startswith(
        "ok verdict re-derived: FAILED: notebook (interrupted) failed; lasuite-docs ERROR"
    )


def test_notebook_claim_that_does_not_hold_fails_the_verdict(ev):
    edit_records(ev, "disk_budget", "claims", _claim("disk within budget", ok=False))
    got = by_name(verify(ev))["verdict re-derived"]
    assert got.startswith(
        "ok verdict re-derived: FAILED: notebook disk_budget failed; lasuite-docs ERROR (sync: "
    )


# -- the bundle itself ----------------------------------------------------------------------------


def test_bundled_registry_missing(ev):
    (ev / REGISTRY).unlink()
    rehash(ev)
    claims = verify(ev)
    assert lines(claims)[-1] == f"FAIL bundled registry: {ev / REGISTRY}: missing"
    assert "verdict re-derived" not in [c.name for c in claims]


def test_bundled_refs_unreadable(ev):
    (ev / REFS).write_text("{torn")
    rehash(ev)
    assert lines(verify(ev))[-1].startswith(
        f"FAIL bundle: {ev / 'bundle'}: refs or config unreadable (Expecting property name"
    )


def test_bundled_registry_not_sqlite(ev):
    (ev / REGISTRY).write_text("not a database")
    rehash(ev)
    last = lines(verify(ev))[-1]
    assert last.startswith(f"FAIL bundled registry: {ev / REGISTRY}: unreadable (RegistryError: ")


# -- a part of the dir not of its declared type: one line naming where, never a traceback ------


@pytest.mark.parametrize(
    "edit, where",
    [
        (
            _set(["predicate", "canon", "chain"], 5),
            "predicate.canon.chain holds a whole number, not an object",
        ),
        (
            _set(
                ["predicate", "canon", "results"], [{"run_id": ["x"], "recipe": "a", "label": "b"}]
            ),
            "predicate.canon.results[0].run_id holds a list, not text or null",
        ),
        (
            _set(["predicate", "canon", "verdict"], 5),
            "predicate.canon.verdict holds a whole number, not an object",
        ),
        (_set(["subject"], [5]), "subject[0] holds a whole number, not an object"),
        (
            _set(["predicate", "canon", "notebooks"], [{"name": "sweep", "records": 5}]),
            "predicate.canon.notebooks[0].records holds a whole number, not an object",
        ),
        (
            _set(["predicate", "canon", "interrupted"], True),
            "predicate.canon.interrupted holds true/false, not text or null",
        ),
        (_drop(["subject", 0, "digest"]), "subject[0].digest is missing"),
    ],
)
def test_a_manifest_part_not_of_its_declared_type_fails_naming_where(ev, edit, where):
    """A manifest (its shape canon's: a Statement, a canon predicate, files, notebooks, suite)
    whose part holds another type is tampered (exit 1, not "not evidence"): one line names
    where, the signature says whether it was signed, and nothing else is read from it."""
    run = manifest(ev)["predicate"]["canon"]["run_id"]
    edit_manifest(ev, edit)
    claims = verify(ev)
    assert lines(claims)[:2] == [
        f"ok manifest: run {run} suite all",
        f"FAIL manifest types: {ev / MANIFEST}: {where} (nothing else checked)",
    ]
    assert [c.name for c in claims] == ["manifest", "manifest types", "signature"]
    assert not not_evidence(claims)


@pytest.mark.parametrize(
    "edit, why",
    [
        (lambda _: 5, "record 'disk' holds a whole number, not an object"),
        (
            lambda disk: {**disk, "total_bytes": str(disk["total_bytes"])},
            "record 'disk': total_bytes holds text, not a whole number",
        ),
        (
            lambda disk: {**disk, "rows": [{**disk["rows"][0], "slot_bytes": None}]},
            "record 'disk': rows[0].slot_bytes holds null, not a whole number",
        ),
    ],
)
def test_a_record_not_of_its_declared_type_fails_naming_it_and_is_not_re_checked(ev, edit, why):
    """A record of another type (the notebook's output, records.json and the manifest edited
    alike, the hashes rewritten): the declared-records claim names it, where in it, and what
    reads it is not run on it (no traceback, no "cannot be checked")."""
    edit_records(ev, "disk_budget", "disk", edit)
    claims = verify(ev)
    got = by_name(claims)
    assert got["disk_budget: records as format 3 declares them"] == (
        f"FAIL disk_budget: records as format 3 declares them: {why}"
    )
    assert "disk_budget: budget shown is the configured one" not in got
    assert not [line(c) for c in claims if "cannot be checked" in c.detail]


def test_a_record_not_of_its_type_in_a_dir_whose_format_is_no_number_is_still_named(ev):
    """Format 0: no format's declarations to check the records against, so each record that
    does not hold the type this canon declares for it is named on its own line."""
    edit_records(ev, "disk_budget", "disk", lambda _: 5)
    edit_manifest(ev, _set(["predicate", "canon", "format"], 0))
    got = by_name(verify(ev))
    assert got["disk_budget: record 'disk'"] == (
        "FAIL disk_budget: record 'disk': holds a whole number, not an object; not re-checked"
    )
    assert "disk_budget: records as format 0 declares them" not in got


# -- against a live state dir ---------------------------------------------------------------------


def test_live_state_that_holds_the_run(demo, ev, tmp_path):
    state = copy_state(demo, tmp_path / "state")
    claims = verify(ev, state=state)
    assert failed(claims) == []
    with Registry.open(state / "canon.db") as live:
        n, canon = live.verify_chain().length, len(live.canonicals())
    got = lines(claims)
    first, second = sweep_runs(ev)
    assert got[-5:] == [
        f"ok live promotion chain intact: {n} rows",
        "ok live registry still holds the run's chain: "
        f"bundled chain of {n} rows is a prefix of the live one",
        f"ok live canonicals descend from the bundled ones: {canon} live canonicals",
        f"ok run {first}: bundled rows equal the live registry's: {ROWS} rows equal the bundled "
        "registry",
        f"ok run {second}: bundled rows equal the live registry's: {ROWS} rows equal the bundled "
        "registry",
    ]


def test_live_state_of_a_run_that_claims_no_sweep(demo, ev, tmp_path):
    """A dir whose manifest names no sweep runs (an investigate-only suite): the live registry
    is still checked for its chain and canonicals, and there are no rows to compare."""
    edit_manifest(ev, lambda m: m["predicate"]["canon"].pop("sweep_runs"))
    claims = verify(ev, state=copy_state(demo, tmp_path / "state"))
    live = [line(c) for c in claims if c.name.startswith(("live ", "run "))]
    assert [s.split(":")[0] for s in live] == [
        "ok live promotion chain intact",
        "ok live registry still holds the run's chain",
        "ok live canonicals descend from the bundled ones",
    ]


def test_no_live_registry(ev, tmp_path):
    assert by_name(verify(ev, state=tmp_path))["live registry"] == (
        f"FAIL live registry: {tmp_path / 'canon.db'}: no registry there"
    )


def test_live_registry_not_sqlite(ev, tmp_path):
    (tmp_path / "canon.db").write_text("not a database")
    got = by_name(verify(ev, state=tmp_path))["live registry"]
    assert got.startswith("FAIL live registry: cannot be checked: DatabaseError: ")


def test_live_registry_rolled_back(demo, ev, tmp_path):
    state = copy_state(demo, tmp_path / "state")
    db = state / "canon.db"
    with Registry.open(db) as live:
        last = live.history()[-1]
    sql(db, "DELETE FROM promotions WHERE id = ?", last.id)
    sql(db, "DELETE FROM canonicals WHERE recipe = ?", last.recipe)
    got = by_name(verify(ev, state=state))
    assert got["live registry still holds the run's chain"] == (
        f"FAIL live registry still holds the run's chain: promotions row {last.id} "
        f"({last.recipe} {last.version}) is missing in {db}: "
        "the registry was rolled back to an older copy or its history rewritten"
    )
    assert got["live canonicals descend from the bundled ones"] == (
        f"FAIL live canonicals descend from the bundled ones: lost: {last.recipe}"
    )


def test_live_registry_that_lost_canonicals_names_each(demo, ev, tmp_path):
    state = copy_state(demo, tmp_path / "state")
    sql(state / "canon.db", "DELETE FROM canonicals WHERE recipe IN ('gitea', 'traefik')")
    assert by_name(verify(ev, state=state))["live canonicals descend from the bundled ones"] == (
        "FAIL live canonicals descend from the bundled ones: lost: gitea, traefik"
    )


def test_live_history_rewritten(demo, ev, tmp_path):
    state = copy_state(demo, tmp_path / "state")
    db = state / "canon.db"
    with Registry.open(db) as live:
        p = live.history()[0]
    sql(db, "UPDATE promotions SET hash = ? WHERE id = ?", "0" * 64, p.id)
    got = by_name(verify(ev, state=state))
    assert got["live registry still holds the run's chain"].startswith(
        f"FAIL live registry still holds the run's chain: promotions row {p.id} "
        f"({p.recipe} {p.version}) is different in {db}: "
    )
    assert got["live promotion chain intact"].startswith(
        "FAIL live promotion chain intact: promotions row"
    )
    n = len(Registry.open(db).canonicals())
    assert got["live canonicals descend from the bundled ones"] == (
        f"FAIL live canonicals descend from the bundled ones: {n} live canonicals"
    )


def test_live_result_row_changed_after_the_run(demo, ev, tmp_path):
    state = copy_state(demo, tmp_path / "state")
    first = sweep_runs(ev)[0]
    sql(
        state / "canon.db",
        "UPDATE results SET label = 'SKIP (held)' WHERE run_id = ? AND recipe = 'bonfire'",
        first,
    )
    name = f"run {first}: bundled rows equal the live registry's"
    assert by_name(verify(ev, state=state))[name] == (
        f"FAIL {name}: recipe bonfire: notebook says label 'SKIP (no-new-version)', "
        "bundled registry says 'SKIP (held)'"
    )


# -- against upstream -----------------------------------------------------------------------------


def test_upstream_still_has_each_tag(ev):
    refs = json.loads((ev / REFS).read_text())
    claims = [c for c in verify(ev, upstream=True) if c.name.startswith("upstream ")]
    assert [line(c) for c in claims] == [
        f"ok upstream {s['name']}: tag {s['annotations']['gitTag']}: "
        f"{refs[s['name']]['upstream']} has "
        f"{s['annotations']['gitTag']} at {s['digest']['gitCommit'][:12]}; "
        f"claimed {s['digest']['gitCommit'][:12]}"
        for s in manifest(ev)["subject"]
    ]


def test_upstream_tag_moved(demo, ev, tmp_path):
    refs = json.loads((ev / REFS).read_text())
    s = next(s for s in manifest(ev)["subject"] if s["name"] == "gitea")
    tag, commit = s["annotations"]["gitTag"], s["digest"]["gitCommit"]
    up = tmp_path / "gitea-upstream"
    shutil.copytree(refs["gitea"]["upstream"], up)
    git("commit", "-q", "--allow-empty", "-m", "sneaky", cwd=up)
    git("tag", "-f", "-a", "-m", "moved", tag, cwd=up)
    moved = git("rev-parse", f"{tag}^{{}}", cwd=up).strip()
    refs["gitea"]["upstream"] = str(up)
    (ev / REFS).write_text(json.dumps(refs))
    rehash(ev)
    got = by_name(verify(ev, upstream=True))
    assert got[f"upstream gitea: tag {tag}"] == (
        f"FAIL upstream gitea: tag {tag}: {up} has {tag} at {moved[:12]}; claimed {commit[:12]} "
        "(tag moved or deleted upstream)"
    )
    git("tag", "-f", tag, commit, cwd=up)  # put back, as a lightweight tag: that is the same commit
    assert by_name(verify(ev, upstream=True))[f"upstream gitea: tag {tag}"] == (
        f"ok upstream gitea: tag {tag}: {up} has {tag} at {commit[:12]}; claimed {commit[:12]}"
    )
    git("tag", "-d", tag, cwd=up)
    got = by_name(verify(ev, upstream=True))
    assert got[f"upstream gitea: tag {tag}"] == (
        f"FAIL upstream gitea: tag {tag}: {up} has {tag} at None; claimed {commit[:12]} "
        "(tag moved or deleted upstream)"
    )


def test_upstream_unknown_or_gone(ev, tmp_path):
    refs = json.loads((ev / REFS).read_text())
    tags = {s["name"]: s["annotations"]["gitTag"] for s in manifest(ev)["subject"]}
    refs["gitea"]["upstream"] = ""
    refs["traefik"]["upstream"] = str(tmp_path / "gone")
    (ev / REFS).write_text(json.dumps(refs))
    rehash(ev)
    got = by_name(verify(ev, upstream=True))
    assert got[f"upstream gitea: tag {tags['gitea']}"] == (
        f"FAIL upstream gitea: tag {tags['gitea']}: no upstream URL in the bundle"
    )
    assert got[f"upstream traefik: tag {tags['traefik']}"].startswith(
        f"FAIL upstream traefik: tag {tags['traefik']}: cannot list {tmp_path / 'gone'}: "
    )


def test_a_bundled_refs_entry_not_of_its_declared_type_is_named_and_left_out(ev):
    refs = json.loads((ev / REFS).read_text())
    refs["gitea"] = 5
    refs["traefik"]["tags"] = ["x"]
    (ev / REFS).write_text(json.dumps(refs))
    rehash(ev)
    claims = verify(ev, upstream=True)
    bundle = [line(c) for c in claims if c.name == "bundle"]
    assert bundle == [
        f"FAIL bundle: {ev / REFS}: ['gitea'] holds a whole number, not an object",
        f"FAIL bundle: {ev / REFS}: ['traefik'].tags holds a list, not an object or null",
    ]
    got = by_name(claims)
    tag = {s["name"]: s["annotations"]["gitTag"] for s in manifest(ev)["subject"]}
    assert got[f"upstream gitea: tag {tag['gitea']}"] == (
        f"FAIL upstream gitea: tag {tag['gitea']}: no upstream URL in the bundle"
    )
    for recipe in ("gitea", "traefik"):
        assert got[f"canonical {recipe}: commit == tag"].startswith(
            f"FAIL canonical {recipe}: commit == tag: {tag[recipe]} is None in the bundled refs"
        )
    assert not [line(c) for c in claims if "cannot be checked" in c.detail]


def test_tag_that_is_not_a_ref_name_fails_its_own_claim_only(ev):
    def edit(m):
        for s in m["subject"]:
            if s["name"] == "gitea":
                s["annotations"]["gitTag"] = "--upload-pack=touch pwned"

    edit_manifest(ev, edit)
    claims = verify(ev, upstream=True)
    url = json.loads((ev / REFS).read_text())["gitea"]["upstream"]
    assert by_name(claims)["upstream gitea: tag --upload-pack=touch pwned"] == (
        f"FAIL upstream gitea: tag --upload-pack=touch pwned: cannot list {url}: invalid tag name "
        "'--upload-pack=touch pwned': starts with '-' (would read as an option)"
    )
    upstream = [c for c in claims if c.name.startswith("upstream ")]
    assert len(upstream) == CANONICALS and sum(c.ok for c in upstream) == CANONICALS - 1
