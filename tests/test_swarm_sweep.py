"""Sweeps on a real Docker Swarm: promote keeps the canonical running, a promote that fails
after its deploy leaves the old canonical running and recorded, and a SIGKILLed canon's
leftovers are reaped by the next sweep, which then completes.

Each test ends with the leftovers check: docker lists nothing canon made but canonicals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from canonlib.backends.swarm import SwarmBackend
from canonlib.demo import swarm as demo_swarm
from canonlib.demo.fleet import KEYCLOAK_BROKEN_HOOK, demo_image, expected_labels, recipe_files
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests.cli import canon, canon_argv
from tests.swarmkit import (
    IMAGE,
    docker,
    non_canonical_leftovers,
    remove_slots,
    require_swarm,
    swarm_lock,
)
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

# the backup rung is covered by tests/test_swarm.py; here it would only double the time
META = demo_swarm.meta("app") + 'EXPECTED_NA = {"backup": "covered by test_swarm.py"}\n'


@pytest.fixture
def sws(tmp_path):
    """A workspace whose backend is the real swarm; afterwards only canonicals may be left."""
    require_swarm()
    with swarm_lock():
        assert non_canonical_leftovers() == [], "the swarm was not clean before the test"
        demo_swarm.ensure_proxy_network()
        ws = Workspace(tmp_path)
        with (tmp_path / "canon.toml").open("a") as f:
            f.write(f'\n[backend]\nkind = "swarm"\nhelper_image = "{IMAGE}"\ntimeout_s = 60\n')
        ws.recipe("app", meta=META, test=demo_swarm.FLEET_TEST)
        yield ws
        backend = SwarmBackend(ws.config.state_dir / "swarm")
        left = non_canonical_leftovers()
        remove_slots(set(backend.slots()) | {x.split("(slot ")[1].rstrip(")") for x in left})
        assert left == [], f"canon left these on the swarm: {left}"


def release(ws: Workspace, tag: str, **kw) -> str:
    demo_swarm.build_images({demo_image("app", tag): "app"})
    up = ws.upstreams["app"]
    commit = up.commit(recipe_files("app", tag, swarm=True, **kw), f"release {tag}")
    up.tag(tag)
    return commit


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (the harness canon started), from /proc."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def running(slot: str) -> bool:
    out = docker(
        "service", "ls", "--filter", f"label=canon.slot={slot}", "--format", "{{.Replicas}}"
    )
    return out.split() == ["1/1"]


def test_promote_keeps_the_canonical_running_and_a_failed_promote_costs_nothing(sws):
    release(sws, "1.0.0+1")
    r1 = sweep(sws.config)
    assert [x["label"] for x in r1.rows] == ["PASS (promoted)"], r1.rows
    with Registry.open(sws.config.db_path) as reg:
        first = reg.read_registry("app")
    backend = SwarmBackend(sws.config.state_dir / "swarm")
    assert running(first.deployment)
    assert backend.markers()[first.deployment].is_canonical
    assert backend.deployed(first.deployment)["commit"] == first.commit

    # 2.0.0 is green cold, but its post-install hook fails in a warm slot: after the deploy
    release(sws, "2.0.0+1", extra={"post-install.sh": KEYCLOAK_BROKEN_HOOK})
    r2 = sweep(sws.config)
    assert [x["label"] for x in r2.rows] == ["GREEN-BUT-PROMOTE-FAILED"], r2.rows
    assert "post-install: realm import failed" in str(r2.rows[0].get("error"))
    with Registry.open(sws.config.db_path) as reg:
        assert reg.read_registry("app") == first
    assert running(first.deployment) and backend.markers()[first.deployment].is_canonical
    assert list(backend.markers()) == [first.deployment]  # the failed next slot is gone


def test_sigkill_mid_deploy_then_the_next_sweep_reaps_and_completes(sws, tmp_path):
    release(sws, "1.0.0+1")
    cfg = sws.config
    argv = canon_argv(tmp_path, "sweep")
    proc = subprocess.Popen(
        argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # this canon's own services only: another canon on the swarm (make demo-swarm) keeps its
    # canonicals running, and seeing theirs made this test kill the sweep before it deployed
    mine = f"label=canon.instance={SwarmBackend(cfg.state_dir / 'swarm').instance}"
    try:
        for _ in range(600):  # until the cold slot's service exists: canon is mid-deploy
            if docker("service", "ls", "-q", "--filter", mine).split():
                break
            assert proc.poll() is None, "the sweep ended before it deployed anything"
            time.sleep(0.2)
        else:
            pytest.fail("no service appeared")
    finally:  # canon and its harness (its own process group), no chance to clean up
        for pid in children(proc.pid):
            os.killpg(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert non_canonical_leftovers(), "nothing was left: the kill came too late to test the janitor"

    r = canon(tmp_path, "sweep", timeout=900)
    assert "reaped slot cold-app-" in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    with Registry.open(cfg.db_path) as reg:
        canonical = reg.read_registry("app")
    assert canonical and canonical.tag == "1.0.0+1" and running(canonical.deployment)


def test_a_config_changed_without_its_version_bumped_fails_the_upgrade_on_the_swarm(sws):
    """The demo's ghost in week 2, on a real swarm: docker refuses to change a config in place,
    so the upgrade from the canonical fails at L2 (make demo-swarm expects exactly this)."""
    release(sws, "1.0.0+1", configs=True)
    r1 = sweep(sws.config)
    assert [x["label"] for x in r1.rows] == ["PASS (promoted)"], r1.rows
    with Registry.open(sws.config.db_path) as reg:
        first = reg.read_registry("app")

    release(sws, "1.1.0+1", configs=True, app_conf="ok\nmail=smtp\n")  # APP_CONF_VERSION=v1 still
    r2 = sweep(sws.config)
    (row,) = r2.rows
    assert row["label"] == expected_labels("week 2", "swarm")["ghost"] == "FAIL (level 1/5)"
    assert row["reason"].startswith("L2 upgrade: from canonical 1.0.0+1: deploy:"), row["reason"]
    assert "only updates to Labels are allowed" in row["reason"], row["reason"]
    with Registry.open(sws.config.db_path) as reg:
        assert reg.read_registry("app") == first
    assert running(first.deployment)


def test_a_release_that_would_write_on_the_host_through_a_root_bind_never_runs(sws, tmp_path):
    """A release whose container would write a file on the host through ``/:/host`` is HELD:
    no stack, no container, and the file never appears."""
    tag = "1.0.0+1"
    demo_swarm.build_images({demo_image("app", tag): "app"})
    sentinel = tmp_path / "written-through-host-root"
    files = recipe_files("app", tag, swarm=True)
    image = f"    image: {demo_image('app', tag)}\n"
    files["compose.yml"] = (
        files["compose.yml"]
        .replace(
            image,
            image + f'    command: ["sh", "-c", "echo pwned > /host{sentinel}; '
            'exec httpd -f -p 8080 -h /srv"]\n',
            1,
        )
        .replace("      - data:/var/lib/app\n", "      - data:/var/lib/app\n      - /:/host\n", 1)
    )
    up = sws.upstreams["app"]
    up.commit(files, f"release {tag}")
    up.tag(tag)
    result = sweep(sws.config)
    (row,) = result.rows
    assert row["label"] == "HELD (host access)", row
    assert result.exit_code == 1
    assert "bind:/ (compose.yml:" in row["reason"] and "state dir" in row["reason"]
    backend = SwarmBackend(sws.config.state_dir / "swarm")
    assert not list(backend.slots())  # no stack was made
    mine = f"label=canon.instance={backend.instance}"
    assert docker("service", "ls", "-q", "--filter", mine).split() == []
    assert not sentinel.exists()
