"""A swarm slot's stack deployed and converged: every task running, no update in flight, stable.

``docker stack deploy`` (the DEPS services first when the recipe has any), then
``docker service ls/inspect/ps`` polled every 0.5 s until every service's tasks run
(healthy where a healthcheck exists) and stay the same for :data:`STABLE_S`, or the
deadline passes and the error names the failing task.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from canonlib.backends.base import BackendError
from canonlib.backends.common import json_object
from canonlib.backends.compose import stack_name
from canonlib.backends.swarm_docker import LABEL_INSTANCE, LABEL_SLOT, Docker, Inspected
from canonlib.backends.swarm_render import DEPS_FILE, STACK_FILE

STABLE_S = 3.0  # a converged slot's tasks stay the same this long


def convergence_problem(
    services: list[Inspected], counts: Mapping[str, tuple[int, int]]
) -> str | None:
    """None when every service has all its tasks running and no update in flight, else why not.

    ``services`` are ``docker service inspect`` documents; ``counts`` maps a service
    ID to (running, desired) tasks as ``docker service ls`` reports them.
    """
    if not services:
        return "no services"
    for s in services:
        name = s.name
        running, desired = counts.get(s.id, (0, 0))
        update = s.update_state
        if update in ("paused", "rollback_completed", "rollback_paused"):
            msg = s.update_message
            return f"service {name}: update {update}{': ' + msg if msg else ''}"
        if update in ("updating", "rollback_started"):
            return f"service {name}: update in progress"
        if "ReplicatedJob" in s.mode or "GlobalJob" in s.mode:
            continue
        if desired == 0 or running < desired:
            return f"service {name}: {running}/{desired} tasks running"
    return None


def _full_ids(
    services: list[Inspected], short: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """``docker service ls`` counts (short IDs) keyed by the inspected services' full IDs."""
    return {s.id: c for s in services for sid, c in short.items() if s.id.startswith(sid)}


def _replicas(text: str) -> tuple[int, int]:
    """``1/1`` → (1, 1); a job's ``0/1 (1/1 completed)`` → (1, 1): its tasks are done."""
    head = text.split("(")[1] if "completed" in text else text
    head = head.split()[0] if head.strip() else "0/0"
    a, _, b = head.partition("/")
    try:
        return int(a), int(b)
    except ValueError:
        return 0, 0


@dataclass(frozen=True)
class _Poll:
    """One look at a slot's services: (running, desired) by short ID, what was inspected, the
    running tasks (None unless every service converged and all its tasks run), and why not."""

    short: dict[str, tuple[int, int]]
    services: list[Inspected]
    tasks: frozenset[str] | None
    problem: str | None


