"""Markers are claims, not proofs (issue 29, parts 2 and 3).

A recipe's own code runs in its slot, so a slot's marker is input canon did not just
write: it is read as untrusted (regular file, size cap, JSON depth, a typed schema) and
adopted only when canon itself recorded its promotion and the mirror holds its tag at its
commit.  Real git upstreams, the real harness, the real local backend, real SQLite.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from canonlib.backends import BackendError
from canonlib.backends.local import LocalBackend
from canonlib.backends.swarm_docker import Inspected
from canonlib.backends.swarm_records import record_marker
from canonlib.state.marker import MARKER_FILE, MarkerProblem, SlotMarker
from canonlib.state.registry import Registry
from tests.cli import canon
from tests.test_abra import backend as abra_backend
from tests.test_abra import fake_abra  # noqa: F401 -- the fixture
from tests.test_canonical_safety import PRECIOUS, precious, rows_of, ws  # noqa: F401

# -- the schema ------------------------------------------------------------------------

GOOD = {
    "slot": "warm-x-0a1b2c3d",
    "recipe": "x",
    "role": "canonical",
    "version": "1.0.0+1",
    "commit": "a" * 40,
    "promotion_id": 3,
    "promotion_hash": "b" * 64,
}


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ([], "is a JSON list, not an object"),
        ("canonical", "is a JSON str, not an object"),
        ({**GOOD, "promotion_id": "three"}, "promotion_id 'three'"),
        ({**GOOD, "promotion_id": [3]}, "promotion_id '[3]'"),
        ({**GOOD, "promotion_id": True}, "promotion_id 'True'"),
        ({**GOOD, "promotion_id": 0}, "a positive integer"),
        ({**GOOD, "role": "emperor"}, "role 'emperor'"),
        ({**GOOD, "recipe": ["x"]}, "recipe of type list"),
        ({**GOOD, "version": {"a": 1}}, "version of type dict"),
        ({**GOOD, "recipe": "../../etc"}, "not a name canon makes"),
        ({**GOOD, "version": "v" * 10_000}, "the limit is 512"),
        ({k: v for k, v in GOOD.items() if k != "commit"}, "lacks commit"),
    ],
)
def test_a_marker_that_does_not_fit_the_schema_is_one_marker_problem(doc, words):
    with pytest.raises(MarkerProblem) as e:
        SlotMarker.from_dict(doc)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_good_marker_and_its_labels_still_read_back():
    m = SlotMarker.from_dict({**GOOD, "newer_key": 1})
    assert m.promotion_id == 3 and SlotMarker.from_labels(m.labels()) == m


def test_a_marker_as_json_holds_every_field_and_reads_back():
    m = SlotMarker.from_dict({**GOOD, "run_id": "r1", "server": "s2", "previous_slot": "a-b"})
    assert list(m.to_dict()) == [f.name for f in dataclasses.fields(SlotMarker)]
    assert SlotMarker.from_dict(json.loads(json.dumps(m.to_dict()))) == m


# -- malformed marker files on the local backend ---------------------------------------


def _shapes(slots: Path) -> dict[str, str]:
    """slot -> what its marker is; each written the way a hostile hook could."""
    made = {}

    def put(name: str, text: str | bytes) -> Path:
        d = slots / f"warm-nextcloud-{name}"
        d.mkdir()
        made[d.name] = name
        p = d / MARKER_FILE
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return p

    put("list", "[]")
    put("string", '"canonical"')
    put("badid", json.dumps({**GOOD, "slot": "warm-nextcloud-badid", "promotion_id": "x1"}))
    put("listid", json.dumps({**GOOD, "slot": "warm-nextcloud-listid", "promotion_id": [1]}))
    put("role", json.dumps({**GOOD, "slot": "warm-nextcloud-role", "role": "root"}))
    put("items", json.dumps({**GOOD, "slot": "warm-nextcloud-items", "recipe": {"a": 1}}))
    put("notjson", "{not json")
    put("binary", b"\xff\xfe\x00")
    put("deep", "[" * 10_000 + "]" * 10_000)
    put("huge", '{"slot": "' + "x" * (2 << 20) + '"}')
    p = put("devzero", "")
    p.unlink()
    p.symlink_to("/dev/zero")
    p = put("fifo", "")
    p.unlink()
    os.mkfifo(p)
    p = put("dirmarker", "")
    p.unlink()
    p.mkdir()
    return made


def test_malformed_markers_are_one_line_each_and_status_and_plan_still_show_everything(ws):  # noqa: F811
    before = precious(ws)
    made = _shapes(ws.config.slots_dir)
    for args in (["status", "--json"], ["sweep", "--plan", "--json"]):
        r = canon(ws.root, *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
        rows = {row["recipe"]: row for row in json.loads(r.stdout)}
        assert set(rows) == {"custom-html", "nextcloud"}, r.stdout
        if args[0] == "status":
            assert rows["nextcloud"]["canonical"] == "6.0.1+28.0.2-fpm"
            assert rows["nextcloud"]["source"] == "registry"
        lines = r.stderr.splitlines()
        for slot in made:
            mine = [ln for ln in lines if f"slot {slot}:" in ln]
            assert len(mine) == 1, (slot, r.stderr)
            assert str(ws.config.slots_dir / slot / MARKER_FILE) in mine[0], mine[0]
    assert precious(ws) == before
    backend = LocalBackend(ws.config.slots_dir)
    good, bad = backend.scan_markers()
    assert set(bad) == set(made) and not set(good) & set(made)
    assert "symlink" in bad["warm-nextcloud-devzero"] and "FIFO" in bad["warm-nextcloud-fifo"]
    assert "nested deeper" in bad["warm-nextcloud-deep"]
    assert "the limit is" in bad["warm-nextcloud-huge"]


def test_abra_markers_are_read_as_untrusted_too(tmp_path, fake_abra):  # noqa: F811
    b = abra_backend(tmp_path)
    good = SlotMarker.from_dict({**GOOD, "slot": "warm-x-00000001"})
    b.mark("warm-x-00000001", good)
    d = tmp_path / "abra-dir" / "canon-markers"
    (d / "warm-x-00000002.json").write_text('[{"role": "canonical"}]')
    (d / "warm-x-00000003.json").symlink_to("/dev/zero")
    os.mkfifo(d / "warm-x-00000004.json")
    markers, bad = b.scan_markers()
    assert markers == {"warm-x-00000001": good}
    assert sorted(bad) == ["warm-x-00000002", "warm-x-00000003", "warm-x-00000004"]
    assert all(str(d) in line and line.count("\n") == 0 for line in bad.values())
    assert b.markers() == {"warm-x-00000001": good}
    with pytest.raises(BackendError, match="warm-x-00000003"):
        b.teardown("warm-x-00000003")  # an unreadable marker is never taken for "not canonical"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (base64.b64encode(b'{"marker": []}').decode(), "is a JSON list"),
        (base64.b64encode(b"[1]").decode(), "is not a JSON object"),
        (base64.b64encode(b"{oops").decode(), "is not valid JSON"),
        ("!!!not base64", "marker record canon_x"),
        (base64.b64encode(b"[" * 5000 + b"]" * 5000).decode(), "nested deeper"),
        ("A" * (1 << 20), "bytes; not read"),
    ],
)
def test_a_swarm_record_that_is_not_a_marker_is_one_line(data, words):
    rec = Inspected.from_json({"ID": "x", "Spec": {"Name": "canon_x", "Labels": {}, "Data": data}})
    with pytest.raises(MarkerProblem) as e:
        record_marker(rec, "warm-x-00000001")
    assert words in str(e.value) and "slot warm-x-00000001" in str(e.value)


# -- the forged marker: sweep -> rebuild -> sweep ------------------------------------------


def _forge(ws, *, edit_slot: bool, bump: int) -> tuple[str, str]:  # noqa: F811
    """A hook's forgery: the real canonical marker of nextcloud, copied into a sibling slot
    dir and edited to 9.9.9+evil (``bump``: a promotion number the chain never had)."""
    with Registry.open(ws.config.db_path) as reg:
        real = reg.read_registry("nextcloud").deployment
    doc = json.loads((ws.config.slots_dir / real / MARKER_FILE).read_text())
    forged = f"warm-nextcloud-e{bump}{int(edit_slot)}11111"
    doc["version"] = "9.9.9+evil"
    doc["promotion_id"] += bump
    doc["previous_slot"] = real
    if edit_slot:
        doc["slot"] = forged
    d = ws.config.slots_dir / forged
    (d / "data").mkdir(parents=True)
    (d / MARKER_FILE).write_text(json.dumps(doc))
    return real, forged


def _canonical(ws, recipe: str) -> tuple[str, str]:  # noqa: F811
    with Registry.open(ws.config.db_path) as reg:
        c = reg.read_registry(recipe)
        return c.version, c.deployment


@pytest.mark.parametrize(("edit_slot", "bump"), [(True, 1), (False, 0), (True, 0)])
def test_a_forged_marker_is_not_adopted_and_the_real_canonical_survives(ws, edit_slot, bump):  # noqa: F811
    before = precious(ws)
    real, forged = _forge(ws, edit_slot=edit_slot, bump=bump)
    for step in ("sweep", "registry rebuild", "sweep"):
        r = canon(ws.root, *step.split(), "--json")
        assert r.returncode == 0, (step, r.stdout, r.stderr)
        out = r.stdout + r.stderr
        assert f"slot {forged}: unverified marker: not adopted" in out, (step, out)
        assert "Traceback" not in r.stderr
        assert _canonical(ws, "nextcloud") == ("6.0.1+28.0.2-fpm", real)
        assert precious(ws) == before, step
    assert (ws.config.slots_dir / forged).is_dir()  # left for the operator: never adopted
    with Registry.open(ws.config.db_path) as reg:
        assert reg.verify_chain().ok
        assert "9.9.9+evil" not in {p.version for p in reg.history()}


def test_a_lost_registry_is_rebuilt_from_the_verified_marker_not_the_forged_one(ws):  # noqa: F811
    before = precious(ws)
    real, forged = _forge(ws, edit_slot=True, bump=1)
    db = ws.config.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    r = canon(ws.root, "sweep")
    assert r.returncode == 2 and "the registry file is missing" in r.stderr, r.stderr
    assert f"slot {forged}: unverified marker: not adopted" in r.stderr
    assert "it adopts none of the 1 listed" in r.stderr, r.stderr
    st = canon(ws.root, "status", "--json")
    shown = {row["recipe"]: row for row in json.loads(st.stdout)}
    assert shown["nextcloud"]["canonical"] == "6.0.1+28.0.2-fpm", st.stdout
    r = canon(ws.root, "registry", "rebuild")
    assert r.returncode == 0, r.stderr
    assert f"slot {forged}: unverified marker: not adopted" in r.stdout, r.stdout
    assert _canonical(ws, "nextcloud") == ("6.0.1+28.0.2-fpm", real)
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 0 and set(rows_of(r).values()) == {"SKIP (no-new-version)"}, r.stderr
    assert precious(ws) == before


def test_a_marker_whose_tag_the_mirror_does_not_hold_is_not_adopted(ws):  # noqa: F811
    """A marker copied whole (promotion, commit, version all real) into a slot that names
    itself: its promotion was for another slot, so it is not adopted either."""
    with Registry.open(ws.config.db_path) as reg:
        real = reg.read_registry("custom-html").deployment
    doc = json.loads((ws.config.slots_dir / real / MARKER_FILE).read_text())
    other = "warm-custom-html-c0c0c0c0"
    (ws.config.slots_dir / other).mkdir()
    (ws.config.slots_dir / other / MARKER_FILE).write_text(json.dumps({**doc, "slot": other}))
    db = ws.config.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    r = canon(ws.root, "registry", "rebuild")
    assert r.returncode == 0, r.stderr
    assert f"slot {other}: unverified marker: not adopted" in r.stdout, r.stdout
    assert f"is for slot {real}" in r.stdout, r.stdout
    assert _canonical(ws, "custom-html")[1] == real


@pytest.mark.slow
def test_two_verified_canonical_markers_for_one_recipe_stop_the_rebuild_naming_both(ws, tmp_path):  # noqa: F811
    with Registry.open(ws.config.db_path) as reg:
        old = reg.read_registry("nextcloud").deployment
    saved = tmp_path / "saved"
    shutil.copytree(ws.config.slots_dir / old, saved, symlinks=True)
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    r = canon(ws.root, "sweep", "--json")
    assert rows_of(r)["nextcloud"] == "PASS (promoted)", (r.stdout, r.stderr)
    new = _canonical(ws, "nextcloud")[1]
    assert not (ws.config.slots_dir / old).exists()
    shutil.copytree(saved, ws.config.slots_dir / old, symlinks=True)  # a hand copy back
    m = ws.config.slots_dir / new / MARKER_FILE
    m.write_text(json.dumps({**json.loads(m.read_text()), "previous_slot": None}))
    db = ws.config.db_path
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    before = precious(ws)
    r = canon(ws.root, "registry", "rebuild")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert old in r.stderr and new in r.stderr and "refusing to rebuild" in r.stderr, r.stderr
    assert not db.exists() and precious(ws) == before


# -- part 3: a canonical whose slot is gone ----------------------------------------------


def test_a_canonical_whose_slot_is_gone_is_loud_and_the_next_promotion_proceeds(ws):  # noqa: F811
    gone_version, gone = _canonical(ws, "nextcloud")
    shutil.rmtree(ws.config.slots_dir / gone)
    before = precious(ws)
    st = canon(ws.root, "status", "--json")
    assert st.returncode == 0, st.stderr
    row = {r["recipe"]: r for r in json.loads(st.stdout)}["nextcloud"]
    assert f"its slot {gone} is gone" in (row["incident"] or ""), row
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 1, (r.stdout, r.stderr)
    row = {x["recipe"]: x for x in json.loads(r.stdout)}["nextcloud"]
    assert any(f"its slot {gone} is gone" in i for i in row["incidents"]), row
    assert precious(ws) == before  # custom-html's slot and data untouched
    r = canon(ws.root, "sweep")
    assert r.returncode == 1 and f"INCIDENT nextcloud: canonical {gone_version}" in r.stdout
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    r = canon(ws.root, "sweep", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert rows_of(r)["nextcloud"] == "PASS (promoted)"
    assert _canonical(ws, "nextcloud")[0] == "6.0.2+28.0.3-fpm"
    assert precious(ws) == before
