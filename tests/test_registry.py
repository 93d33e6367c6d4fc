"""registry.py on a real SQLite file, including a child process SIGKILLed mid-promotion."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canonlib.state import registry
from canonlib.state.registry import (
    GENESIS,
    RESULT_FIELDS,
    SCHEMA_VERSION,
    Canonical,
    Promotion,
    Registry,
    RegistryError,
    _create_atomically,
    promotion_hash,
    read_registry,
)
from canonlib.state.row import ResultRow

A, B = "a" * 40, "b" * 40


def test_empty_registry(tmp_path):
    with Registry.open(tmp_path / "state" / "canon.db") as reg:
        assert reg.read_registry("nextcloud") is None
        assert reg.chain_head() == GENESIS
        assert reg.verify_chain().ok
    assert (tmp_path / "state" / "README").exists()
    assert (
        sqlite3.connect(tmp_path / "state" / "canon.db")
        .execute("PRAGMA user_version")
        .fetchone()[0]
        == SCHEMA_VERSION
    )


def test_promotion_history_and_chain(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        p1 = reg.record_promotion(
            "nextcloud", "5.0.2+27.0.1-fpm", "5.0.2+27.0.1-fpm", A, run_id="r1"
        )
        p2 = reg.record_promotion(
            "nextcloud", "6.0.1+28.0.2-fpm", "6.0.1+28.0.2-fpm", B, run_id="r2"
        )
        reg.record_promotion("plausible", "3.0.1+v2.0.0", "3.0.1+v2.0.0", A)
        c = reg.read_registry("nextcloud")
        assert (c.version, c.commit, c.run_id) == ("6.0.1+28.0.2-fpm", B, "r2")
        assert [p.version for p in reg.history("nextcloud")] == [
            "5.0.2+27.0.1-fpm",
            "6.0.1+28.0.2-fpm",
        ]
        assert (p2.previous_version, p2.previous_commit) == ("5.0.2+27.0.1-fpm", A)
        assert p2.prev_hash == p1.hash and p1.prev_hash == GENESIS
        check = reg.verify_chain()
        assert check.ok and check.length == 3 and check.head == reg.chain_head()


def test_edited_history_row_is_named(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        for i, v in enumerate(["1.0.0+1", "1.1.0+1", "1.2.0+1"]):
            reg.record_promotion("gitea", v, v, str(i) * 40)
    con = sqlite3.connect(db)
    con.execute("UPDATE promotions SET commit_sha = ? WHERE id = 2", ("f" * 40,))
    con.commit()
    con.close()
    with Registry.open(db) as reg:
        check = reg.verify_chain()
    assert not check.ok
    assert any("promotions row 2" in p and "edited" in p for p in check.problems)


def test_edited_canonical_row_is_named(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
    con = sqlite3.connect(db)
    con.execute("UPDATE canonicals SET version = '9.9.9' WHERE recipe = 'gitea'")
    con.commit()
    con.close()
    with Registry.open(db) as reg:
        check = reg.verify_chain()
    assert not check.ok and "canonicals row gitea" in check.problems[0]


def test_runs_and_results_round_trip(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("20261127T000000Z-sweep", "sweep", fleet_path="/f", fleet_commit=A)
        reg.record_result(
            "20261127T000000Z-sweep",
            {
                "recipe": "gitea",
                "decision": "run",
                "label": "PASS (promoted)",
                "rungs": {"install": "pass"},
                "incidents": ["tag moved: 1.0.0"],
                "level": 1,
            },
        )
        reg.finish_run("20261127T000000Z-sweep", "ok")
        (row,) = reg.results("20261127T000000Z-sweep")
        assert row.rungs == {"install": "pass"} and row.incidents == ["tag moved: 1.0.0"]
        assert reg.run("20261127T000000Z-sweep")["status"] == "ok"


def test_not_a_database_is_a_clear_error(tmp_path):
    db = tmp_path / "canon.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="not a usable canon registry"):
        Registry.open(db)


CHILD = textwrap.dedent("""
    import sys, time, pathlib
    from canonlib.state.registry import Registry

    class Paused(Registry):
        def _upsert_canonical(self, c, p):
            super()._upsert_canonical(c, p)
            # both rows written, not committed
            pathlib.Path(sys.argv[2]).write_text("mid-transaction")
            time.sleep(60)

    reg = Paused.open(sys.argv[1])
    reg.record_promotion(
        "nextcloud",
        "6.0.1+28.0.2-fpm",
        "6.0.1+28.0.2-fpm",
        "b" * 40,
        run_id="new",
    )
