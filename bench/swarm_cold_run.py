"""One cold install on the swarm through canon, against the bare docker commands it issues.

canon:  SwarmBackend provision -> deploy (converged) -> ready probe -> teardown
bare:   docker stack config; docker secret create; docker stack deploy; poll
        docker service ps until the task runs and stays STABLE_S; docker exec (the probe);
        docker service rm; docker rm -f (the containers); docker volume/secret/config/network rm

Both on the same recipe (busybox httpd with a secret, a config, a named volume
and a healthcheck), alternated, in the same run.  Prints the medians, overall and per phase, and
canon's ratio (target <= 1.2x).  Needs the swarm: scripts/swarm-up.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canonlib.backends.swarm import SwarmBackend  # noqa: E402
from canonlib.backends.swarm_converge import STABLE_S  # noqa: E402
from canonlib.recipe.meta import RecipeMeta  # noqa: E402
from tests.swarmkit import IMAGE, recipe_files, swarm_problem, write_tree  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def docker(*args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, input=input
    ).stdout


PHASES = ("render + secrets", "deploy + converge", "ready probe", "teardown")


def canon_run(tree: Path, work: Path, slot: str) -> list[float]:
    """Seconds per phase (:data:`PHASES`)."""
    b = SwarmBackend(work, helper_image=IMAGE, timeout_s=120)
    meta = RecipeMeta(
        "bench",
        work / "recipe_meta.py",
        {
            "DEPLOY_TIMEOUT_S": 120,
            "READY_PROBES": [{"cmd": "test -d /data/www", "retries": 20, "interval_s": 0.2}],
        },
    )
    t = [time.perf_counter()]
    b.provision(slot, tree, meta)
    t.append(time.perf_counter())
    b.deploy(slot, tree, meta, version="1.0.0", commit="0" * 40)
    t.append(time.perf_counter())
    b.wait_ready(slot, meta)
    t.append(time.perf_counter())
    b.teardown(slot)
    t.append(time.perf_counter())
    return [b - a for a, b in zip(t, t[1:], strict=False)]


def converge(stack: str) -> None:
    """Poll until the task runs, then until that task stays running STABLE_S (as canon waits)."""
    first: tuple[str, float] | None = None
    while True:
        polled = time.monotonic()
        rows = docker(
            "service",
            "ps",
            f"{stack}_app",
            "--filter",
            "desired-state=running",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CurrentState}}",
        ).splitlines()
        running = [r.split()[0] for r in rows if " Running" in r]
        if len(running) == 1:
            if first is None or first[0] != running[0]:
                first = (running[0], time.monotonic())
            elif time.monotonic() - first[1] >= STABLE_S:
                return
        else:
            first = None
        time.sleep(max(0.05, 0.5 - (time.monotonic() - polled)))  # a poll every 0.5 s, as canon's


def bare_run(tree: Path, stack: str) -> list[float]:
    """Seconds per phase (:data:`PHASES`)."""
    env = {
        **os.environ,
        "STACK_NAME": stack,
        "DOMAIN": f"{stack}.bench",
        "GREETING": "hi",
        "SECRET_DB_PASSWORD_VERSION": "v1",
        "APP_CONF_VERSION": "v1",
    }
    t = [time.perf_counter()]
    rendered = subprocess.run(
        ["docker", "stack", "config", "-c", "compose.yml"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docker("secret", "create", f"{stack}_db_password_v1", "-", input="x" * 24)
    t.append(time.perf_counter())
    subprocess.run(
        [
            "docker",
            "stack",
            "deploy",
            "--detach=true",
            "--resolve-image",
            "never",
            "-c",
            "-",
            stack,
        ],
        input=rendered.replace("$", "$$"),
        text=True,
        capture_output=True,
        check=True,
    )
    converge(stack)
    t.append(time.perf_counter())
    docker(
        "exec",
        docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={stack}_app").split()[
            0
        ],
        "sh",
        "-c",
        "test -d /data/www",
    )
    t.append(time.perf_counter())
    # the teardown canon issues: services, containers (forced), then the slot's objects
    docker("service", "rm", f"{stack}_app")
    while ids := docker(
        "ps", "-aq", "--filter", f"label=com.docker.stack.namespace={stack}"
    ).split():
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    docker("volume", "rm", f"{stack}_data")
    docker("secret", "rm", f"{stack}_db_password_v1")
    docker("config", "rm", f"{stack}_app_conf_v1")
    docker("network", "rm", f"{stack}_default")
    t.append(time.perf_counter())
    return [b - a for a, b in zip(t, t[1:], strict=False)]


def main() -> int:
    problem = swarm_problem()
    if problem:
        print(f"swarm_cold_run: skipped: {problem}")
        return 0
    canon, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_tree(Path(tmp) / "recipe", recipe_files("1.0.0"))
        for i in range(ROUNDS):
            bare.append(bare_run(tree, f"bench-bare-{i}"))
            canon.append(canon_run(tree, Path(tmp) / "swarm", f"cold-bench-{i}"))
    c, b = statistics.median(sum(x) for x in canon), statistics.median(sum(x) for x in bare)
    print(
        f"swarm cold run ({ROUNDS} rounds, medians): canon {c:.2f}s  bare docker {b:.2f}s  "
        f"ratio {c / b:.2f}x (target <= 1.2x)"
    )
    for i, what in enumerate(PHASES):
        ci, bi = statistics.median(x[i] for x in canon), statistics.median(x[i] for x in bare)
        print(f"  {what:18} canon {ci:5.2f}s  bare {bi:5.2f}s  ratio {ci / bi:.2f}x")
    for what, runs in (("canon", canon), ("bare", bare)):
        print(f"  each round, {what}: " + "; ".join(" ".join(f"{x:.2f}" for x in r) for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
