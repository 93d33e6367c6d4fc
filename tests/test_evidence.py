"""Evidence: the suite on the demo fleet (real papermill, real kernels), `canon verify` from cold,
and the tamper battery -- each tamper must make verify fail naming the claim, never a traceback."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import nbformat
import pytest

from canonlib.config import load_config
from canonlib.evidence import signing
from canonlib.evidence.bundle import REGISTRY, backup_registry
from canonlib.evidence.manifest import ENVELOPE, MANIFEST, canonical_json, hash_tree, subjects
from canonlib.evidence.records import RECORD_MIME, RECORDS
from canonlib.evidence.run import run_suite
from canonlib.evidence.verify import verify
from tests.cli import canon, canon_argv, canon_env
from tests.demo_evidence import demo_evidence
from tests.gitrepo import git
from tests.need import need

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def demo():
    """`canon demo`'s workspace, evidence dir and output: the one demo run of the session, shared
    with test_verify_claims (tests/demo_evidence.py, cached per code version).  Read-only: tests
    copy what they change."""
    d = demo_evidence()
    assert d.rc == 0, "\n".join(d.lines)
    return d.root, d.evidence, d.lines


def without_state(state: Path, argv: list) -> list[str]:
    """``argv`` in a private mount namespace where ``state`` is an empty tmpfs: the demo's state
    is gone for that process only (the shared demo stays whole for everyone else).  Exit 97 if
    the state can still be seen."""
    ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        ns[1:1] = ["--user", "--map-root-user"]
    script = (
        'mount -t tmpfs -o size=1m canon-no-state "$1" && [ -z "$(ls -A "$1")" ] || exit 97; '
        'shift; exec "$@"'
    )
    return [*ns, "sh", "-c", script, "sh", str(state), *map(str, argv)]


def canon_without_state(state: Path, *args, cwd=None) -> subprocess.CompletedProcess[str]:
    probe = subprocess.run(without_state(state, ["true"]), capture_output=True, text=True)
    need(f"no private mount namespace here: {probe.stderr.strip()}" if probe.returncode else None)
    r = subprocess.run(
        without_state(state, canon_argv(None, *args)),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=canon_env(),
    )
    assert r.returncode != 97, f"the state could not be hidden: {r.stderr}"
    return r


def copy_ws(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    toml = dst / "canon.toml"
    toml.write_text(toml.read_text().replace(str(src), str(dst)))
    return dst


@pytest.fixture(scope="session")
def weekly(demo, tmp_path_factory):
    """A copy of the demo workspace with a signing key and a new custom-html release, the registry
    as it was before (an older copy), then `canon evidence run weekly` through the CLI."""
    root, _, _ = demo
    ws = copy_ws(root, tmp_path_factory.mktemp("weekly") / "ws")
    toml = ws / "canon.toml"
    r = canon(ws, "keys", "init")
    assert r.returncode == 0 and "public key:" in r.stdout, r.stderr
    cfg = load_config(toml, env_overrides=False)
    assert (cfg.state_dir / "keys").is_dir() and oct(
        signing.key_paths(cfg.state_dir).private.stat().st_mode
    )[-3:] == "600"
    older = ws.parent / "older.db"
    backup_registry(cfg.db_path, older)
    up = ws / "upstream" / "custom-html"
    from canonlib.demo.fleet import recipe_files
    from canonlib.recipe.builder import UpstreamRepo

    repo = UpstreamRepo(up)  # re-initialising an existing repo keeps its history
    repo.commit(
        recipe_files("custom-html", "1.14.0+1.31.2"), "chore: publish 1.14.0+1.31.2 release"
    )
    repo.tag("1.14.0+1.31.2")
    r = canon(ws, "evidence", "run", "weekly")
    ev = Path(r.stdout.strip().splitlines()[-1])
    return ws, ev, cfg, older, r


def failed(claims):
    return [f"{c.name}: {c.detail}" for c in claims if not c.ok]


def rehash(d: Path) -> None:
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["files"] = hash_tree(d)
    (d / MANIFEST).write_bytes(canonical_json(m))


def cold_copy(ev: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "cold" / ev.name
    shutil.copytree(ev, dest)
    return dest


# -- the demo's evidence: FAILED, and it verifies from cold -------------------------------------


def test_demo_evidence_is_failed_and_verifies_from_cold_anywhere(demo, tmp_path):
    root, evidence, lines = demo
    assert "every label came out as designed; `make demo` again starts afresh" in lines
    assert any(
        line.startswith("evidence all: FAILED: lasuite-docs ERROR (sync:") for line in lines
    ), lines
    m = json.loads((evidence / MANIFEST).read_text())
    assert m["predicate"]["result"] == "FAILED"
    assert m["predicate"]["canon"]["verdict"]["recipes"] == ["lasuite-docs"]
    subjects_ = {s["name"]: s for s in m["subject"]}
    assert subjects_["plausible"]["annotations"]["gitTag"] == "3.0.1+v2.0.0"
    # a copy in an empty dir, no config, the demo's state hidden from verify (the demo is shared)
    state = root / "state"
    assert (state / "canon.db").is_file()
    copy = cold_copy(evidence, tmp_path)
    r = canon_without_state(state, "verify", copy, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert ", 0 failed" in r.stdout.splitlines()[-2]  # the last line: the checks not run
    for words in [
        "samever: no run ever had base kind step-back",
        "tagged_promote: green-but-untagged did not promote",
        "determinism: no promotion written",
        "canonical plausible: commit == tag",
        "verdict re-derived: FAILED: lasuite-docs ERROR",
        "signature: unsigned",
        "suite all complete",
        "disk_budget: disk within budget",
        "sweep: rows shown for run",
    ]:
        assert words in r.stdout, words
    j = canon_without_state(state, "verify", "--json", copy, cwd=tmp_path)
    assert j.returncode == 0 and all(c["ok"] for c in json.loads(j.stdout))
    assert canon_without_state(state, "verify", "--require-signature", copy).returncode == 1


def test_verify_suite_records_the_cold_verification(weekly):
    ws, ev, _, _, _ = weekly
    r = canon(ws, "evidence", "run", "verify", "--target", ev)
    assert r.returncode == 0 and "evidence verify: PASSED" in r.stdout, r.stdout + r.stderr
    vdir = Path(r.stdout.strip().splitlines()[-1])
    recs = json.loads((vdir / RECORDS).read_text())["verify"]
    assert recs["verify_ok"] is True and recs["verified"] == str(ev)
    assert any(
        c["name"] == "verdict re-derived" and c["detail"].startswith("FAILED")
        for c in recs["claims"]
    )
    assert not failed(verify(vdir))


def test_manifest_is_a_valid_in_toto_statement(demo, weekly):
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement, statement_pb2

    def validate(stmt: dict) -> None:
        pb = json_format.Parse(json.dumps(stmt), statement_pb2.Statement())
        statement.Statement.copy_from_pb(pb).validate()

    for d in (demo[1], weekly[1]):
        validate(json.loads((d / MANIFEST).read_text()))
    fleet = {"path": "/srv/fleet", "commit": "a" * 40}
    for subj in (subjects([], fleet, "b" * 64), subjects([], {**fleet, "commit": None}, "b" * 64)):
        validate(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": subj,
                "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
                "predicate": {"result": "PASSED"},
            }
        )
    with pytest.raises(ValueError, match="subject"):  # the validator does catch an empty subject
        validate(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [],
                "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
                "predicate": {"result": "PASSED"},
            }
        )


def test_evidence_run_weekly_exits_1_naming_the_recipe_and_is_signed(weekly):
    ws, ev, cfg, _, r = weekly
    assert r.returncode == 1, r.stdout + r.stderr
    assert "evidence weekly: FAILED: lasuite-docs ERROR (sync:" in r.stdout
    m = json.loads((ev / MANIFEST).read_text())
    assert m["predicate"]["result"] == "FAILED"
    env = json.loads((ev / ENVELOPE).read_text())
    assert env["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(env["payload"]) == (ev / MANIFEST).read_bytes()
    pub = signing.key_paths(cfg.state_dir).public
    claims = verify(ev, key=pub, state=cfg.state_dir, require_signature=True)
    assert not failed(claims)
    assert any(c.name == "signature" and "signed this manifest" in c.detail for c in claims)
    assert any(c.name == "verdict re-derived" and c.detail.startswith("FAILED") for c in claims)
    r = canon(ws, "verify", "--state", "--key", pub, "--require-signature", ev)
    assert r.returncode == 0 and "ok    live registry still holds the run's chain" in r.stdout, (
        r.stdout
    )


# -- the tamper battery ---------------------------------------------------------------------------


@pytest.fixture
def tampered(demo, tmp_path):
    """A cold copy of the demo's evidence dir (nothing else)."""
    return cold_copy(demo[1], tmp_path)


