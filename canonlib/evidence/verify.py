"""``canon verify DIR``: re-check an evidence dir from cold, with nothing but the dir.

No config, no state, no mirrors: every claim is re-derived from the dir's
bundle (:mod:`.bundle`).  Checked, one claim per line:

- the manifest is a canon in-toto Statement, each part of the type canon declares
  (``manifest.Statement``: a part of another type is one line naming where, and nothing
  else is read from it); its signature (``--key``), or a line saying it is unsigned / not
  checked;
- every file's sha256; the suite complete (each declared notebook present,
  nothing undeclared);
- every notebook executed to its completion marker; ``records.json`` and the
  manifest say what the notebooks recorded; each record of its declared type (what the
  re-checks below read: one that is not is named, and not re-checked);
- what each notebook shows re-derived from the bundled registry: the sweep's
  rows, the determinism sweep's rows and claims, the investigated history, the
  proofs' claims (from their scratch registries), the disk figures;
- each claimed label against the bundled promotion history; the promotion
  hash chain; the recorded head; the canonicals and subjects;
- commit == tag for each canonical, from the bundled refs;
- the verdict re-derived, equal to the manifest's (a FAILED week verifies).

Opt-in checks against the world: ``state`` (a live state dir: its chain still
holds the bundled chain, its canonicals descend from the bundled ones, the
run's rows unchanged) and ``upstream`` (``git ls-remote`` of each claimed tag).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from canonlib import git
from canonlib.claims import Claim, ClaimJSON
from canonlib.evidence import log as evidence_log
from canonlib.evidence import proofs, signing
from canonlib.evidence.bundle import (
    CONFIG,
    MANIFEST_CAP,
    REFS,
    REGISTRY,
    BundledConfig,
    RecipeRefs,
    backup_registry,
    open_copy,
)
from canonlib.evidence.investigate import rung_rows
from canonlib.evidence.manifest import (
    CANON_PREDICATE,
    ENVELOPE,
    EVIDENCE_FORMAT,
    HOST_ACCESS_FORMAT,
    LOG_PROOF,
    MANIFEST,
    OUTSIDE_CHECKS,
    STATEMENT_TYPE,
    CanonPredicate,
    HostAccessEntry,
    Statement,
    Subject,
    canonicals_claimed,
    claimed_sweep_runs,
    host_access_record,
    run_rows,
)
from canonlib.evidence.records import (
    DECLARED,
    FORMAT_RECORDS,
    HISTORY_COLUMNS,
    RECORDS,
    SAMEVER_COLUMNS,
    DirRecords,
    Recorded,
    before_after,
    completion_problems,
    declared_problems,
    dir_records,
    read_records,
    shown_problems,
    shown_rows,
    type_problem,
)
from canonlib.evidence.report import INDEX, SUMMARY, newer_format, page_format, report_claims
from canonlib.evidence.suites import SUITES, file_problem, required_files
from canonlib.evidence.verdict import verdict
from canonlib.files import (
    FileProblem,
    NotJSON,
    copy_file,
    hash_file,
    list_tree,
    parse_json,
    read_inside,
)
from canonlib.state.registry import Registry
from canonlib.state.row import AskedJSON, ResultRow, RowJSON

UPSTREAM_TIMEOUT_S = 60.0
NEWER_FORMAT = "written by a newer canon (format {n}): upgrade canon to check its pages"
# what verify reads of a dir someone handed it, each a regular file kept inside the dir and
# under a cap, so a FIFO, a link to /dev/zero or a 200 MB manifest is one FAIL line, never a
# hang or a MemoryError; a cap also bounds what parsing costs (16 MiB of `{}` is ~0.4 GB of
# dicts). An honest weekly dir of the demo: a manifest of 72 KiB, notebooks of 10-160 KiB.
JSON_CAP = 16 << 20  # records.json, a notebook, the signature envelope, a results file
BUNDLE_JSON_CAP = 4 << 20  # bundle/refs.json, bundle/config.json
FILE_CAP = 1 << 30  # any file in the dir, hashed as a stream (the bundled registry)
DIR_FILES = 100_000  # entries in the dir: an honest one has a few dozen


def _section(name: str, fn: Callable[[], list[Claim]]) -> list[Claim]:
    """Run one group of checks; tampered input that breaks it is a failed claim, no traceback."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 -- a malformed dir is a failed claim, not a crash
        return [Claim(name, False, f"cannot be checked: {type(e).__name__}: {e}")]


class _NotManifest(Exception):
    """Why ``manifest.json`` is not a canon evidence manifest: the one claim verify makes then."""


@dataclass(frozen=True)
class _Read:
    """``manifest.json`` as read: its bytes, its JSON and its ``canon`` object (what the
    format is read from: a newer canon's need not be today's Statement), and the Statement it
    is, once it holds its declared types (:meth:`statement`)."""

    raw: bytes
    json: dict[str, object]
    canon: dict[str, object]

    def statement(self) -> tuple[Statement | None, str | None]:
        """The manifest as the Statement canon declares, or where it is not one."""
        why = type_problem(self.json, Statement)
        return (None, why) if why else (cast(Statement, self.json), None)


