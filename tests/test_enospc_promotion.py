"""A disk almost full while a sweep promotes a new tag costs nothing once space is freed.

Real git upstreams, the real harness, the real local backend, a real SQLite registry, and
a real full disk: a small tmpfs mounted where the sweep writes (its private TMPDIR, or the
whole state dir), filled with a file to all but a few KiB.  The sweep runs into ENOSPC
(the upgrade rung's clone of the base, an install step in a slot, the promotion's own
writes).  Then:

- nothing claims a verdict about the recipe: the row is an ERROR naming the path and saying
  to free space (no traceback), and the known-red memory holds no red verdict for the tag;
- the old canonical is whole: still named by the registry, marked canonical, its data there;
- the filler is deleted, and the next sweep promotes the same tag.

Mounting needs root; where it is not permitted the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from canonlib.backends.local import LocalBackend
from canonlib.faults import ENV, FILLER
from canonlib.state.marker import CANONICAL
from canonlib.state.registry import Registry
from canonlib.sweep import policy
from canonlib.sweep.knownred import disk_room
from tests import test_canonical_safety as safety
from tests.cli import canon
from tests.test_canonical_safety import precious
from tests.test_no_tracebacks import mounted

# the two recipes swept once (conftest.py, built once a session), each test on its own copy
ws = safety.ws

OLD, NEW = "6.0.1+28.0.2-fpm", "6.0.2+28.0.3-fpm"
ROOM = 8 * 1024  # what the filler leaves: "almost full", not full


def fill_leaving(directory: Path, room: int) -> Path:
    """``directory/FILLER``, written until ``room`` bytes are left on its filesystem."""
    st = os.statvfs(directory)
    filler = directory / FILLER
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - room))
    return filler


def on_tmpfs(path: Path, size: str):
    """``path`` (a directory, kept as it is) moved onto a new tmpfs of ``size``."""
    aside = path.with_name(path.name + ".before-tmpfs")
    path.rename(aside)
    path.mkdir()
    mount = mounted("-t", "tmpfs", "-o", f"size={size}", "tmpfs", target=path)
    mount.__enter__()
    shutil.copytree(aside, path, symlinks=True, dirs_exist_ok=True)
    shutil.rmtree(aside)
    return mount


@pytest.fixture
def tight(ws):
    """The copy's state dir on a 32 MiB tmpfs (unmounted at the end)."""
    mount = on_tmpfs(ws.config.state_dir, "32m")
    try:
        yield ws
    finally:
        mount.__exit__(None, None, None)


def sweep_rows(ws, *args: str, env=None) -> tuple[int, dict[str, dict]]:
    r = canon(ws.root, "sweep", "--json", *args, env=env)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    assert r.stdout, (r.returncode, r.stderr[-3000:])
    return r.returncode, {row["recipe"]: row for row in json.loads(r.stdout)}


def canonical(ws, recipe: str):
    with Registry.open(ws.config.db_path) as reg:
        assert reg.verify_chain().ok
        return reg.read_registry(recipe)


def assert_not_remembered_red(ws, row: dict) -> None:
    """No red verdict on ``row``'s tag, and the memory would not skip it next time."""
    with Registry.open(ws.config.db_path) as reg:
        results = reg.results(recipe=row["recipe"])
    assert [r.run_id for r in results if r.latest == NEW and r.verdict == "red"] == []
    key = policy.RedKey(NEW, row["tag_commit"], row["fleet_tests"], row["harness"])
    assert policy.known_red(results, key) is None


def assert_old_canonical_whole(ws, old_slot: str, data: dict[str, str]) -> None:
    now = canonical(ws, "nextcloud")
    assert (now.version, now.deployment) == (OLD, old_slot)
    assert LocalBackend(ws.config.slots_dir).markers()[old_slot].role == CANONICAL
    assert precious(ws) == data


def assert_full_disk_error(row: dict, under: Path) -> None:
    """An ERROR (no verdict) that names a path on the full filesystem and says to free space."""
    assert row["verdict"] is None and row["label"].startswith("ERROR"), row
    assert "free space" in row["reason"] and str(under) in row["reason"], row["reason"]


def assert_next_sweep_promotes(ws, filler: Path) -> None:
    filler.unlink()  # space again
    rc, rows = sweep_rows(ws, "--recipe", "nextcloud")
    row = rows["nextcloud"]
    assert (rc, row["decision"], row["label"]) == (0, policy.RUN, "PASS (promoted)"), row
    now = canonical(ws, "nextcloud")
    assert (now.version, now.commit) == (NEW, row["tested_commit"])
    slots = LocalBackend(ws.config.slots_dir)
    assert {s: m.role for s, m in slots.markers().items() if m.recipe == "nextcloud"} == {
        now.deployment: CANONICAL
    }


def test_disk_room_names_the_almost_full_filesystem_and_what_to_do(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=full):
        assert disk_room([tmp_path, full / "gone" / "too"]) is None  # room, and nothing yet
        fill_leaving(full, ROOM)
        line = disk_room([None, tmp_path, full / "gone" / "too", full])
    assert line == (
        f"{full / 'gone' / 'too'}: disk almost full (8.0 KiB free of 1.0 MiB); "
        "free space on that filesystem and re-run"
    )