@pytest.fixture
def signed(weekly, tmp_path):
    ws, ev, cfg, older, _ = weekly
    return cold_copy(ev, tmp_path), signing.key_paths(cfg.state_dir).public, cfg


def edit_records(d: Path, nb: str, edit) -> None:
    """Edit a notebook's recorded values wherever they are kept (notebook, records, manifest)."""
    doc = nbformat.read(d / f"{nb}.ipynb", as_version=4)
    for cell in doc.cells:
        for o in cell.get("outputs", []):
            if RECORD_MIME in o.get("data", {}):
                edit(o["data"][RECORD_MIME])
    nbformat.write(doc, d / f"{nb}.ipynb")
    recs = json.loads((d / RECORDS).read_text())
    edit(recs[nb])
    (d / RECORDS).write_text(json.dumps(recs))
    m = json.loads((d / MANIFEST).read_text())
    for n in m["predicate"]["canon"]["notebooks"]:
        if n["name"] == nb:
            edit(n["records"])
    (d / MANIFEST).write_bytes(canonical_json(m))
    rehash(d)


def _promote_in_rows(rec: dict) -> None:
    for r in rec.get("sweep_rows", []):
        if r["recipe"] in ("lasuite-docs", "gitea"):
            r["label"] = "PASS (promoted)"