def _manifest(d: Path) -> _Read:
    """The manifest, read; :class:`_NotManifest` says why it is not a canon evidence manifest
    (what every check needs: a Statement with subjects, a canon predicate, its file list,
    notebook list and suite)."""
    try:
        raw = read_inside(d, MANIFEST, MANIFEST_CAP)
        m = parse_json(raw)
    except FileNotFoundError:
        raise _NotManifest(f"{d / MANIFEST}: missing") from None
    except NotJSON as e:
        raise _NotManifest(f"{d / MANIFEST}: not JSON ({e.why})") from None
    except FileProblem as e:
        raise _NotManifest(f"{d / MANIFEST}: {e}") from None
    top: dict[str, object] = m if isinstance(m, dict) else {}
    pred = top.get("predicate")
    canon = pred.get("canon") if isinstance(pred, dict) else None
    got: dict[str, object] = canon if isinstance(canon, dict) else {}
    subject = top.get("subject")
    shape = [
        (top.get("_type") == STATEMENT_TYPE, f"_type is not {STATEMENT_TYPE}"),
        (isinstance(subject, list) and bool(subject), "no subject"),
        (got.get("type") == CANON_PREDICATE, "no canon-evidence/v1 predicate"),
        (isinstance(got.get("files"), dict), "no file list"),
        (isinstance(got.get("notebooks"), list), "no notebook list"),
        (isinstance(got.get("suite"), str), "no suite"),
    ]
    bad = [why for ok, why in shape if not ok]
    if bad:
        raise _NotManifest(f"{d / MANIFEST}: not a canon evidence manifest ({'; '.join(bad)})")
    return _Read(raw, top, got)


def newer_format_line(d: str | Path) -> str | None:
    """The one line for a dir a newer canon wrote (its pages are in a format this canon does
    not know: not a tamper, exit 2), None for any other dir."""
    try:
        n = newer_format(_manifest(Path(d)).canon)
    except _NotManifest:
        return None
    return NEWER_FORMAT.format(n=n) if n is not None else None


# -- the dir itself --------------------------------------------------------------------------


def _signature(d: Path, raw: bytes, key: Path | None, required: bool) -> list[Claim]:
    env_path = d / ENVELOPE
    if not os.path.lexists(env_path):
        ok = key is None and not required
        why = "unsigned (no manifest.dsse.json)" + ("" if ok else ": a signature is required")
        return [Claim("signature", ok, why)]
    try:  # read even when not checked: a FIFO or a link to /dev/zero is named here, once
        env_raw = read_inside(d, ENVELOPE, JSON_CAP)
    except (OSError, FileProblem) as e:
        return [Claim("signature", False, f"{env_path}: unreadable ({e})")]
    if key is None:
        if required:
            return [
                Claim(
                    "signature",
                    False,
                    "signed, not checked: --require-signature needs --key PUBFILE",
                )
            ]
        return [Claim("signature", True, "signed, not checked (pass --key PUBFILE to check it)")]
    pub = signing.load_public(key)
    try:
        envelope = parse_json(env_raw)
    except NotJSON as e:
        return [Claim("signature", False, f"{env_path}: unreadable ({e.why})")]
    except FileProblem as e:
        return [Claim("signature", False, f"{env_path}: unreadable ({e})")]
    problem = signing.check(envelope, pub, raw)
    detail = problem or f"ed25519 key {signing.keyid(pub)[:16]} signed this manifest (DSSE)"
    return [Claim("signature", problem is None, detail)]


class _Listing:
    """What is in the dir, walked and hashed once: the sha256 of every usable file, and for
    each unusable one (a FIFO, a device, a link out of the dir, over the cap) why, in words.

    Every later read of a file in the dir asks here first, so an unusable file is named on
    one FAIL line (``file <name>``) and everything that needed it says "see file <name>"."""

    def __init__(self, d: Path) -> None:
        self.d = d
        self.hashes: dict[str, str] = {}
        self.problems: dict[str, str] = {}
        self.late: set[str] = set()  # files found bad once read (not JSON, nested too deep)
        self.too_many: str | None = None
        try:
            names = list_tree(d, DIR_FILES)
        except FileProblem as e:
            self.too_many = f"{d}: {e}"
            return
        for name in names:
            if name in (MANIFEST, ENVELOPE, LOG_PROOF):
                continue  # read, and named, by their own checks
            path = os.path.join(d, name)  # in a directory list_tree walked: not via a link
            try:
                if os.path.islink(path):
                    self.hashes[name] = hash_file(name, FILE_CAP, within=d)
                else:
                    self.hashes[name] = hash_file(path, FILE_CAP)
            except FileNotFoundError:
                self.problems[name] = "a dangling symlink"
            except FileProblem as e:
                self.problems[name] = str(e)

    def names(self) -> set[str]:
        return set(self.hashes) | set(self.problems)

    def json(self, name: str, cap: int) -> object:
        """The JSON in ``name``.  :class:`FileNotFoundError` when it is missing;
        :class:`_Unusable` ("see file <name>") when its ``file`` claim says why; else
        :class:`FileProblem` in words that fit after its path (not JSON, nested too deep),
        and the file counts as bad from then on."""
        if self.bad(name):
            raise _Unusable(f"see file {name}")
        try:
            return parse_json(read_inside(self.d, name, cap))
        except FileProblem:
            self.late.add(name)
            raise

    def bad(self, name: str) -> bool:
        """``name`` has a ``file`` claim saying why it cannot be used."""
        return name in self.problems or name in self.late


class _Unusable(Exception):
    """A file verify needs is unusable: its own ``file <name>`` claim says why."""


def _bundle_json(listing: _Listing, name: str) -> tuple[object, str | None]:
    """A bundled JSON file, or why not: the parser's own words for torn JSON, else the file
    and what it is (nested too deep), or where its ``file`` claim is."""
    try:
        return listing.json(name, BUNDLE_JSON_CAP), None
    except (FileNotFoundError, _Unusable) as e:
        return None, str(e)
    except NotJSON as e:
        return None, e.why
    except FileProblem as e:
        return None, f"{listing.d / name} {e}"