class Convergence:
    """Deploys a slot's written stack and waits for it; remembers each slot's tasks seen stable."""

    def __init__(self, docker: Docker, instance: str):
        self.docker = docker
        self.instance = instance
        # slot -> (its services, their tasks last seen stable)
        self._stable: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}

    def forget(self, slot: str) -> None:
        """The slot's services changed (redeployed, removed): its stable tasks are not known."""
        self._stable.pop(slot, None)

    def up(self, slot: str, d: Path, deadline_s: float) -> None:
        """Deploy the slot's stack written in ``d`` and wait for it to converge, all within
        ``deadline_s``.

        With DEPS, their services go first (without ``--prune``: on an upgrade the others keep
        running) and must run before the whole stack is deployed."""
        self.forget(slot)
        end = time.monotonic() + deadline_s
        for name, deps in ((DEPS_FILE, True), (STACK_FILE, False)):
            if deps and not (d / name).exists():
                continue
            self.docker.run(
                "stack",
                "deploy",
                "--detach=true",
                *(() if deps else ("--prune",)),
                "--resolve-image",
                "never",
                "-c",
                str(d / name),
                stack_name(slot),
                step="deploy",
                timeout=max(self.docker.timeout_s, deadline_s),
            )
            self.wait(slot, deadline_s, end=end, stable=not deps)

    def wait(
        self, slot: str, deadline_s: float, *, end: float | None = None, stable: bool = True
    ) -> None:
        """Every service's tasks running (healthy where a healthcheck exists), or the failing
        task's error.

        One ``docker service ls`` per poll; once every task runs, the services are inspected
        (update state) and the running tasks must stay the same for :data:`STABLE_S` (a task
        that starts and crashes is "running" for a moment, as ``docker service create``'s own
        convergence check knows).  A set of tasks already seen stable for the slot counts at once:
        when the slot's services still run exactly those, one ``docker service ps`` answers.
        ``stable=False`` (DEPS first) returns once every task runs; ``end`` (monotonic) is the
        deadline when the wait is part of a longer one."""
        end = end or time.monotonic() + deadline_s
        seen = self._stable.get(slot)
        if seen:
            with contextlib.suppress(BackendError):  # a service gone: the full check says what
                if self._running_tasks(seen[0]) == seen[1]:
                    return
        first_seen: tuple[frozenset[str], float] | None = None
        while True:
            polled = time.monotonic()
            poll = self._poll(slot)
            now = time.monotonic()
            problem = poll.problem
            if poll.tasks is None:
                first_seen = None
            elif not stable or (seen and poll.tasks == seen[1]):
                return
            elif first_seen is None or first_seen[0] != poll.tasks:
                first_seen, problem = (poll.tasks, now), "tasks not stable yet"
            elif now - first_seen[1] >= STABLE_S:
                self._stable[slot] = (tuple(poll.short), poll.tasks)
                return
            else:
                problem = f"tasks running for less than {STABLE_S:g}s"
            if time.monotonic() > end:
                self._fail(slot, deadline_s, poll, problem)
            time.sleep(max(0.05, 0.5 - (time.monotonic() - polled)))  # a poll every 0.5 s

    def _poll(self, slot: str) -> _Poll:
        """One ``docker service ls`` of the slot; the inspect and task list only when all run."""
        rows = self.docker.lines(
            "service",
            "ls",
            "--filter",
            f"label={LABEL_SLOT}={slot}",
            "--filter",
            f"label={LABEL_INSTANCE}={self.instance}",
            "--format",
            "{{.ID}} {{.Replicas}}",
            step="deploy",
        )
        short = {sid: _replicas(rep) for sid, _, rep in (row.partition(" ") for row in rows)}
        if not rows:
            return _Poll(short, [], None, "no services")
        if any(d == 0 or r < d for r, d in short.values()):
            return _Poll(short, [], None, "tasks not running yet")
        services = self.docker.inspect("service", short, "deploy")
        problem = convergence_problem(services, _full_ids(services, short))
        tasks = None if problem else self._running_tasks(short)
        return _Poll(
            short, services, tasks, problem or (None if tasks else "tasks not running yet")
        )

    def _fail(self, slot: str, deadline_s: float, poll: _Poll, problem: str | None) -> NoReturn:
        """The error for a slot past its deadline: the services' problem, else the last one seen,
        and the newest task error."""
        services = poll.services or self.docker.inspect("service", poll.short, "deploy")
        problem = convergence_problem(services, _full_ids(services, poll.short)) or problem
        raise BackendError(
            "deploy",
            f"slot {slot} did not converge within {deadline_s:g}s: "
            f"{problem}{self._task_error(services)}",
        )

    def _running_tasks(self, services: Iterable[str]) -> frozenset[str] | None:
        """The IDs of the tasks meant to run, when every one of them is running; else None."""
        rows = self.docker.lines(
            "service",
            "ps",
            *services,
            "--filter",
            "desired-state=running",
            "--no-trunc",
            "--format",
            "{{.ID}} {{.CurrentState}}",
            step="deploy",
        )
        ids = [
            tid for tid, _, state in (r.partition(" ") for r in rows) if state.startswith("Running")
        ]
        return frozenset(ids) if ids and len(ids) == len(rows) else None

    def _task_error(self, services: list[Inspected]) -> str:
        """The newest task error among the slot's services, for the failure message."""
        worst = ""
        for s in services:
            rows = self.docker.run(
                "service",
                "ps",
                s.id,
                "--no-trunc",
                "--format",
                "{{json .}}",
                step="deploy",
                check=False,
            ).stdout.splitlines()
            for row in rows:  # newest first
                with contextlib.suppress(ValueError):
                    t: object = json.loads(row)
                    task = json_object(t)
                    error, current = task.get("Error"), task.get("CurrentState", "")
                    state = current if isinstance(current, str) else ""
                    if error:
                        return f"; last task error of {s.name}: {error} ({state})"
                    if not worst and not state.startswith("Running"):
                        worst = f"; task of {s.name}: {state}"
        return worst