def test_tamper_recorded_values_edited_and_rehashed(tampered):
    edit_records(tampered, "sweep", _promote_in_rows)
    bad = failed(verify(tampered))
    assert any(
        s.startswith("sweep: rows shown for run")
        and "recipe gitea: notebook says label 'PASS (promoted)', "
        "bundled registry says 'SKIP (held)'"
        in s
        for s in bad
    ), bad


def test_tamper_shown_table_edited_and_rehashed(tampered):
    """Only what a reader sees changes (the rendered table), not the record: still caught."""
    doc = json.loads((tampered / "sweep.ipynb").read_text())
    edited = 0
    for cell in doc["cells"]:
        for o in cell.get("outputs", []):
            for mime in ("text/plain", "text/html"):
                text = "".join(o.get("data", {}).get(mime, []))
                if "recorded sweep_rows" in text or 'data-record="sweep_rows"' in text:
                    o["data"][mime] = text.replace("SKIP (held)", "PASS (promoted)")
                    edited += 1
    assert edited == 2
    (tampered / "sweep.ipynb").write_text(json.dumps(doc))
    rehash(tampered)
    bad = failed(verify(tampered))
    assert any(
        s.startswith("notebook sweep: shows what it recorded") and "sweep_rows" in s for s in bad
    ), bad


def test_tamper_recorded_claim_edited_and_rehashed(tampered):
    def flip(rec):
        for c in rec.get("claims", []):
            if c["name"] == "disk within budget":
                c["detail"] = "1 of 500,000,000 bytes"

    edit_records(tampered, "disk_budget", flip)
    assert any(
        s.startswith("disk_budget: disk within budget: notebook says holds: 1 of")
        for s in failed(verify(tampered))
    )


def test_tamper_notebook_deleted_and_manifest_rewritten(tampered):
    (tampered / "determinism.ipynb").unlink()
    m = json.loads((tampered / MANIFEST).read_text())
    m["predicate"]["canon"]["notebooks"] = [
        n for n in m["predicate"]["canon"]["notebooks"] if n["name"] != "determinism"
    ]
    (tampered / MANIFEST).write_bytes(canonical_json(m))
    rehash(tampered)
    bad = failed(verify(tampered))
    assert any(s.startswith("suite all: notebook determinism") and "missing" in s for s in bad), bad


def test_tamper_extra_notebook_added_and_manifest_rewritten(tampered):
    shutil.copy(tampered / "sweep.ipynb", tampered / "sweep2.ipynb")
    rehash(tampered)
    bad = failed(verify(tampered))
    assert any(
        s.startswith("suite all: file sweep2.ipynb")
        and "a notebook the suite does not declare" in s
        for s in bad
    ), bad


def test_tamper_manifest_of_another_run_swapped_in(tampered, weekly):
    shutil.copy(weekly[1] / MANIFEST, tampered / MANIFEST)
    bad = failed(verify(tampered))
    assert any(
        s.startswith("file ") and ("edited" in s or "not in the manifest" in s) for s in bad
    ), bad
    rehash(tampered)  # even with the file list forged, the notebooks disagree with it
    bad = failed(verify(tampered))
    assert any(
        "records.json and manifest say what it recorded" in s or s.startswith("suite ") for s in bad
    ), bad


