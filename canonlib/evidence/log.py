"""The evidence log: an append-only git repo of evidence runs, with signed checkpoints.

Every evidence run appends one line to ``entries.jsonl`` (canonical JSON: run id, suite,
verdict, sha256 of ``manifest.json`` and of its DSSE envelope, the registry's promotion-chain
head and length, and that chain's hash at the previous entry's length) and rewrites
``checkpoint``, a C2SP signed note (https://c2sp.org/tlog-checkpoint)::

    <origin>
    <tree size>
    <base64 RFC 6962 root of entries.jsonl's lines>

    — <origin> <base64(key ID || ed25519 signature)>

one commit per run, on ``main`` of a bare repo (``log.path``, default
``<state>/log.git``), pushed to ``log.push`` when set.  The run's dir gets ``log.proof``:
its entry, leaf index, inclusion path and the checkpoint (outside the manifest's file list:
it is written after the manifest, over its hash).

A reviewer clones the log once and runs ``canon verify --log CLONE`` (:func:`log_claims`):
the root is recomputed from every line; each checkpoint in the clone's history is a prefix of
the next (RFC 6962 consistency proofs); the registry chain never shrinks nor changes under an
entry; and the last checkpoint seen is remembered under the user's cache dir, so a log that
was rewritten and force-pushed since is a fork, said loudly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canonlib import git
from canonlib.claims import Claim
from canonlib.config import Config
from canonlib.errors import UsageError, one_line
from canonlib.evidence import merkle, signing
from canonlib.evidence.bundle import MANIFEST_CAP, REGISTRY, open_copy
from canonlib.evidence.manifest import ENVELOPE, LOG_PROOF, MANIFEST
from canonlib.evidence.records import type_problem
from canonlib.files import (
    FileProblem,
    hash_file,
    parse_json,
    read_inside,
    read_small_file,
    write_atomic,
)

ENTRIES = "entries.jsonl"
CHECKPOINT = "checkpoint"
BRANCH = "refs/heads/main"
PROOF_TYPE = "canon-evidence-log-proof/v1"
ENTRY_VERSION = 1
SIG_ED25519 = 1  # the C2SP signed-note signature type byte of Ed25519
DASH = "\u2014"
COMMITTER = {"user.name": "canon", "user.email": "canon@localhost"}
APPEND_TRIES = 5


# -- what is written: an entry, a dir's proof ---------------------------------------------


class ChainJSON(TypedDict):
    """The registry's promotion chain as an entry holds it: the manifest's head and length and,
    when the previous entry had a length, the bundled chain's hash at that length (None: the
    bundled chain is shorter)."""

    head: str | None
    length: int | None
    at_previous: NotRequired[str | None]


class Entry(TypedDict):
    """One line of ``entries.jsonl`` (:func:`entry_line`); a dir's ``log.proof`` holds it too."""

    v: int
    run_id: str
    suite: str
    verdict: str | None
    manifest_sha256: str
    envelope_sha256: str | None  # None: the run was not signed
    chain: ChainJSON
    time: str | None


class Proof(TypedDict):
    """A dir's ``log.proof``: its entry (the very line), leaf index, inclusion path (base64
    hashes) and the checkpoint note it leads to."""

    type: str
    origin: str
    index: int
    entry: str
    inclusion: list[str]
    checkpoint: str


class LastEntry(TypedDict):
    run_id: str
    suite: str
    verdict: str | None
    time: str | None


class LogStatus(TypedDict):
    """``canon log status``: the log's path, origin, size, root and its last entry."""

    path: str
    origin: str
    size: int
    root: str | None
    signed: bool
    push: str | None
    last: LastEntry | None


class BadEntry(ValueError):
    """JSON that is not a canon log entry.  Its words fit after where it was read, as a
    :class:`~canonlib.files.FileProblem`'s do; ``why`` names the key that is wrong."""

    def __init__(self, why: str) -> None:
        super().__init__(f"is not a canon log entry ({why})")
        self.why = why


def parse_entry(raw: bytes | str) -> Entry:
    """An entry read back (a line of a log, a proof's entry): untrusted until it is one.
    :class:`~canonlib.files.FileProblem` when it is not JSON; :class:`BadEntry` when it is not
    an entry."""
    value: object = parse_json(raw)
    if why := type_problem(value, Entry):
        raise BadEntry(why)
    return cast(Entry, value)


# -- entries and checkpoints (pure) -----------------------------------------------------


