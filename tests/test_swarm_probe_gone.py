"""An app that says "connection refused" is not an engine that is gone.

``docker exec`` passes on the probed app's own stderr, so the words docker prints when its
engine is gone may come from the app (a web app whose database is not up yet).  Only an
engine that does not answer a check of its own is :class:`BackendUnavailable`; an app's
words are an ordinary failed step or probe, a verdict about the recipe.
"""

from __future__ import annotations

import pytest

from canonlib.backends import BackendError
from canonlib.backends.common import BackendUnavailable
from canonlib.backends.swarm_docker import GONE, Docker
from tests.swarmkit import recipe_files, write_tree
from tests.test_swarm import meta, swarm  # noqa: F401 -- the real-swarm fixture

# what a web app prints while its database is not up, with the rest of docker's words
APP_SAYS = "; ".join(["dial tcp 10.0.0.9:5432: connect: connection refused", *GONE])
FAILS = f"echo '{APP_SAYS}' >&2; exit 3"


@pytest.mark.slow
def test_an_apps_own_connection_refused_is_a_failed_step_and_probe_not_a_gone_engine(
    swarm,  # noqa: F811
    tmp_path,
):
    v1 = write_tree(tmp_path / "v1", recipe_files("1.0.0"))
    m = meta(tmp_path, INSTALL_STEPS=[FAILS])
    slot = "cold-r-0123456789"
    swarm.provision(slot, v1, m)
    swarm.deploy(slot, v1, m, version="1.0.0", commit="a" * 40)
    swarm.wait_converged(slot, 60)

    with pytest.raises(BackendError) as e:
        swarm.run_install_steps(slot, m)
    assert not isinstance(e.value, BackendUnavailable)
    assert "exited 3" in str(e.value) and "connection refused" in str(e.value)

    why = swarm._probe(slot, {"cmd": FAILS, "timeout_s": 20}, swarm.slot_env(slot))
    assert why is not None and "exited 3" in why and "does not answer" not in why
    # the engine is still taken as checked: nothing made the pool ask it again
    assert swarm.docker._swarm_checked

    r = swarm.exec(slot, FAILS, timeout=20, what="ready")
    assert r.returncode == 3 and "connection refused" in r.stderr
    swarm.teardown(slot)


def test_an_engine_that_does_not_answer_is_still_unavailable(tmp_path, monkeypatch):
    # a socket path nothing listens on: docker prints the same words, and its check fails too
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    docker = Docker(timeout_s=30)
    for args in (("ps", "-q"), ("exec", "c0ffee", "sh", "-c", "true"), ("info",)):
        with pytest.raises(BackendUnavailable, match="does not answer"):
            docker.run(*args, step="ready", check=False)