def test_tamper_bundled_registry_with_results_caught_by_signature_and_state(signed):
    d, pub, cfg = signed
    db = d / REGISTRY
    con = sqlite3.connect(db)
    con.execute("UPDATE results SET label = 'SKIP (held)' WHERE recipe = 'bonfire'")
    con.commit()
    con.close()
    for f in (d / "results").glob("*.jsonl"):
        f.write_text(f.read_text().replace('"SKIP (no-new-version)"', '"SKIP (held)"'))

    def held(rec):
        for key in ("sweep_rows", "determinism_rows"):
            for r in rec.get(key, []):
                if r["recipe"] == "bonfire":
                    r["label"] = "SKIP (held)"

    for nb in ("sweep", "determinism"):
        edit_records(d, nb, held)
    m = json.loads((d / MANIFEST).read_text())
    for r in m["predicate"]["canon"]["results"]:
        if r["recipe"] == "bonfire":
            r["label"] = "SKIP (held)"
    (d / MANIFEST).write_bytes(canonical_json(m))
    rehash(d)
    by_key = failed(verify(d, key=pub))
    assert any(s.startswith("signature:") for s in by_key), by_key
    by_state = failed(verify(d, state=cfg.state_dir))
    assert any(
        s.startswith("run ") and "bundled rows equal the live registry's" in s and "bonfire" in s
        for s in by_state
    ), by_state


def test_tamper_live_registry_replaced_by_an_older_copy(signed, weekly, tmp_path):
    d, _, cfg = signed
    older = weekly[3]
    assert not failed(verify(d, state=cfg.state_dir))
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(older, state / "canon.db")
    bad = failed(verify(d, state=state))
    assert any(
        s.startswith("live registry still holds the run's chain")
        and "custom-html 1.14.0+1.31.2" in s
        and "rolled back" in s
        for s in bad
    ), bad


def test_tamper_envelope_signed_by_another_key(signed, tmp_path):
    d, pub, _ = signed
    other = signing.init_keys(tmp_path / "other")
    envelope = signing.sign((d / MANIFEST).read_bytes(), signing.load_private(other.private))
    signing.write_envelope(d / ENVELOPE, envelope)
    bad = failed(verify(d, key=pub))
    assert any(s.startswith("signature: no signature verifies with key") for s in bad), bad
    # it does verify with the key that signed it, but the log holds the envelope the run wrote
    bad = failed(verify(d, key=other.public))
    assert not [s for s in bad if s.startswith("signature")], bad
    assert any(s.startswith("log entry is this run: differs in envelope sha256") for s in bad), bad
    assert any(s.startswith("log checkpoint signature: no signature by key") for s in bad), bad


def test_tamper_payload_edited_under_the_old_signature(signed):
    d, pub, _ = signed
    env = json.loads((d / ENVELOPE).read_text())
    payload = base64.b64decode(env["payload"]).replace(b'"FAILED"', b'"PASSED"')
    env["payload"] = base64.b64encode(payload).decode()
    (d / ENVELOPE).write_text(json.dumps(env))
    (d / MANIFEST).write_bytes(payload)
    bad = failed(verify(d, key=pub))
    assert any(s.startswith("signature: no signature verifies") for s in bad), bad
    assert any(s.startswith("verdict re-derived: manifest says PASSED") for s in bad), bad


def test_tag_moved_upstream_after_promotion(signed, weekly):
    d, _, _ = signed
    ws = weekly[0]
    assert not failed(verify(d, upstream=True))
    up = ws / "upstream" / "custom-html"
    tag, head = (
        git("rev-parse", ref, cwd=up).strip() for ref in ("refs/tags/1.14.0+1.31.2", "HEAD")
    )
    git("commit", "-q", "--allow-empty", "-m", "sneaky", cwd=up)
    git("tag", "-f", "-a", "-m", "moved", "1.14.0+1.31.2", cwd=up)
    try:
        assert not failed(verify(d))  # offline: the bundle still says what was promoted
        bad = failed(verify(d, upstream=True))
        assert any(
            s.startswith("upstream custom-html: tag 1.14.0+1.31.2") and "moved" in s for s in bad
        ), bad
    finally:  # upstream as it was, for the tests that share it: the tag back, no sneaky commit
        git("update-ref", "refs/tags/1.14.0+1.31.2", tag, cwd=up)
        git("reset", "-q", "--hard", head, cwd=up)
    assert not failed(verify(d, upstream=True))


