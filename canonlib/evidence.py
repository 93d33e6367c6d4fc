"""Evidence runs: notebooks executed with papermill into ``evidence/<run-id>/`` plus a manifest.

The verdict is ours, not papermill's: its exit status, no error output, every
code cell executed, the completion marker recorded by the last cell, and every
claim a notebook recorded holding.  ``manifest.json`` is an in-toto Statement:
one subject per canonical (``gitCommit`` digest, ``gitTag``), and a predicate
with the run's parameters, code and fleet identity, config hash, the registry
rows it claims, the promotion-chain head and the sha256 of every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Config
from .fleet import fleet_commit
from .process import kill_group
from .registry import Registry, utcnow
from .sweep import code_identity, new_run_id

RECORD_MIME = "application/vnd.canon.record+json"
MANIFEST = "manifest.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
CANON_PREDICATE = "canon-evidence/v1"

SUITES: dict[str, list[str]] = {
    "weekly": ["sweep", "determinism", "disk_budget"],
    "proofs": ["tagged_promote", "samever", "disk_budget"],
    "all": ["sweep", "determinism", "tagged_promote", "samever", "disk_budget", "investigate"],
    "verify": ["verify"],
}
NOTEBOOK_TIMEOUT_S = 900
CELL_TIMEOUT_S = 600


def notebooks_dir() -> Path:
    env = os.environ.get("CANON_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "notebooks"


# -- inside a notebook ------------------------------------------------------------


def record(name: str, value: Any) -> None:
    """Record a named value in the executing notebook's output (read back by the manifest and verify)."""
    from IPython.display import display

    display(
        {RECORD_MIME: {name: value}, "text/plain": f"recorded {name} = {json.dumps(value)[:200]}"},
        raw=True,
    )


# -- reading an executed notebook -----------------------------------------------------


def read_records(nb: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = o.get("data", {})
            if RECORD_MIME in data and isinstance(data[RECORD_MIME], dict):
                out.update(data[RECORD_MIME])
    return out


def notebook_problems(nb: dict) -> list[str]:
    """Why an executed notebook does not count: unexecuted cells, errors, no completion marker, false claims."""
    problems = []
    code = [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()
    ]
    if not code:
        problems.append("no code cells")
    for i, c in enumerate(code, start=1):
        if c.get("execution_count") is None:
            problems.append(f"code cell {i} of {len(code)} never ran")
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(
                    f"code cell {i} raised {o.get('ename')}: {str(o.get('evalue'))[:200]}"
                )
    recs = read_records(nb)
    if recs.get("complete") is not True:
        problems.append("no completion marker (the last cell did not run to the end)")
    for claim in recs.get("claims", []) or []:
        if isinstance(claim, dict) and not claim.get("ok"):
            problems.append(f"claim failed: {claim.get('name')}: {claim.get('detail')}")
    return problems


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text())


# -- running ------------------------------------------------------------------------


@dataclass
class NotebookRun:
    name: str
    path: Path
    rc: int | None
    seconds: float
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and not self.problems


@dataclass
class EvidenceRun:
    dir: Path
    suite: str
    notebooks: list[NotebookRun]

    @property
    def ok(self) -> bool:
        return bool(self.notebooks) and all(n.ok for n in self.notebooks)


def kernel_home(tmp: Path) -> Path:
    """A kernelspec named ``canon`` for *this* Python, first on JUPYTER_PATH, so no other python3 wins."""
    kdir = tmp / "kernels" / "canon"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "canon", "language": "python",
    }))  # fmt: skip
    return tmp


