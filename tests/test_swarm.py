"""The swarm backend on a real Docker Swarm (scripts/swarm-up).

Install, upgrade, backup, teardown, faults.

Every test here ends with the leftovers check: ``docker`` lists nothing canon
made that is not a canonical.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from canonlib.backends import BackendError
from canonlib.backends.swarm import SwarmBackend
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import CANONICAL, COLD, SlotMarker, utcnow
from tests.swarmkit import (
    IMAGE,
    docker,
    non_canonical_leftovers,
    recipe_files,
    remove_slots,
    require_swarm,
    swarm_lock,
    write_tree,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def swarm(tmp_path):
    """A swarm backend on the real engine; afterwards nothing non-canonical may be left."""
    require_swarm()
    with swarm_lock():
        assert non_canonical_leftovers() == [], "the swarm was not clean before the test"
        # an instance that reads as a number (a float to YAML 1.2) must stay a label string
        backend = SwarmBackend(
            tmp_path / "swarm",
            helper_image=IMAGE,
            timeout_s=60,
            run_id="test-run",
            instance="73166899739e10",
        )
        made_canonical: set[str] = set()
        backend.test_canonicals = made_canonical  # tests that mark a canonical register it here
        yield backend
        left = non_canonical_leftovers()
        remove_slots(made_canonical | {x.split("(slot ")[1].rstrip(")") for x in left})
        assert left == [], f"canon left these on the swarm: {left}"


def meta(tmp_path, **values) -> RecipeMeta:
    values.setdefault("DEPLOY_TIMEOUT_S", 60)
    return RecipeMeta("r", tmp_path / "recipe_meta.py", values)


def labels_of(kind: str, slot: str, name: str | None = None) -> list[dict[str, str]]:
    by_name = ["--filter", f"name={name}"] if name else []
    ids = docker(kind, "ls", "-q", "--filter", f"label=canon.slot={slot}", *by_name).split()
    docs = json.loads(docker(kind, "inspect", *ids)) if ids else []
    return [(d.get("Spec") or d).get("Labels") or {} for d in docs]


def test_install_upgrade_backup_teardown_on_a_real_swarm(swarm, tmp_path):
    v1 = write_tree(tmp_path / "v1", recipe_files("1.0.0", db=True))
    v2 = write_tree(tmp_path / "v2", recipe_files("1.1.0", secret_version="v2", db=True))
    m = meta(
        tmp_path,
        SECRETS={"db_password": None},
        DEPS=["db"],
        INSTALL_STEPS=["app: echo seeded > /data/seed.txt"],
        READY_PROBES=[
            {
                "cmd": "test -s /run/secrets/db_password && grep -q hello /etc/app.conf",
                "retries": 20,
                "interval_s": 0.5,
            }
        ],
    )
    slot = "cold-r-0123456789"
    swarm.provision(slot, v1, m)
    swarm.deploy(slot, v1, m, version="1.0.0", commit="a" * 40)
    swarm.run_install_steps(slot, m)
    swarm.wait_ready(slot, m)

    # abra's versioned secret name, a value of the .env.sample's `# length=24`, never on argv
    stack = "cold-r-0123456789"
    assert docker(
        "secret", "ls", "--format", "{{.Name}}", "--filter", f"label=canon.slot={slot}"
    ).split() == [f"{stack}_db_password_v1"]
    r = swarm.exec(slot, "wc -c < /run/secrets/db_password", timeout=10, what="test")
    assert r.stdout.strip() == "24"
    # interpolation: STACK_NAME and the .env values reach the service; the version label is the tag
    r = swarm.exec(slot, "cat /data/www/index.html; echo $GREETING", timeout=10, what="test")
    assert r.stdout.split() == [stack, "hi"]
    app = labels_of("service", slot, name=f"{stack}_app")
    assert len(app) == 1 and app[0][f"coop-cloud.{stack}.version"] == "1.0.0"
    # DEPS: db's task was running before app's service was even created
    db_task = docker("service", "ps", f"{stack}_db", "-q", "--no-trunc").split()[-1]
    db_running = when(
        docker("inspect", "--type", "task", "--format", "{{json .Status.Timestamp}}", db_task)
    )
    app_created = when(
        docker("service", "inspect", f"{stack}_app", "--format", "{{json .CreatedAt}}")
    )
    assert db_running < app_created
    # everything the slot made carries its slot and run labels
    for kind in ("service", "volume", "secret", "config", "network"):
        got = labels_of(kind, slot)
        assert got and all(
            x["canon.run_id"] == "test-run" and x["canon.recipe"] == "r" for x in got
        ), kind
    assert swarm.markers()[slot].role == COLD
    assert swarm.deployed(slot)["version"] == "1.0.0"

    # L2: the next tag on the same stack and volumes; a new secret version is a new secret
    swarm.provision(slot, v2, m)
    swarm.deploy(slot, v2, m, version="1.1.0", commit="b" * 40)
    swarm.wait_ready(slot, m)
    assert (
        labels_of("service", slot, name=f"{stack}_app")[0][f"coop-cloud.{stack}.version"] == "1.1.0"
    )
    assert (
        swarm.exec(slot, "cat /data/seed.txt", timeout=10, what="test").stdout.strip() == "seeded"
    )
    names = docker(
        "secret", "ls", "--format", "{{.Name}}", "--filter", f"label=canon.slot={slot}"
    ).split()
    assert sorted(names) == [f"{stack}_db_password_v1", f"{stack}_db_password_v2"]

    # L3: archive the volumes, wipe, restore
    snap = swarm.snapshot(slot)
    swarm.wipe_data(slot)
    assert swarm.exec(slot, "cat /data/seed.txt", timeout=10, what="test").returncode != 0
    swarm.restore(slot, snap)
    swarm.wait_ready(slot, m)
    assert (
        swarm.exec(slot, "cat /data/seed.txt", timeout=10, what="test").stdout.strip() == "seeded"
    )

    swarm.teardown(slot)
    assert swarm.markers() == {} and swarm.deployed(slot) is None


def when(go_time: str) -> datetime:
    """A docker ``{{json .Time}}`` (RFC 3339, nanoseconds) as a datetime."""
    text = json.loads(go_time).replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    frac, zone = (rest[:-6], rest[-6:]) if rest else ("0", text[-6:])
    return datetime.fromisoformat(f"{head if rest else head[:-6]}.{frac[:6].ljust(6, '0')}{zone}")


def test_deps_that_are_not_services_fail_before_anything_is_made(swarm, tmp_path):
    tree = write_tree(tmp_path / "v1", recipe_files("1.0.0"))
    m = meta(tmp_path, DEPS=["db", "app"], SECRETS={"db_password": None})
    with pytest.raises(
        BackendError,
        match=r"r: DEPS 'db' in .*recipe_meta.py is not a service of its compose "
        r"files \(app\): on the swarm, DEPS are the recipe's own services",
    ):
        swarm.provision("cold-deps-1", tree, m)
    assert docker("secret", "ls", "-q", "--filter", "label=canon.slot=cold-deps-1").split() == []
    swarm.teardown("cold-deps-1")


def test_a_file_docker_rejects_fails_with_dockers_message(swarm, tmp_path):
    bad = recipe_files(
        "1.0.0",
        compose='version: "3.8"\nservices:\n  app:\n    image: x\n    ports: "not-a-list"\n',
    )
    tree = write_tree(tmp_path / "bad", bad)
    m = meta(tmp_path)
    with pytest.raises(BackendError, match=r"docker rejects compose.yml at 1.0.0: .*ports"):
        swarm.deploy("cold-bad-1", tree, m, version="1.0.0", commit="c" * 40)
    swarm.teardown("cold-bad-1")


def test_no_compose_yml_is_not_a_recipe(swarm, tmp_path):
    tree = write_tree(tmp_path / "empty", {"README.md": "hi\n"})
    with pytest.raises(BackendError, match="not a recipe: no compose.yml at 2.0.0"):
        swarm.deploy("cold-empty-1", tree, meta(tmp_path), version="2.0.0", commit="d" * 40)
    swarm.teardown("cold-empty-1")


def test_a_service_that_never_converges_fails_within_its_deadline_with_the_task_error(
    swarm, tmp_path
):
    compose = (
        f'version: "3.8"\nservices:\n  app:\n    image: {IMAGE}\n'
        '    command: ["sh", "-c", "echo dying; exit 3"]\n'
    )
    tree = write_tree(tmp_path / "crash", recipe_files("1.0.0", compose=compose))
    m = meta(tmp_path, DEPLOY_TIMEOUT_S=6)
    with pytest.raises(
        BackendError,
        match=r"did not converge within 6s: .*last task error of cold-crash-1_app: .*exit \(3\)",
    ):
        swarm.deploy("cold-crash-1", tree, m, version="1.0.0", commit="e" * 40)
    swarm.teardown("cold-crash-1")


def test_a_canonical_is_never_torn_down_and_markers_survive_a_new_backend(swarm, tmp_path):
    """... and with ``warm = "snapshot"`` a canonical is archived, then undeployed: services
    gone, volumes, secrets and marker kept, still refused to teardown, and it comes back
    from its snapshot with its data."""
    compose = (
        f'version: "3.8"\nservices:\n  app:\n    image: {IMAGE}\n    command: ["sleep", "600"]\n'
        "    stop_grace_period: 1s\n    volumes: [data:/data]\nvolumes:\n  data:\n"
    )
    tree = write_tree(tmp_path / "c", recipe_files("1.0.0", compose=compose))
    m = meta(tmp_path)
    slot = "warm-r-abcdef01"
    marker = SlotMarker(
        slot=slot,
        recipe="r",
        role="next",
        version="1.0.0",
        commit="f" * 40,
        run_id="test-run",
        created_at=utcnow(),
    )
    swarm.mark(slot, marker)
    swarm.provision(slot, tree, m)
    swarm.deploy(slot, tree, m, version="1.0.0", commit="f" * 40)
    swarm.mark(slot, marker.as_role(CANONICAL, promotion_id=1))
    swarm.test_canonicals.add(slot)
    again = SwarmBackend(
        tmp_path / "elsewhere", helper_image=IMAGE, instance=swarm.instance
    )  # labels only
    assert again.markers()[slot].role == CANONICAL
    assert again.deployed(slot)["commit"] == "f" * 40
    with pytest.raises(BackendError, match="canonical marker"):
        again.teardown(slot)
    assert docker("service", "ls", "-q", "--filter", f"label=canon.slot={slot}").split()
    # another canon on the same swarm neither sees nor purges it
    other = SwarmBackend(tmp_path / "other", helper_image=IMAGE, instance="another-canon")
    assert other.slots() == [] and other.markers() == {} and other.purge() == []
    assert swarm.markers()[slot].role == CANONICAL

    by_slot = ("--filter", f"label=canon.slot={slot}")
    assert swarm.exec(slot, "echo kept > /data/f", timeout=10, what="test").returncode == 0
    snapshot = SwarmBackend(
        tmp_path / "swarm",
        helper_image=IMAGE,
        warm="snapshot",
        run_id="test-run",
        instance=swarm.instance,
    )
    snap = snapshot.snapshot(slot)
    snapshot.undeploy(slot)
    assert docker("service", "ls", "-q", *by_slot).split() == []
    assert docker("ps", "-aq", *by_slot).split() == []
    assert docker("volume", "ls", "-q", *by_slot).split() == [f"{slot}_data"]
    assert snapshot.markers()[slot].role == CANONICAL
    assert snapshot.deployed(slot)["state"] == "undeployed"
    with pytest.raises(BackendError, match="canonical marker"):
        snapshot.teardown(slot)
    snapshot.wipe_data(slot)  # the volume lost, then the canonical back from its snapshot
    assert snapshot.exec(slot, "cat /data/f", timeout=10, what="test").returncode != 0
    snapshot.restore(slot, snap)
    assert snapshot.exec(slot, "cat /data/f", timeout=10, what="test").stdout.strip() == "kept"


def task_states(slot: str) -> list[tuple[str, str]]:
    """(task ID, current state) of the slot's app service, as ``docker service ps`` shows them."""
    rows = docker(
        "service",
        "ps",
        f"{slot}_app",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.CurrentState}}",
        check=False,
    ).splitlines()
    return [(r.split()[0], r.split()[1]) for r in rows if r.strip()]


