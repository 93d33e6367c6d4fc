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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- entries and checkpoints (pure) -----------------------------------------------------


def entry_line(entry: dict[str, Any]) -> bytes:
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


def _chain(d: Path, manifest: dict[str, Any], previous_length: int | None) -> dict[str, Any]:
    """The manifest's chain head and length, and the bundled chain's hash at the previous entry's
    length (what a shrink or a rewritten history cannot fake)."""
    chain = manifest["predicate"]["canon"].get("chain") or {}
    out = {"head": chain.get("head"), "length": chain.get("length")}
    if previous_length:
        with open_copy(d / REGISTRY) as reg:
            rows = reg.history()
        out["at_previous"] = (
            rows[previous_length - 1].hash if len(rows) >= previous_length else None
        )
    return out


def make_entry(d: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    raw = read_inside(d, MANIFEST, MANIFEST_CAP)
    m = parse_json(raw)
    canon = m["predicate"]["canon"]
    prev_len = (previous or {}).get("chain", {}).get("length")
    return {
        "v": ENTRY_VERSION,
        "run_id": canon["run_id"],
        "suite": canon["suite"],
        "verdict": m["predicate"].get("result"),
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "envelope_sha256": _envelope_sha256(d),
        "chain": _chain(d, m, prev_len if isinstance(prev_len, int) else None),
        "time": canon.get("finished_at"),
    }


def append(config: Config, d: Path, out: Callable[[str], None] = print) -> dict[str, Any]:
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
        previous = parse_json(lines[-1]) if lines else None
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
    proof = {
        "type": PROOF_TYPE,
        "origin": config.log_origin,
        "index": index,
        "entry": line.decode(),
        "inclusion": [_b64(h) for h in tree.inclusion(index)],
        "checkpoint": note,
    }
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


def status(config: Config) -> dict[str, Any]:
    repo = LogRepo(config.log_repo)
    head = repo.head()
    note = git.read_blobs(repo.path, [f"{head}:{CHECKPOINT}"])[0] if head else None
    cp = parse_checkpoint(note.decode()) if note else None
    lines = leaf_lines(repo.entries(head)) if head else []
    last = parse_json(lines[-1]) if lines else None
    return {
        "path": str(repo.path),
        "origin": config.log_origin,
        "size": cp.size if cp else 0,
        "root": _b64(cp.root) if cp else None,
        "signed": bool(cp and cp.signatures),
        "push": config.log_push,
        "last": last and {k: last.get(k) for k in ("run_id", "suite", "verdict", "time")},
    }


def _refuse_older(d: Path, entry: dict[str, Any], previous: dict[str, Any] | None) -> None:
    """A run that finished before the log's last entry cannot join it late: its chain would read
    as a rollback.  (A newer run whose chain shrank is appended: that is what the log is for.)"""
    if previous is None or not entry.get("time") or not previous.get("time"):
        return
    if str(entry["time"]) < str(previous["time"]):
        raise UsageError(
            f"{d.name} finished at {entry['time']}, before the log's last entry (run "
            f"{previous.get('run_id')}, {previous['time']}): a log only grows forward; the dir "
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


def read_proof(d: Path) -> dict[str, Any]:
    """``d/log.proof``: :class:`FileProblem` when it is not a regular JSON file inside ``d``."""
    p = parse_json(read_inside(d, LOG_PROOF, PROOF_CAP))
    if not isinstance(p, dict) or p.get("type") != PROOF_TYPE:
        raise ValueError(f"not a {PROOF_TYPE}")
    return p


def dir_claims(d: Path, raw: bytes, pred: dict[str, Any], key: Path | None) -> list[Claim]:
    """The dir's entry says this manifest, and its inclusion proof leads to the checkpoint."""
    try:
        proof = read_proof(d)
        entry = parse_json(proof["entry"])
        env = _envelope_sha256(d)
    except FileProblem as e:
        return [Claim("log", False, f"{d / LOG_PROOF}: {e}")]
    chain = pred.get("chain") or {}
    said = {
        "run id": (entry.get("run_id"), pred.get("run_id")),
        "manifest sha256": (entry.get("manifest_sha256"), hashlib.sha256(raw).hexdigest()),
        "envelope sha256": (entry.get("envelope_sha256"), env),
        "chain head": ((entry.get("chain") or {}).get("head"), chain.get("head")),
        "chain length": ((entry.get("chain") or {}).get("length"), chain.get("length")),
    }
    differ = [k for k, (a, b) in said.items() if a != b]
    out = [
        Claim(
            "log entry is this run",
            not differ,
            f"differs in {', '.join(differ)} ({d / LOG_PROOF})"
            if differ
            else f"run {entry.get('run_id')}, this manifest and chain",
        )
    ]
    cp = parse_checkpoint(proof["checkpoint"])
    index = proof["index"]
    path = [base64.b64decode(h, validate=True) for h in proof["inclusion"]]
    leaf = merkle.leaf_hash(proof["entry"].encode())
    ok = isinstance(index, int) and merkle.verify_inclusion(index, cp.size, leaf, path, cp.root)
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
    prev: dict[str, Any] | None = None
    for i, line in enumerate(lines):
        try:
            e = parse_json(line)
            chain = e["chain"]
            run = e["run_id"]
        except (FileProblem, KeyError, TypeError):
            out.append(Claim(f"log entry {i}", False, f"not a canon log entry: {line[:60]!r}"))
            continue
        if prev is not None:
            p = prev["chain"]
            lp, ln = p.get("length") or 0, chain.get("length") or 0
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
            elif ln == lp and chain.get("head") != p.get("head"):
                out.append(
                    Claim(
                        f"log entry {i}: registry chain",
                        False,
                        f"{where}: the chain head changed at the same length {ln}: its history "
                        "was rewritten",
                    )
                )
            elif ln > lp and lp and chain.get("at_previous") != p.get("head"):
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
