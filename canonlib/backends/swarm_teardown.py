"""A swarm slot taken down by its labels, never by a name: services, containers, the rest.

:func:`remove_services` removes the slot's services and waits until every container they
made is gone (or removes them, ``force``); :func:`remove_objects` removes the slot's
volumes, secrets, configs and networks side by side and returns its records, which the
caller removes last: a teardown cut short leaves a marked slot the janitor finds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from canonlib.backends.base import BackendError
from canonlib.backends.swarm_docker import RECORD, Docker, label_filters

EARLY = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing"})
"""Task states before the task's container (and the volumes it mounts) exists."""
_TASK_ROW = "{{.ID}} {{.Name}} {{.CurrentState}}"
_KINDS = ("volume", "secret", "config", "network")


def _early(rows: Iterable[str]) -> set[str]:
    """The IDs among ``{{.ID}} {{.Name}} {{.CurrentState}}`` task rows whose container may not
    exist yet."""
    return {f[0] for f in (r.split() for r in rows) if len(f) > 2 and f[2].lower() in EARLY}


def _task_of(row: str, service_ids: Iterable[str], names: set[str]) -> bool:
    """Whether a ``node ps`` row is a task of one of the services: its name is
    ``<service name>.<slot>``, or ``<service ID>.<slot>`` once the service is gone."""
    f = row.split()
    service = f[1].rsplit(".", 1)[0] if len(f) > 1 else ""
    return service in names or any(service.startswith(i) for i in service_ids if i)


def remove_services(
    docker: Docker, slot: str, want: Mapping[str, str], step: str, *, force: bool
) -> None:
    """The slot's services removed, then every container they made gone (``force``: removed).

    A task the swarm was still preparing when its service went can create its container,
    and the volumes it mounts, a moment later.  So the slot's tasks are listed before
    (``service ps``: also tasks not yet on a node) and after (``node ps``: tasks made in
    between) the ``service rm``, and those still before their container exists are waited
    out (past ``preparing``, or gone) before the containers are counted."""
    rows = docker.lines(
        "service", "ls", *label_filters(want), "--format", "{{.ID}} {{.Name}}", step=step
    )
    end = time.monotonic() + docker.timeout_s
    if rows:
        ids = [r.split()[0] for r in rows]
        names = {r.split()[-1] for r in rows}
        early = _early(
            docker.lines("service", "ps", *ids, "--no-trunc", "--format", _TASK_ROW, step=step)
        )
        docker.run("service", "rm", *ids, step=step, check=not force)
        early |= _early(r for r in _node_tasks(docker, step) if _task_of(r, ids, names))
        _wait_out_early(docker, slot, early, end, step)
    _wait_containers_gone(docker, slot, want, end, step, force=force)


def _node_tasks(docker: Docker, step: str) -> list[str]:
    """This node's task rows (``{{.ID}} {{.Name}} {{.CurrentState}}``)."""
    return docker.run(
        "node",
        "ps",
        "self",
        "--no-trunc",
        "--format",
        _TASK_ROW,
        step=step,
        check=False,
    ).stdout.splitlines()


def _wait_out_early(docker: Docker, slot: str, early: set[str], end: float, step: str) -> None:
    """Until none of the ``early`` tasks is still before its container exists (or ``end``)."""
    while early:
        found = docker.run(
            "inspect",
            "--type",
            "task",
            "--format",
            "{{.ID}} {{.Status.State}}",
            *sorted(early),
            step=step,
            check=False,
        ).stdout
        early = {
            t
            for t, _, state in (r.partition(" ") for r in found.splitlines())
            if state.strip() in EARLY
        }
        if early and time.monotonic() > end:
            raise BackendError(
                step,
                f"slot {slot}: tasks {sorted(early)} still preparing after {docker.timeout_s:g}s",
            )
        time.sleep(0.1 if early else 0)


def _wait_containers_gone(
    docker: Docker, slot: str, want: Mapping[str, str], end: float, step: str, *, force: bool
) -> None:
    """Until no container carries ``want``'s labels (``force``: removed, not waited for)."""
    while containers := docker.ids("container", want, step):
        if force and not docker.run("rm", "-f", *containers, step=step, check=False).returncode:
            continue
        if time.monotonic() > end:
            raise BackendError(
                step,
                f"slot {slot}: containers {containers} still there after {docker.timeout_s:g}s",
            )
        time.sleep(0.3)


def remove_objects(docker: Docker, slot: str, want: Mapping[str, str]) -> list[str]:
    """The slot's volumes, secrets, configs and networks (listed side by side, removed side by
    side), its records excepted: their IDs are returned, for the caller to remove last."""
    fmt = ("--format", "{{.ID}} {{.Labels}}")
    with ThreadPoolExecutor(max_workers=len(_KINDS)) as pool:  # independent kinds, side by side
        listed = dict(
            zip(
                _KINDS,
                pool.map(
                    lambda k: docker.lines(
                        k,
                        "ls",
                        *label_filters(want),
                        *(fmt if k == "config" else ("-q",)),
                        step="teardown",
                    ),
                    _KINDS,
                ),
                strict=True,
            )
        )
        configs = [r.partition(" ") for r in listed["config"]]
        records = [i for i, _, labels in configs if f"{RECORD}=1" in labels.split(",")]
        listed["config"] = [i for i, _, _ in configs if i not in records]
        list(pool.map(lambda k: _remove_all(docker, slot, want, k, records, listed[k]), _KINDS))
    return records


def _remove_all(
    docker: Docker, slot: str, want: Mapping[str, str], kind: str, keep: list[str], ids: list[str]
) -> None:
    """``ids`` (``kind`` objects of ``slot``) removed; on a failure (a network that lingers a
    moment) every ``kind`` object labelled with ``want`` except ``keep``, retried a while.

    A swarm removes a network asynchronously: ``docker network rm`` can succeed while the
    network is still listed (longer on a busy engine), so success is what a new listing says,
    not the exit code: teardown returns when nothing of ``kind`` is left, or after ~10 s."""
    for attempt in range(20):
        if not ids:
            return
        r = docker.run(kind, "rm", *ids, step="teardown", check=False)
        if r.returncode != 0 and attempt == 19:
            raise BackendError(
                "teardown", f"slot {slot}: docker {kind} rm failed: {r.stderr.strip()[-300:]}"
            )
        if r.returncode != 0 or kind == "network":
            time.sleep(0.5 if r.returncode else 0.1)
            ids = [i for i in docker.ids(kind, want, "teardown") if i not in keep]
        else:
            return