def _files(d: Path, pred: CanonPredicate, listing: _Listing) -> list[Claim]:
    if listing.too_many:
        return [Claim("file hashes", False, listing.too_many)]
    want = pred["files"]
    have = listing.hashes

    def at(f: str) -> str:  # d / f, without a Path per file (a dir may hold 10,000 extras)
        return os.path.join(d, f)

    bad = [
        Claim(f"file {f}", False, f"{at(f)}: {why}") for f, why in sorted(listing.problems.items())
    ]
    bad += [
        Claim(f"file {f}", False, f"{at(f)}: deleted")
        for f in sorted(want)
        if f not in have and f not in listing.problems
    ]
    bad += [
        Claim(f"file {f}", False, f"{at(f)}: sha256 differs from the manifest (edited)")
        for f in sorted(want)
        if f in have and have[f] != want[f]
    ]
    bad += [
        Claim(f"file {f}", False, f"{at(f)}: extra file, not in the manifest")
        for f in sorted(have)
        if f not in want
    ]
    return bad or [Claim("file hashes", True, f"{len(want)} files match the manifest")]


def _suite(d: Path, pred: CanonPredicate, listing: _Listing) -> list[Claim]:
    suite = pred["suite"]
    if suite not in SUITES:
        return [
            Claim(
                "suite complete",
                False,
                f"suite {suite!r} is not one canon declares ({', '.join(SUITES)})",
            )
        ]
    notebooks = SUITES[suite]
    names = [n["name"] for n in pred["notebooks"]]
    files = set(pred["files"]) | listing.names()
    runs = claimed_sweep_runs([n.get("records") or {} for n in pred["notebooks"]])
    out = [
        Claim(
            f"suite {suite}: notebook {nb}",
            False,
            f"{nb}.ipynb is missing from the dir or the manifest",
        )
        for nb in notebooks
        if f"{nb}.ipynb" not in files or nb not in names
    ]
    out += [
        Claim(f"suite {suite}: file {f}", False, f"{d / f}: a required file is missing")
        for f in sorted(required_files(notebooks) - files)
        if not f.endswith(".ipynb")
    ]
    out += [
        Claim(f"suite {suite}: file {f}", False, f"{d / f}: {why}")
        for f in sorted(files)
        if f not in listing.problems and (why := file_problem(f, notebooks, runs))
    ]
    out += [
        Claim(
            f"suite {suite}: notebook {n}",
            False,
            "the manifest lists a notebook the suite does not declare",
        )
        for n in names
        if n not in notebooks
    ]
    return out or [
        Claim(f"suite {suite} complete", True, f"{', '.join(notebooks)}; nothing undeclared")
    ]


def _records(
    d: Path, pred: CanonPredicate, notebooks: list[str], listing: _Listing
) -> tuple[list[Claim], dict[str, dict[str, object]]]:
    """Each notebook completed; what it recorded (as JSON, its types not yet checked), equal
    in records.json and the manifest."""
    out: list[Claim] = []
    recs: dict[str, dict[str, object]] = {}
    listed = {n["name"]: n.get("records") for n in pred["notebooks"]}
    try:
        in_json = listing.json(RECORDS, JSON_CAP)
    except (FileNotFoundError, _Unusable):
        in_json = None  # missing: the suite's claim; unusable: its file claim
    except FileProblem as e:
        in_json = None
        out.append(Claim(f"file {RECORDS}", False, f"{d / RECORDS}: {e}"))
    for nb in notebooks:
        name = f"{nb}.ipynb"
        try:
            doc = listing.json(name, JSON_CAP)
            if not isinstance(doc, dict):
                raise ValueError("not a notebook (top level is not an object)")
            problems = completion_problems(doc)
            recs[nb] = read_records(doc)
            edited = shown_problems(doc)
        except FileNotFoundError:
            problems, edited = [f"unreadable: {d / name}: missing"], []
        except _Unusable as e:
            problems, edited = [f"unreadable: {e}"], []
        except FileProblem as e:
            problems, edited = [f"unreadable: {d / name}: {e}"], []
        except (ValueError, AttributeError, TypeError) as e:
            problems, edited = [f"unreadable: {e}"], []
        out.append(
            Claim(
                f"notebook {nb}.ipynb",
                not problems,
                "; ".join(problems) or "executed to completion",
            )
        )
        if nb in recs:
            out.append(
                Claim(
                    f"notebook {nb}: shows what it recorded",
                    not edited,
                    "; ".join(edited) or "every recorded value is shown as rendered from it",
                )
            )
            same_json = isinstance(in_json, dict) and in_json.get(nb) == recs[nb]
            same_manifest = listed.get(nb) == recs[nb]
            where = (("records.json", same_json), ("the manifest", same_manifest))
            out.append(
                Claim(
                    f"notebook {nb}: records.json and manifest say what it recorded",
                    same_json and same_manifest,
                    "same"
                    if same_json and same_manifest
                    else f"differs in {' and '.join(w for w, same in where if not same)}",
                )
            )
    return out, recs


def _report(d: Path, stmt: Statement, listing: _Listing) -> list[Claim]:
    """The report pages' claims, once every file their re-render reads is known usable: that
    code reads the dir as canon wrote it (whole files, the manifest's notebook paths)."""
    names = [RECORDS, SUMMARY, INDEX] + [
        n.get("file") or f"{n['name']}.ipynb" for n in stmt["predicate"]["canon"]["notebooks"]
    ]
    for name in names:
        why = None
        if Path(name).is_absolute() or ".." in Path(name).parts:
            why = f"the manifest lists notebook file {name!r}, out of the dir"
        elif listing.bad(name):
            why = f"see file {name}"
        elif name in listing.hashes:
            if (d / name).stat().st_size > JSON_CAP:
                why = f"{d / name} is more than {JSON_CAP} bytes"
        elif os.path.lexists(d / name):
            why = f"{d / name} is not a file"
        if why:
            return [Claim("report pages", False, f"not checked: {why}")]
    return report_claims(d, stmt)


