"""Several servers on real Docker Swarm engines (``scripts/swarm-up --servers 2``: docker
contexts canon-s1, canon-s2, each a swarm of its own).

A sweep spreads its cold runs and its canonicals over both; a server whose dockerd is killed
mid-sweep gives its cold run an ERROR (no verdict) while the other server's runs go on, its
canonicals are reported unreachable and kept; when it comes back the next sweep works and
nothing is duplicated.  Config-time faults: a context that does not exist, two servers that
are the same engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from canonlib.backends import make_backend
from canonlib.backends.common import BackendUnavailable
from canonlib.config import ConfigError
from canonlib.ops.status import status_rows
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests.need import need
from tests.swarmkit import IMAGE, recipe_files, require_swarm, swarm_lock
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ["canon-s1", "canon-s2"]
META = textwrap.dedent("""\
    WARM_CANONICAL = True
    DEPLOY_TIMEOUT_S = 60
    EXPECTED_NA = {"backup": "covered by test_swarm.py"}
""")
FLEET_TEST = textwrap.dedent("""\
    import os, pathlib, time

    def test_the_slot_is_on_the_scheduled_server():
        assert os.environ["CANON_DOCKER_CONTEXT"] == os.environ["CANON_SERVER"]
        # the dead-server test: canon-s1's cold runs end only once canon-s2 is dead, so no
        # promote of that sweep can reach canon-s2 before it dies (bounded: 90 s)
        killed = os.environ.get("CANON_TEST_S2_KILLED")
        if killed and os.environ["CANON_SERVER"] == "canon-s1":
            end = time.monotonic() + 90
            while not pathlib.Path(killed).exists() and time.monotonic() < end:
                time.sleep(0.2)
