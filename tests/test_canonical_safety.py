"""canon never destroys a canonical: slot markers, a registry that knows when it is behind.

Real git upstreams, the real harness in child processes, the real local
backend, real SQLite files.  Faults are injected for real: the registry file
deleted, truncated, replaced by an older copy or with damaged pages; a sweep
SIGKILLed mid-promote.  Every canonical slot holds a data file that must
survive all of it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canonlib.backends import BackendError
from canonlib.backends.local import LocalBackend
from canonlib.state.marker import CANONICAL, COLD, NEXT, SlotMarker
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests.cli import canon
from tests.gitrepo import Upstream
from tests.workspace import META, Workspace

PRECIOUS = "precious.txt"


@pytest.fixture
def ws(swept, tmp_path):
    """A private copy of the swept workspace (tests/conftest.py: two recipes swept once, built
    once per session), its own upstreams included."""
    root = tmp_path / "ws"
    shutil.copytree(swept.root, root, symlinks=True)
    toml = root / "canon.toml"
    toml.write_text(toml.read_text().replace(str(swept.root), str(root)))
    w = Workspace.__new__(Workspace)
    w.root, w.fleet = root, root / "fleet"
    w.upstreams = {name: Upstream(root / "upstream" / name) for name in swept.upstreams}
    with Registry.open(w.config.db_path) as reg:
        for c in reg.canonicals():
            (w.config.slots_dir / c.deployment / "data" / PRECIOUS).write_text(f"{c.recipe} data\n")
    return w


def precious(ws) -> dict[str, str]:
    """Every data file of the operator's still in a slot: slot -> content."""
    return {
        p.parent.parent.name: p.read_text() for p in ws.config.slots_dir.glob(f"*/data/{PRECIOUS}")
    }


