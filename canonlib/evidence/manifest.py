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
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NotRequired, Required, TypedDict

from canonlib.config import Config
from canonlib.evidence.bundle import REGISTRY, open_copy
from canonlib.evidence.records import RECORDS, EvidenceRun
from canonlib.evidence.verdict import Verdict, VerdictJSON
from canonlib.files import hash_file, write_atomic
from canonlib.recipe.fleet import fleet_commit
from canonlib.state.registry import Registry, utcnow
from canonlib.state.row import AskedJSON, ResultRow, RowJSON
from canonlib.sweep.orchestrate import CodeIdentity, code_identity

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


# -- the Statement's declared shape ------------------------------------------------------
# What canon writes, and what ``canon verify`` reads once the manifest holds these types
# (``records.type_problem``).  A key an older canon did not write (``format``, ``host_access``,
# ``outside``), or one verify does without, is not required; a key these do not name is left
# alone (a newer canon may add one).


class Digest(TypedDict, total=False):
    gitCommit: str
    sha256: str


class Annotations(TypedDict, total=False):
    """A subject's annotations: a canonical's tag, version and slot, or the fleet's or the
    records' role (and the fleet's path)."""

    gitTag: str
    version: str
    deployment: str | None
    role: str
    path: str


class Subject(TypedDict):
    """What the Statement is about: a canonical at its commit, else the fleet, else the records."""

    name: str
    digest: Digest
    annotations: NotRequired[Annotations]


class CanonicalJSON(TypedDict):
    """A canonical as the manifest claims it."""

    recipe: str
    version: str
    tag: str
    commit: str
    deployment: str | None


class ChainJSON(TypedDict):
    """The promotion chain's head, as the bundled registry holds it."""

    head: str
    length: int
    ok: bool


class FleetJSON(TypedDict):
    path: str
    commit: str | None
    dirty: bool


# canon's own version, commit and dirty flag (the commit None outside a checkout)
CodeJSON = CodeIdentity


class HostAccessEntry(TypedDict):
    """What a canonical, or a row that deployed or was held, asks of the host
    (:func:`host_access_record`)."""

    recipe: str
    role: str  # canonical, deployed, held
    tag: str | None
    commit: str | None
    run_id: str | None
    asked: list[AskedJSON] | None
    accepted: list[str] | None


class NotebookEntry(TypedDict, total=False):
    """A notebook of the run, with what it recorded."""

    name: Required[str]
    file: str
    ok: bool
    rc: int | None
    seconds: float
    timed_out: bool
    problems: list[str]
    # what it recorded, as read from its outputs: verify checks it equals the notebook's and
    # types each record by its declaration (records.dir_records, declared_problems)
    records: dict[str, object]


class Outside(TypedDict):
    """The checks against the world this run can be given: signed, and the log it is in."""

    signed: bool
    log: str | None


class CanonPredicate(TypedDict, total=False):
    """The ``canon`` object of the predicate: the run, what it recorded and claims, and the
    sha256 of every file."""

    type: Required[str]
    suite: Required[str]
    files: Required[dict[str, str]]
    notebooks: Required[list[NotebookEntry]]
    format: int  # format 1 wrote none
    run_id: str
    parameters: dict[str, object]
    started_at: str
    finished_at: str
    interrupted: str | None
    code: CodeJSON
    fleet: FleetJSON
    config_path: str | None
    config_hash: str
    verdict: VerdictJSON
    sweep_runs: list[str]
    results: list[RowJSON]
    canonicals: list[CanonicalJSON]
    chain: ChainJSON
    host_access: list[HostAccessEntry]  # format 3 on
    outside: Outside  # written after the Statement by the run


class ConfigDigest(TypedDict):
    name: str
    digest: Digest


class Predicate(TypedDict, total=False):
    """The in-toto test-result predicate, plus ``canon``."""

    canon: Required[CanonPredicate]
    result: str
    passedTests: list[str]
    failedTests: list[str]
    warnedTests: list[str]
    configuration: list[ConfigDigest]


class Statement(TypedDict):
    """An in-toto Statement v1 over an evidence dir: ``manifest.json``."""

    _type: str
    subject: list[Subject]
    predicateType: str
    predicate: Predicate


class BundledFacts(TypedDict):
    """What the manifest claims, read from the dir's bundled registry (:func:`bundled_facts`)."""

    rows: list[RowJSON]
    host_access: list[HostAccessEntry]
    canonicals: list[CanonicalJSON]
    chain: ChainJSON


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


def claimed_sweep_runs(records: Iterable[Mapping[str, object]]) -> list[str]:
    """The sweep runs the notebooks recorded (the sweep's and the determinism sweep's)."""
    return [run for r in records for key in RUN_KEYS if isinstance(run := r.get(key), str) and run]


def subjects(
    canonicals: list[CanonicalJSON], fleet: FleetJSON, records_sha256: str
) -> list[Subject]:
    if canonicals:
        return [
            Subject(
                name=c["recipe"],
                digest=Digest(gitCommit=c["commit"]),
                annotations=Annotations(
                    gitTag=c["tag"], version=c["version"], deployment=c["deployment"]
                ),
            )
            for c in canonicals
        ]
    if fleet["commit"]:
        return [
            Subject(
                name="fleet",
                digest=Digest(gitCommit=fleet["commit"]),
                annotations=Annotations(
                    role="fleet: no recipe has a canonical yet", path=fleet["path"]
                ),
            )
        ]
    return [
        Subject(
            name=RECORDS,
            digest=Digest(sha256=records_sha256),
            annotations=Annotations(role="records: no canonical and no fleet commit"),
        )
    ]


