"""Several servers: promotes on different servers run at once, one at a time on each server.

A real sweep over two abra servers through the FAKE abra of tests/test_abra.py (the suite's
one stand-in).  Its ``app deploy`` of a canonical (``warm-``) slot notes when it starts and
ends, in one append-only file whose line order is the order things happened, and waits
(bounded) until a warm deploy has started on the other server: when promotes run one after
another, whatever the server count, no two deploys ever overlap.  No wall clock is asserted:
overlap is read from the order of the recorded events.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import time

import pytest

from canonlib.state import registry_guard
from canonlib.state.registry import Registry
from canonlib.state.registry_guard import read_state
from canonlib.sweep.orchestrate import sweep
from tests.test_abra import FAKE_ABRA, fake_abra  # noqa: F401 -- the fixture
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

SERVERS = ["s1", "s2"]
META = """
WARM_CANONICAL = True
READY_PROBES = [{"cmd": 'test -n "$DOMAIN"', "retries": 1}]
"""
FLEET_TEST = "def test_deployed():\n    pass\n"

# put in the fake abra after `args = sys.argv[1:]`: a warm slot's deploy notes its start,
# waits (up to 120 s) for a warm deploy started on another server, and notes its end
RENDEZVOUS = textwrap.dedent("""\
    import pathlib, time
    events = os.environ.get("PROMOTE_EVENTS")
    if events and args[:2] == ["app", "deploy"] and args[2].startswith("warm-"):
        slot, server = args[2].split(".", 1)
        def note(what):
            with open(events, "a") as f:
                f.write(json.dumps({"slot": slot, "server": server, "what": what}) + "\\n")
        met = pathlib.Path(events + ".d")
        met.mkdir(exist_ok=True)
        note("start")
        (met / (server + "~" + slot)).touch()
        end = time.monotonic() + 120
        while time.monotonic() < end and not any(
            p.name.split("~")[0] != server for p in met.iterdir()
        ):
            time.sleep(0.05)
        note("end")
    # the canonicals.json test: the second warm undeploy (so the second record) waits (up to
    # 120 s) until the first promote's rewrite of canonicals.json is held
    gate = os.environ.get("PROMOTE_UNDEPLOY_GATE")
    if gate and args[:2] == ["app", "undeploy"] and args[2].startswith("warm-"):
        try:
            os.mkdir(gate + ".first")
        except FileExistsError:
            end = time.monotonic() + 120
            while time.monotonic() < end and not os.path.exists(gate):
                time.sleep(0.05)
""")


@pytest.fixture
def two_servers(tmp_path, monkeypatch, fake_abra):  # noqa: F811
    exe = tmp_path / "bin" / "abra"
    script = FAKE_ABRA.format(python=sys.executable).replace(
        'os.environ.get("FAKE_ABRA_RECIPE", "")', 'args[2].split(".")[0].split("-")[1]'
    )
    head = "args = sys.argv[1:]\n"
    assert head in script
    exe.write_text(script.replace(head, head + RENDEZVOUS, 1))
    w = Workspace(tmp_path)
    with open(tmp_path / "canon.toml", "a") as f:
        f.write(f'[backend]\nkind = "abra"\nservers = {json.dumps(SERVERS)}\n')
    monkeypatch.setenv("PROMOTE_EVENTS", str(tmp_path / "promote-events.jsonl"))
    for i in range(4):
        w.recipe(f"r{i}", meta=META, test=FLEET_TEST)
        w.release(f"r{i}", "1.0.0+1")
    return w


@pytest.fixture
def two_recipes(two_servers):
    """The same two servers with two recipes: two promotes at once, and no third after."""
    for name in ("r2", "r3"):
        shutil.rmtree(two_servers.fleet / "tests" / name)
    return two_servers


def deploys(path) -> dict[str, dict[str, int | str]]:
    """slot -> its server and the line numbers (the order) of its deploy's start and end."""
    out: dict[str, dict[str, int | str]] = {}
    for n, line in enumerate(path.read_text().splitlines()):
        e = json.loads(line)
        out.setdefault(e["slot"], {"server": e["server"]})[e["what"]] = n
    return out


