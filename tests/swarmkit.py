"""Real Docker Swarm for tests.

The engine check, the test image, a recipe maker, the leftovers check.

Outside CI a test that needs the swarm skips with the reason when no engine
answers; in CI (``CI=true``) it fails instead: ``.ci/run`` brings the swarm
up with ``scripts/swarm-up`` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

from tests.need import need

IMAGE = os.environ.get("CANON_TEST_IMAGE", "canon-test/busybox:1")


def docker(*args: str, check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, input=input, check=False
    )
    if check and proc.returncode:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def swarm_problem() -> str | None:
    """Why the swarm tests cannot run here, or None."""
    if not shutil.which("docker"):
        return "no docker CLI (scripts/swarm-up installs one)"
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if proc.returncode:
        return f"no docker engine answers ({proc.stderr.strip()[-200:]}); run scripts/swarm-up"
    if proc.stdout.strip() != "active":
        return f"docker is not in an active swarm ({proc.stdout.strip()}); run scripts/swarm-up"
    if subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False
    ).returncode:
        return f"test image {IMAGE} is missing; run scripts/swarm-up"
    return None


def require_swarm() -> None:
    need(swarm_problem())


# one machine-wide swarm: two test runs on one machine (two worktrees, a second suite)
# would see each other's slots as leftovers, so each swarm test holds this lock throughout
LOCK = Path(os.environ.get("CANON_SWARM_TEST_LOCK", "/tmp/canon-swarm-tests.lock"))


@contextlib.contextmanager
def swarm_lock():
    """Hold the machine-wide swarm-test lock (blocking) for the body."""
    with LOCK.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def canon_objects() -> dict[str, list[dict[str, str]]]:
    """Everything on the engine canon made (label ``canon.slot``), with its labels, by kind."""
    out: dict[str, list[dict[str, str]]] = {}
    for kind in ("service", "volume", "secret", "config", "network", "container"):
        ls = ["ps", "-aq"] if kind == "container" else [kind, "ls", "-q"]
        ids = docker(*ls, "--filter", "label=canon.slot").split()
        if not ids:
            continue
        # one by one: an object going away between ls and inspect is simply gone
        docs = [json.loads(docker(kind, "inspect", i, check=False) or "[]") for i in ids]
        out[kind] = [_labels(kind, d[0]) for d in docs if d]
    return out


def _labels(kind: str, doc: dict) -> dict[str, str]:
    if kind in ("service", "secret", "config"):
        return dict(doc["Spec"].get("Labels") or {}) | {"name": doc["Spec"]["Name"]}
    if kind == "container":
        return dict(doc["Config"].get("Labels") or {}) | {"name": doc["Name"]}
    return dict(doc.get("Labels") or {}) | {"name": doc["Name"]}


def canonical_slots() -> set[str]:
    """Slots whose newest marker record says canonical."""
    newest: dict[str, dict[str, str]] = {}
    for labels in canon_objects().get("config", []):
        if labels.get("canon.record") == "1":
            slot = labels["canon.slot"]
            if slot not in newest or labels["canon.seq"] > newest[slot]["canon.seq"]:
                newest[slot] = labels
    return {s for s, labels in newest.items() if labels.get("canon.role") == "canonical"}


def non_canonical_leftovers() -> list[str]:
    keep = canonical_slots()
    return sorted(
        f"{kind} {labels['name']} (slot {labels['canon.slot']})"
        for kind, objs in canon_objects().items()
        for labels in objs
        if labels["canon.slot"] not in keep
    )


def remove_slots(slots: set[str]) -> None:
    """Test cleanup of canonicals a test made on purpose: by label, like canon's teardown."""
    for slot in slots:
        f = ["--filter", f"label=canon.slot={slot}"]
        for svc in docker("service", "ls", "-q", *f).split():
            docker("service", "rm", svc, check=False)
        for c in docker("ps", "-aq", *f).split():
            docker("rm", "-f", c, check=False)
        for kind in ("volume", "secret", "config", "network"):
            # a stack's network outlives its removed service for a moment (its tasks still hold
            # an endpoint: "network has active endpoints"), more so on a busy machine: ask again
            deadline = time.monotonic() + 30
            while ids := docker(kind, "ls", "-q", *f).split():
                docker(kind, "rm", *ids, check=False)
                if time.monotonic() > deadline or not docker(kind, "ls", "-q", *f).split():
                    break
                time.sleep(0.5)


COMPOSE = textwrap.dedent("""\
    version: "3.8"
    services:
      app:
        image: {image}
        command:
          - sh
          - -c
          - >-
            mkdir -p /data/www && echo $$STACK_NAME > /data/www/index.html
            && exec httpd -f -p 8080 -h /data/www
        environment:
          - STACK_NAME
          - DOMAIN
          - GREETING
        volumes:
          - data:/data
        secrets:
          - db_password
        configs:
          - source: app_conf
            target: /etc/app.conf
        stop_grace_period: 1s
        healthcheck:
          test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8080/"]
          interval: 1s
          timeout: 2s
          retries: 20
        deploy:
          labels:
            - "coop-cloud.${{STACK_NAME}}.version={version}"
    {db}
    volumes:
      data:
    secrets:
      db_password:
        external: true
        name: ${{STACK_NAME}}_db_password_${{SECRET_DB_PASSWORD_VERSION}}
    configs:
      app_conf:
        name: ${{STACK_NAME}}_app_conf_${{APP_CONF_VERSION}}
        file: app.conf
    """)


DB = """\
  db:
    image: {image}
    command: ["sh", "-c", "mkdir -p /srv && exec httpd -f -p 8080 -h /srv"]
    stop_grace_period: 1s
"""


def recipe_files(
    version: str,
    *,
    secret_version: str = "v1",
    image: str = IMAGE,
    compose: str | None = None,
    app_conf: str = "greeting=hello\n",
    db: bool = False,
) -> dict[str, str]:
    """A recipe's files; ``db``: with a second service, ``db``."""
    db_service = DB.format(image=image) if db else ""
    return {
        "compose.yml": compose
        if compose is not None
        else COMPOSE.format(image=image, version=version, db=db_service),
        ".env.sample": f"TYPE=r\nDOMAIN=r.example.com\nGREETING=hi\n"
        f"SECRET_DB_PASSWORD_VERSION={secret_version} # length=24\n",
        "abra.sh": "export APP_CONF_VERSION=v1\n",
        "app.conf": app_conf,
    }


def write_tree(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path