def test_tamper_label_in_results_file(tampered):
    f = sorted((tampered / "results").glob("*.jsonl"))[0]
    f.write_text(f.read_text().replace("SKIP (held)", "PASS (promoted)", 1))
    assert any(
        s.startswith(f"file results/{f.name}") and "edited" in s for s in failed(verify(tampered))
    )
    rehash(tampered)  # even with the hashes forged, the label disagrees with the history
    bad = failed(verify(tampered))
    assert any(
        "recipe gitea" in s and "evidence says 'PASS (promoted)', registry says 'SKIP (held)'" in s
        for s in bad
    ), bad


def test_tamper_extra_file_and_deleted_file(tampered):
    (tampered / "results" / "extra.jsonl").write_text("{}\n")
    (tampered / "bundle" / "refs.json").unlink()
    bad = failed(verify(tampered))
    assert any(s.startswith("file results/extra.jsonl") and "extra file" in s for s in bad)
    assert any(s.startswith("file bundle/refs.json") and "deleted" in s for s in bad)


@pytest.mark.parametrize(
    "text, rc",
    [
        ("", 2),  # 2: not evidence (no canon manifest to check anything against)
        ("not json", 2),
        ("[]", 2),
        ('{"_type": "https://in-toto.io/Statement/v1"}', 2),
        (
            '{"_type": "https://in-toto.io/Statement/v1", "subject": [1], "predicate": '
            '{"canon": {"type": "canon-evidence/v1", "files": {}, "notebooks": [1, {"name": 2}], '
            '"suite": "all", "results": [1], "sweep_runs": [3], "chain": 5}}}',
            1,  # a manifest, tampered
        ),
    ],
)
def test_malformed_manifest_is_a_failed_claim_not_a_traceback(tampered, text, rc):
    (tampered / MANIFEST).write_text(text)
    assert failed(verify(tampered))
    r = canon(None, "verify", tampered)
    assert r.returncode == rc and "Traceback" not in r.stderr, r.stderr
    count, last = r.stdout.splitlines()[-2:]
    assert count.endswith("failed") and "0 failed" not in count
    assert last.startswith("not checked: ")


def test_bundled_registry_not_sqlite(tampered):
    (tampered / REGISTRY).write_text("not a database")
    rehash(tampered)
    bad = failed(verify(tampered))
    assert any(s.startswith("bundled registry") for s in bad), bad


def make_nb(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config_path = ""\nevidence_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell(
            "from canonlib.evidence.records import record\nrecord('complete', True)"
        ),
    ]
    nbformat.write(nb, path)
    return path


def test_raising_and_timed_out_notebooks_fail_the_run_and_are_kept(demo, tmp_path):
    root, _, _ = demo
    ws = copy_ws(root, tmp_path / "ws")
    cfg = load_config(ws / "canon.toml", env_overrides=False)
    ok = make_nb(tmp_path / "fine.ipynb", "x = 1")
    boom = make_nb(tmp_path / "boom.ipynb", "raise RuntimeError('the sweep notebook exploded')")
    slow = make_nb(
        tmp_path / "slow.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(300)"
    )
    lines: list[str] = []
    run = run_suite(cfg, "custom", notebooks=[ok, boom, slow], out=lines.append, timeout_s=20)
    assert not run.ok and run.verdict.exit_code == 1
    assert run.verdict.failed_notebooks == ["boom", "slow"]
    by = {n.name: n for n in run.notebooks}
    assert by["fine"].ok
    assert not by["boom"].ok and any(
        "RuntimeError: the sweep notebook exploded" in p for p in by["boom"].problems
    )
    assert by["slow"].timed_out and "watchdog" in by["slow"].problems[0]
    assert (run.dir / "boom.ipynb").exists() and (
        run.dir / "slow.ipynb"
    ).exists()  # partial notebooks kept
    assert "the sweep notebook exploded" in (run.dir / "boom.failure.txt").read_text()
    m = json.loads((run.dir / MANIFEST).read_text())
    assert m["predicate"]["result"] == "FAILED" and set(m["predicate"]["failedTests"]) == {
        "boom",
        "slow",
    }
    assert lines[-1] == str(run.dir)
    assert lines[-2] == "evidence custom: FAILED: notebook boom failed; notebook slow failed"
    bad = failed(verify(run.dir))  # and verify agrees: not a declared suite, notebooks incomplete
    assert any(
        s.startswith("suite complete") and "'custom' is not one canon declares" in s for s in bad
    )
    assert any(s.startswith("notebook boom.ipynb") and "RuntimeError" in s for s in bad)