def overlap(a: dict[str, int | str], b: dict[str, int | str]) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]  # type: ignore[operator]


def test_promotes_on_two_servers_overlap_and_the_chain_stays_whole(two_servers, tmp_path):
    r = sweep(two_servers.config)
    assert [row["label"] for row in r.rows] == ["PASS (promoted)"] * 4, [
        (row["recipe"], row["label"], row["reason"]) for row in r.rows
    ]
    with Registry.open(two_servers.config.db_path) as reg:
        homes = {c.recipe: (c.server, c.deployment) for c in reg.canonicals()}
        check = reg.verify_chain()
        history = reg.history()
    # placement counted the promotes in flight: two new recipes never took the same server
    assert sorted(s for s, _ in homes.values()) == ["s1", "s1", "s2", "s2"]
    d = deploys(tmp_path / "promote-events.jsonl")
    assert {slot: e["server"] for slot, e in d.items()} == {
        slot: server for server, slot in homes.values()
    }
    # the first deploy ran while one on the other server did: promotes on different servers
    # at once (the first two recipes, promoting together, were placed on different servers)
    first = min(d.values(), key=lambda e: e["start"])
    assert any(overlap(first, e) for e in d.values() if e["server"] != first["server"]), d
    # one at a time on each server
    for s in SERVERS:
        mine = [e for e in d.values() if e["server"] == s]
        assert len(mine) == 2
        assert not overlap(mine[0], mine[1]), d
    # the registry's chain is whole: four promotions, each linked to the one before
    assert check.ok, check.problems
    assert len(history) == 4
    assert [p.prev_hash for p in history[1:]] == [p.hash for p in history[:-1]]
    # and canonicals.json, rewritten by each promote, was last written after the last record
    state, problem = read_state(two_servers.config.state_dir)
    assert problem is None and state is not None
    assert state["chain_length"] == 4
    assert {k: v["slot"] for k, v in state["canonicals"].items()} == {
        k: slot for k, (_, slot) in homes.items()
    }


def test_canonicals_json_is_last_written_from_the_last_record(two_recipes, monkeypatch, tmp_path):
    """Each promote rewrites canonicals.json from the registry.  Here the second promote
    records only once the first one's rewrite has read the registry, and that rewrite is held
    between its reading and its writing until the other promote has recorded and rewritten it
    too (or, when rewrites are serialised, cannot: 5 s after its record): unserialised, the
    older reading would be written last, and the file would miss a canonical."""
    real = registry_guard._write_json_atomically
    db = two_recipes.config.db_path
    gate = tmp_path / "first-rewrite-held"
    monkeypatch.setenv("PROMOTE_UNDEPLOY_GATE", str(gate))
    held: list[int] = []
    written: list[int] = []

    def held_first(path, doc):
        if path.name == registry_guard.STATE_FILE and doc.get("chain_length") == 1 and not held:
            gate.touch()
            end, recorded = time.monotonic() + 120, None  # bounds, not assertions
            while time.monotonic() < end and 2 not in written:
                if recorded is None:
                    with Registry.open(db, create=False) as reg:
                        if len(reg.history()) >= 2:
                            recorded = time.monotonic()
                elif time.monotonic() - recorded > 5:
                    break
                time.sleep(0.05)
            held.append(recorded is not None or 2 in written)
        real(path, doc)
        written.append(doc.get("chain_length"))

    monkeypatch.setattr(registry_guard, "_write_json_atomically", held_first)
    r = sweep(two_recipes.config)
    assert [row["label"] for row in r.rows] == ["PASS (promoted)"] * 2, r.rows
    # the first promote's rewrite was held, and the other promote recorded meanwhile
    assert held == [True]
    with Registry.open(db) as reg:
        assert reg.verify_chain().ok
        slots = {c.recipe: c.deployment for c in reg.canonicals()}
    state, problem = read_state(two_recipes.config.state_dir)
    assert problem is None and state is not None
    assert state["chain_length"] == 2, written
    assert {k: v["slot"] for k, v in state["canonicals"].items()} == slots
