"""A sweep SIGKILLed at every step of a promotion never costs a live canonical.

Real git upstreams, the real harness, the real local backend, a real SQLite
registry; ``canon sweep`` runs as a child process and kills itself with
SIGKILL at a named point (``CANON_CRASH_AT``, canonlib/faults.py): no signal
handler, no ``finally`` runs.  After each kill:

- the registry names a slot that exists, holds its data and is marked for that
  recipe: the old canonical before the record, the new one after it;
- the next sweep exits 0, finishes or redoes the promotion, and leaves exactly
  one slot per recipe, marked canonical and named by the registry, with an
  intact promotion chain; the untouched recipe's data is byte for byte the same;
- the sweep after that has nothing to do.

The same sweep is also run into a full disk (the state dir on a small tmpfs,
filled to the last byte at the point, ``CANON_CRASH_HOW=fill-disk``): the
promotion fails whole before its record, or stands after it with a warning
naming ENOSPC; once there is space, the next sweep settles as above.
"""

from __future__ import annotations

import json
import os

import pytest

from canonlib.backends.local import LocalBackend
from canonlib.faults import ENV, FILLER, POINTS
from canonlib.state.marker import CANONICAL
from canonlib.state.registry import Registry
from tests import test_canonical_safety as safety
from tests.cli import canon
from tests.test_canonical_safety import precious, rows_of
from tests.test_no_tracebacks import mounted
from tests.workspace import Workspace

# the same two swept recipes (conftest.py, built once a session), each test on its own copy
# (the ws fixture of test_canonical_safety)
ws = safety.ws

NEW = "6.0.2+28.0.3-fpm"
BEFORE_RECORD = {
    "promote:marked-next",
    "promote:deployed",
    "promote:undeployed",
    "registry:mid-record",
}

pytestmark = pytest.mark.slow


def registry_view(ws) -> dict[str, tuple[str, str]]:
    with Registry.open(ws.config.db_path) as reg:
        assert reg.verify_chain().ok
        return {c.recipe: (c.version, c.deployment) for c in reg.canonicals()}


@pytest.mark.parametrize("where", POINTS)
def test_sigkill_at_every_promote_step_keeps_a_live_canonical_and_the_next_sweep_settles(ws, where):
    backend = LocalBackend(ws.config.slots_dir)
    before = registry_view(ws)
    data = precious(ws)
    old_slot = before["nextcloud"][1]
    ws.release("nextcloud", NEW)

    killed = canon(ws.root, "sweep", "--recipe", "nextcloud", env={**os.environ, ENV: where})
    assert killed.returncode == -9, (where, killed.returncode, killed.stderr[-2000:])

    # right after the kill: the registry names a live, marked slot of the recipe
    after = registry_view(ws)
    version, slot = after["nextcloud"]
    if where in BEFORE_RECORD:
        assert after == before, where  # nothing recorded, not even half of the transaction
    else:
        assert version == NEW and slot != old_slot, (where, after)
    assert (ws.config.slots_dir / slot).is_dir(), (where, slot)
    assert backend.markers()[slot].recipe == "nextcloud"
    if where != "sweep:row-recorded":  # only a finished promotion retires the old canonical
        assert precious(ws)[old_slot] == data[old_slot], where  # the old canonical is still whole

    settle = canon(ws.root, "sweep", "--json")
    assert settle.returncode == 0, (where, settle.stderr)
    assert "Traceback" not in settle.stderr
    want = "PASS (promoted)" if where in BEFORE_RECORD else "SKIP (no-new-version)"
    assert rows_of(settle) == {"custom-html": "SKIP (no-new-version)", "nextcloud": want}, where

    final = registry_view(ws)
    assert final["custom-html"] == before["custom-html"]
    assert final["nextcloud"][0] == NEW
    if where not in BEFORE_RECORD:
        assert final["nextcloud"][1] == slot  # the recorded promotion was finished, not redone
    markers = backend.markers()
    assert set(backend.slots()) == {d for _, d in final.values()}, (where, backend.slots())
    assert {s: (m.recipe, m.role) for s, m in markers.items()} == {
        d: (r, CANONICAL) for r, (_, d) in final.items()
    }, where
    untouched = before["custom-html"][1]
    assert precious(ws)[untouched] == data[untouched]
    state = json.loads((ws.config.state_dir / "canonicals.json").read_text())
    assert json.dumps(state).count(final["nextcloud"][1]) >= 1, where
    with Registry.open(ws.config.db_path) as reg:
        assert "running" not in {r["status"] for r in reg.runs("sweep")}, where

    again = canon(ws.root, "sweep", "--json")
    assert again.returncode == 0 and set(rows_of(again).values()) == {"SKIP (no-new-version)"}, (
        where,
        again.stdout,
        again.stderr,
    )


