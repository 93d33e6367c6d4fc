"""Commands inside a swarm slot's running containers, as ``abra app run`` runs them.

``docker exec <container> sh -c <step>`` for install steps and ``cmd`` ready probes:
the container is a running one of the step's service (``service: cmd``, default the
slot's ``app``) on this node, found by the slot's labels.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from canonlib.backends.base import BackendError
from canonlib.backends.compose import split_step, stack_name
from canonlib.backends.swarm_docker import LABEL_INSTANCE, LABEL_SLOT, Docker


def running_container(docker: Docker, instance: str, slot: str, service: str) -> str:
    """A running container of ``service`` in ``slot`` (on this node, as ``abra app run``
    finds one)."""
    stack = stack_name(slot)
    ids = docker.lines(
        "ps",
        "-q",
        "--filter",
        f"label=com.docker.swarm.service.name={stack}_{service}",
        "--filter",
        f"label={LABEL_SLOT}={slot}",
        "--filter",
        f"label={LABEL_INSTANCE}={instance}",
        "--filter",
        "status=running",
        step="exec",
    )
    if not ids:
        raise BackendError("exec", f"slot {slot}: no running container of service {service}")
    return ids[0]


def exec_step(
    docker: Docker,
    instance: str,
    slot: str,
    step: str,
    *,
    default_service: str,
    env: Mapping[str, str],
    timeout: float,
    what: str,
) -> subprocess.CompletedProcess[str]:
    """``service: cmd`` (``default_service`` when none is named) run with ``sh -c`` inside
    the service's container, with ``env`` set; its exit code is the caller's to judge."""
    service, cmd = split_step(step, default_service)
    env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
    return docker.run(
        "exec",
        *env_args,
        running_container(docker, instance, slot, service),
        "sh",
        "-c",
        cmd,
        step=what,
        check=False,
        timeout=timeout,
    )