""")


def ctx(server: str, *args: str, check: bool = True) -> str:
    p = subprocess.run(
        ["docker", "--context", server, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and p.returncode:
        raise AssertionError(f"docker --context {server} {' '.join(args)}: {p.stderr}")
    return p.stdout


def servers_problem() -> str | None:
    for s in SERVERS:
        p = subprocess.run(
            ["docker", "--context", s, "info", "--format", "{{.Swarm.LocalNodeState}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if p.returncode or p.stdout.strip() != "active":
            return f"server {s} is not up: run scripts/swarm-up --servers 2"
    return None


def canon_slots(server: str) -> dict[str, str]:
    """slot -> role of the newest marker record, on one server."""
    newest: dict[str, tuple[str, str]] = {}
    ids = ctx(server, "config", "ls", "-q", "--filter", "label=canon.record=1").split()
    for doc in json.loads(ctx(server, "config", "inspect", *ids) if ids else "[]"):
        labels = doc["Spec"]["Labels"]
        seq = labels.get("canon.seq", "")
        slot = labels["canon.slot"]
        if slot not in newest or seq > newest[slot][0]:
            newest[slot] = (seq, labels.get("canon.role", ""))
    return {s: role for s, (_, role) in newest.items()}


def wipe(server: str, instance_dirs: list[Path]) -> None:
    """Everything canon made on ``server`` (test cleanup), by label."""
    f = ["--filter", "label=canon.slot"]
    for svc in ctx(server, "service", "ls", "-q", *f, check=False).split():
        ctx(server, "service", "rm", svc, check=False)
    for c in ctx(server, "ps", "-aq", *f, check=False).split():
        ctx(server, "rm", "-f", c, check=False)
    for kind in ("volume", "secret", "config", "network"):
        ids = ctx(server, kind, "ls", "-q", *f, check=False).split()
        if ids:
            ctx(server, kind, "rm", *ids, check=False)


@pytest.fixture
def pool_ws(tmp_path):
    require_swarm()
    need(servers_problem())
    with swarm_lock():
        ws = Workspace(tmp_path)
        with (tmp_path / "canon.toml").open("a") as f:
            f.write(
                f'\n[backend]\nkind = "swarm"\nservers = {json.dumps(SERVERS)}\n'
                f'helper_image = "{IMAGE}"\ntimeout_s = 60\n'
            )
        for i in range(4):
            ws.recipe(f"p{i}", meta=META, test=FLEET_TEST)
            release(ws, f"p{i}", "1.0.0+1")
        try:
            yield ws
        finally:
            if servers_problem():  # a test that killed s2 and failed before bringing it back
                subprocess.run([ROOT / "scripts" / "swarm-up", "--servers", "2"], check=False)
            for s in SERVERS:
                wipe(s, [tmp_path])


def release(ws: Workspace, recipe: str, tag: str) -> None:
    up = ws.upstreams[recipe]
    up.commit(recipe_files(tag), f"release {tag}")
    up.tag(tag)


def test_a_sweep_spreads_cold_runs_and_canonicals_over_two_real_servers(pool_ws):
    r = sweep(pool_ws.config)
    assert [row["label"] for row in r.rows] == ["PASS (promoted)"] * 4, [
        (row["recipe"], row["label"], row["reason"]) for row in r.rows
    ]
    assert {row["server"] for row in r.rows} == set(SERVERS)
    with Registry.open(pool_ws.config.db_path) as reg:
        homes = {c.recipe: (c.server, c.deployment) for c in reg.canonicals()}
    assert sorted(s for s, _ in homes.values()) == ["canon-s1", "canon-s1", "canon-s2", "canon-s2"]
    for recipe, (server, slot) in homes.items():  # each canonical is where the registry says
        assert canon_slots(server).get(slot) == "canonical", recipe
        other = next(s for s in SERVERS if s != server)
        assert slot not in canon_slots(other)
    # the markers say it too, and nothing but the canonicals is left on either server
    markers = make_backend(pool_ws.config).markers()
    assert {m.recipe: m.server for m in markers.values()} == {r: s for r, (s, _) in homes.items()}
    assert {role for s in SERVERS for role in canon_slots(s).values()} == {"canonical"}


def dockerd_pid(n: int) -> int:
    return int(Path(f"/var/run/canon-swarm-up/s{n}.pid").read_text())


def test_a_server_killed_mid_sweep_is_an_error_there_and_the_other_goes_on(pool_ws, monkeypatch):
    first = sweep(pool_ws.config)
    assert [row["label"] for row in first.rows] == ["PASS (promoted)"] * 4
    with Registry.open(pool_ws.config.db_path) as reg:
        on_s2 = sorted(c.recipe for c in reg.canonicals() if c.server == "canon-s2")
        slots_before = {c.recipe: c.deployment for c in reg.canonicals()}
    for i in range(4):
        release(pool_ws, f"p{i}", "1.1.0+1")

    # kill canon-s2's dockerd as soon as a cold run has a service on it; the cold runs on
    # canon-s1 wait for that (FLEET_TEST), so every promote of this sweep comes after the kill
    killed = threading.Event()
    flag = pool_ws.root / "s2-killed"
    monkeypatch.setenv("CANON_TEST_S2_KILLED", str(flag))

    def killer() -> None:
        end = time.monotonic() + 300
        while time.monotonic() < end:
            names = ctx("canon-s2", "service", "ls", "--format", "{{.Name}}", check=False)
            if "cold" in names:
                os.kill(dockerd_pid(2), signal.SIGKILL)
                killed.set()
                flag.touch()
                return
            time.sleep(0.3)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        second = sweep(pool_ws.config)
        t.join()
        assert killed.is_set()
        by = {row["recipe"]: row for row in second.rows}
        on_dead = [r for r, row in by.items() if row["server"] == "canon-s2"]
        assert on_dead, "no cold run was on canon-s2"
        for r in on_dead:  # an ERROR, no verdict (tested again next week, never known-red)
            assert by[r]["label"].startswith("ERROR"), by[r]
            assert by[r]["verdict"] is None
        alive = [r for r, row in by.items() if row["server"] == "canon-s1"]
        assert alive and all(by[r]["label"] == "PASS (promoted)" for r in alive if r not in on_s2)
        # canon-s2's canonicals: kept in the registry, never moved to canon-s1 nor promoted
        # (every promote came after the kill), each row says unreachable
        with Registry.open(pool_ws.config.db_path) as reg:
            now = {c.recipe: (c.server, c.deployment) for c in reg.canonicals()}
        assert on_s2
        for r in on_s2:
            assert now[r] == ("canon-s2", slots_before[r]), (r, now[r])
            assert by[r]["label"] != "PASS (promoted)", by[r]
            assert any("unreachable" in i for i in by[r]["incidents"]), (
                by[r]["label"],
                by[r]["incidents"],
                by[r]["server"],
            )
        # and `canon status` says so for each of them, with the server
        status = {row["recipe"]: row for row in status_rows(pool_ws.config)}
        for r in on_s2:
            assert status[r]["server"] == "canon-s2"
            assert "unreachable: server canon-s2 does not answer" in status[r]["incident"]
        assert all(status[r]["incident"] is None for r in status if r not in on_s2)
    finally:
        up = subprocess.run(
            [ROOT / "scripts" / "swarm-up", "--servers", "2"], capture_output=True, text=True
        )
        assert up.returncode == 0, up.stderr

    # it comes back: the next sweep tests again what errored, and nothing is duplicated
    third = sweep(pool_ws.config)
    assert all(not row["label"].startswith(("ERROR", "FAIL")) for row in third.rows), [
        (row["recipe"], row["label"], row["reason"]) for row in third.rows
    ]
    with Registry.open(pool_ws.config.db_path) as reg:
        final = {c.recipe: (c.server, c.deployment, c.version) for c in reg.canonicals()}
    assert {v for _, _, v in final.values()} == {"1.1.0+1"}
    for s in SERVERS:
        roles = canon_slots(s)
        assert sorted(roles.values()) == ["canonical"] * sum(x[0] == s for x in final.values())


def test_a_context_that_does_not_exist_is_one_line(pool_ws):
    toml = pool_ws.root / "canon.toml"
    toml.write_text(toml.read_text().replace('"canon-s2"', '"canon-nosuch"'))
    with pytest.raises(BackendUnavailable, match="canon-nosuch.*does not exist") as e:
        make_backend(pool_ws.config).check_engine()
    assert "\n" not in str(e.value)


def test_two_servers_that_are_the_same_engine_are_refused(pool_ws):
    subprocess.run(
        [
            "docker",
            "context",
            "create",
            "canon-s1-again",
            "--docker",
            "host=unix:///var/run/docker.sock",
        ],
        capture_output=True,
        check=False,
    )
    try:
        toml = pool_ws.root / "canon.toml"
        toml.write_text(toml.read_text().replace('"canon-s2"', '"canon-s1-again"'))
        with pytest.raises(ConfigError, match="canon-s1 and canon-s1-again are the same swarm"):
            sweep(pool_ws.config)
    finally:
        subprocess.run(["docker", "context", "rm", "-f", "canon-s1-again"], capture_output=True)
