"""A registry knows which canon instance it belongs to (issue 29, part 4).

The id is made with the registry (a ``meta`` row, and ``state/instance-id``); a registry
made before ids gets one silently on its next open.  ``canon registry restore`` refuses
another instance's backup by name, a backup naming slots that do not exist here (with
the list), and every message names the file the operator gave.  Real SQLite files, the
real CLI on a real swept workspace.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from canonlib.state.registry import INSTANCE_FILE, MIGRATIONS, Registry, read_instance_file
from tests.test_canonical_safety import canon, precious, ws  # noqa: F401


def test_a_new_registry_has_an_instance_id_kept_in_the_state_dir_too(tmp_path):
    db = tmp_path / "canon.db"
    with Registry.open(db) as reg:
        ident = reg.instance_id()
    assert ident and len(ident) == 32
    assert (tmp_path / INSTANCE_FILE).read_text().strip() == ident == read_instance_file(tmp_path)
    with Registry.open(db) as reg:  # stable across opens
        assert reg.instance_id() == ident


def test_a_registry_made_before_ids_gets_one_silently_on_first_open(tmp_path):
    db = tmp_path / "canon.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for sql in MIGRATIONS[:3]:  # the schema of a canon before instance ids
        conn.executescript(sql)
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    script = (
        "from canonlib.state.registry import Registry\n"
        f"r = Registry.open({str(db)!r}); print(r.instance_id()); r.close()\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    ident = r.stdout.strip()
    assert len(ident) == 32 and r.stderr == ""
    assert read_instance_file(tmp_path) == ident


def test_a_registry_rebuilt_in_a_state_dir_keeps_the_state_dirs_id(tmp_path):
    (tmp_path / INSTANCE_FILE).write_text("0123456789abcdef0123456789abcdef\n")
    with Registry.open(tmp_path / "canon.db") as reg:
        assert reg.instance_id() == "0123456789abcdef0123456789abcdef"


def _set(db, sql: str, *args) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(sql, args)
    conn.close()


def test_restore_refuses_another_instances_backup_by_name(ws):  # noqa: F811
    before = precious(ws)
    other = ws.root / "sibling-backup.db"
    assert canon(ws.root, "registry", "backup", str(other)).returncode == 0
    _set(other, "UPDATE meta SET value = ? WHERE key = 'instance_id'", "f" * 32)
    r = canon(ws.root, "registry", "restore", str(other))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{other} is the registry of another canon instance ({'f' * 32})" in r.stderr
    assert ".restore-" not in r.stderr and "Traceback" not in r.stderr
    assert precious(ws) == before


def test_restore_refuses_a_backup_naming_slots_that_do_not_exist_here(ws):  # noqa: F811
    other = ws.root / "forked.db"
    assert canon(ws.root, "registry", "backup", str(other)).returncode == 0
    _set(other, "UPDATE canonicals SET deployment = 'warm-nextcloud-elsewhere'")
    _set(other, "UPDATE meta SET value = ? WHERE key = 'instance_id'", "")
    _set(other, "DELETE FROM meta")  # a forked state dir: no id to tell it by
    r = canon(ws.root, "registry", "restore", str(other))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{other} names canonical slot(s) that do not exist here" in r.stderr, r.stderr
    assert "warm-nextcloud-elsewhere" in r.stderr


def test_restore_of_a_backup_with_a_flipped_page_names_the_operators_file(ws):  # noqa: F811
    good = ws.root / "good.db"
    assert canon(ws.root, "registry", "backup", str(good)).returncode == 0
    conn = sqlite3.connect(good)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'promotions'").fetchone()
    conn.close()
    with open(good, "r+b") as f:  # the promotions table's page scribbled: a bad sector
        f.seek(page * (root[0] - 1))
        f.write(b"\xa5" * page)
    r = canon(ws.root, "registry", "restore", str(good))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert str(good) in r.stderr and ".restore-" not in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