# -- what the notebooks show, re-derived from the bundle ----------------------------------------


def _first_difference(
    shown: list[RowJSON], derived: Sequence[RowJSON], key: Literal["recipe", "run_id"]
) -> str:
    by = {str(r.get(key)): r for r in derived}
    for row in shown:
        other = by.pop(str(row.get(key)), None)
        if other is None:
            return f"{key} {row.get(key)}: shown, not in the bundled registry"
        for col, value in row.items():
            if other.get(col) != value:
                return (
                    f"{key} {row.get(key)}: notebook says {col} {value!r}, "
                    f"bundled registry says {other.get(col)!r}"
                )
    if by:
        return f"{key} {next(iter(by))}: in the bundled registry, not shown"
    return "same"


def _rows_claim(
    name: str,
    shown: list[RowJSON] | None,
    derived: Sequence[RowJSON],
    key: Literal["recipe", "run_id"] = "recipe",
) -> Claim:
    """The rows a notebook recorded (None: it recorded none of the declared type) against the
    rows re-derived from the bundle."""
    derived = sorted(derived, key=lambda r: (str(r.get("recipe")), str(r.get("run_id"))))
    if shown is None:
        return Claim(name, False, "no recorded rows")
    ok = shown == derived
    return Claim(
        name,
        ok,
        f"{len(shown)} rows equal the bundled registry"
        if ok
        else _first_difference(shown, derived, key),
    )


def _claims_claim(nb: str, recorded: list[ClaimJSON] | None, derived: list[Claim]) -> list[Claim]:
    """Each re-derived claim must be what the notebook recorded (name, holds, detail)."""
    rec = {c["name"]: c for c in recorded or []}
    out = []
    for c in derived:
        r = rec.pop(c.name, None)
        if r is None:
            out.append(
                Claim(f"{nb}: {c.name}", False, "re-derived but not recorded by the notebook")
            )
        elif (r["ok"], r["detail"]) != (c.ok, c.detail):
            out.append(
                Claim(
                    f"{nb}: {c.name}",
                    False,
                    f"notebook says {'holds' if r['ok'] else 'fails'}: "
                    f"{r['detail']}; re-derived {'holds' if c.ok else 'fails'}: {c.detail}",
                )
            )
        else:
            out.append(
                Claim(
                    f"{nb}: {c.name}",
                    True,
                    f"{'holds' if c.ok else 'DOES NOT HOLD'}: {c.detail} (re-derived)",
                )
            )
    out += [Claim(f"{nb}: {n}", False, "recorded by the notebook, not re-derivable") for n in rec]
    return out


@contextmanager
def _scratch(d: Path, rel: str) -> Iterator[Path]:
    """A private copy of a bundled scratch registry (a regular file inside the dir)."""
    src = (d / rel).resolve()
    if d.resolve() not in src.parents:
        raise ValueError(f"scratch registry {rel!r} is outside the evidence dir")
    with tempfile.TemporaryDirectory(prefix="canon-verify-") as tmp:
        dest = Path(tmp) / Path(rel).name
        try:
            copy_file(rel, dest, FILE_CAP, within=d)
        except FileNotFoundError:
            raise ValueError(f"scratch registry {rel!r} is missing") from None
        except FileProblem:  # what it is: the dir's listing says, on its file line
            raise ValueError(f"scratch registry {rel!r} not read, see file {rel}") from None
        yield dest


@dataclass(frozen=True)
class _Bundle:
    """What a notebook's re-check reads: the dir, its bundled registry and config."""

    dir: Path
    reg: Registry
    config: BundledConfig
    format: int | None = None  # the dir's evidence format (None: not a number)


def _row_records(rows: list[ResultRow]) -> list[RowJSON]:
    """Registry rows as the notebooks recorded them (JSON objects): what a record is compared
    with."""
    return [r.to_dict() for r in rows]


# Each re-check reads a notebook's records of their declared types (records.dir_records): one
# that is not is not re-checked, and the declared-records claim names it.