def entry_line(entry: Entry) -> bytes:
    """The canonical JSON of an entry: sorted keys, no spaces, ASCII; one line."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{_b64(root)}\n"


def key_id(name: str, pub: Ed25519PublicKey) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + bytes([SIG_ED25519]) + raw).digest()[:4]


def sign_note(body: str, name: str, key: Ed25519PrivateKey) -> str:
    sig = key.sign(body.encode())
    return f"{body}\n{DASH} {name} {_b64(key_id(name, key.public_key()) + sig)}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: list[tuple[str, bytes]]  # (key name, key ID || signature)
    note: str  # the whole note, as read

    def short(self) -> str:
        return f"size {self.size}, root {_b64(self.root)[:16]}"


def parse_checkpoint(note: str) -> Checkpoint:
    """A checkpoint note; ValueError says what is wrong with it."""
    body, sep, sigs = note.partition("\n\n")
    lines = body.split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise ValueError("not a checkpoint (origin, size and root lines)")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("its root is not a SHA-256 hash")
    signatures = []
    for line in sigs.splitlines() if sep else []:
        dash, _, rest = line.partition(" ")
        name, _, sig = rest.partition(" ")
        if dash != DASH or not name or not sig:
            raise ValueError(f"not a signature line: {line[:60]!r}")
        signatures.append((name, base64.b64decode(sig, validate=True)))
    return Checkpoint(lines[0], int(lines[1]), root, body + "\n", signatures, note)


def note_problem(cp: Checkpoint, pub: Ed25519PublicKey) -> str | None:
    """None when ``pub`` (named as the origin) signed ``cp``; else why not."""
    want = key_id(cp.origin, pub)
    mine = [s for n, s in cp.signatures if n == cp.origin and s[:4] == want]
    if not mine:
        return f"no signature by key {want.hex()} named {cp.origin}" + (
            "" if cp.signatures else " (the checkpoint is unsigned)"
        )
    try:
        pub.verify(mine[0][4:], cp.body.encode())
    except InvalidSignature:
        return f"the signature by {cp.origin} does not verify (checkpoint edited?)"
    return None


def leaf_lines(entries: bytes) -> list[bytes]:
    if entries and not entries.endswith(b"\n"):
        raise ValueError(f"{ENTRIES} does not end in a newline (a line cut short)")
    return entries.split(b"\n")[:-1] if entries else []


# -- the operator's side: appending ---------------------------------------------------------


@dataclass(frozen=True)
class LogRepo:
    path: Path

    def head(self) -> str | None:
        if not self.path.exists():
            return None
        proc = git.run(["rev-parse", "-q", "--verify", BRANCH], cwd=self.path, check=False)
        return proc.stdout.strip() or None

    def init(self) -> None:
        if not (self.path / "HEAD").exists():
            self.path.mkdir(parents=True, exist_ok=True)
            git.run(["init", "-q", "--bare", "-b", "main", str(self.path)])

    def entries(self, commit: str | None) -> bytes:
        if commit is None:
            return b""
        return git.read_blobs(self.path, [f"{commit}:{ENTRIES}"])[0] or b""

    def _blob(self, data: bytes) -> str:
        return git.run_bytes(["hash-object", "-w", "--stdin"], cwd=self.path, input=data).decode()

    def commit(self, old: str | None, entries: bytes, note: str, message: str) -> str:
        """Write a commit of ``entries`` and ``note`` on top of ``old``; move main to it only if
        main is still ``old`` (GitError otherwise: another run appended meanwhile)."""
        tree_in = (
            f"100644 blob {self._blob(note.encode()).strip()}\t{CHECKPOINT}\n"
            f"100644 blob {self._blob(entries).strip()}\t{ENTRIES}\n"
        )
        tree = git.run(["mktree"], cwd=self.path, input=tree_in).stdout.strip()
        parents = ["-p", old] if old else []
        new = git.run(
            ["commit-tree", tree, *parents, "-m", message], cwd=self.path, config=COMMITTER
        ).stdout.strip()
        git.run(["update-ref", BRANCH, new, old or git.ZERO], cwd=self.path)
        return new


def _chain(d: Path, chain: Mapping[str, object], previous_length: int | None) -> ChainJSON:
    """The manifest's chain head and length, and the bundled chain's hash at the previous entry's
    length (what a shrink or a rewritten history cannot fake)."""
    head, length = chain.get("head"), chain.get("length")
    out = ChainJSON(
        head=head if isinstance(head, str) else None,
        length=length if isinstance(length, int) and not isinstance(length, bool) else None,
    )
    if previous_length:
        with open_copy(d / REGISTRY) as reg:
            rows = reg.history()
        out["at_previous"] = (
            rows[previous_length - 1].hash if len(rows) >= previous_length else None
        )
    return out


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def make_entry(d: Path, previous: Entry | None) -> Entry:
    """Dir ``d``'s entry, after ``previous`` (the log's last).  UsageError (naming the file) when
    its manifest is not a canon evidence manifest."""
    raw = read_inside(d, MANIFEST, MANIFEST_CAP)
    m: object = parse_json(raw)
    pred = m.get("predicate") if isinstance(m, dict) else None
    canon = pred.get("canon") if isinstance(pred, dict) else None
    if not isinstance(pred, dict) or not isinstance(canon, dict):
        raise UsageError(f"{d / MANIFEST}: not a canon evidence manifest (no predicate.canon)")
    run_id, suite, chain = canon.get("run_id"), canon.get("suite"), canon.get("chain")
    if not isinstance(run_id, str) or not isinstance(suite, str):
        raise UsageError(f"{d / MANIFEST}: not a canon evidence manifest (no run id or suite)")
    return Entry(
        v=ENTRY_VERSION,
        run_id=run_id,
        suite=suite,
        verdict=_text(pred.get("result")),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        envelope_sha256=_envelope_sha256(d),
        chain=_chain(d, chain if isinstance(chain, dict) else {}, _length(previous)),
        time=_text(canon.get("finished_at")),
    )


def _length(entry: Entry | None) -> int | None:
    return entry["chain"]["length"] if entry else None


def _last_entry(repo: LogRepo, lines: list[bytes]) -> Entry | None:
    """The log's last line as an entry (None when it has none); UsageError naming the line when
    it is not one (a log canon wrote holds none such: it was edited)."""
    if not lines:
        return None
    try:
        return parse_entry(lines[-1])
    except (FileProblem, BadEntry) as e:
        raise UsageError(f"{repo.path}: {ENTRIES} line {len(lines)} {e}") from None


def append(config: Config, d: Path, out: Callable[[str], None] = print) -> Proof:
    """Append evidence dir ``d`` to the configured log, write ``d/log.proof``, push when set.
    Returns the proof."""
    if (d / LOG_PROOF).exists():
        raise UsageError(f"{d / LOG_PROOF} exists: this run is in the log already")
    repo = LogRepo(config.log_repo)
    repo.init()
    kp = signing.key_paths(config.state_dir)
    key = signing.load_private(kp.private) if kp.private.exists() else None
    for _ in range(APPEND_TRIES):
        head = repo.head()
        lines = leaf_lines(repo.entries(head))
        previous = _last_entry(repo, lines)
        entry = make_entry(d, previous)
        _refuse_older(d, entry, previous)
        line = entry_line(entry)
        lines.append(line)
        tree = merkle.Tree.of_entries(lines)
        body = checkpoint_body(config.log_origin, tree.size, tree.root())
        note = sign_note(body, config.log_origin, key) if key else body
        try:
            repo.commit(head, b"".join(x + b"\n" for x in lines), note, f"evidence {d.name}")
        except git.GitError:
            continue  # another run moved main meanwhile: read it again
        break
    else:
        raise UsageError(f"{repo.path}: could not append {d.name} (main kept moving)")
    index = tree.size - 1
    proof = Proof(
        type=PROOF_TYPE,
        origin=config.log_origin,
        index=index,
        entry=line.decode(),
        inclusion=[_b64(h) for h in tree.inclusion(index)],
        checkpoint=note,
    )
    write_atomic(d / LOG_PROOF, json.dumps(proof, indent=1) + "\n")
    if config.log_push:
        try:
            push(config)
        except UsageError as e:
            out(f"  log: appended, but {e}")
    return proof


def push(config: Config) -> str:
    """Push the log's ``main`` to ``log.push``; returns the URL."""
    if not config.log_push:
        raise UsageError("log.push is not set in canon.toml: nowhere to push the evidence log")
    repo = LogRepo(config.log_repo)
    if repo.head() is None:
        raise UsageError(f"{repo.path}: the evidence log has no entries yet; nothing to push")
    try:
        git.run(
            ["push", "-q", config.log_push, f"{BRANCH}:{BRANCH}"],
            cwd=repo.path,
            config=git.local_url_config(config.log_push),
        )
    except git.GitError as e:
        raise UsageError(
            f"the push of {repo.path} to {config.log_push} failed: {one_line(str(e))}; "
            "retry with `canon log push`"
        ) from e
    return config.log_push


