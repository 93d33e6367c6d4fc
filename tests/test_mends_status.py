"""``canon status`` with several servers, one of which does not answer.

A canonical on a server that does not answer is reported unreachable, and only that: its
slot is not listed because its server was not asked, which says nothing about the slot.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from canonlib.ops.status import status_rows
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests.test_servers_swarm import SERVERS, pool_ws  # noqa: F401 -- the two-server fixture

pytestmark = pytest.mark.slow


def docker_config_with_one_down(tmp_path, down: str) -> str:
    """A docker config of its own (the machine's contexts untouched) in which ``down`` points
    at a socket nothing listens on and every other server at its real engine."""
    cfg = tmp_path / "docker-config"
    for s in SERVERS:
        host = subprocess.run(
            ["docker", "context", "inspect", s, "--format", "{{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if s == down:
            host = f"unix://{tmp_path}/no-engine.sock"
        subprocess.run(
            ["docker", "context", "create", s, "--docker", f"host={host}"],
            env={**os.environ, "DOCKER_CONFIG": str(cfg)},
            capture_output=True,
            check=True,
        )
    return str(cfg)


def test_a_canonical_on_a_server_that_does_not_answer_is_unreachable_not_gone(
    pool_ws,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    r = sweep(pool_ws.config)
    assert [row.label for row in r.results] == ["PASS (promoted)"] * 4
    with Registry.open(pool_ws.config.db_path) as reg:
        homes = {c.recipe: c.server for c in reg.canonicals()}
    down = homes["p0"]
    monkeypatch.setenv("DOCKER_CONFIG", docker_config_with_one_down(tmp_path, down))

    status = {row["recipe"]: row for row in status_rows(pool_ws.config)}
    assert {r: row["incident"] for r, row in status.items()} == {
        r: f"unreachable: server {down} does not answer" if s == down else None
        for r, s in homes.items()
    }
