"""The demo's evidence (`canon demo`: real sweeps, real papermill), built once per version of
canon's code and kept on disk, so tests that only READ it (and tamper with copies) do not
pay minutes of notebooks each session.

The cache key is a hash of every file under ``canonlib/`` and ``notebooks/`` (and of this
file, the Python version and the harness identity the demo's registry records: canon's commit
and the interpreter): a change to canon's code builds afresh.  Mutation testing
needs exactly this: mutmut starts a new pytest session per mutant, but writes all of a
module's mutants into one file once, so the key stays the same across mutants and only
the first (clean) session builds.

The cached workspace is read-only by contract: copy what you change (:func:`copy_evidence`,
:func:`copy_state`).  It lives under ``$CANON_TEST_CACHE`` (default: the system temp dir),
built in place under a file lock (its paths are recorded in the evidence, so it cannot be
moved), and marked complete only at the end; a half-built one (a killed session) is
removed and built again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import canonlib

CODE = Path(canonlib.__file__).resolve().parent
NOTEBOOKS = CODE.parent / "notebooks"
DONE = "built.ok"
LOG = "demo.log"
KEEP_S = 2 * 24 * 3600  # other versions' entries older than this are removed


@dataclass(frozen=True)
class DemoEvidence:
    root: Path  # the demo workspace (canon.toml, fleet, state, upstream, evidence)
    evidence: Path  # its `canon evidence run all` dir
    lines: list[str]  # what `canon demo` printed
    rc: int

    @property
    def state(self) -> Path:
        return self.root / "state"


def code_key() -> str:
    """Source files only: mutmut keeps its own bookkeeping (``verify.py.meta``) beside them."""
    from canonlib.sweep.knownred import harness_identity
    from canonlib.sweep.orchestrate import code_identity

    h = hashlib.sha256(sys.version.encode() + Path(__file__).read_bytes())
    # the demo's registry remembers its harness (canon's commit, the interpreter): a later run on a
    # copy (test_evidence's weekly) counts a known-red tag as known only with the same harness
    h.update(
        harness_identity(code_identity(), [sys.executable, "-m", "canonlib", "harness"]).encode()
    )
    files = sorted(CODE.rglob("*.py")) + sorted(NOTEBOOKS.rglob("*.ipynb"))
    for p in files:
        h.update(b"\0" + str(p.relative_to(CODE.parent)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("CANON_TEST_CACHE") or tempfile.gettempdir()) / "canon-test-cache"


def _prune(root: Path, keep: Path) -> None:
    for old in root.glob("demo-*"):
        if old != keep and old.is_dir() and time.time() - old.stat().st_mtime > KEEP_S:
            shutil.rmtree(old, ignore_errors=True)


def demo_evidence() -> DemoEvidence:
    """The cached demo of this code version, built now if it is not there yet."""
    from canonlib.demo.fleet import run_demo

    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"demo-{code_key()}"
    with (root / f"{entry.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session building the same entry: wait for it
        if not (entry / DONE).is_file():
            shutil.rmtree(entry, ignore_errors=True)
            lines: list[str] = []
            rc = run_demo(entry / "ws", out=lambda text: lines.extend(text.splitlines()))
            (entry / LOG).write_text("\n".join(lines) + "\n")
            (entry / DONE).write_text(f"{rc}\n")
            _prune(root, entry)
    lines = (entry / LOG).read_text().splitlines()
    found = [line.split(": ", 1)[1] for line in lines if line.startswith("evidence: ")]
    assert found, "the demo made no evidence dir:\n" + "\n".join(lines)
    rc = int((entry / DONE).read_text())
    return DemoEvidence(entry / "ws", Path(found[0]), lines, rc)


def copy_evidence(demo: DemoEvidence, dest: Path) -> Path:
    """A copy of the demo's evidence dir (nothing else) at ``dest/<run id>``."""
    out = dest / demo.evidence.name
    shutil.copytree(demo.evidence, out)
    return out


def copy_state(demo: DemoEvidence, dest: Path) -> Path:
    """A state dir at ``dest`` holding a copy of the demo's live registry."""
    import sqlite3

    dest.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(demo.state / "canon.db") as a, sqlite3.connect(dest / "canon.db") as b:
        a.backup(b)
    return dest