""")


def test_sigkill_mid_promotion_keeps_old_canonical(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("nextcloud", "5.0.2+27.0.1-fpm", "5.0.2+27.0.1-fpm", A, run_id="old")
    flag = tmp_path / "flag"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(flag)])
    deadline = time.monotonic() + 30
    while not flag.exists():
        assert child.poll() is None, "child died before reaching the middle of the promotion"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    with Registry.open(db) as reg:
        c = reg.read_registry("nextcloud")
        assert (c.version, c.commit, c.run_id) == ("5.0.2+27.0.1-fpm", A, "old")
        assert len(reg.history("nextcloud")) == 1
        assert reg.verify_chain().ok
        # and the registry still takes the next promotion
        reg.record_promotion("nextcloud", "6.0.1+28.0.2-fpm", "6.0.1+28.0.2-fpm", B)
        assert reg.verify_chain().ok and reg.read_registry("nextcloud").commit == B


# -- what each reader gives back, field by field --------------------------------------------

NOW = "2026-11-27T03:00:00.000000Z"


def test_canonical_and_history_read_back_every_field(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.record_promotion(
            "gitea",
            "1.0.0+1",
            "v1.0.0+1",
            A,
            deployment="slot-1",
            run_id="r1",
            now="2026-11-20T03:00:00.000000Z",
        )
        p = reg.record_promotion(
            "gitea", "1.1.0+1", "v1.1.0+1", B, deployment="slot-2", run_id="r2", now=NOW
        )
        assert reg.read_registry("gitea") == Canonical(
            "gitea", "1.1.0+1", "v1.1.0+1", B, "slot-2", NOW, "r2"
        )
        assert (
            reg.history("gitea")[-1]
            == p
            == Promotion(
                2,
                "gitea",
                "1.1.0+1",
                "v1.1.0+1",
                B,
                "slot-2",
                "1.0.0+1",
                A,
                NOW,
                "r2",
                reg.history("gitea")[0].hash,
                p.hash,
            )
        )
    assert read_registry(tmp_path / "canon.db", "gitea").deployment == "slot-2"
    assert read_registry(tmp_path / "canon.db", "nextcloud") is None


def test_a_canonical_keeps_the_server_its_slot_lives_on(tmp_path):
    """Several servers: the canonical names its slot's server; a promotion that names none
    (one server) clears it.  The server is not part of the hashed history."""
    with Registry.open(tmp_path / "canon.db") as reg:
        p1 = reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A, now=NOW, server="s2")
        reg.record_promotion("nextcloud", "6.0.1+1", "6.0.1+1", B, now=NOW, server="s1")
        assert reg.read_registry("gitea") == Canonical(
            "gitea", "1.0.0+1", "1.0.0+1", A, None, NOW, None, "s2"
        )
        assert [(c.recipe, c.server) for c in reg.canonicals()] == [
            ("gitea", "s2"),
            ("nextcloud", "s1"),
        ]
        assert "server" not in p1.body() and reg.verify_chain().ok
        reg.record_promotion("gitea", "1.1.0+1", "1.1.0+1", B, now=NOW)
        assert [(c.recipe, c.server) for c in reg.canonicals()] == [
            ("gitea", None),
            ("nextcloud", "s1"),
        ]


def test_canonicals_by_recipe_and_history_across_recipes(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        for recipe in ["plausible", "gitea", "nextcloud", "gitea"]:
            reg.record_promotion(recipe, "1.0.0+1", "1.0.0+1", A)
        assert [c.recipe for c in reg.canonicals()] == ["gitea", "nextcloud", "plausible"]
        assert [(p.id, p.recipe) for p in reg.history()] == [
            (1, "plausible"),
            (2, "gitea"),
            (3, "nextcloud"),
            (4, "gitea"),
        ]
        assert [p.id for p in reg.history("gitea")] == [2, 4]
        assert reg.chain_head() == reg.history()[-1].hash


def test_promotion_time_defaults_to_utc_now(tmp_path, monkeypatch):
    # far from UTC, so a local-time stamp would be off by half a day
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    try:
        with Registry.open(tmp_path / "canon.db") as reg:
            p = reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
            reg.start_run("r1", "sweep")
            reg.finish_run("r1", "ok")
            run = reg.run("r1")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    for stamp in (p.promoted_at, run["started_at"], run["finished_at"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs(when - datetime.now(UTC)) < timedelta(hours=1)


# -- the hash chain -------------------------------------------------------------------------


def test_chain_hash_format_is_pinned():
    """A change of the JSON form would make every existing database fail its chain check."""
    body = dict(
        id=1,
        recipe="gitea",
        version="1.0.0+1",
        tag="1.0.0+1",
        commit=A,
        deployment=None,
        previous_version=None,
        previous_commit=None,
        promoted_at=NOW,
        run_id="r1",
        prev_hash=GENESIS,
    )
    blob = (
        '{"commit":"' + A + '","deployment":null,"id":1,"prev_hash":"' + GENESIS + '",'
        '"previous_commit":null,"previous_version":null,"promoted_at":"' + NOW + '",'
        '"recipe":"gitea","run_id":"r1","tag":"1.0.0+1","version":"1.0.0+1"}'
    )
    assert promotion_hash(body) == hashlib.sha256(blob.encode()).hexdigest()
    # non-ASCII text is escaped, so the hash does not depend on an encoding
    body["deployment"] = "slot-é"
    assert (
        promotion_hash(body)
        == hashlib.sha256(
            blob.replace('"deployment":null', '"deployment":"slot-\\u00e9"').encode()
        ).hexdigest()
    )
    # and a real promotion is hashed the same way
    with Registry.open(Path(tempfile.mkdtemp()) / "canon.db") as reg:
        p = reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A, run_id="r1", now=NOW)
    assert p.hash == hashlib.sha256(blob.encode()).hexdigest()


def _edit(db, sql, *args):
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


def test_broken_link_alone_is_named(tmp_path):
    """The last row re-hashed after its prev_hash was changed: only the link gives it away."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        for i, v in enumerate(["1.0.0+1", "1.1.0+1", "1.2.0+1"]):
            reg.record_promotion("gitea", v, v, str(i) * 40)
        row3 = reg.history()[2]
    forged = {**row3.body(), "prev_hash": "e" * 64}
    _edit(
        db,
        "UPDATE promotions SET prev_hash = ?, hash = ? WHERE id = 3",
        "e" * 64,
        promotion_hash(forged),
    )
    with Registry.open(db) as reg:
        check = reg.verify_chain()
    assert check.problems == ["promotions row 3 (gitea): prev_hash does not link to row before it"]
    assert not check.ok and check.length == 3