def status(config: Config) -> LogStatus:
    repo = LogRepo(config.log_repo)
    head = repo.head()
    note = git.read_blobs(repo.path, [f"{head}:{CHECKPOINT}"])[0] if head else None
    cp = parse_checkpoint(note.decode()) if note else None
    lines = leaf_lines(repo.entries(head)) if head else []
    last = _last_entry(repo, lines)
    return LogStatus(
        path=str(repo.path),
        origin=config.log_origin,
        size=cp.size if cp else 0,
        root=_b64(cp.root) if cp else None,
        signed=bool(cp and cp.signatures),
        push=config.log_push,
        last=LastEntry(
            run_id=last["run_id"], suite=last["suite"], verdict=last["verdict"], time=last["time"]
        )
        if last
        else None,
    )


def _refuse_older(d: Path, entry: Entry, previous: Entry | None) -> None:
    """A run that finished before the log's last entry cannot join it late: its chain would read
    as a rollback.  (A newer run whose chain shrank is appended: that is what the log is for.)"""
    if previous is None or not entry["time"] or not previous["time"]:
        return
    if entry["time"] < previous["time"]:
        raise UsageError(
            f"{d.name} finished at {entry['time']}, before the log's last entry (run "
            f"{previous['run_id']}, {previous['time']}): a log only grows forward; the dir "
            "stays outside it (`canon verify` of the dir says it is in no log)"
        )


