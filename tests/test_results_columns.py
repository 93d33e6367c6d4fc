"""Registry migration 2: result rows carry reason, verdict and the known-red key.

A registry written by the first schema (real SQLite, built with that schema's own
SQL) is upgraded in place: its rows survive, new rows carry the new columns."""

from __future__ import annotations

import sqlite3

from canonlib.state.registry import MIGRATIONS, RESULT_FIELDS, SCHEMA_VERSION, Registry

NEW = ("reason", "verdict", "tag_commit", "fleet_tests", "harness", "known_red_run")


def test_a_version_1_registry_is_upgraded_with_its_rows(tmp_path):
    db = tmp_path / "canon.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (run_id, kind, started_at, status) VALUES ('r1', 'sweep', 't', 'ok')"
    )
    conn.execute(
        "INSERT INTO results (run_id, recipe, label, warnings) "
        "VALUES ('r1', 'gitea', 'FAIL (level 4/5)', '[]')"
    )
    conn.close()
    with Registry.open(db) as reg:
        (old,) = reg.results("r1")
        assert old.label == "FAIL (level 4/5)" and all(getattr(old, k) is None for k in NEW)
        reg.start_run("r2", "sweep")
        row = {k: None for k in RESULT_FIELDS} | {
            "recipe": "gitea",
            "label": "SKIP (known-red)",
            "decision": "skip:known-red",
            "reason": "red in run r1: L5 lint: x",
            "verdict": None,
            "tag_commit": "c" * 40,
            "fleet_tests": "sha256:abc",
            "harness": "canon 0.1.0; canon harness",
            "known_red_run": "r1",
            "warnings": ["no release note"],
        }
        reg.record_result("r2", row)
        (new,) = reg.results("r2")
    assert {k: getattr(new, k) for k in NEW} == {k: row[k] for k in NEW}
    assert new.warnings == ["no release note"]
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
