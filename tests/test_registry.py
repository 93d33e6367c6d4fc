"""registry.py on a real SQLite file, including a child process SIGKILLed mid-promotion."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from canonlib.registry import GENESIS, SCHEMA_VERSION, Registry, RegistryError

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
        assert row["rungs"] == {"install": "pass"} and row["incidents"] == ["tag moved: 1.0.0"]
        assert reg.run("20261127T000000Z-sweep")["status"] == "ok"


def test_not_a_database_is_a_clear_error(tmp_path):
    db = tmp_path / "canon.db"
    db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(RegistryError, match="not a usable canon registry"):
        Registry.open(db)


CHILD = textwrap.dedent("""
    import sys, time, pathlib
    from canonlib.registry import Registry

    class Paused(Registry):
        def _upsert_canonical(self, c, p):
            super()._upsert_canonical(c, p)
            pathlib.Path(sys.argv[2]).write_text("mid-transaction")  # both rows written, not committed
            time.sleep(60)

    reg = Paused.open(sys.argv[1])
    reg.record_promotion("nextcloud", "6.0.1+28.0.2-fpm", "6.0.1+28.0.2-fpm", "b" * 40, run_id="new")
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