# -- a reviewer's side: one dir's proof -------------------------------------------------------


PROOF_CAP = 1 << 20  # an entry, an inclusion path of log2(entries) hashes and a checkpoint
CHECKPOINT_CAP = 64 << 10


def _envelope_sha256(d: Path) -> str | None:
    """The envelope's sha256; an unusable one (a FIFO, a link out) hashes to its words, so a
    log entry naming the real envelope differs (the signature claim names what it is)."""
    if not os.path.lexists(d / ENVELOPE):
        return None
    try:
        return hash_file(ENVELOPE, MANIFEST_CAP, within=d)
    except (OSError, FileProblem) as e:
        return f"unusable: {e}"


def read_proof(d: Path) -> Proof:
    """``d/log.proof``: :class:`FileProblem` when it is not a regular JSON file inside ``d``,
    ValueError (its words name the key that is wrong) when it is not a proof."""
    p: object = parse_json(read_inside(d, LOG_PROOF, PROOF_CAP))
    if not isinstance(p, dict) or p.get("type") != PROOF_TYPE:
        raise ValueError(f"not a {PROOF_TYPE}")
    if why := type_problem(p, Proof):
        raise ValueError(f"not a {PROOF_TYPE} ({why})")
    return cast(Proof, p)


def dir_claims(d: Path, raw: bytes, pred: Mapping[str, object], key: Path | None) -> list[Claim]:
    """The dir's entry says this manifest, and its inclusion proof leads to the checkpoint."""
    try:
        proof = read_proof(d)
        entry = parse_entry(proof["entry"])
        env = _envelope_sha256(d)
    except BadEntry as e:
        return [Claim("log", False, f"{d / LOG_PROOF}: its entry {e}")]
    except (FileProblem, ValueError) as e:  # not a regular JSON file; not a proof
        return [Claim("log", False, f"{d / LOG_PROOF}: {e}")]
    chain = pred.get("chain")
    said_chain: Mapping[str, object] = chain if isinstance(chain, dict) else {}
    said = {
        "run id": (entry["run_id"], pred.get("run_id")),
        "manifest sha256": (entry["manifest_sha256"], hashlib.sha256(raw).hexdigest()),
        "envelope sha256": (entry["envelope_sha256"], env),
        "chain head": (entry["chain"]["head"], said_chain.get("head")),
        "chain length": (entry["chain"]["length"], said_chain.get("length")),
    }
    differ = [k for k, (a, b) in said.items() if a != b]
    out = [
        Claim(
            "log entry is this run",
            not differ,
            f"differs in {', '.join(differ)} ({d / LOG_PROOF})"
            if differ
            else f"run {entry['run_id']}, this manifest and chain",
        )
    ]
    cp = parse_checkpoint(proof["checkpoint"])
    index = proof["index"]
    path = [base64.b64decode(h, validate=True) for h in proof["inclusion"]]
    leaf = merkle.leaf_hash(proof["entry"].encode())
    ok = merkle.verify_inclusion(index, cp.size, leaf, path, cp.root)
    out.append(
        Claim(
            "log inclusion proof",
            ok,
            f"entry {index} of {cp.origin} ({cp.short()})"
            if ok
            else f"{d / LOG_PROOF}: the inclusion path of entry {index} does not lead to the "
            f"checkpoint's root ({cp.short()})",
        )
    )
    if key is not None:
        problem = note_problem(cp, signing.load_public(key))
        out.append(
            Claim("log checkpoint signature", problem is None, problem or f"signed by {cp.origin}")
        )
    return out


