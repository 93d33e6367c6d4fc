"""The files around a registry: its instance-id beside it, a backup copy of it, and what canon
reads from a backup (``read_file_facts``) without opening it as a registry.

Real SQLite files in tmp_path; a read-only state dir is a read-only bind mount (root) as in
tests/test_no_tracebacks.py; crashes are real child processes killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from canonlib.state.registry import (
    INSTANCE_FILE,
    MIGRATIONS,
    SCHEMA_VERSION,
    Promotion,
    Registry,
    promotion_hash,
    read_file_facts,
    read_instance_file,
    sqlite_backup,
)
from tests.test_no_tracebacks import read_only

A, B = "a" * 40, "b" * 40
ID = "0123456789abcdef0123456789abcdef"
NOW = "2026-11-27T03:00:00.000000Z"


# -- the instance-id file -------------------------------------------------------------------

INSTANCE_FILES = [
    # (what the file holds, what canon reads from it)
    (ID.encode(), ID),
    (f"  {ID}\n\n".encode(), ID),  # surrounding space and newlines do not count
    (ID.upper().encode(), None),  # an id is lower-case hex
    (ID[:-1].encode(), None),
    (f"{ID}0".encode(), None),
    (f"id: {ID}".encode(), None),
    (b"\xff\xfe" + ID.encode(), None),  # not UTF-8: not an id, and no error
    (ID.encode() + b"\n" * (1024 - len(ID)), ID),  # 1 KiB is the most canon reads
    (ID.encode() + b"\n" * (1025 - len(ID)), None),
    (b"", None),
]


@pytest.mark.parametrize("data, expected", INSTANCE_FILES)
def test_read_instance_file(tmp_path, data, expected):
    (tmp_path / INSTANCE_FILE).write_bytes(data)
    assert read_instance_file(tmp_path) == expected
    assert read_instance_file(str(tmp_path)) == expected


def test_read_instance_file_missing_or_not_a_file(tmp_path):
    assert read_instance_file(tmp_path) is None
    (tmp_path / INSTANCE_FILE).mkdir()
    assert read_instance_file(tmp_path) is None


def test_the_state_dirs_own_instance_file_is_never_rewritten(tmp_path):
    """state/instance-id is what `canon registry restore` checks a registry against: opening a
    registry of another id (a restored copy) must not overwrite it to agree."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        mine = reg.instance_id()
    (tmp_path / INSTANCE_FILE).write_text(f"{ID}\n")
    with Registry.open(db) as reg:
        assert reg.instance_id() == mine != ID
    assert (tmp_path / INSTANCE_FILE).read_text() == f"{ID}\n"


def test_only_canon_db_leaves_an_instance_file_beside_it(tmp_path):
    """A copy of a registry under another name (a backup, a restore's temp file) is not the
    state dir's registry: opening it writes no instance-id beside it."""
    for name in ("canon-20261127.db", "replaced.db"):
        with Registry.open(tmp_path / name) as reg:
            assert len(reg.instance_id()) == 32
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README",
        "canon-20261127.db",
        "replaced.db",
    ]
    with Registry.open(tmp_path / "canon.db") as reg:
        assert (tmp_path / INSTANCE_FILE).read_text() == reg.instance_id() + "\n"


@pytest.mark.parametrize("what", ["state dir", "registry file"])
def test_a_read_only_registry_without_its_instance_file_still_opens(tmp_path, what):
    """canon.db held open by another canon (its -wal and -shm exist, so SQLite can read it on
    a read-only mount) and no instance-id beside it: opening it needs no write.  In a
    read-only state dir canon cannot leave the id there, and that is no error; beside a
    read-only canon.db in a writable dir, the id it holds is left beside it."""
    db = tmp_path / "canon.db"
    holder = Registry.open(db)
    try:
        holder.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
        ident = holder.instance_id()
        (tmp_path / INSTANCE_FILE).unlink()
        with read_only(tmp_path if what == "state dir" else db), Registry.open(db) as reg:
            assert reg.instance_id() == ident
            assert reg.read_registry("gitea").commit == A
        if what == "state dir":
            assert not (tmp_path / INSTANCE_FILE).exists()
        else:
            assert read_instance_file(tmp_path) == ident
    finally:
        holder.close()