def _shown_sweep(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    rid = r["sweep_run_id"]
    rows = run_rows(b.reg, [rid])
    out = [_rows_claim(f"{nb}: rows shown for run {rid}", r.get("sweep_rows"), shown_rows(rows))]
    if "canonicals_before_after" in r:
        ok = r["canonicals_before_after"] == before_after(rows)
        detail = f"{len(rows)} recipes" if ok else "differ from the bundled registry"
        out.append(Claim(f"{nb}: canonicals before and after run {rid}", ok, detail))
    return out


def _shown_determinism(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    rid = r["determinism_run_id"]
    rows = shown_rows(run_rows(b.reg, [rid]))
    out = [_rows_claim(f"{nb}: rows shown for run {rid}", r.get("determinism_rows"), rows)]
    held = b.format is None or b.format >= HOST_ACCESS_FORMAT  # format 3 on: a HELD row settled
    derived = proofs.determinism_claims(b.reg, rid, held_settled=held)
    return out + _claims_claim(nb, r.get("claims"), derived)


def _shown_investigate(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    recipe = r["investigated"]
    results = b.reg.results(recipe=recipe)
    rows = shown_rows(_row_records(results), HISTORY_COLUMNS)
    name = f"{nb}: history shown for {recipe}"
    out = [_rows_claim(name, r.get("investigate_rows"), rows, key="run_id")]
    rungs = rung_rows(results)
    ok = r.get("investigate_rungs") == rungs
    detail = f"{len(rungs)} runs" if ok else "differ from the bundled registry"
    return [*out, Claim(f"{nb}: rungs shown for {recipe}", ok, detail)]


def _shown_tagged_promote(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    f = r["tagged_promote"]
    with _scratch(b.dir, f["scratch_db"]) as db:
        derived = proofs.tagged_promote_claims(db, f["recipe"], f["tag"], f["commit"], f)
        return _claims_claim(nb, r.get("claims"), derived)


def _shown_samever(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    f = r["samever"]
    with _scratch(b.dir, f["scratch_db"]) as db:
        with Registry.open(db) as scratch:
            runs = [x for rid in f["runs"] for x in scratch.results(rid, f["recipe"])]
        ok = r.get("samever_rows") == shown_rows(_row_records(runs), SAMEVER_COLUMNS)
        detail = f"{len(runs)} rows" if ok else "differ from the scratch registry"
        out = [Claim(f"{nb}: the three scratch sweeps shown", ok, detail)]
        derived = proofs.samever_claims(db, f["recipe"], f["runs"], f["new_tag"])
        return out + _claims_claim(nb, r.get("claims"), derived)


def _shown_disk(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    out = _claims_claim(nb, r.get("claims"), proofs.disk_claims(r["disk"]))
    budget, shown = b.config.get("disk_budget_bytes"), r["disk"]["budget_bytes"]
    detail = f"shown {shown:,}, bundled config {budget}"
    return [*out, Claim(f"{nb}: budget shown is the configured one", shown == budget, detail)]


def _shown_verify(b: _Bundle, nb: str, r: Recorded) -> list[Claim]:
    detail = "its target is not in this dir: re-check it with `canon verify TARGET`"
    return [Claim(f"{nb}: verified {r.get('verified')}", True, detail)]


# what each notebook shows, re-derived from the bundle: one function per notebook, run on every
# notebook that holds the record it starts from (one missing or misplaced also fails the
# declared-records claim)
SHOWN: dict[str, tuple[str, Callable[[_Bundle, str, Recorded], list[Claim]]]] = {
    "sweep": ("sweep_run_id", _shown_sweep),
    "determinism": ("determinism_run_id", _shown_determinism),
    "investigate": ("investigated", _shown_investigate),
    "tagged_promote": ("tagged_promote", _shown_tagged_promote),
    "samever": ("samever", _shown_samever),
    "disk_budget": ("disk", _shown_disk),
    "verify": ("verify_ok", _shown_verify),
}


def _declared(fmt: int, recs: dict[str, dict[str, object]]) -> list[Claim]:
    """Each notebook's records are the ones its format declares, of the declared types."""
    out = []
    for nb, r in recs.items():
        if nb not in FORMAT_RECORDS[fmt]:
            continue  # a notebook no suite declares: the suite claim fails, naming it
        problems = declared_problems(fmt, nb, r)
        out.append(
            Claim(
                f"{nb}: records as format {fmt} declares them",
                not problems,
                "; ".join(problems) or f"{len(r)} records, each declared",
            )
        )
    return out


def _not_typed(recs: dict[str, dict[str, object]]) -> list[Claim]:
    """A dir whose format is not a number: each record that does not hold the type this canon
    declares for it (it was not re-checked)."""
    return [
        Claim(f"{nb}: record {name!r}", False, f"{why}; not re-checked")
        for nb, r in recs.items()
        for name, value in r.items()
        if name in DECLARED and (why := DECLARED[name].problem(value))
    ]


def _shown(
    d: Path,
    recs: dict[str, dict[str, object]],
    typed: DirRecords,
    reg: Registry,
    config: BundledConfig,
    fmt: int | None = None,
) -> list[Claim]:
    """What the notebooks show, re-derived from their records of the declared types; with
    ``fmt`` (a format this canon knows), then that every record is one the format declares.
    ``typed``: ``recs`` of their declared types (:func:`records.dir_records`)."""
    out: list[Claim] = []
    bundle = _Bundle(d, reg, config, fmt)
    for nb, r in typed.items():
        for key, check in SHOWN.values():
            if key in r:
                out += check(bundle, nb, r)
    if fmt is None:
        return out + _not_typed(recs)
    return out + (_declared(fmt, recs) if fmt in FORMAT_RECORDS else [])


def _registry(pred: CanonPredicate, reg: Registry, subject: list[Subject]) -> list[Claim]:
    out: list[Claim] = []
    chain = reg.verify_chain()
    out.append(
        Claim(
            "promotion chain intact (bundled registry)",
            chain.ok,
            "; ".join(chain.problems) or f"{chain.length} rows",
        )
    )
    claimed = pred.get("chain")
    head = claimed["head"] if claimed is not None else None
    out.append(
        Claim(
            "recorded chain head is the bundled registry's",
            head == chain.head,
            f"head {str(head)[:16]}",
        )
    )
    canon = canonicals_claimed(reg)
    out.append(
        Claim(
            "canonicals claimed are the bundled registry's",
            pred.get("canonicals") == canon,
            f"{len(canon)} canonicals",
        )
    )
    if canon:
        want = sorted((c["recipe"], c["commit"], c["tag"]) for c in canon)
        got = sorted(
            (
                s["name"],
                s["digest"].get("gitCommit"),
                s.get("annotations", {}).get("gitTag"),
            )
            for s in subject
        )
        out.append(Claim("subjects are the canonicals", want == got, f"{len(got)} subjects"))
    runs = pred.get("sweep_runs", [])
    rows = run_rows(reg, runs)
    out.append(
        Claim(
            "result rows claimed are the bundled registry's",
            pred.get("results") == rows,
            f"{len(rows)} rows of {len(runs)} sweep runs",
        )
    )
    return out


def _asked_words(entry: HostAccessEntry) -> str:
    """One host-access entry in words: each item asked with where and whether accepted, and
    the meta's HOST_ACCESS."""
    asked = entry["asked"]

    def state(a: AskedJSON) -> str:
        return (
            "refused" if a.get("refused") else "accepted" if a.get("accepted") else "not accepted"
        )

    if asked is None:
        items = "nothing recorded"
    else:
        items = (
            "; ".join(
                f"{a.get('item')} ({a.get('file')}:{a.get('line')}, {state(a)})" for a in asked
            )
            or "nothing"
        )
    return f"asks {items}; HOST_ACCESS {entry['accepted']!r}"


def _host_access(pred: CanonPredicate, reg: Registry, fmt: int | None) -> list[Claim]:
    """What the manifest says each canonical and each deployed or held row asks of the host
    and what was accepted, re-derived from the bundled registry's rows (format 3 on); a claim
    that differs fails naming the recipe."""
    if fmt is None or not HOST_ACCESS_FORMAT <= fmt <= EVIDENCE_FORMAT:
        # an older format recorded no host access (its rows, in `results`, still do); a newer
        # one is a newer canon's to check (the run's one line says so)
        return []
    derived = host_access_record(reg, pred.get("sweep_runs", []))
    claimed = pred.get("host_access")
    if claimed is None:
        return [Claim("host access recorded", False, "the manifest records no host_access list")]

    def by_recipe(entries: list[HostAccessEntry]) -> dict[str, list[HostAccessEntry]]:
        out: dict[str, list[HostAccessEntry]] = {}
        for e in entries:
            out.setdefault(e["recipe"], []).append(e)
        return out

    have, want = by_recipe(claimed), by_recipe(derived)
    out = []
    for recipe in sorted(set(have) | set(want)):
        said, real = have.get(recipe, []), want.get(recipe, [])
        if said == real:
            continue
        pairs = list(zip(said, real, strict=False))
        first = next(((a, b) for a, b in pairs if a != b), None)
        if first is None:
            more = len(said) > len(real)
            e = (said if more else real)[len(pairs)]
            what = f"{e['role']} {e['tag']}"
            detail = (
                f"the manifest claims an entry the bundled registry lacks: {what}"
                if more
                else f"the manifest leaves out an entry of the bundled registry: {what}"
            )
        else:
            a, b = first
            detail = (
                f"{b['role']} {b['tag']}: the manifest says it {_asked_words(a)}; "
                f"the bundled registry's rows say it {_asked_words(b)}"
            )
        out.append(Claim(f"host access of {recipe}", False, detail))
    if out:
        return out
    items = [a for e in derived for a in (e["asked"] or [])]
    held = sum(1 for e in derived if e["role"] == "held")
    return [
        Claim(
            "host access recorded is the bundled registry's",
            True,
            f"{len(derived)} canonicals and rows, {len(items)} items asked, "
            f"{sum(1 for a in items if a.get('accepted'))} accepted, {held} held",
        )
    ]


def _claimed_rows(d: Path, pred: CanonPredicate, listing: _Listing) -> list[RowJSON]:
    """The manifest's rows and the results files' rows, each distinct (run, recipe, label) once.

    A results file that is unusable has its own ``file`` claim and gives no rows; a line that
    is not a result row gives one that names it (no registry holds it)."""
    rows = list(pred.get("results", []))
    for name in sorted(listing.hashes):
        if not name.startswith("results/") or not name.endswith(".jsonl") or name.count("/") > 1:
            continue
        f = Path(name)
        try:
            text = read_inside(d, name, JSON_CAP).decode(errors="replace")
        except (OSError, FileProblem):
            continue
        for line in text.splitlines():
            if line.strip():
                try:
                    row: object = parse_json(line)
                except FileProblem:
                    row = None
                if isinstance(row, dict) and type_problem(row, RowJSON) is None:
                    rows.append(cast(RowJSON, {**row, "run_id": f.stem}))
                else:
                    rows.append(
                        RowJSON(run_id=f.stem, recipe="?", label=f"unparseable line in {f.name}")
                    )
    seen, out = set(), []
    for r in rows:
        key = (r.get("run_id"), r.get("recipe"), r.get("label"))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _commit_is_tag(
    subject: list[Subject], refs: dict[str, RecipeRefs], reg: Registry
) -> list[Claim]:
    out = []
    for s in subject:
        recipe, commit = s["name"], s["digest"].get("gitCommit")
        tag = s.get("annotations", {}).get("gitTag")
        if tag is None:
            continue  # the fleet or records subject: no tag to check
        entry = refs.get(recipe)
        tags = (entry["tags"] if entry else None) or {}
        promoted = any(p.tag == tag and p.commit == commit for p in reg.history(recipe))
        out.append(
            Claim(
                f"canonical {recipe}: commit == tag",
                tags.get(tag) == commit and promoted,
                f"{tag} is {str(tags.get(tag))[:12]} in the bundled refs; "
                f"claimed {str(commit)[:12]}; "
                f"{'in' if promoted else 'NOT in'} the bundled promotion history",
            )
        )
    return out


def _verdict(
    stmt: Statement,
    notebook_claims: list[Claim],
    recs: dict[str, dict[str, object]],
    typed: DirRecords,
    reg: Registry,
) -> list[Claim]:
    """The verdict re-derived: each notebook completed with every claim it recorded holding
    (claims not of their declared type do not hold), and the rows of the sweeps it records."""
    pred = stmt["predicate"]["canon"]
    completed = {
        c.name.removeprefix("notebook ").removesuffix(".ipynb"): c.ok
        for c in notebook_claims
        if c.name.startswith("notebook ") and c.name.endswith(".ipynb")
    }
    ok = {
        nb: completed[nb]
        and all(c["ok"] for c in r.get("claims", []))
        and ("claims" in r or "claims" not in recs[nb])
        for nb, r in typed.items()
    }
    ok.update({nb: False for nb in completed if nb not in typed})
    if pred.get("interrupted"):
        ok["(interrupted)"] = False
    rows = run_rows(reg, claimed_sweep_runs(list(typed.values())))
    v = verdict(ok, rows)
    said = (
        stmt["predicate"].get("result"),
        pred["verdict"]["result"] if "verdict" in pred else None,
    )
    same = said == (v.result, v.result)
    return [
        Claim(
            "verdict re-derived",
            same,
            v.summary() if same else f"manifest says {said[0]}, re-derived {v.summary()}",
        )
    ]


@dataclass(frozen=True)
class _BundleJSON:
    """``bundle/refs.json`` and ``bundle/config.json``, each part of its declared type; a part
    that is not is left out (what needs it fails), and named in ``problems``."""

    refs: dict[str, RecipeRefs]
    config: BundledConfig
    problems: list[Claim]


def _bundle_files(d: Path, listing: _Listing) -> _BundleJSON | str:
    """The bundled refs and config, or why they cannot be read."""
    refs, why = _bundle_json(listing, REFS)
    config, why = (None, why) if why else _bundle_json(listing, CONFIG)
    if why is not None:
        return why
    if not isinstance(refs, dict) or not isinstance(config, dict):
        bad = REFS if not isinstance(refs, dict) else CONFIG
        return f"{d / bad} {type_problem(refs if bad == REFS else config, dict[str, object])}"
    kept: dict[str, RecipeRefs] = {}
    problems: list[Claim] = []
    for recipe, entry in refs.items():
        if why := type_problem(entry, RecipeRefs, f"[{recipe!r}]"):
            problems.append(Claim("bundle", False, f"{d / REFS}: {why}"))
        else:
            kept[recipe] = cast(RecipeRefs, entry)
    if why := type_problem(config, BundledConfig):
        problems.append(Claim("bundle", False, f"{d / CONFIG}: {why}"))
    return _BundleJSON(kept, BundledConfig() if why else cast(BundledConfig, config), problems)


# -- against the world (opt-in) ------------------------------------------------------------------


def _state(state: Path, pred: CanonPredicate, reg: Registry) -> list[Claim]:
    live_db = Path(state) / "canon.db"
    if not live_db.is_file():
        return [Claim("live registry", False, f"{live_db}: no registry there")]
    with tempfile.TemporaryDirectory(prefix="canon-verify-live-") as tmp:
        copy = Path(tmp) / "live.db"
        backup_registry(live_db, copy)
        with Registry.open(copy) as live:
            out = []
            chain = live.verify_chain()
            out.append(
                Claim(
                    "live promotion chain intact",
                    chain.ok,
                    "; ".join(chain.problems) or f"{chain.length} rows",
                )
            )
            have = {p.id: p for p in live.history()}
            missing = [
                p for p in reg.history() if have.get(p.id) is None or have[p.id].hash != p.hash
            ]
            first = missing[0] if missing else None
            out.append(
                Claim(
                    "live registry still holds the run's chain",
                    not missing,
                    f"bundled chain of {len(reg.history())} rows is a prefix of the live one"
                    if first is None
                    else f"promotions row {first.id} ({first.recipe} {first.version}) is "
                    f"{'missing' if have.get(first.id) is None else 'different'} in {live_db}: "
                    "the registry was rolled back to an older copy or its history rewritten",
                )
            )
            live_canon = {c.recipe: c for c in live.canonicals()}
            lost = [c.recipe for c in reg.canonicals() if c.recipe not in live_canon]
            out.append(
                Claim(
                    "live canonicals descend from the bundled ones",
                    not lost and not missing,
                    f"lost: {', '.join(lost)}" if lost else f"{len(live_canon)} live canonicals",
                )
            )
            for rid in pred.get("sweep_runs", []):
                bundled = shown_rows(run_rows(reg, [rid]))  # one run's rows: by recipe
                name = f"run {rid}: bundled rows equal the live registry's"
                out.append(_rows_claim(name, bundled, shown_rows(run_rows(live, [rid]))))
            return out


def _upstream(subject: list[Subject], refs: dict[str, RecipeRefs], timeout_s: float) -> list[Claim]:
    out = []
    for s in subject:
        recipe, commit = s["name"], s["digest"].get("gitCommit")
        tag = s.get("annotations", {}).get("gitTag")
        if tag is None:
            continue
        entry = refs.get(recipe)
        url = entry["upstream"] if entry else None
        name = f"upstream {recipe}: tag {tag}"
        if not url:
            out.append(Claim(name, False, "no upstream URL in the bundle"))
            continue
        try:
            git.check_ref_name(tag)
            ref = f"refs/tags/{tag}"
            listed, peeled = git.ls_remote(url, [ref, ref + "^{}"], timeout=timeout_s)
        except (git.GitError, git.InvalidRef) as e:  # a forged tag fails its claim, not the rest
            out.append(Claim(name, False, f"cannot list {url}: {e}"))
            continue
        now = peeled.get(ref, listed.get(ref))
        out.append(
            Claim(
                name,
                now == commit,
                f"{url} has {tag} at {str(now)[:12]}; claimed {str(commit)[:12]}"
                + ("" if now == commit else " (tag moved or deleted upstream)"),
            )
        )
    return out


def _log(
    d: Path, raw: bytes, pred: CanonPredicate, key: Path | None, clone: Path | None
) -> list[Claim]:
    if not (d / LOG_PROOF).exists():
        return [Claim("log", True, f"not in an evidence log (no {LOG_PROOF})")]
    out = evidence_log.dir_claims(d, raw, pred, key)
    if clone is not None:
        out += evidence_log.clone_claims(d, clone)
    return out


def not_evidence(claims: list[Claim]) -> bool:
    """The dir has no readable canon manifest: `canon verify` exits 2 (not evidence), not 1."""
    return any(c.name == "manifest" and not c.ok for c in claims)


# -- what was not checked ------------------------------------------------------------------------


def unchecked(*, key: bool, upstream: bool, log: bool) -> list[str]:
    """The checks against the world a verify did not run, each as ``"<check> (no <option>)"``."""
    return [f"{name} (no {opt})" for name, opt in _not_run(key, upstream, log)]


def _not_run(key: bool, upstream: bool, log: bool) -> list[tuple[str, str]]:
    ran = {"signature": key, "upstream": upstream, "log": log}
    return [(name, opt) for name, opt, _ in OUTSIDE_CHECKS if not ran[name]]


def unchecked_line(names: list[str]) -> str:
    """The one line `canon verify` ends with."""
    return f"not checked: {', '.join(names)}" if names else "not checked: nothing (all checks ran)"


def _strict(key: bool, upstream: bool, log: bool) -> list[Claim]:
    return [
        Claim(f"strict: {name}", False, f"not checked: --strict needs {opt}")
        for name, opt in _not_run(key, upstream, log)
    ]


# -- all of it -----------------------------------------------------------------------------------


def verify(
    d: str | Path,
    *,
    state: Path | None = None,
    upstream: bool = False,
    key: Path | None = None,
    require_signature: bool = False,
    upstream_timeout_s: float = UPSTREAM_TIMEOUT_S,
    log: Path | None = None,
    strict: bool = False,
) -> list[Claim]:
    """Every claim of evidence dir ``d``, re-derived from the dir alone.

    A failed claim names what and where.

    ``state``: a live state dir to check the run against (its ``canon.db``); ``upstream``:
    re-list each canonical's tag from its upstream URL; ``key``: an ed25519 public key (PEM)
    the DSSE envelope must verify with (and the log checkpoint); ``require_signature``:
    unsigned or unchecked fails; ``log``: a clone of the evidence log this run must be in
    (the log itself is checked by :func:`canonlib.evidence.log.log_claims`); ``strict``: a
    signature, upstream or log not checked is a failed claim.
    """
    d = Path(d)
    try:
        m = _manifest(d)
    except _NotManifest as e:
        return [Claim("manifest", False, str(e))]
    claims = [Claim("manifest", True, f"run {m.canon.get('run_id')} suite {m.canon['suite']}")]
    stmt, why = m.statement()
    if stmt is None:  # tampered: what it is not is said, and whether it is the manifest signed
        return [
            *claims,
            Claim("manifest types", False, f"{d / MANIFEST}: {why} (nothing else checked)"),
            *_section("signature", lambda: _signature(d, m.raw, key, require_signature)),
        ]
    pred = stmt["predicate"]["canon"]
    subject = stmt["subject"]
    fmt = page_format(pred)
    listing = _Listing(d)
    notebooks = SUITES.get(pred["suite"], [n["name"] for n in pred["notebooks"]])
    nb_claims, recs = _records(d, pred, notebooks, listing)
    typed = dir_records(recs)  # the records of their declared types: what is re-checked
    claims += _section("signature", lambda: _signature(d, m.raw, key, require_signature))
    claims += _section("log", lambda: _log(d, m.raw, pred, key, log))
    claims += _section("file hashes", lambda: _files(d, pred, listing))
    claims += _section("suite complete", lambda: _suite(d, pred, listing))
    claims += _section("report pages", lambda: _report(d, stmt, listing))
    claims += nb_claims
    if REGISTRY in listing.problems:
        return [
            *claims,
            Claim("bundled registry", False, f"{d / REGISTRY}: not read, see file {REGISTRY}"),
        ]
    if not (d / REGISTRY).is_file():
        return [*claims, Claim("bundled registry", False, f"{d / REGISTRY}: missing")]
    bundle = _bundle_files(d, listing)
    if isinstance(bundle, str):
        return [
            *claims,
            Claim("bundle", False, f"{d / 'bundle'}: refs or config unreadable ({bundle})"),
        ]
    claims += bundle.problems
    try:
        with open_copy(d / REGISTRY, within=d) as reg:
            claims += _section("bundled registry", lambda: _registry(pred, reg, subject))
            claims += _section("host access", lambda: _host_access(pred, reg, fmt))
            claims += _section(
                "labels", lambda: proofs.label_claims(reg, _claimed_rows(d, pred, listing))
            )
            claims += _section(
                "what the notebooks show", lambda: _shown(d, recs, typed, reg, bundle.config, fmt)
            )
            claims += _section("commit == tag", lambda: _commit_is_tag(subject, bundle.refs, reg))
            claims += _section(
                "verdict re-derived", lambda: _verdict(stmt, nb_claims, recs, typed, reg)
            )
            if state is not None:
                claims += _section("live registry", lambda: _state(state, pred, reg))
    except Exception as e:  # noqa: BLE001 -- e.g. a bundled registry that is not SQLite
        claims.append(
            Claim(
                "bundled registry", False, f"{d / REGISTRY}: unreadable ({type(e).__name__}: {e})"
            )
        )
    if upstream:
        claims += _section("upstream", lambda: _upstream(subject, bundle.refs, upstream_timeout_s))
    if strict:
        claims += _strict(key is not None, upstream, log is not None)
    return claims