# -- a reviewer's side: the whole clone -------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "canon" / "log-checkpoints"


def remembered_path(origin: str) -> Path:
    return cache_dir() / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".checkpoint")


@dataclass
class _History:
    commits: list[str]
    checkpoints: list[Checkpoint | str]  # a checkpoint, or why that commit's is unreadable
    lines: list[bytes]


def _history(clone: Path) -> _History:
    if not (clone.is_dir() and git.run(["rev-parse", "--git-dir"], cwd=clone, check=False).stdout):
        raise UsageError(f"{clone}: not a git repo; clone the evidence log first (git clone URL)")
    proc = git.run(["rev-list", "--first-parent", "--reverse", "HEAD"], cwd=clone, check=False)
    commits = proc.stdout.split()
    if not commits:
        raise UsageError(f"{clone}: the log has no commits yet")
    blobs = git.read_blobs(clone, [f"{c}:{CHECKPOINT}" for c in commits] + [f"HEAD:{ENTRIES}"])
    checkpoints: list[Checkpoint | str] = []
    for blob in blobs[:-1]:
        try:
            checkpoints.append(parse_checkpoint((blob or b"").decode()))
        except (ValueError, UnicodeDecodeError) as e:
            checkpoints.append(f"no readable checkpoint ({e})")
    return _History(commits, checkpoints, leaf_lines(blobs[-1] or b""))


def _chain_claims(lines: list[bytes]) -> list[Claim]:
    """The registry's chain never goes backwards from one entry to the next."""
    out = []
    prev: Entry | None = None
    for i, line in enumerate(lines):
        try:
            e = parse_entry(line)
        except (FileProblem, BadEntry) as problem:
            why = problem.why if isinstance(problem, BadEntry) else str(problem)
            out.append(
                Claim(
                    f"log entry {i}",
                    False,
                    f"not a canon log entry: {line[:60]!r} ({ENTRIES} line {i + 1}: {why})",
                )
            )
            continue
        chain, run = e["chain"], e["run_id"]
        if prev is not None:
            p = prev["chain"]
            lp, ln = p["length"] or 0, chain["length"] or 0
            where = f"run {run} (entry {i}, after run {prev['run_id']})"
            if ln < lp:
                out.append(
                    Claim(
                        f"log entry {i}: registry chain",
                        False,
                        f"{where}: the registry's promotion chain shrank from {lp} to {ln} rows: "
                        "the registry was rolled back to an older copy or promotion rows deleted",
                    )
                )
            elif ln == lp and chain["head"] != p["head"]:
                out.append(
                    Claim(
                        f"log entry {i}: registry chain",
                        False,
                        f"{where}: the chain head changed at the same length {ln}: its history "
                        "was rewritten",
                    )
                )
            elif ln > lp and lp and chain.get("at_previous") != p["head"]:
                out.append(
                    Claim(
                        f"log entry {i}: registry chain",
                        False,
                        f"{where}: the chain grew from {lp} to {ln} rows but no longer holds the "
                        f"head of run {prev['run_id']} at row {lp}: rolled back and re-grown",
                    )
                )
        prev = e
    return out or [Claim("log: registry chain never went backwards", True, f"{len(lines)} entries")]