def test_an_id_the_registry_refuses_to_store_leaves_it_usable(tmp_path):
    """The id's insert fails inside its transaction (here a trigger refuses it): the open goes
    on without an id, the transaction is undone, and the registry takes writes; a later open,
    once the registry takes the row, gives it its id."""
    db = tmp_path / "canon.db"
    con = sqlite3.connect(db, isolation_level=None)
    for sql in MIGRATIONS:
        con.executescript(sql)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    con.execute(
        "CREATE TRIGGER no_id BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    con.close()
    with Registry.open(db) as reg:
        assert reg.instance_id() is None
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
        reg.start_run("r1", "sweep")
        assert reg.read_registry("gitea").commit == A and reg.verify_chain().ok
    assert not (tmp_path / INSTANCE_FILE).exists()
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("DROP TRIGGER no_id")
    con.close()
    with Registry.open(db) as reg:
        ident = reg.instance_id()
    assert len(ident) == 32 and read_instance_file(tmp_path) == ident


# -- what canon reads from a registry file it does not open as a registry --------------------


def _promotions(db):
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "v1.0.0+1", A, deployment="s1", run_id="r1")
        reg.record_promotion("nextcloud", "6.0.1+1", "6.0.1+1", B, now=NOW)
        reg.record_promotion("gitea", "1.1.0+1", "v1.1.0+1", B, deployment="s2", kind="rebuild")
        return reg.instance_id(), reg.history()


def test_read_file_facts_of_a_registry(tmp_path):
    db = tmp_path / "canon.db"
    ident, history = _promotions(db)
    assert [p.kind for p in history] == ["promote", "promote", "rebuild"]
    assert history[2].previous_version == "1.0.0+1" and history[2].deployment == "s2"
    before = db.read_bytes()
    assert read_file_facts(db) == (ident, history)
    assert read_file_facts(str(db)) == (ident, history)
    assert db.read_bytes() == before  # opened read-only


def test_read_file_facts_leaves_out_rows_whose_hash_does_not_check(tmp_path):
    db = tmp_path / "canon.db"
    ident, history = _promotions(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE promotions SET version = '9.9.9' WHERE id = 2")
    con.commit()
    con.close()
    assert read_file_facts(db) == (ident, [history[0], history[2]])


def _old_registry(db, version: int) -> list[Promotion]:
    """A registry as a canon of schema ``version`` left it (before 3: no promotion kind;
    before 4: no instance id; 4: the meta table, but no id in it yet), with two promotions
    hashed as that canon hashed them."""
    con = sqlite3.connect(db, isolation_level=None)
    for sql in MIGRATIONS[:version]:
        con.executescript(sql)
    con.execute(f"PRAGMA user_version = {version}")
    out, prev = [], "0" * 64
    for i, (v, commit, before) in enumerate([("1.0.0+1", A, None), ("1.1.0+1", B, "1.0.0+1")]):
        body = dict(
            id=i + 1,
            recipe="gitea",
            version=v,
            tag=v,
            commit=commit,
            deployment=f"slot-{i}",
            previous_version=before,
            previous_commit=A if before else None,
            promoted_at=NOW,
            run_id=f"r{i}",
            prev_hash=prev,
        )
        p = Promotion(**body, hash=promotion_hash(body))
        con.execute(
            "INSERT INTO promotions (id, recipe, version, tag, commit_sha, deployment,"
            " previous_version, previous_commit, promoted_at, run_id, prev_hash, hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (p.id, p.recipe, p.version, p.tag, p.commit, p.deployment, p.previous_version)
            + (p.previous_commit, p.promoted_at, p.run_id, p.prev_hash, p.hash),
        )
        out.append(p)
        prev = p.hash
    con.close()
    return out


@pytest.mark.parametrize("version", [1, 2, 4])
def test_read_file_facts_of_a_backup_made_before_kinds_and_ids(tmp_path, version):
    """A backup from an older canon is read as it is: never migrated, its rows are plain
    promotions whose hashes check, and it names no instance."""
    db = tmp_path / "old.db"
    promos = _old_registry(db, version)
    assert read_file_facts(db) == (None, promos)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == version
    con.close()


@pytest.mark.parametrize(
    "what",
    ["missing", "empty file", "not sqlite", "sqlite without tables", "a directory"],
)
def test_read_file_facts_of_what_is_no_registry(tmp_path, what):
    path = tmp_path / "x.db"
    if what == "empty file":
        path.write_bytes(b"")
    elif what == "not sqlite":
        path.write_bytes(b"this is not sqlite" * 100)
    elif what == "sqlite without tables":
        con = sqlite3.connect(path)
        con.execute("PRAGMA user_version = 7")
        con.close()
    elif what == "a directory":
        path.mkdir()
    assert read_file_facts(path) == (None, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if what == "missing" else ["x.db"])


# -- a backup copy ---------------------------------------------------------------------------


def test_backup_copies_what_is_still_in_the_wal_into_one_self_contained_file(tmp_path):
    db = tmp_path / "state" / "canon.db"
    reg = Registry.open(db)  # held open: its last commits are in canon.db-wal, not canon.db
    try:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
        reg.record_promotion("gitea", "1.1.0+1", "1.1.0+1", B, kind="rebuild")
        assert (tmp_path / "state" / "canon.db-wal").stat().st_size > 0
        dest = tmp_path / "backups" / "deep" / "canon-1.db"
        sqlite_backup(db, dest)
        facts = (reg.instance_id(), reg.history())
    finally:
        reg.close()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["canon-1.db"]
    con = sqlite3.connect(dest)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["canon-1.db"]
    assert read_file_facts(dest) == facts
    with Registry.open(dest, create=False) as copy:
        assert copy.verify_chain().ok and copy.read_registry("gitea").commit == B


def test_a_backup_replaces_an_older_one_of_the_same_name(tmp_path):
    db = tmp_path / "canon.db"
    dest = tmp_path / "backup.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
        sqlite_backup(db, dest)
        reg.record_promotion("gitea", "1.1.0+1", "1.1.0+1", B)
        sqlite_backup(db, dest)
        history = reg.history()
    assert [p.version for p in read_file_facts(dest)[1]] == [p.version for p in history]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "README",
        "backup.db",
        "canon.db",
        INSTANCE_FILE,
    ]


