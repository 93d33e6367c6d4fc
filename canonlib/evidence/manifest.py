"""The evidence manifest: an in-toto Statement v1 over an evidence dir.

Subjects: one per canonical (``digest.gitCommit``, ``annotations.gitTag``).
With no canonical yet, the single subject is the fleet at its commit
(``name`` ``fleet``, ``digest.gitCommit``); with no fleet commit either, it is
the dir's ``records.json`` (``digest.sha256``).  So there is always at least one.

Predicate (the in-toto test-result predicate, ``result`` PASSED/FAILED, plus a
``canon`` object): the evidence format (:data:`EVIDENCE_FORMAT`; a dir without
one is format 1), run id, suite, parameters, start/end, code and fleet
identity, config hash, the verdict, each notebook's records, the result rows
it claims, the canonicals, the promotion-chain head, what each canonical and each
row that deployed or was held asks of the host and what its meta accepted
(``host_access``, format 3 on: :func:`host_access_record`) and the sha256 of every file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from canonlib.config import Config
from canonlib.evidence.bundle import REGISTRY, open_copy
from canonlib.evidence.records import RECORDS, EvidenceRun
from canonlib.evidence.verdict import Verdict
from canonlib.files import hash_file, write_atomic
from canonlib.recipe.fleet import fleet_commit
from canonlib.state.registry import Registry, utcnow
from canonlib.state.row import ResultRow
from canonlib.sweep.orchestrate import code_identity

MANIFEST = "manifest.json"
ENVELOPE = "manifest.dsse.json"
LOG_PROOF = "log.proof"  # written after the manifest, over its hash: never in the file list
# the checks against the world that a dir alone cannot make: the check, the `canon verify`
# option that runs it, and what it checks in words (verify's last line, the report pages)
OUTSIDE_CHECKS = (
    ("signature", "--key", "the manifest's signature, with the fleet's public key"),
    ("upstream", "--upstream", "each canonical's tag is still at the tested commit upstream"),
    ("log", "--log", "this run is in the published evidence log, and history never shrank"),
)
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
CANON_PREDICATE = "canon-evidence/v1"
# the evidence format: the dir's layout, the records each notebook declares and the pages'
# templates.  A dir without it is format 1.  Raise it when a change makes an old canon's
# verify wrong about a new dir (it keeps a frozen copy of what it needs to check each format).
# 3: the manifest's host_access record, the pages' host access section, a HELD row settled
EVIDENCE_FORMAT = 3
HOST_ACCESS_FORMAT = 3  # the first format whose manifest records host access
RUN_KEYS = ("sweep_run_id", "determinism_run_id")


FILE_CAP = 1 << 30  # a file canon wrote into the dir (the bundled registry is the largest)


def sha256_file(path: Path) -> str:
    return hash_file(path, FILE_CAP)


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but the manifest, its signature and the log proof."""
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and str(p.relative_to(root)) not in (MANIFEST, ENVELOPE, LOG_PROOF)
    }


def claimed_sweep_runs(records: list[dict[str, Any]]) -> list[str]:
    """The sweep runs the notebooks recorded (the sweep's and the determinism sweep's)."""
    return [
        r[key] for r in records for key in RUN_KEYS if isinstance(r.get(key), str) and r.get(key)
    ]


def subjects(
    canonicals: list[dict[str, Any]], fleet: dict[str, Any], records_sha256: str
) -> list[dict[str, Any]]:
    if canonicals:
        return [
            {
                "name": c["recipe"],
                "digest": {"gitCommit": c["commit"]},
                "annotations": {
                    "gitTag": c["tag"],
                    "version": c["version"],
                    "deployment": c["deployment"],
                },
            }
            for c in canonicals
        ]
    if fleet.get("commit"):
        return [
            {
                "name": "fleet",
                "digest": {"gitCommit": fleet["commit"]},
                "annotations": {
                    "role": "fleet: no recipe has a canonical yet",
                    "path": fleet["path"],
                },
            }
        ]
    return [
        {
            "name": RECORDS,
            "digest": {"sha256": records_sha256},
            "annotations": {"role": "records: no canonical and no fleet commit"},
        }
    ]


# a result row that deployed (its gate passed: the harness ran it) or was held for what it asks
_DEPLOYED, _HELD = "run", "held:host-access"


def _asks(row: ResultRow | None) -> dict[str, Any]:
    """What a row recorded of the host: each item asked (item, file, line, service, source,
    accepted, refused) and the meta's HOST_ACCESS; None each for a row that recorded nothing
    (older than registry migration 5, or a canonical with no row: rebuilt from its marker)."""
    if row is None:
        return {"asked": None, "accepted": None}
    return {"asked": row.host_access, "accepted": row.host_accepted}