@pytest.mark.slow
def test_a_full_tmp_during_the_cold_run_is_no_red_and_the_next_sweep_promotes(ws):
    """The sweep's private TMPDIR (``<state>/tmp``) on an almost full 1 MiB tmpfs: the upgrade
    rung cannot clone its base there.  Before the fix that was ``FAIL (level 1/5)``, a red
    verdict, and the sweep after space was freed said ``SKIP (known-red)``."""
    tmp = ws.config.state_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    old_slot, data = canonical(ws, "nextcloud").deployment, precious(ws)
    ws.release("nextcloud", NEW)
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=tmp):
        filler = fill_leaving(tmp, ROOM)
        rc, rows = sweep_rows(ws, "--recipe", "nextcloud")
        row = rows["nextcloud"]
        assert rc == 1, row
        assert_full_disk_error(row, tmp)
        assert_not_remembered_red(ws, row)
        assert_old_canonical_whole(ws, old_slot, data)
        assert_next_sweep_promotes(ws, filler)


@pytest.mark.slow
@pytest.mark.parametrize("room", [256 * 1024, 384 * 1024, 480 * 1024])
def test_an_almost_full_state_dir_is_no_red_and_the_next_sweep_promotes(tight, room):
    """The whole state dir on a 32 MiB tmpfs with ``room`` bytes left: the cold run runs out of
    space wherever that room ends (the checkout, the upgrade rung's clone of its base or its
    slot).  Before the fix the base clone's failure was red, and never promoted after."""
    ws = tight
    old_slot, data = canonical(ws, "nextcloud").deployment, precious(ws)
    ws.release("nextcloud", NEW)
    filler = fill_leaving(ws.config.state_dir, room)
    rc, rows = sweep_rows(ws, "--recipe", "nextcloud")
    row = rows["nextcloud"]
    assert row["verdict"] != "red", row
    assert_not_remembered_red(ws, row)
    if row["label"] == "PASS (promoted)":  # the room was enough after all: nothing to check
        pytest.fail(f"{room} bytes were enough for the whole sweep; use a smaller room")
    assert rc == 1, row
    assert_full_disk_error(row, ws.config.state_dir)
    assert_old_canonical_whole(ws, old_slot, data)
    assert_next_sweep_promotes(ws, filler)


@pytest.mark.slow
def test_an_install_step_that_runs_out_of_space_is_no_red_and_the_next_sweep_promotes(tight):
    """An install step writes 2 MiB into the slot's data with 1 MiB left: the step fails (a
    shell's write error) and L1 says ``fail``.  On an almost full disk that is no verdict:
    before the fix it was ``FAIL (level 0/5)``, remembered red (L2 is expected N/A here, so
    nothing else runs out of space first)."""
    ws = tight
    meta = ws.fleet / "tests" / "nextcloud" / "recipe_meta.py"
    step = 'head -c 2097152 /dev/zero > "$CANON_DATA_DIR/blob"'
    meta.write_text(
        meta.read_text().replace("INSTALL_STEPS = [", f"INSTALL_STEPS = ['{step}', ")
        + 'EXPECTED_NA = {"upgrade": "only L1 writes, so only L1 can run out of space"}\n'
    )
    assert ws.meta("nextcloud").INSTALL_STEPS[0] == step
    old_slot, data = canonical(ws, "nextcloud").deployment, precious(ws)
    ws.release("nextcloud", NEW)
    filler = fill_leaving(ws.config.state_dir, 1024 * 1024)
    rc, rows = sweep_rows(ws, "--recipe", "nextcloud")
    row = rows["nextcloud"]
    assert rc == 1 and "harness: install: " in row["reason"], row
    assert_full_disk_error(row, ws.config.state_dir)
    assert_not_remembered_red(ws, row)
    assert_old_canonical_whole(ws, old_slot, data)
    assert_next_sweep_promotes(ws, filler)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["promote:marked-next", "promote:deployed"])
def test_a_disk_that_fills_in_the_promotion_costs_nothing_once_freed(tight, where):
    """Green, then the disk fills (a real file, written until ENOSPC, at ``where``): the
    promotion's own writes into its new slot fail.  The failure names the path and says to
    free space; the green verdict stands, so the next sweep promotes the same tag."""
    ws = tight
    old_slot, data = canonical(ws, "nextcloud").deployment, precious(ws)
    ws.release("nextcloud", NEW)
    env = {
        **os.environ,
        ENV: where,
        "CANON_CRASH_HOW": "fill-disk",
        "CANON_FILL_DIR": str(ws.config.state_dir),
    }
    rc, rows = sweep_rows(ws, "--recipe", "nextcloud", env=env)
    row = rows["nextcloud"]
    assert (rc, row["verdict"], row["label"]) == (1, "green", "GREEN-BUT-PROMOTE-FAILED"), row
    assert "free space" in row["reason"] and str(ws.config.state_dir) in row["reason"], row
    assert_not_remembered_red(ws, row)
    assert_old_canonical_whole(ws, old_slot, data)
    assert_next_sweep_promotes(ws, ws.config.state_dir / FILLER)
