"""Slot markers on the abra backend, against the FAKE `abra` on PATH (see tests/test_abra.py).

A canonical-marked app is never removed: no `abra app volume remove` / `app remove` is
issued for it; re-marked `retired`, it is torn down and its marker goes with it."""

from __future__ import annotations

import pytest

from canonlib.backends import BackendError
from canonlib.state.marker import CANONICAL, RETIRED, SlotMarker
from tests.test_abra import ABRA_META, backend, fake_abra  # noqa: F401 -- the fixture
from tests.workspace import Workspace


def test_abra_never_tears_down_a_canonical(tmp_path, fake_abra):  # noqa: F811
    ws = Workspace(tmp_path)
    ws.recipe("bluesky-pds", meta=ABRA_META)
    ws.release("bluesky-pds", "0.2.0+v0.4")
    b = backend(tmp_path)
    m = ws.mirror("bluesky-pds")
    m.sync()
    slot = "warm-bluesky-pds-0a1b2c3d"
    with m.checkout("0.2.0+v0.4") as co:
        marker = SlotMarker(
            slot=slot,
            recipe="bluesky-pds",
            role=CANONICAL,
            version=co.tag,
            commit=co.commit,
            run_id="r1",
            promotion_id=1,
            promotion_hash="f" * 64,
        )
        b.mark(slot, marker)
        b.provision(slot, co.path, ws.meta("bluesky-pds"))
        b.deploy(slot, co.path, ws.meta("bluesky-pds"), version=co.tag, commit=co.commit)
    assert b.markers() == {slot: marker}
    before = len(fake_abra())
    with pytest.raises(BackendError, match="canonical marker"):
        b.teardown(slot)
    assert len(fake_abra()) == before  # not one abra command was run
    assert b.deployed(slot)["commit"] == marker.commit
    b.mark(slot, marker.as_role(RETIRED))
    b.teardown(slot)
    removed = [c["argv"][:2] for c in fake_abra()[before:]]
    assert ["app", "remove"] in removed and ["app", "volume"] in removed
    assert b.markers() == {} and b.deployed(slot) is None
