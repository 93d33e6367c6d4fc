"""State faults (issue 21, part 3): a read-only state dir, a sweep refused by the lock.

Every command runs as a real child process (``python -m canonlib``) on a real swept state
(tests/conftest.py's ``swept``, a private copy per test) with the real harness and SQLite.

- A read-only state dir is a read-only bind mount of it: the tests run as root, and root
  ignores permission bits (``chmod -R a-w`` would change nothing for it), while the kernel
  refuses every write on a read-only mount with EROFS, root's included.  Without root
  (``tests.test_no_tracebacks.read_only``) the dir is chmod 0555 instead.  Every command that
  writes state must exit 2 with one line naming the path and saying what to do, and print
  nothing else; a command that only reads either works or says the same one line.
- The registry is either closed (SQLite removed its -wal and -shm files: a read-only mount
  cannot even be opened then) or held open by another process (its -wal and -shm exist, so
  SQLite opens it read-only and what a command reads works): both happen to an operator.
- A sweep refused by the lock meets a real ``canon sweep`` holding it, blocked in its cold
  run (the fleet's functional test waits for a file), and must leave the registry (a full
  dump) and the state dir's tree exactly as they were, write no evidence dir, and exit 75.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from tests import test_canonical_safety as safety
from tests.cli import canon, canon_argv
from tests.test_no_tracebacks import read_only
from tests.test_sweep import wait_for
from tests.workspace import Workspace

# the same two swept recipes (conftest.py, built once a session), each test on its own copy
ws = safety.ws

BACKUP = "outside-backup.db"  # a registry backup outside the state dir, for `registry restore`

WRITES, READS, CHECKS = "writes", "reads", "checks"
COMMANDS = [
    (WRITES, ["sweep"]),
    (WRITES, ["sweep", "--plan"]),  # syncs the mirrors
    (WRITES, ["sweep", "--recipe", "nextcloud"]),
    (WRITES, ["evidence", "run", "weekly"]),  # the timer's job: it sweeps
    (WRITES, ["evidence", "run", "all"]),
    (WRITES, ["keys", "init"]),
    (WRITES, ["registry", "backup"]),  # into state/backups, under the lock
    (WRITES, ["registry", "restore", BACKUP]),
    (WRITES, ["registry", "rebuild"]),
    (READS, ["status"]),
    (READS, ["status", "--json"]),
    (READS, ["pins"]),
    (READS, ["history", "nextcloud"]),
    (CHECKS, ["doctor"]),  # a check that fails is its FAIL line, exit 1
]


@contextlib.contextmanager
def registry_held_open(db: Path, held: bool):
    """With ``held``, another process keeps the registry open (its -wal and -shm exist)."""
    if not held:
        yield
        return
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from canonlib.state.registry import Registry; "
            "r = Registry.open(sys.argv[1], create=False); r.canonicals(); "
            "print('open', flush=True); sys.stdin.read()",
            str(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        yield
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)


@pytest.mark.parametrize("held", [False, True], ids=["registry-closed", "registry-held-open"])
@pytest.mark.parametrize("kind, args", COMMANDS, ids=[" ".join(a) for _k, a in COMMANDS])
def test_read_only_state_dir(ws, kind, args, held):
    state = ws.config.state_dir
    args = [str(ws.root / a) if a == BACKUP else a for a in args]
    assert canon(ws.root, "registry", "backup", str(ws.root / BACKUP)).returncode == 0
    # the backup reads the registry read-only, and SQLite's last read-only close leaves -wal
    # and -shm behind; a read-write close checkpoints and removes them: really closed
    Registry.open(ws.config.db_path, create=False).close()
    assert not (state / "canon.db-wal").exists() and not (state / "canon.db-shm").exists()
    evidence_before = sorted(ws.config.evidence_dir.glob("*"))
    with registry_held_open(ws.config.db_path, held), read_only(state):
        r = canon(ws.root, *args)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    lines = r.stderr.strip().splitlines()
    if kind == WRITES or (kind == READS and r.returncode != 0):
        # one line naming a path in the state dir and what to do; nothing else, no claim
        assert r.returncode == 2, (r.returncode, out)
        assert len(lines) == 1 and r.stdout == "", out
        assert lines[0].startswith(f"canon: {state}") or f"registry {state}/" in lines[0], out
        assert "writable" in lines[0], out
        assert sorted(ws.config.evidence_dir.glob("*")) == evidence_before  # no evidence dir
    elif kind == READS:
        assert r.returncode == 0 and r.stdout, out
    else:
        assert r.returncode == 1, out
        assert f"FAIL  state dir writable: {state}: " in r.stdout, out


# -- a sweep refused by the lock -----------------------------------------------------------

BLOCKING_TEST = textwrap.dedent('''\
    """Holds the cold run (and so the sweep's lock) until the test says go."""
    import pathlib
    import time

    def test_waits_for_the_gate():
        pathlib.Path({ready!r}).write_text("under way")
        end = time.monotonic() + 600
        while not pathlib.Path({gate!r}).exists() and time.monotonic() < end:
            time.sleep(0.05)
''')

DB_FILES = {"canon.db", "canon.db-wal", "canon.db-shm"}  # compared by their dump, not bytes


def snapshot(state: Path) -> dict[str, str]:
    """The registry as a full SQL dump, and every path under the state dir with its bytes'
    sha256 (the registry's files by the dump: SQLite's -shm is an index, not content)."""
    snap = {}
    db = sqlite3.connect(f"file:{state / 'canon.db'}?mode=ro", uri=True)
    try:
        snap["(registry dump)"] = "\n".join(db.iterdump())
    finally:
        db.close()
    for p in sorted(state.rglob("*")):
        rel = str(p.relative_to(state))
        if p.is_symlink() or not p.is_file():
            snap[rel] = "dir" if p.is_dir() else "other"
        elif rel not in DB_FILES:
            snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


@pytest.fixture
def held_lock(tmp_path):
    """A workspace whose real ``canon sweep`` holds the lock, blocked in its cold run."""
    gate, ready = tmp_path / "gate", tmp_path / "ready"
    w = Workspace(tmp_path / "ws")
    w.recipe("app", test=BLOCKING_TEST.format(ready=str(ready), gate=str(gate)))
    w.release("app", "1.0.0+1.0")
    assert canon(w.root, "status").returncode == 0  # an empty registry, as after `canon init`
    first = subprocess.Popen(
        canon_argv(w, "sweep"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready, first, limit=300)
        yield w, first
    finally:
        gate.write_text("go")
        try:
            first.communicate(timeout=300)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [["sweep"], ["sweep", "--plan"], ["evidence", "run", "weekly"]],
    ids=["sweep", "sweep --plan", "evidence run weekly"],
)
def test_a_sweep_refused_by_the_lock_writes_nothing(held_lock, args):
    w, first = held_lock
    state = w.config.state_dir
    before = snapshot(state)
    assert "running" in before["(registry dump)"]  # the first sweep's run, under way
    evidence_before = sorted(w.config.evidence_dir.glob("*"))
    r = canon(w.root, *args)
    assert r.returncode == 75, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and r.stdout == "", r.stdout + r.stderr
    assert f"another sweep holds {state / 'sweep.lock'} (pid={first.pid} " in lines[0]
    after = snapshot(state)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, changed
    assert sorted(w.config.evidence_dir.glob("*")) == evidence_before  # no evidence dir either
    with Registry.open(w.config.db_path, create=False) as reg:
        assert [run["status"] for run in reg.runs()] == ["running"]  # the first sweep's alone
