"""Evidence: the suite on the demo fleet (real papermill, real kernels), `canon verify`, and
the tamper battery -- each tamper must make verify fail, naming the claim."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from canonlib.config import load_config
from canonlib.demo import run_demo
from canonlib.evidence.manifest import MANIFEST, hash_tree
from canonlib.evidence.run import run_suite
from canonlib.evidence.verify import verify
from tests.gitrepo import git

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "ws"
    lines: list[str] = []
    rc = run_demo(root, out=lambda text: lines.extend(text.splitlines()))
    assert rc == 0, "\n".join(lines)
    evidence = [Path(line.split(": ", 1)[1]) for line in lines if line.startswith("evidence: ")][0]
    return root, evidence, lines


def copy_ws(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    toml = dst / "canon.toml"
    toml.write_text(toml.read_text().replace(str(src), str(dst)))
    return dst


def evidence_in(ws: Path, original: Path, src_root: Path) -> Path:
    return ws / original.relative_to(src_root)


def failed(claims):
    return [f"{c.name}: {c.detail}" for c in claims if not c.ok]


def rehash(d: Path) -> None:
    m = json.loads((d / MANIFEST).read_text())
    m["predicate"]["canon"]["files"] = hash_tree(d)
    (d / MANIFEST).write_text(json.dumps(m))


@pytest.fixture
def tampered(demo, tmp_path):
    root, evidence, _ = demo
    ws = copy_ws(root, tmp_path / "ws")
    return ws, evidence_in(ws, evidence, root), load_config(ws / "canon.toml", env_overrides=False)


def test_demo_evidence_verifies_from_cold(demo):
    root, evidence, lines = demo
    assert "every label came out as designed; `make demo` again starts afresh" in lines
    manifest = json.loads((evidence / MANIFEST).read_text())
    assert manifest["_type"] == "https://in-toto.io/Statement/v1"
    subjects = {s["name"]: s for s in manifest["subject"]}
    assert subjects["plausible"]["annotations"]["gitTag"] == "3.0.1+v2.0.0"
    assert len(subjects["plausible"]["digest"]["gitCommit"]) == 40
    pred = manifest["predicate"]["canon"]
    assert pred["fleet"]["commit"] and pred["code"]["code_version"] and pred["chain"]["ok"]
    assert {n["name"] for n in pred["notebooks"]} >= {"sweep", "determinism", "tagged_promote", "samever",
                                                     "disk_budget", "investigate"}  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "canonlib", "--config", str(root / "canon.toml"), "verify",
                        str(evidence)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout
    assert ", 0 failed" in r.stdout.splitlines()[-1]
    for words in ["samever: no run ever had base kind step-back", "tagged_promote: green-but-untagged did not promote",
                  "determinism: no promotion written", "canonical plausible: commit == tag"]:  # fmt: skip
        assert words in r.stdout


def test_tamper_label_in_results_file(tampered):
    ws, ev, cfg = tampered
    f = sorted((ev / "results").glob("*.jsonl"))[0]
    f.write_text(f.read_text().replace("SKIP (held)", "PASS (promoted)", 1))
    assert any(
        s.startswith(f"file results/{f.name}") and "edited" in s for s in failed(verify(ev, cfg))
    )
    rehash(ev)  # even with the hashes forged, the label disagrees with the registry
    bad = failed(verify(ev, cfg))
    assert any(
        "recipe gitea" in s and "evidence says 'PASS (promoted)', registry says 'SKIP (held)'" in s
        for s in bad
    )


def test_tamper_registry_canonical_row(tampered):
    ws, ev, cfg = tampered
    con = sqlite3.connect(cfg.db_path)
    con.execute(
        "UPDATE canonicals SET version = '9.9.9+evil', tag = '9.9.9+evil' WHERE recipe = 'nextcloud'"
    )
    con.commit()
    con.close()
    bad = failed(verify(ev, cfg))
    assert any(
        s.startswith("promotion chain intact") and "canonicals row nextcloud" in s for s in bad
    )


def test_tamper_registry_result_label(tampered):
    ws, ev, cfg = tampered
    con = sqlite3.connect(cfg.db_path)
    con.execute("UPDATE results SET label = 'PASS (promoted)' WHERE recipe = 'mailu'")
    con.commit()
    con.close()
    assert any(
        "recipe mailu" in s and "registry says 'PASS (promoted)'" in s
        for s in failed(verify(ev, cfg))
    )


def test_tamper_promotion_history_row(tampered):
    ws, ev, cfg = tampered
    con = sqlite3.connect(cfg.db_path)
    con.execute("UPDATE promotions SET commit_sha = ? WHERE id = 3", ("0" * 40,))
    con.commit()
    con.close()
    assert any("promotions row 3" in s and "edited" in s for s in failed(verify(ev, cfg)))


def test_tamper_tag_moved_upstream_after_promotion(tampered):
    ws, ev, cfg = tampered
    up = ws / "upstream" / "custom-html"
    git("commit", "-q", "--allow-empty", "-m", "sneaky", cwd=up)
    git("tag", "-f", "-a", "-m", "moved", "1.13.0+1.31.1", cwd=up)
    from canonlib.mirror import Mirror

    Mirror("custom-html", cfg.mirror_path("custom-html"), cfg.upstream_url("custom-html")).sync()
    bad = failed(verify(ev, cfg))
    assert any(s.startswith("canonical custom-html: commit == tag") for s in bad)


def test_tamper_notebook_output(tampered):
    ws, ev, cfg = tampered
    nb = ev / "sweep.ipynb"
    nb.write_text(nb.read_text().replace("PASS (promoted)", "PASS (promoted) ", 1))
    assert any(s.startswith("file sweep.ipynb") and "edited" in s for s in failed(verify(ev, cfg)))


def test_tamper_file_deleted(tampered):
    ws, ev, cfg = tampered
    (ev / "disk_budget.ipynb").unlink()
    bad = failed(verify(ev, cfg))
    assert any(s.startswith("file disk_budget.ipynb") and "deleted" in s for s in bad)
    assert any(s.startswith("notebook disk_budget.ipynb") for s in bad)


def test_tamper_last_cell_never_ran(tampered):
    ws, ev, cfg = tampered
    nb = nbformat.read(ev / "determinism.ipynb", as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    last.execution_count = None
    last.outputs = []
    nbformat.write(nb, ev / "determinism.ipynb")
    rehash(ev)
    bad = failed(verify(ev, cfg))
    assert any(s.startswith("notebook determinism.ipynb") and "never ran" in s and "completion marker" in s
               for s in bad)  # fmt: skip


def test_tamper_extra_file(tampered):
    ws, ev, cfg = tampered
    (ev / "results" / "extra.jsonl").write_text("{}\n")
    assert any(
        s.startswith("file results/extra.jsonl") and "extra file" in s
        for s in failed(verify(ev, cfg))
    )


def test_missing_manifest(tampered):
    ws, ev, cfg = tampered
    (ev / MANIFEST).unlink()
    assert failed(verify(ev, cfg))[0].startswith("manifest:")


def make_nb(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config_path = ""\nevidence_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body),
                nbformat.v4.new_code_cell("from canonlib.evidence.records import record\nrecord('complete', True)")]  # fmt: skip
    nbformat.write(nb, path)
    return path


def test_raising_and_timed_out_notebooks_fail_the_run_and_are_kept(tampered, tmp_path):
    ws, ev, cfg = tampered
    ok = make_nb(tmp_path / "fine.ipynb", "x = 1")
    boom = make_nb(tmp_path / "boom.ipynb", "raise RuntimeError('the sweep notebook exploded')")
    slow = make_nb(
        tmp_path / "slow.ipynb", "import time\nprint('started', flush=True)\ntime.sleep(300)"
    )
    lines: list[str] = []
    run = run_suite(cfg, "custom", notebooks=[ok, boom, slow], out=lines.append, timeout_s=20)
    assert not run.ok
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
    assert failed(verify(run.dir, cfg))  # and verify agrees