@pytest.mark.parametrize("what", ["missing", "not sqlite"])
def test_a_source_that_cannot_be_read_is_an_error_and_leaves_nothing(tmp_path, what):
    src = tmp_path / "canon.db"
    if what == "not sqlite":
        src.write_bytes(b"this is not sqlite" * 100)
    dest = tmp_path / "out" / "backup.db"
    with pytest.raises(sqlite3.DatabaseError):
        sqlite_backup(src, dest)
    assert list(dest.parent.iterdir()) == []
    assert src.exists() == (what != "missing")  # never created, never changed
    if what == "not sqlite":
        assert src.read_bytes() == b"this is not sqlite" * 100


# -- crashes -----------------------------------------------------------------------------------

CREATE_AND_DIE = textwrap.dedent("""
    import os, pathlib, signal, sys
    from canonlib.state import registry

    migrate = registry._migrate

    def migrate_then_die(conn, path):
        migrate(conn, path)  # the new registry is complete in its temp file, not yet in place
        os.kill(os.getpid(), signal.SIGKILL)

    registry._migrate = migrate_then_die
    registry.Registry.open(sys.argv[1])
""")


def test_a_crash_while_creating_the_registry_leaves_none_and_the_next_open_makes_it(tmp_path):
    """SIGKILL between building a new registry and linking it into place: no canon.db at
    all (never a half-made one), only a hidden temp file that says it is canon's; the next
    open makes the registry."""
    db = tmp_path / "canon.db"
    child = subprocess.run([sys.executable, "-c", CREATE_AND_DIE, str(db)])
    assert child.returncode == -signal.SIGKILL
    (left,) = [p.name for p in tmp_path.iterdir()]
    assert left.startswith(".canon-db-"), left
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
        assert reg.verify_chain().ok
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["README", "canon.db", INSTANCE_FILE, left])


PROMOTE = textwrap.dedent("""
    import sys
    from canonlib.state.registry import Registry

    with Registry.open(sys.argv[1]) as reg:
        reg.record_promotion("gitea", "1.1.0+1", "1.1.0+1", "b" * 40, run_id="new")
    print("promoted")
""")


def test_a_crash_at_the_registry_crash_point_keeps_the_old_canonical(tmp_path):
    """``CANON_CRASH_AT=registry:mid-record`` (canonlib/faults.py): canon SIGKILLs itself
    between the history row and the canonical row of one transaction; neither is kept."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A, run_id="old")
    env = {**os.environ, "CANON_CRASH_AT": "registry:mid-record"}
    child = subprocess.run(
        [sys.executable, "-c", PROMOTE, str(db)], env=env, capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL and child.stdout == ""
    with Registry.open(db) as reg:
        c = reg.read_registry("gitea")
        assert (c.version, c.commit, c.run_id) == ("1.0.0+1", A, "old")
        assert len(reg.history()) == 1 and reg.verify_chain().ok
    # the same promotion without the crash point goes through
    env.pop("CANON_CRASH_AT")
    child = subprocess.run(
        [sys.executable, "-c", PROMOTE, str(db)], env=env, capture_output=True, text=True
    )
    assert (child.returncode, child.stdout) == (0, "promoted\n")
    with Registry.open(db) as reg:
        assert reg.read_registry("gitea").run_id == "new" and len(reg.history()) == 2