def _checkpoint_claims(h: _History, tree: merkle.Tree, pub: Ed25519PublicKey | None) -> list[Claim]:
    out: list[Claim] = []
    prev: Checkpoint | None = None
    for commit, cp in zip(h.commits, h.checkpoints, strict=True):
        name = f"log checkpoint at {commit[:12]}"
        if isinstance(cp, str):
            out.append(Claim(name, False, cp))
            continue
        if cp.size > tree.size:
            out.append(Claim(name, False, f"{cp.short()}: larger than the log's {tree.size} lines"))
            continue
        if prev is not None:
            proof = tree.consistency(prev.size, cp.size) if prev.size <= cp.size else []
            if not merkle.verify_consistency(prev.size, cp.size, prev.root, cp.root, proof):
                why = (
                    f"the log shrank from {prev.size} to {cp.size} entries"
                    if cp.size < prev.size
                    else f"{prev.short()} is not a prefix of {cp.short()} (entries rewritten)"
                )
                out.append(Claim(name, False, why))
        elif cp.root != tree.root(cp.size):
            out.append(Claim(name, False, f"{cp.short()}: not the root of the first lines"))
        if pub is not None and (problem := note_problem(cp, pub)):
            out.append(Claim(name, False, problem))
        prev = cp
    return out


def log_claims(clone: Path, key: Path | None = None, remember: bool = True) -> list[Claim]:
    """Every check of a clone of the evidence log (see the module's docstring)."""
    h = _history(Path(clone))
    tree = merkle.Tree.of_entries(h.lines)
    head = h.checkpoints[-1]
    if isinstance(head, str):
        return [Claim("log checkpoint", False, f"{clone}: the newest {head}")]
    out = [
        Claim(
            "log root recomputed",
            head.size == tree.size and head.root == tree.root(),
            f"{tree.size} lines of {ENTRIES} hash to the checkpoint's root ({head.short()})"
            if head.size == tree.size and head.root == tree.root()
            else f"{tree.size} lines of {ENTRIES} do not hash to the checkpoint ({head.short()})",
        )
    ]
    pub = signing.load_public(key) if key is not None else None
    bad = _checkpoint_claims(h, tree, pub)
    out += bad or [
        Claim(
            "log checkpoints consistent",
            True,
            f"{len(h.commits)} checkpoints, each a prefix of the next"
            + (f"; all signed by {head.origin}" if pub else ""),
        )
    ]
    out += _chain_claims(h.lines)
    out += _remembered(head, tree, save=remember and all(c.ok for c in out))
    return out


def _remembered(head: Checkpoint, tree: merkle.Tree, save: bool) -> list[Claim]:
    """Trust on first use: the last checkpoint seen of this origin must be a prefix of this one."""
    path = remembered_path(head.origin)
    try:
        seen = parse_checkpoint(read_small_file(path, CHECKPOINT_CAP).decode())
    except FileNotFoundError:
        seen = None
    except (OSError, ValueError, FileProblem) as e:
        return [Claim("log: the checkpoint seen before", False, f"{path}: unreadable ({e})")]
    claims = []
    if seen is None:
        claims.append(
            Claim("log: the checkpoint seen before", True, f"first use: remembering {head.short()}")
        )
    else:
        ok = seen.size <= tree.size and merkle.verify_consistency(
            seen.size, tree.size, seen.root, tree.root(), tree.consistency(seen.size)
        )
        detail = (
            f"{seen.short()} is a prefix of this log ({head.short()})"
            if ok
            else f"FORK: the checkpoint seen before ({seen.short()}, in {path}) is not a prefix "
            f"of this log ({head.short()}): the log was rewritten (force-pushed) or forked "
            f"since; do not trust it. Only if you know why, remove {path}"
        )
        claims.append(Claim("log: the checkpoint seen before", ok, detail))
        save = save and ok
    if save:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, head.note)
    return claims


def clone_claims(d: Path, clone: Path) -> list[Claim]:
    """The dir's entry is the clone's line at its index, and its checkpoint a prefix of it."""
    proof = read_proof(d)
    h = _history(Path(clone))
    tree = merkle.Tree.of_entries(h.lines)
    index = proof["index"]
    cp = parse_checkpoint(proof["checkpoint"])
    same = 0 <= index < len(h.lines) and h.lines[index] == proof["entry"].encode()
    ok = (
        same
        and cp.size <= tree.size
        and merkle.verify_consistency(
            cp.size, tree.size, cp.root, tree.root(), tree.consistency(cp.size)
        )
    )
    return [
        Claim(
            "this run is in the cloned log",
            ok,
            f"entry {index}; its checkpoint ({cp.short()}) is a prefix of the clone's"
            if ok
            else f"entry {index} of {d / LOG_PROOF} is not line {index} of {clone}'s {ENTRIES}, "
            "or its checkpoint is not a prefix of the clone's (a fork: the log was rewritten)",
        )
    ]