# a result row that deployed (its gate passed: the harness ran it) or was held for what it asks
_DEPLOYED, _HELD = "run", "held:host-access"


def _entry(
    recipe: str,
    role: str,
    tag: str | None,
    commit: str | None,
    row: ResultRow | None,
) -> HostAccessEntry:
    """One entry of the host-access record: what ``row`` recorded of the host, each item asked
    (item, file, line, service, source, accepted, refused) and the meta's HOST_ACCESS; None
    each for a row that recorded nothing (older than registry migration 5, or a canonical with
    no row: rebuilt from its marker)."""
    return HostAccessEntry(
        recipe=recipe,
        role=role,
        tag=tag,
        commit=commit,
        run_id=row.run_id if row else None,
        asked=row.host_access if row else None,
        accepted=row.host_accepted if row else None,
    )


def host_access_record(reg: Registry, sweep_runs: list[str]) -> list[HostAccessEntry]:
    """What each canonical and each of the run's deployed or held rows asks of the host, and
    what was accepted, from registry ``reg`` (the bundled one): the manifest's ``host_access``,
    re-derived by ``canon verify``.

    A canonical's is the row that promoted it (the newest that tested its commit and left it
    canonical); then each row of ``sweep_runs`` whose release was deployed (``run``, the
    harness ran it) or held (``held:host-access``), in the registry's order."""
    out: list[HostAccessEntry] = []
    for c in reg.canonicals():
        promoted = [
            r
            for r in reg.results(recipe=c.recipe)
            if r.tested_commit == c.commit and r.canonical_after == c.version
        ]
        row = promoted[-1] if promoted else None
        out.append(_entry(c.recipe, "canonical", c.tag, c.commit, row))
    for rid in sweep_runs:
        for r in reg.results(rid):
            held = r.decision == _HELD
            if not held and (r.decision != _DEPLOYED or r.tested_commit is None):
                continue  # a skip, or an error before anything was deployed
            role = "held" if held else "deployed"
            out.append(_entry(r.recipe, role, r.latest, r.tag_commit, r))
    return out


def run_rows(reg: Registry, runs: Iterable[str]) -> list[RowJSON]:
    """The result rows of sweep runs ``runs``, run by run, each as the registry stores it (its
    run id included): what the manifest claims and what a notebook recorded."""
    return [r.to_dict() for rid in runs for r in reg.results(rid)]


def canonicals_claimed(reg: Registry) -> list[CanonicalJSON]:
    """The registry's canonicals as the manifest claims them."""
    return [
        CanonicalJSON(
            recipe=c.recipe,
            version=c.version,
            tag=c.tag,
            commit=c.commit,
            deployment=c.deployment,
        )
        for c in reg.canonicals()
    ]


def bundled_facts(d: Path, sweep_runs: list[str]) -> BundledFacts:
    """Rows, canonicals and chain from the dir's bundled registry (what the manifest claims)."""
    with open_copy(d / REGISTRY) as reg:
        # the manifest's rows: each as the registry stores it (its run id included)
        rows = run_rows(reg, sweep_runs)
        canonicals = canonicals_claimed(reg)
        chain = reg.verify_chain()
        host = host_access_record(reg, sweep_runs)
    return BundledFacts(
        rows=rows,
        host_access=host,
        canonicals=canonicals,
        chain=ChainJSON(head=chain.head, length=chain.length, ok=chain.ok),
    )


def statement(
    config: Config,
    ev: EvidenceRun,
    verdict: Verdict,
    facts: BundledFacts,
    *,
    run_id: str,
    params: Mapping[str, object],
    started: str,
    interrupted: str | None = None,
) -> Statement:
    fcommit, fdirty = fleet_commit(config.fleet) if config.fleet.exists() else (None, False)
    fleet = FleetJSON(path=str(config.fleet), commit=fcommit, dirty=fdirty)
    canon = CanonPredicate(
        type=CANON_PREDICATE,
        format=EVIDENCE_FORMAT,
        run_id=run_id,
        suite=ev.suite,
        parameters=dict(params),
        started_at=started,
        finished_at=utcnow(),
        interrupted=interrupted,
        code=code_identity(),
        fleet=fleet,
        config_path=str(config.path) if config.path else None,
        config_hash=config.digest,
        verdict=verdict.to_dict(),
        notebooks=[
            NotebookEntry(
                name=n.name,
                file=n.path.name,
                ok=n.ok,
                rc=n.rc,
                seconds=n.seconds,
                timed_out=n.timed_out,
                problems=n.problems,
                records=n.records,
            )
            for n in ev.notebooks
        ],
        sweep_runs=claimed_sweep_runs([n.records for n in ev.notebooks]),
        results=facts["rows"],
        canonicals=facts["canonicals"],
        chain=facts["chain"],
        host_access=facts["host_access"],
        files=hash_tree(ev.dir),
    )
    return Statement(
        _type=STATEMENT_TYPE,
        subject=subjects(facts["canonicals"], fleet, sha256_file(ev.dir / RECORDS)),
        predicateType=PREDICATE_TYPE,
        predicate=Predicate(
            result=verdict.result,
            passedTests=[n.name for n in ev.notebooks if n.ok],
            failedTests=[n.name for n in ev.notebooks if not n.ok],
            warnedTests=[],
            configuration=[ConfigDigest(name="canon.toml", digest=Digest(sha256=config.digest))],
            canon=canon,
        ),
    )


def canonical_json(value: object) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


def write_manifest(d: Path, stmt: Statement) -> bytes:
    """Write ``manifest.json`` atomically; return the bytes written (what a signature covers)."""
    data = canonical_json(stmt)
    path = d / MANIFEST
    write_atomic(path, data)
    return data