def host_access_record(reg: Registry, sweep_runs: list[str]) -> list[dict[str, Any]]:
    """What each canonical and each of the run's deployed or held rows asks of the host, and
    what was accepted, from registry ``reg`` (the bundled one): the manifest's ``host_access``,
    re-derived by ``canon verify``.

    A canonical's is the row that promoted it (the newest that tested its commit and left it
    canonical); then each row of ``sweep_runs`` whose release was deployed (``run``, the
    harness ran it) or held (``held:host-access``), in the registry's order."""
    out: list[dict[str, Any]] = []
    for c in reg.canonicals():
        promoted = [
            r
            for r in reg.results(recipe=c.recipe)
            if r.tested_commit == c.commit and r.canonical_after == c.version
        ]
        row = promoted[-1] if promoted else None
        out.append(
            {
                "recipe": c.recipe,
                "role": "canonical",
                "tag": c.tag,
                "commit": c.commit,
                "run_id": row.run_id if row else None,
                **_asks(row),
            }
        )
    for rid in sweep_runs:
        for r in reg.results(rid):
            held = r.decision == _HELD
            if not held and (r.decision != _DEPLOYED or r.tested_commit is None):
                continue  # a skip, or an error before anything was deployed
            out.append(
                {
                    "recipe": r.recipe,
                    "role": "held" if held else "deployed",
                    "tag": r.latest,
                    "commit": r.tag_commit,
                    "run_id": rid,
                    **_asks(r),
                }
            )
    return out


def bundled_facts(d: Path, sweep_runs: list[str]) -> dict[str, Any]:
    """Rows, canonicals and chain from the dir's bundled registry (what the manifest claims)."""
    with open_copy(d / REGISTRY) as reg:
        # the manifest's rows: each as the registry stores it (its run id included)
        rows = [r.to_dict() for rid in sweep_runs for r in reg.results(rid)]
        canonicals = [
            {
                "recipe": c.recipe,
                "version": c.version,
                "tag": c.tag,
                "commit": c.commit,
                "deployment": c.deployment,
            }
            for c in reg.canonicals()
        ]
        chain = reg.verify_chain()
        host = host_access_record(reg, sweep_runs)
    return {
        "rows": rows,
        "host_access": host,
        "canonicals": canonicals,
        "chain": {"head": chain.head, "length": chain.length, "ok": chain.ok},
    }


def statement(
    config: Config,
    ev: EvidenceRun,
    verdict: Verdict,
    facts: dict[str, Any],
    *,
    run_id: str,
    params: dict[str, Any],
    started: str,
    interrupted: str | None = None,
) -> dict[str, Any]:
    fcommit, fdirty = fleet_commit(config.fleet) if config.fleet.exists() else (None, False)
    fleet = {"path": str(config.fleet), "commit": fcommit, "dirty": fdirty}
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(facts["canonicals"], fleet, sha256_file(ev.dir / RECORDS)),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": verdict.result,
            "passedTests": [n.name for n in ev.notebooks if n.ok],
            "failedTests": [n.name for n in ev.notebooks if not n.ok],
            "warnedTests": [],
            "configuration": [{"name": "canon.toml", "digest": {"sha256": config.digest}}],
            "canon": {
                "type": CANON_PREDICATE,
                "format": EVIDENCE_FORMAT,
                "run_id": run_id,
                "suite": ev.suite,
                "parameters": params,
                "started_at": started,
                "finished_at": utcnow(),
                "interrupted": interrupted,
                "code": code_identity(),
                "fleet": fleet,
                "config_path": str(config.path) if config.path else None,
                "config_hash": config.digest,
                "verdict": verdict.to_dict(),
                "notebooks": [
                    {
                        "name": n.name,
                        "file": n.path.name,
                        "ok": n.ok,
                        "rc": n.rc,
                        "seconds": n.seconds,
                        "timed_out": n.timed_out,
                        "problems": n.problems,
                        "records": n.records,
                    }
                    for n in ev.notebooks
                ],
                "sweep_runs": claimed_sweep_runs([n.records for n in ev.notebooks]),
                "results": facts["rows"],
                "canonicals": facts["canonicals"],
                "chain": facts["chain"],
                "host_access": facts["host_access"],
                "files": hash_tree(ev.dir),
            },
        },
    }


def canonical_json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def write_manifest(d: Path, stmt: dict[str, Any]) -> bytes:
    """Write ``manifest.json`` atomically; return the bytes written (what a signature covers)."""
    data = canonical_json(stmt)
    path = d / MANIFEST
    write_atomic(path, data)
    return data