@pytest.mark.parametrize("orphan", ["canonical", "history"])
def test_canonical_and_history_must_match(tmp_path, orphan):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
    if orphan == "canonical":  # a canonical that no promotion made
        _edit(
            db,
            "INSERT INTO canonicals (recipe, version, tag, commit_sha, promoted_at)"
            " VALUES ('nextcloud', '6.0.1+1', '6.0.1+1', ?, ?)",
            B,
            NOW,
        )
        missing = "nextcloud"
    else:  # history whose canonical row was deleted
        _edit(db, "DELETE FROM canonicals WHERE recipe = 'gitea'")
        missing = "gitea"
    with Registry.open(db) as reg:
        check = reg.verify_chain()
    assert check.problems == [f"canonicals row {missing}: has no matching promotion history"]


def test_canonical_that_differs_from_its_promotion_names_both(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
    _edit(db, "UPDATE canonicals SET commit_sha = ? WHERE recipe = 'gitea'", B)
    with Registry.open(db) as reg:
        assert reg.verify_chain().problems == [
            "canonicals row gitea: 1.0.0+1@bbbbbbbbbbbb differs from its last promotion "
            "(row 1: 1.0.0+1@aaaaaaaaaaaa)"
        ]


# -- runs and results -----------------------------------------------------------------------

RUN_INFO = dict(
    code_version="0.1.0",
    code_commit=A,
    fleet_path="/srv/fleet",
    fleet_commit=B,
    config_hash="c" * 64,
)


def test_run_metadata_reads_back(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep", now="2026-11-27T03:00:00.000000Z", **RUN_INFO)
        assert reg.run("r1") == dict(
            run_id="r1",
            kind="sweep",
            started_at="2026-11-27T03:00:00.000000Z",
            finished_at=None,
            status="running",
            **RUN_INFO,
        )
        reg.finish_run("r1", "failed", now="2026-11-27T03:05:00.000000Z")
        assert (reg.run("r1")["status"], reg.run("r1")["finished_at"]) == (
            "failed",
            "2026-11-27T03:05:00.000000Z",
        )
        assert reg.run("missing") is None


def test_runs_listed_oldest_first_and_by_kind(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r-b", "sweep", now="2026-11-20T00:00:00.000000Z")
        reg.start_run("r-c", "evidence", now="2026-11-13T00:00:00.000000Z")
        reg.start_run("r-a", "sweep", now="2026-11-27T00:00:00.000000Z")
        reg.start_run("r-0", "sweep", now="2026-11-27T00:00:00.000000Z")  # same time: by id
        assert [r["run_id"] for r in reg.runs()] == ["r-c", "r-b", "r-0", "r-a"]
        assert [r["run_id"] for r in reg.runs("sweep")] == ["r-b", "r-0", "r-a"]
        assert reg.runs("missing") == []


FULL_RESULT = dict(
    recipe="gitea",
    decision="run",
    latest="1.1.0+1",
    canonical_before="1.0.0+1",
    canonical_after="1.1.0+1",
    tested_commit=B,
    upgrade_base_kind="canonical",
    upgrade_base="1.0.0+1",
    rungs={"install": "pass", "lint": "skip"},
    level=5,
    tests_executed=7,
    rc=0,
    gate=None,
    label="PASS (promoted)",
    incidents=[],
    warnings=["no release note for 1.1.0+1"],
    duration_s=12.5,
    log_path="logs/gitea.log",
    error=None,
)
# every other column (added by later migrations) reads back as written: text, but for these
LATER = {"host_access": [{"item": "bind:/x"}], "host_accepted": ["bind:/x"], "errno": 28}
FULL_RESULT |= {k: LATER.get(k, f"{k} text") for k in RESULT_FIELDS if k not in FULL_RESULT}


def test_result_rows_read_back_and_filter(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep", now="2026-11-20T00:00:00.000000Z")
        reg.start_run("r2", "sweep", now="2026-11-27T00:00:00.000000Z")
        reg.record_result("r2", FULL_RESULT)
        reg.record_result("r1", {**FULL_RESULT, "label": "FAIL (level 1/5)", "rc": 1})
        # a row that left its JSON fields out reads back None, not "null"
        reg.record_result(
            "r2", {"recipe": "plausible", "decision": "skip:held", "label": "SKIP (held)"}
        )
        (full,) = reg.results("r2", recipe="gitea")
        assert {k: full.to_dict()[k] for k in FULL_RESULT} == FULL_RESULT
        assert full.run_id == "r2"
        held = reg.results(recipe="plausible")[0]
        assert (held.rungs, held.incidents, held.level) == (None, None, None)
        assert [(r.run_id, r.label) for r in reg.results(recipe="gitea")] == [
            ("r1", "FAIL (level 1/5)"),
            ("r2", "PASS (promoted)"),
        ]
        assert [r.recipe for r in reg.results("r2")] == ["gitea", "plausible"]
        assert len(reg.results()) == 3
        assert reg.results(recipe="nextcloud") == []


# -- opening --------------------------------------------------------------------------------


def test_open_makes_missing_directories_and_keeps_its_path(tmp_path):
    db = tmp_path / "var" / "lib" / "canon" / "canon.db"
    with Registry.open(str(db)) as reg:
        assert reg.path == db
    assert (db.parent / "README").read_text().startswith("This directory is canon's state")
    assert sorted(p.name for p in db.parent.iterdir()) == ["README", "canon.db", "instance-id"]


def test_db_is_built_beside_its_place_not_in_tmpdir(tmp_path, monkeypatch):
    # an unusable TMPDIR must not matter: the db is made in its own directory, then linked
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmpdir"))
    with Registry.open(tmp_path / "state" / "canon.db") as reg:
        assert reg.verify_chain().ok


def test_a_db_made_first_by_another_process_is_kept(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
    (tmp_path / "README").write_text("kept")
    _create_atomically(db)  # lost the race: the other process's db stays, no error
    assert read_registry(db, "gitea").commit == A
    assert (tmp_path / "README").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".canon-db")) == []


def test_newer_schema_is_refused_with_what_to_do(tmp_path):
    db = tmp_path / "canon.db"
    Registry.open(db).close()
    _edit(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError) as e:
        Registry.open(db)
    assert str(e.value) == (
        f"{db}: schema version {SCHEMA_VERSION + 1} is newer than this canon "
        f"({SCHEMA_VERSION}); upgrade canon"
    )


def test_not_a_database_says_what_to_do(tmp_path):
    db = tmp_path / "canon.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError) as e:
        Registry.open(db)
    assert str(e.value).startswith(f"{db}: not a usable canon registry (")
    assert str(e.value).endswith("); move it aside and re-run, or restore it from a backup")


def test_a_failing_migration_leaves_the_old_schema(tmp_path, monkeypatch):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
    bad = "CREATE TABLE half_done (x INTEGER); CREATE TABLE canonicals (x INTEGER)"
    monkeypatch.setattr(registry, "MIGRATIONS", [*registry.MIGRATIONS, bad])
    monkeypatch.setattr(registry, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RegistryError) as e:
        Registry.open(db)
    # the message carries the migration's own error, not one from undoing it
    assert "not a usable canon registry (table canonicals already exists)" in str(e.value)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "half_done" not in tables
    con.close()


def test_registry_opened_in_one_thread_serves_another(tmp_path):
    # the sweep's workers hand a registry to a thread and close it there
    reg = Registry.open(tmp_path / "canon.db")
    out, errors = [], []

    def work():
        try:
            out.append(reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A).id)
            reg.close()
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert errors == [] and out == [1]


def test_a_rebuild_promotion_keeps_its_kind_in_the_chain(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        p1 = reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A, now=NOW)
        p2 = reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A, now=NOW, kind="rebuild")
        assert [p.kind for p in reg.history()] == ["promote", "rebuild"] == [p1.kind, p2.kind]
        assert reg.history()[-1] == p2
        assert reg.verify_chain().ok
        # the kind is hashed: the same row as a plain promotion would hash differently
        assert p2.hash != promotion_hash({k: v for k, v in p2.body().items() if k != "kind"})


def test_open_without_create_refuses_a_missing_registry(tmp_path):
    db = tmp_path / "state" / "canon.db"
    with pytest.raises(RegistryError) as e:
        Registry.open(db, create=False)
    assert str(e.value) == f"{db}: no registry here"
    assert not db.exists()


# -- faults under the registry: damage, a wrong-shaped state dir, a writer holding the lock ------


def _damaged_registry(tmp_path):
    """A registry with history, runs and results whose pages (all but the header) are scribbled
    over on disk: what a torn write or a bad disk leaves.  It still opens (the header is fine)."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        for i in range(20):
            reg.record_promotion(f"r{i}", "1.0.0+1", "1.0.0+1", A, run_id="r1")
        reg.start_run("r1", "sweep")
        for i in range(20):
            reg.record_result("r1", {"recipe": f"r{i}", "label": "SKIP (held)" * 20})
        reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = reg._conn.execute("PRAGMA page_size").fetchone()[0]
        n = reg._conn.execute("PRAGMA page_count").fetchone()[0]
    with open(db, "r+b") as f:
        f.seek(page)
        f.write(os.urandom(page * (n - 1)))
    return db


CALLS = {
    "instance_id": (),
    "read_registry": ("r1",),
    "canonicals": (),
    "history": (),
    "chain_head": (),
    "verify_chain": (),
    "run": ("r1",),
    "runs": (),
    "results": (),
    "quick_check": (),
    "abandon_running": (),
    "finish_run": ("r1", "ok"),
    "start_run": ("r2", "sweep"),
    "record_result": ("r1", {"recipe": "x"}),
    "record_promotion": ("x", "1.0.0+1", "1.0.0+1", B),
}


@pytest.mark.parametrize("method", sorted(CALLS))
def test_damaged_pages_are_one_clear_error_naming_the_file(tmp_path, method):
    db = _damaged_registry(tmp_path)
    with Registry.open(db) as reg, pytest.raises(RegistryError) as e:
        getattr(reg, method)(*CALLS[method])
    assert str(e.value) == (
        f"{db}: the registry is damaged (database disk image is malformed); restore a backup "
        "with `canon registry restore FILE` or recreate it with `canon registry rebuild`"
    )
    assert e.value.exit_code == 2 and e.value.__suppress_context__


def test_quick_check_of_a_sound_and_of_a_broken_registry(tmp_path):
    """Rows that break a NOT NULL rule (written by something that dropped it from the schema)
    are what SQLite's quick_check reports; canon shows the first three complaints."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        for i in range(5):
            reg.record_promotion(f"r{i}", "1.0.0+1", "1.0.0+1", A)
        assert reg.quick_check() is None
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA writable_schema=ON")
    schema = "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE name = 'canonicals'"
    con.execute(schema, ("version TEXT NOT NULL", "version TEXT"))
    con.close()
    _edit(db, "UPDATE canonicals SET version = NULL")
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA writable_schema=ON")
    con.execute(schema, ("version TEXT,", "version TEXT NOT NULL,"))
    con.close()
    with Registry.open(db) as reg:
        assert reg.quick_check() == "; ".join(["NULL value in canonicals.version"] * 3)


def test_runs_left_running_by_a_dead_canon_are_abandoned(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep", now="2026-11-20T00:00:00.000000Z")
        reg.start_run("r2", "evidence", now="2026-11-20T00:01:00.000000Z")
        reg.start_run("r3", "sweep", now="2026-11-20T00:02:00.000000Z")
        reg.finish_run("r2", "ok", now="2026-11-20T00:03:00.000000Z")
        assert reg.abandon_running(now="2026-11-27T00:00:00.000000Z") == ["r1", "r3"]
        assert [(r["run_id"], r["status"], r["finished_at"]) for r in reg.runs()] == [
            ("r1", "abandoned", "2026-11-27T00:00:00.000000Z"),
            ("r2", "ok", "2026-11-20T00:03:00.000000Z"),
            ("r3", "abandoned", "2026-11-27T00:00:00.000000Z"),
        ]
        assert reg.abandon_running() == []


def test_abandoned_without_a_time_is_stamped_now(tmp_path):
    with Registry.open(tmp_path / "canon.db") as reg:
        reg.start_run("r1", "sweep", now="2026-11-20T00:00:00.000000Z")
        before = registry.utcnow()
        assert reg.abandon_running() == ["r1"]
        stamped = reg.run("r1")["finished_at"]
        assert before <= stamped <= registry.utcnow()


def test_result_row_written_without_json_fields_reads_back_none(tmp_path):
    """A row written by an older canon (before a JSON column existed) holds SQL NULL there."""
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.start_run("r1", "sweep")
    _edit(db, "INSERT INTO results (run_id, recipe, label) VALUES ('r1', 'gitea', 'SKIP (held)')")
    with Registry.open(db) as reg:
        (row,) = reg.results("r1")
        assert (row.rungs, row.incidents, row.warnings) == (None, None, None)


def test_a_directory_where_the_wal_file_belongs_is_a_state_problem(tmp_path):
    from canonlib.errors import StateError

    db = tmp_path / "canon.db"
    Registry.open(db).close()
    (tmp_path / "canon.db-wal").mkdir()
    with pytest.raises(StateError) as e:
        Registry.open(db)
    assert str(e.value) == (
        f"registry {db}: unable to open database file; make {tmp_path} and its files writable "
        "for this user, or point state_dir / $CANON_STATE at a writable directory"
    )


def test_a_writer_waits_for_another_writers_lock(tmp_path):
    """Two canons writing at once (a sweep and `canon registry`): the second waits for the
    first's transaction -- longer than SQLite's default 5 s -- instead of failing."""
    db = tmp_path / "canon.db"
    Registry.open(db).close()
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO runs (run_id, kind, started_at, status) VALUES ('x', 'sweep', 't', 'ok')"
    )
    release = threading.Timer(6.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        with Registry.open(db) as reg:
            reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", A)
            assert [r["run_id"] for r in reg.runs()] == ["x"]  # it waited for the other commit
            assert reg.read_registry("gitea").version == "1.0.0+1"
    finally:
        release.join()
        other.close()


def test_a_stored_row_of_the_wrong_type_is_one_registry_error(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        reg.start_run("r1", "sweep")
        reg.record_result("r1", ResultRow("gitea", label="FAIL (level 1/5)", level=1))
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE results SET level = 'one'")
    conn.close()
    with Registry.open(db) as reg, pytest.raises(RegistryError) as e:
        reg.results()
    assert str(e.value).startswith(f"{db}: result of run r1, recipe 'gitea': row: level: str")
    assert str(e.value).endswith(
        "; restore a backup with `canon registry restore FILE` or recreate it with "
        "`canon registry rebuild`"
    )