def rows_of(r: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {row["recipe"]: row["label"] for row in json.loads(r.stdout)}


# -- slot identity -----------------------------------------------------------------------


def test_slots_are_unique_and_marked_and_a_canonical_cannot_be_torn_down(ws):
    backend = LocalBackend(ws.config.slots_dir)
    markers = backend.markers()
    with Registry.open(ws.config.db_path) as reg:
        canon = {c.recipe: c for c in reg.canonicals()}
        history = {p.recipe: p for p in reg.history()}
    assert {m.recipe for m in markers.values()} == {"custom-html", "nextcloud"}
    for slot, m in markers.items():
        c = canon[m.recipe]
        assert slot == c.deployment and slot.startswith(f"warm-{m.recipe}-")
        assert (m.role, m.version, m.commit) == (CANONICAL, c.version, c.commit)
        assert (m.promotion_id, m.promotion_hash) == (history[m.recipe].id, history[m.recipe].hash)
        assert m.run_id == c.run_id
        on_disk = json.loads((ws.config.slots_dir / slot / "canon-slot.json").read_text())
        assert on_disk["role"] == "canonical"
        with pytest.raises(BackendError, match="canonical marker"):
            backend.teardown(slot)
    assert len(precious(ws)) == 2  # nothing was torn down
    # the cold slots the harness used are gone, markers and directories both
    assert all(m.role == CANONICAL for m in markers.values())
    assert sorted(p.name for p in ws.config.slots_dir.iterdir()) == sorted(markers)


def test_marker_round_trips_through_labels():
    m = SlotMarker(
        slot="warm-x-0a1b2c3d",
        recipe="x",
        role=NEXT,
        version="1.0.0",
        commit="a" * 40,
        run_id="r",
        promotion_id=7,
        promotion_hash="f" * 64,
    )
    assert SlotMarker.from_labels(m.labels()) == m
    assert m.labels()["canon.role"] == "next" and "canon.previous_slot" not in m.labels()
    assert SlotMarker.from_labels({"other": "x"}) is None
    with pytest.raises(ValueError, match="role"):
        SlotMarker(slot="s", recipe="x", role="warm", version="1", commit="a")


def test_a_new_promotion_retires_only_the_marked_previous_canonical(ws):
    backend = LocalBackend(ws.config.slots_dir)
    with Registry.open(ws.config.db_path) as reg:
        old = reg.read_registry("nextcloud").deployment
    # a stranger's slot that is named like canon's would name it: never touched
    stranger = ws.config.slots_dir / "warm-nextcloud-2" / "data"
    stranger.mkdir(parents=True)
    (stranger / PRECIOUS).write_text("not canon's\n")
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    result = sweep(ws.config)
    assert {r.recipe: r.label for r in result.results}["nextcloud"] == "PASS (promoted)"
    with Registry.open(ws.config.db_path) as reg:
        new = reg.read_registry("nextcloud").deployment
    assert new != old and new.startswith("warm-nextcloud-") and new != "warm-nextcloud-2"
    assert not (ws.config.slots_dir / old).exists()  # retired: its marker said previous canonical
    assert backend.markers()[new].role == CANONICAL and backend.markers()[new].previous_slot == old
    assert (stranger / PRECIOUS).read_text() == "not canon's\n"


# -- a registry that knows when it is behind --------------------------------------------------


def _refuses(ws, before: dict[str, str], *needles: str) -> str:
    r = canon(ws.root, "sweep")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    for needle in (
        "behind the deployed canonicals",
        "canon registry restore",
        "canon registry rebuild",
        *needles,
    ):
        assert needle in r.stderr, r.stderr
    assert precious(ws) == before
    return r.stderr


def _noop(ws, before: dict[str, str]) -> None:
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 0, r.stderr
    assert set(rows_of(r).values()) == {"SKIP (no-new-version)"}, r.stdout
    assert precious(ws) == before
    with Registry.open(ws.config.db_path) as reg:
        assert reg.verify_chain().ok


def test_deleted_registry_refuses_then_rebuild_makes_the_next_sweep_a_noop(ws):
    before = precious(ws)
    db = ws.config.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    err = _refuses(ws, before, "the registry file is missing", "2 canonical(s) are deployed")
    assert not db.exists(), "a refused sweep must not recreate the registry"
    st = canon(ws.root, "status", "--json")
    assert st.returncode == 0 and "registry is behind" in st.stderr and not db.exists()
    shown = {row["recipe"]: row for row in json.loads(st.stdout)}
    assert shown["nextcloud"]["canonical"] == "6.0.1+28.0.2-fpm"
    assert (
        shown["nextcloud"]["source"].startswith("slot marker")
        and shown["nextcloud"]["age_days"] == 0.0
    )
    ev = canon(ws.root, "evidence", "run", "weekly")
    assert ev.returncode == 2 and "refusing to run the weekly evidence suite" in ev.stderr, (
        ev.stderr
    )
    assert not db.exists()
    r = canon(ws.root, "registry", "rebuild")
    assert r.returncode == 0, r.stderr
    assert "custom-html: canonical 1.7.1+1.27.2" in r.stdout and "rebuild" in r.stdout, r.stdout
    with Registry.open(db) as reg:
        assert {p.kind for p in reg.history()} == {"rebuild"}
        assert sorted(c.deployment for c in reg.canonicals()) == sorted(before)
    _noop(ws, before)
    assert err.count("\n") >= 2


def test_truncated_registry_refuses_then_restore_of_a_backup_makes_the_next_sweep_a_noop(ws):
    before = precious(ws)
    r = canon(ws.root, "registry", "backup", str(ws.root / "good.db"))
    assert r.returncode == 0, r.stderr
    db = ws.config.db_path
    with Registry.open(db) as reg:  # make sure the WAL is in the file, then cut the file
        reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.write_bytes(b"")
    _refuses(ws, before, "empty (0 bytes)")
    assert db.stat().st_size == 0
    r = canon(ws.root, "registry", "restore", str(ws.root / "good.db"))
    assert r.returncode == 0, r.stderr
    assert "chain checks" in r.stdout and "kept as" in r.stdout
    _noop(ws, before)
    # the sweep kept an automatic backup before it wrote
    assert list((ws.config.state_dir / "backups").glob("canon-*.db"))


def test_rolled_back_registry_refuses_restore_of_it_refuses_rebuild_from_it_works(ws):
    db = ws.config.db_path
    old = ws.root / "old.db"
    assert canon(ws.root, "registry", "backup", str(old)).returncode == 0
    ws.release("custom-html", "1.10.0+1.29.0")
    r = canon(ws.root, "sweep", "--json")
    assert rows_of(r)["custom-html"] == "PASS (promoted)", r.stdout
    before = precious(ws)
    with Registry.open(db) as reg:
        live = reg.read_registry("custom-html").deployment
    (ws.config.slots_dir / live / "data" / PRECIOUS).write_text("custom-html new data\n")
    before = precious(ws)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(old, db)  # the operator "restores" last week's copy by hand
    err = _refuses(ws, before, "custom-html: slot", "which the registry does not hold")
    assert (
        "nextcloud: slot" not in err
    )  # the registry still names nextcloud's slot: not behind there
    r = canon(ws.root, "registry", "restore", str(old))
    assert r.returncode == 2 and "behind the deployed canonicals too" in r.stderr, r.stderr
    r = canon(ws.root, "registry", "rebuild", "--from", str(old))
    assert r.returncode == 0, r.stderr
    with Registry.open(db) as reg:
        c = reg.read_registry("custom-html")
        assert (c.version, c.deployment) == ("1.10.0+1.29.0", live)
        assert [p.kind for p in reg.history()] == ["promote", "promote", "rebuild"]
        assert len(reg.runs()) >= 1  # the history of the copy it started from is kept
    _noop(ws, before)


def test_damaged_pages_give_clear_errors_not_tracebacks(ws):
    before = precious(ws)
    db = ws.config.db_path
    with Registry.open(db) as reg:
        reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = reg._conn.execute("PRAGMA page_size").fetchone()[0]
        n = reg._conn.execute("PRAGMA page_count").fetchone()[0]
    assert n > 3
    with open(db, "r+b") as f:  # scribble over every page but the header page
        f.seek(page)
        f.write(os.urandom(page * (n - 1)))
    for args in (["history", "nextcloud"], ["sweep"]):
        r = canon(ws.root, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and str(db) in r.stderr, r.stderr
    assert precious(ws) == before
    r = canon(ws.root, "registry", "rebuild")
    assert r.returncode == 0 and "started from an empty registry" in r.stdout, r.stderr
    _noop(ws, before)


# -- crash leftovers ---------------------------------------------------------------------------


def wait_for(find, proc: subprocess.Popen, limit: float = 180) -> None:
    """Until ``find()`` gives a file with something in it, while ``proc`` runs."""
    end = time.monotonic() + limit
    while not (path := find()) or not path.read_text().strip():  # created before it is written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out waiting for the marker"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_promote_next_sweep_marks_abandoned_reaps_and_completes(ws, tmp_path):
    before = precious(ws)
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    # the step runs in the box: it can write only its own slot, and dies with canon
    meta = ws.fleet / "tests" / "nextcloud" / "recipe_meta.py"
    meta.write_text(
        META + "INSTALL_STEPS = ['echo seeded > \"$CANON_DATA_DIR/seed.txt\"', "
        '\'case "$CANON_SLOT" in warm-*) test -n "$GO" || '
        "{ echo here > $CANON_SLOT_DIR/promote-mark; exec sleep 60; };; esac']\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canonlib",
            "--config",
            str(ws.root / "canon.toml"),
            "sweep",
            "--recipe",
            "nextcloud",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: next(ws.config.slots_dir.glob("warm-*/promote-mark"), None), proc)
    proc.kill()
    proc.wait()
    backend = LocalBackend(ws.config.slots_dir)
    (half,) = [s for s, m in backend.markers().items() if m.role == NEXT]
    assert half.startswith("warm-nextcloud-")
    r = canon(ws.root, "sweep", "--json", "--recipe", "nextcloud", env={**os.environ, "GO": "1"})
    assert r.returncode == 0, r.stderr
    assert "left running by a canon that died: marked abandoned" in r.stderr
    assert f"reaped slot {half} (next nextcloud 6.0.2+28.0.3-fpm" in r.stderr, r.stderr
    assert rows_of(r) == {"nextcloud": "PASS (promoted)"}
    with Registry.open(ws.config.db_path) as reg:
        statuses = [x["status"] for x in reg.runs("sweep")]
        assert statuses.count("abandoned") == 1
        live = {c.deployment for c in reg.canonicals()}
    assert set(backend.slots()) == live and half not in live
    assert not [m for m in backend.markers().values() if m.role in (NEXT, COLD)]
    # the custom-html canonical and its data were never touched
    assert {s: t for s, t in precious(ws).items() if "custom-html" in s} == {
        s: t for s, t in before.items() if "custom-html" in s
    }


def test_promote_recorded_then_died_is_finished_not_reaped(ws):
    """The crash window between the record and the canonical marker: the registry is ahead."""
    backend = LocalBackend(ws.config.slots_dir)
    with Registry.open(ws.config.db_path) as reg:
        c = reg.read_registry("nextcloud")
    m = backend.markers()[c.deployment]
    backend.mark(
        c.deployment, m.as_role(NEXT, promotion_id=None, promotion_hash=None, run_id="dead")
    )
    before = precious(ws)
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 0, r.stderr
    assert f"slot {c.deployment} marked canonical" in r.stderr
    assert backend.markers()[c.deployment].role == CANONICAL
    assert precious(ws) == before


def test_cold_slot_of_a_dead_run_is_reaped_but_an_unmarked_dir_is_not(ws):
    backend = LocalBackend(ws.config.slots_dir)
    cold = "cold-nextcloud-deadbeef"
    backend.mark(
        cold,
        SlotMarker(
            slot=cold,
            recipe="nextcloud",
            role=COLD,
            version="6.0.1+28.0.2-fpm",
            commit="a" * 40,
            run_id="20000101T000000Z-sweep-dead",
        ),
    )
    (ws.config.slots_dir / "someone-elses").mkdir()
    r = canon(ws.root, "sweep")
    assert r.returncode == 0, r.stderr
    assert f"reaped slot {cold} (cold nextcloud" in r.stderr
    assert (
        not (ws.config.slots_dir / cold).exists()
        and (ws.config.slots_dir / "someone-elses").is_dir()
    )


def test_registry_backup_uses_the_online_api_and_keeps_the_last_five(ws):
    db = ws.config.db_path
    for _ in range(7):
        assert canon(ws.root, "sweep").returncode == 0
    backups = sorted((ws.config.state_dir / "backups").glob("canon-*.db"))
    assert len(backups) == 5
    r = canon(ws.root, "registry", "restore", str(backups[-1]))
    assert r.returncode == 0, r.stderr
    # each backup is one self-contained file: restoring one leaves no -wal/-shm beside it
    assert sorted(p.name for p in backups[-1].parent.glob("canon-*")) == [p.name for p in backups]
    with sqlite3.connect(backups[-1]) as c:
        assert c.execute("SELECT COUNT(*) FROM canonicals").fetchone()[0] == 2
    assert db.exists()


def test_a_backup_holds_what_is_still_in_the_wal(ws, tmp_path):
    """A write another connection made and SQLite has not checkpointed yet lives only in
    canon.db-wal: a copy of canon.db would miss it, the online backup must not."""
    db = ws.config.db_path
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with writer:
            writer.execute("CREATE TABLE probe (x TEXT)")
            writer.execute("INSERT INTO probe VALUES ('only in the wal')")
        assert Path(f"{db}-wal").stat().st_size > 0
        out = tmp_path / "backup.db"
        r = canon(ws.root, "registry", "backup", str(out))
        assert r.returncode == 0, r.stderr
    finally:
        writer.close()
    with sqlite3.connect(out) as c:
        assert c.execute("SELECT x FROM probe").fetchall() == [("only in the wal",)]


# -- canonical incidents -----------------------------------------------------------------------


def test_canonical_tag_deleted_upstream_is_loud_until_held_or_replaced(ws):
    ws.upstreams["custom-html"].delete_tag("1.7.1+1.27.2")
    for _ in range(2):  # not only the sweep that saw it go: every sweep until acknowledged
        r = canon(ws.root, "sweep")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "INCIDENT custom-html: canonical 1.7.1+1.27.2" in r.stdout
        assert "its tag was deleted upstream; the sweep exits 1 until you set HOLD" in r.stdout
        assert "INCIDENT nextcloud" not in r.stdout
    st = canon(ws.root, "status", "--json")
    by = {row["recipe"]: row for row in json.loads(st.stdout)}
    assert "its tag was deleted upstream" in by["custom-html"]["incident"]
    assert by["nextcloud"]["incident"] is None
    meta = ws.fleet / "tests" / "custom-html" / "recipe_meta.py"
    plain = meta.read_text()
    meta.write_text(plain + 'HOLD = "1.7.1 tag deleted upstream; asked the maintainers"\n')
    r = canon(ws.root, "sweep")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "acknowledged by its HOLD" in r.stdout
    assert "INCIDENT custom-html" in r.stdout  # still shown


def test_canonical_tag_moved_upstream_is_an_incident_until_a_new_release_is_promoted(ws):
    up = ws.upstreams["nextcloud"]
    up.commit()
    up.tag("6.0.1+28.0.2-fpm", force=True)
    for _ in range(2):
        r = canon(ws.root, "sweep")
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "INCIDENT nextcloud: canonical 6.0.1+28.0.2-fpm" in r.stdout
        assert f"its tag was moved upstream to {up.head()[:12]}" in r.stdout
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert rows_of(r)["nextcloud"] == "PASS (promoted)"
    st = canon(ws.root, "status", "--json")
    assert all(row["incident"] is None for row in json.loads(st.stdout))
