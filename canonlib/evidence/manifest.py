"""The evidence manifest: an in-toto Statement over an evidence dir.

One subject per canonical (``gitCommit`` digest, ``gitTag``), and a predicate
with the run's parameters, code and fleet identity, config hash, the registry
rows it claims, the promotion-chain head and the sha256 of every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..config import Config
from ..fleet import fleet_commit
from ..registry import Registry, utcnow
from ..sweep import code_identity
from .records import EvidenceRun

MANIFEST = "manifest.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
CANON_PREDICATE = "canon-evidence/v1"


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