# -- a disk that fills up mid-promotion -----------------------------------------------------

FULL_AT = ["promote:undeployed", "promote:recorded", "promote:marked-canonical"]


@pytest.fixture
def tight(tmp_path):
    """Two recipes swept once, the state dir (registry, mirrors, slots) on a small tmpfs."""
    w = Workspace(tmp_path / "ws")
    state = w.config.state_dir
    state.mkdir(parents=True)
    with mounted("-t", "tmpfs", "-o", "size=64m", "tmpfs", target=state):
        w.recipe("custom-html")
        w.release("custom-html", "1.7.1+1.27.2")
        w.recipe("nextcloud")
        w.release("nextcloud", "6.0.1+28.0.2-fpm")
        first = canon(w.root, "sweep", "--json")
        assert set(rows_of(first).values()) == {"PASS (promoted)"}, first.stderr
        for recipe, (_, slot) in registry_view(w).items():
            (w.config.slots_dir / slot / "data" / safety.PRECIOUS).write_text(f"{recipe} data\n")
        yield w


@pytest.mark.parametrize("where", FULL_AT)
def test_disk_full_mid_promote_keeps_a_live_canonical_and_the_sweep_after_space_returns_settles(
    tight, where
):
    ws = tight
    backend = LocalBackend(ws.config.slots_dir)
    before, data = registry_view(ws), precious(ws)
    ws.release("nextcloud", NEW)
    env = {
        **os.environ,
        ENV: where,
        "CANON_CRASH_HOW": "fill-disk",
        "CANON_FILL_DIR": str(ws.config.state_dir),
    }
    full = canon(ws.root, "sweep", "--json", "--recipe", "nextcloud", env=env)
    assert "Traceback" not in full.stderr + full.stdout, full.stderr
    row = {r["recipe"]: r for r in json.loads(full.stdout)}["nextcloud"]
    if where == "promote:undeployed":  # the record could not be written: the promotion failed
        assert full.returncode == 1 and row["label"] == "GREEN-BUT-PROMOTE-FAILED", row
        assert "No space left on device" in row["reason"] or "disk is full" in row["reason"], row
    else:  # recorded: it stands; what could not be written is a warning the next sweep repairs
        assert full.returncode == 0 and row["label"] == "PASS (promoted)", row
        assert any(
            "No space left on device" in w and "the next sweep repairs it" in w
            for w in row["warnings"]
        ), row
    (ws.config.state_dir / FILLER).unlink()  # space again

    after = registry_view(ws)
    version, slot = after["nextcloud"]
    assert (version == NEW) == (where != "promote:undeployed"), (where, after)
    assert (ws.config.slots_dir / slot).is_dir() and backend.markers()[slot].recipe == "nextcloud"
    assert precious(ws) == data, where  # the old canonical is whole until the next sweep retires it

    settle = canon(ws.root, "sweep", "--json")
    assert settle.returncode == 0, (where, settle.stderr)
    final = registry_view(ws)
    assert final["nextcloud"][0] == NEW and final["custom-html"] == before["custom-html"]
    assert set(backend.slots()) == {d for _, d in final.values()}, (where, backend.slots())
    assert {s: (m.recipe, m.role) for s, m in backend.markers().items()} == {
        d: (r, CANONICAL) for r, (_, d) in final.items()
    }, where
    untouched = before["custom-html"][1]
    assert precious(ws)[untouched] == data[untouched]
    with Registry.open(ws.config.db_path) as reg:
        assert "running" not in {r["status"] for r in reg.runs("sweep")}, where