def test_teardown_while_a_task_is_still_being_prepared_leaves_nothing_behind(swarm, tmp_path):
    """A task the swarm is still preparing when its service is removed creates its container
    and volume a moment later.  Injected for real: a deadline too short to converge, then
    teardown a little after the task says Preparing (0.2-0.75 s in, the agent is creating
    the container: without the wait, most such teardowns left a container and a volume);
    once the swarm has dropped the tasks, nothing of the slots may exist."""
    tree = write_tree(tmp_path / "v1", recipe_files("1.0.0"))
    m = meta(tmp_path, DEPLOY_TIMEOUT_S=0.01)
    tasks, seen = [], {}
    for i, delay in enumerate((0.2, 0.35, 0.5, 0.65)):
        slot = f"cold-prep-{i}"
        swarm.provision(slot, tree, m)
        with pytest.raises(BackendError, match="did not converge within 0.01s"):
            swarm.deploy(slot, tree, m, version="1.0.0", commit="a" * 40)
        for _ in range(200):
            states = task_states(slot)
            if any(state in ("Preparing", "Starting", "Running") for _, state in states):
                break
            time.sleep(0.02)
        tasks += [t for t, _ in states]
        time.sleep(delay)
        seen[slot] = task_states(slot)  # as the teardown starts
        swarm.teardown(slot)
    for _ in range(300):  # the swarm drops a removed service's tasks once they are shut down
        if not any(
            docker("inspect", "--type", "task", "--format", "{{.ID}}", t, check=False).strip()
            for t in tasks
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"tasks {tasks} never went away")
    assert non_canonical_leftovers() == [], f"the tasks as teardown started: {seen}"