def execute(src: Path, dest: Path, params: dict[str, Any], *, cwd: Path, timeout_s: float,
            cell_timeout_s: float, log: Path) -> tuple[int | None, bool, float]:  # fmt: skip
    """papermill ``src`` -> ``dest`` in a child process group, killed at ``timeout_s`` (the watchdog)."""

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="canon-kernel-") as tmp:
        env = {
            **os.environ,
            "JUPYTER_PATH": str(kernel_home(Path(tmp))),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        argv = [sys.executable, "-m", "papermill", str(src), str(dest), "-k", "canon", "--language", "python", "--cwd", str(cwd),
                "--execution-timeout", str(int(cell_timeout_s)), "--no-progress-bar",
                "-y", json.dumps(params)]  # fmt: skip
        with open(log, "ab") as logf:
            proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
            try:
                rc = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(proc.pid, grace_s=1.0)
                rc = proc.wait()
    return rc, timed_out, time.monotonic() - t0


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def run_suite(
    config: Config, suite: str, *, params: dict[str, Any] | None = None, out: Callable[[str], None] = print,
    notebooks: list[Path] | None = None, timeout_s: float = NOTEBOOK_TIMEOUT_S,
    cell_timeout_s: float = CELL_TIMEOUT_S,
) -> EvidenceRun:  # fmt: skip
    """Execute a suite's notebooks into a new evidence dir and write its manifest.

    ``suite`` names a list in :data:`SUITES` (or labels ``notebooks`` when those are given);
    ``params`` are passed to every notebook (``config_path`` and ``evidence_dir`` are always set);
    ``timeout_s`` is the outer watchdog per notebook, ``cell_timeout_s`` papermill's per cell.
    """
    if notebooks is None:
        if suite not in SUITES:
            from .errors import UsageError

            raise UsageError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
        notebooks = [notebooks_dir() / f"{name}.ipynb" for name in SUITES[suite]]
    run_id = new_run_id(suite)
    d = config.evidence_dir / run_id
    d.mkdir(parents=True)
    started = utcnow()
    base_params = {"config_path": str(config.path or ""), "evidence_dir": str(d), **(params or {})}
    runs: list[NotebookRun] = []
    logs = Path(tempfile.mkdtemp(prefix="canon-evidence-logs-"))
    for src in notebooks:
        name = src.stem
        dest = d / f"{name}.ipynb"
        out(f"  running {name} ...")
        rc, timed_out, secs = execute(src, dest, base_params, cwd=d, timeout_s=timeout_s,
                                      cell_timeout_s=cell_timeout_s, log=logs / f"{name}.log")  # fmt: skip
        nb_run = NotebookRun(name, dest, rc, round(secs, 2), timed_out)
        if dest.exists():
            try:
                nb = load_notebook(dest)
                nb_run.records = read_records(nb)
                nb_run.problems = notebook_problems(nb)
            except (json.JSONDecodeError, OSError) as e:
                nb_run.problems = [f"executed notebook unreadable: {e}"]
        else:
            nb_run.problems = ["papermill wrote no output notebook"]
        if timed_out:
            nb_run.problems.insert(
                0, f"killed by the watchdog after {timeout_s:g}s (partial notebook kept)"
            )
        elif rc:
            nb_run.problems.insert(0, f"papermill exited {rc}")
        if not nb_run.ok:
            tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
            (d / f"{name}.failure.txt").write_text(
                "\n".join(nb_run.problems) + "\n\n--- papermill log tail ---\n" + tail
            )
        runs.append(nb_run)
        out(
            f"  {name}: {'ok' if nb_run.ok else 'FAILED: ' + '; '.join(nb_run.problems)} ({secs:.1f}s)"
        )
    shutil.rmtree(logs, ignore_errors=True)
    ev = EvidenceRun(d, suite, runs)
    write_manifest(config, ev, run_id=run_id, params=base_params, started=started)
    out(f"evidence {suite}: {'ok' if ev.ok else 'FAILED'}")
    out(str(d))
    return ev


def claimed_sweep_runs(records: list[dict[str, Any]]) -> list[str]:
    ids = []
    for r in records:
        for key in ("sweep_run_id", "determinism_run_id"):
            if r.get(key):
                ids.append(r[key])
    return ids


def write_manifest(
    config: Config, ev: EvidenceRun, *, run_id: str, params: dict, started: str
) -> Path:
    records = [n.records for n in ev.notebooks]
    sweep_runs = claimed_sweep_runs(records)
    results_dir = ev.dir / "results"
    rows: list[dict[str, Any]] = []
    with Registry.open(config.db_path) as reg:
        for rid in sweep_runs:
            src = config.runs_dir / rid / "results.jsonl"
            if src.exists():
                results_dir.mkdir(exist_ok=True)
                shutil.copy2(src, results_dir / f"{rid}.jsonl")
            rows += [{**r, "run_id": rid} for r in reg.results(rid)]
        canonicals = reg.canonicals()
        chain = reg.verify_chain()
    fcommit, fdirty = fleet_commit(config.fleet) if config.fleet.exists() else (None, False)
    passed = [n.name for n in ev.notebooks if n.ok]
    failed = [n.name for n in ev.notebooks if not n.ok]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": c.recipe, "digest": {"gitCommit": c.commit},
             "annotations": {"gitTag": c.tag, "version": c.version, "deployment": c.deployment}}
            for c in canonicals
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": "PASSED" if ev.ok else "FAILED",
            "passedTests": passed,
            "failedTests": failed,
            "warnedTests": [],
            "configuration": [{"name": "canon.toml", "digest": {"sha256": config.digest}}],
            "canon": {
                "type": CANON_PREDICATE,
                "run_id": run_id, "suite": ev.suite, "parameters": params,
                "started_at": started, "finished_at": utcnow(),
                "code": code_identity(),
                "fleet": {"path": str(config.fleet), "commit": fcommit, "dirty": fdirty},
                "config_path": str(config.path) if config.path else None, "config_hash": config.digest,
                "notebooks": [
                    {"name": n.name, "file": n.path.name, "ok": n.ok, "rc": n.rc, "seconds": n.seconds,
                     "timed_out": n.timed_out, "problems": n.problems, "records": n.records}
                    for n in ev.notebooks
                ],
                "sweep_runs": sweep_runs,
                "results": rows,
                "canonicals": [{"recipe": c.recipe, "version": c.version, "tag": c.tag, "commit": c.commit,
                                "deployment": c.deployment} for c in canonicals],
                "chain": {"head": chain.head, "length": chain.length, "ok": chain.ok},
                "files": hash_tree(ev.dir),
            },
        },
    }  # fmt: skip
    path = ev.dir / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(statement, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path
