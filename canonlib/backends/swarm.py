"""A real Docker Swarm through ``docker stack deploy``: what abra does under the hood.

A slot is a swarm stack (``STACK_NAME`` = the slot, see :func:`.compose.stack_name`)
plus the secrets, configs, volumes and networks it made.  Per slot::

    docker stack config -c <COMPOSE_FILE…>      render + validate (env: .env.sample + overlay,
                                                STACK_NAME, DOMAIN, abra.sh exports)
    docker secret create --label … <stack>_<secret>_<version> -   (value on stdin, never logged)
    docker stack deploy --prune -c <rendered, labelled> <stack>
    docker service ls/inspect/ps                 convergence: tasks running (healthy), update done
    docker exec <container> sh -c <step>         install steps and ``cmd`` ready probes
    docker run --rm -v <vol>:/v <helper> tar …  L3 backup/restore of named volumes

Everything canon creates carries the labels ``canon.slot``, ``canon.recipe``
and ``canon.run_id``; teardown selects what to remove by those labels, never
by a name.  The slot's marker is a docker config (``canon.record=1``) whose
labels are the :class:`~canonlib.state.marker.SlotMarker`; re-marking writes a new
record, then drops the old, so a slot is never without one.  A slot whose
marker says ``canonical`` is never torn down.  ``warm = "running"`` (the
default) keeps a promoted canonical's stack running; ``warm = "snapshot"``
archives its volumes and removes its services, volumes kept.

Config (``[backend]``): ``kind = "swarm"``, ``context`` (a docker context;
default: the CLI's current one), ``helper_image`` (for volume backup and
restore, default ``busybox:1``), ``warm``, ``domain`` (slot domains are
``<slot>.<domain>``), ``docker`` (the CLI), ``timeout_s`` (per docker call).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from canonlib.backends.base import BackendError, refuse_canonical
from canonlib.backends.common import (
    BackendUnavailable,
    generate_secret,
    parse_env,
    probe_once,
    run_group,
    wait_probes,
)
from canonlib.backends.compose import (
    app_env,
    compose_files,
    literal,
    secret_specs,
    service_names,
    split_step,
    stack_name,
    with_labels,
)
from canonlib.files import tree_size
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import COLD, NEXT, RETIRED, SlotMarker, utcnow

RECORD = "canon.record"
LABEL_SLOT = "canon.slot"
LABEL_INSTANCE = "canon.instance"
WARM_MODES = ("running", "snapshot")
STABLE_S = 3.0  # a converged slot's tasks stay the same this long
_ENV_PASS = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)


class Docker:
    """The one place the swarm backend runs docker: argv lists, a context, timeouts, own group."""

    def __init__(
        self,
        docker: str = "docker",
        context: str | None = None,
        timeout_s: float = 120,
        log: Path | None = None,
    ):
        self.argv0 = [docker, *(["--context", context] if context else [])]
        self.context = context
        self.timeout_s = timeout_s
        self.log = log

    def run(
        self,
        *args: str,
        step: str,
        input: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cwd: Path | None = None,
        quiet: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``quiet`` keeps stdin and stdout out of the log and the error (secret values)."""
        argv = [*self.argv0, *args]
        timeout = timeout or self.timeout_s
        try:  # its own process group: a timeout or canon's own end takes docker with it
            proc = run_group(
                argv,
                cwd=cwd,
                env=os.environ if env is None else env,
                timeout=timeout,
                merge_stderr=False,
                input=input,
            )
        except FileNotFoundError:
            raise BackendUnavailable(
                step, f"{argv[0]} not found: install docker (scripts/swarm-up)"
            ) from None
        except subprocess.TimeoutExpired:
            raise BackendError(
                step, f"docker {' '.join(args[:3])} timed out after {timeout:g}s"
            ) from None
        out, err = proc.stdout, proc.stderr
        if self.log:
            with self.log.open("a") as f:
                f.write(f"$ docker {' '.join(args)}\n")
                if quiet:
                    f.write("[output withheld: may contain secrets]\n")
                elif args[0] not in ("inspect", "ls") and (
                    len(args) < 2 or args[1] not in ("inspect", "ls")
                ):
                    f.write(out[-2000:] + err[-2000:])
                else:
                    f.write(err[-2000:])
        if check and proc.returncode != 0:
            detail = err.strip() or ("" if quiet else out.strip())
            raise BackendError(step, f"docker {' '.join(args[:3])} failed: {detail[-800:]}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def lines(self, *args: str, step: str) -> list[str]:
        return [x for x in self.run(*args, step=step).stdout.splitlines() if x.strip()]

    def ids(self, kind: str, labels: Mapping[str, str], step: str) -> list[str]:
        """IDs (names for volumes) of ``kind`` objects carrying every label in ``labels``."""
        filters = _filters(labels)
        if kind == "container":
            return self.lines("ps", "-aq", *filters, step=step)
        return self.lines(kind, "ls", "-q", *filters, step=step)

    def inspect(self, kind: str, ids: Iterable[str], step: str) -> list[dict[str, Any]]:
        ids = list(ids)
        if not ids:
            return []
        return json.loads(self.run(kind, "inspect", *ids, step=step).stdout or "[]")


def convergence_problem(
    services: list[dict[str, Any]], counts: Mapping[str, tuple[int, int]]
) -> str | None:
    """None when every service has all its tasks running and no update in flight, else why not.

    ``services`` are ``docker service inspect`` documents; ``counts`` maps a service
    ID to (running, desired) tasks as ``docker service ls`` reports them.
    """
    if not services:
        return "no services"
    for s in services:
        name = s["Spec"]["Name"]
        running, desired = counts.get(s["ID"], (0, 0))
        update = (s.get("UpdateStatus") or {}).get("State")
        if update in ("paused", "rollback_completed", "rollback_paused"):
            msg = (s.get("UpdateStatus") or {}).get("Message", "")
            return f"service {name}: update {update}{': ' + msg if msg else ''}"
        if update in ("updating", "rollback_started"):
            return f"service {name}: update in progress"
        if "ReplicatedJob" in s["Spec"].get("Mode", {}) or "GlobalJob" in s["Spec"].get("Mode", {}):
            continue
        if desired == 0 or running < desired:
            return f"service {name}: {running}/{desired} tasks running"
    return None


EARLY = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing"})
"""Task states before the task's container (and the volumes it mounts) exists."""


def _filters(labels: Mapping[str, str]) -> list[str]:
    return [
        a for k, v in labels.items() for a in ("--filter", f"label={k}={v}" if v else f"label={k}")
    ]


def _early(rows: Iterable[str]) -> set[str]:
    """The IDs among ``{{.ID}} {{.Name}} {{.CurrentState}}`` task rows whose container may not exist yet."""
    return {f[0] for f in (r.split() for r in rows) if len(f) > 2 and f[2].lower() in EARLY}


def _task_of(row: str, service_ids: Iterable[str], names: set[str]) -> bool:
    """Whether a ``node ps`` row is a task of one of the services: its name is
    ``<service name>.<slot>``, or ``<service ID>.<slot>`` once the service is gone."""
    f = row.split()
    service = f[1].rsplit(".", 1)[0] if len(f) > 1 else ""
    return service in names or any(service.startswith(i) for i in service_ids if i)


def _only(doc: Mapping[str, Any], meta: RecipeMeta) -> dict[str, Any]:
    """``doc`` with only the services the meta's DEPS name, or an error naming the ones it lacks."""
    services = doc.get("services") or {}
    missing = [d for d in meta.DEPS if d not in services]
    if missing:
        raise BackendError(
            "deploy",
            f"{meta.recipe}: DEPS {', '.join(map(repr, missing))} in {meta.path} "
            f"{'is not a service' if len(missing) == 1 else 'are not services'} of its "
            f"compose files ({', '.join(services) or 'none'}): on the swarm, DEPS are "
            "the recipe's own services, deployed and running before the rest",
        )
    return {**doc, "services": {k: v for k, v in services.items() if k in meta.DEPS}}


def _full_ids(
    services: list[dict[str, Any]], short: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """``docker service ls`` counts (short IDs) keyed by the inspected services' full IDs."""
    return {s["ID"]: c for s in services for sid, c in short.items() if s["ID"].startswith(sid)}


def _replicas(text: str) -> tuple[int, int]:
    """``1/1`` → (1, 1); a job's ``0/1 (1/1 completed)`` → (1, 1): its tasks are done."""
    head = text.split("(")[1] if "completed" in text else text
    head = head.split()[0] if head.strip() else "0/0"
    a, _, b = head.partition("/")
    try:
        return int(a), int(b)
    except ValueError:
        return 0, 0


class SwarmBackend:
    name = "swarm"

    def __init__(
        self,
        work_dir: str | Path,
        *,
        context: str | None = None,
        docker: str = "docker",
        helper_image: str = "busybox:1",
        warm: str = "running",
        domain: str = "canon.localhost",
        timeout_s: float = 120,
        run_id: str | None = None,
        instance: str | None = None,
        log: Path | None = None,
    ):
        if warm not in WARM_MODES:
            raise BackendError(
                "config", f"backend.warm must be one of {', '.join(WARM_MODES)}, got {warm!r}"
            )
        self.work = Path(work_dir)
        self.docker = Docker(docker, context, timeout_s, log)
        self.helper_image = helper_image
        self.warm = warm
        self.domain = domain
        self.run_id = run_id or os.environ.get("CANON_RUN_ID") or None
        # which canon made it: two canon installations (or the demo and a real one) on one swarm
        # never see, reap or count each other's slots
        self.instance = (
            instance or hashlib.sha256(str(self.work.resolve()).encode()).hexdigest()[:12]
        )
        self._checked = False
        self._cache: dict[str, dict[str, Any]] = {}  # slot -> its newest record
        # slot -> (its services, their tasks last seen stable)
        self._stable: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}
        self._rendered: dict[
            tuple[str, str], tuple[dict[str, Any], str]
        ] = {}  # provision -> deploy

    @classmethod
    def from_config(cls, config: Any, *, run_dir: Path | None = None) -> SwarmBackend:
        b = config.backend
        return cls(
            config.state_dir / "swarm",
            context=b.get("context"),
            docker=b.get("docker", "docker"),
            helper_image=b.get("helper_image", "busybox:1"),
            warm=b.get("warm", "running"),
            domain=b.get("domain", "canon.localhost"),
            timeout_s=float(b.get("timeout_s", 120)),
            instance=b.get("instance"),
            log=(run_dir / "docker.log") if run_dir else None,
        )

    # -- plumbing ------------------------------------------------------------------
    def check_engine(self) -> None:
        """The engine answers and its swarm is active, or one line saying what to do."""
        if self._checked:
            return
        where = (
            f"docker context {self.docker.context!r}"
            if self.docker.context
            else "the local docker engine"
        )
        try:
            r = self.docker.run(
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}}",
                step="swarm",
                check=False,
                timeout=30,
            )
        except BackendError as e:
            raise BackendUnavailable(
                "swarm", f"{where} does not answer ({e}); run scripts/swarm-up"
            ) from None
        state = r.stdout.strip()
        if r.returncode != 0:
            raise BackendUnavailable(
                "swarm", f"{where} does not answer: {r.stderr.strip()[-300:]}; run scripts/swarm-up"
            )
        if state != "active":
            raise BackendUnavailable(
                "swarm", f"{where} is not in an active swarm ({state}): docker swarm init"
            )
        self._checked = True

    def _sel(self, slot: str | None = None) -> dict[str, str]:
        """The labels that select this canon's objects (of one slot)."""
        return {LABEL_INSTANCE: self.instance, **({LABEL_SLOT: slot} if slot else {})}

    def _dir(self, slot: str) -> Path:
        return self.work / stack_name(slot)

    def _labels(self, slot: str, recipe: str) -> dict[str, str]:
        """The labels on everything the slot makes: its slot, recipe and the run named by its marker."""
        m = self.marker(slot)
        run_id = (m.run_id if m else None) or self.run_id or ""
        return {
            "canon.made-by": "canon",
            **self._sel(slot),
            "canon.recipe": recipe,
            "canon.run_id": run_id,
        }

    def _env(self, app: Mapping[str, str]) -> dict[str, str]:
        """The environment ``docker stack config`` interpolates with: the app's env, not the operator's."""
        return {**{k: os.environ[k] for k in _ENV_PASS if k in os.environ}, **app}

    # -- records (the marker, and what is deployed) -------------------------------------
    def _records(self, slot: str | None = None) -> list[dict[str, Any]]:
        """This canon instance's record configs (newest last), for one slot or all of them."""
        want = {RECORD: "1", **self._sel(slot)}
        docs = self.docker.inspect("config", self.docker.ids("config", want, "marker"), "marker")
        return sorted(docs, key=lambda d: (d["Spec"]["Labels"].get("canon.seq", ""), d["ID"]))

    def _record(self, slot: str) -> dict[str, Any] | None:
        """The slot's newest record; cached: a slot's records are written by the one run that made it."""
        if slot not in self._cache:  # None: known to have none
            recs = self._records(slot)
            self._cache[slot] = recs[-1] if recs else None
        return self._cache[slot]

    def _write_record(
        self, slot: str, marker: SlotMarker, deployed: Mapping[str, Any] | None
    ) -> None:
        seq = f"{time.time_ns():016x}"
        rec = self._record(slot)
        old = [rec["ID"]] if rec else []
        labels = {
            **marker.labels(),
            RECORD: "1",
            **self._sel(slot),
            "canon.seq": seq,
        }
        data = json.dumps(
            {"marker": marker.to_dict(), "deployed": dict(deployed or {})}, sort_keys=True
        )
        args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        name = f"canon_{stack_name(slot)}_{seq}"
        new_id = self.docker.run(
            "config", "create", *args, name, "-", input=data, step="marker"
        ).stdout.strip()
        self._cache[slot] = {
            "ID": new_id,
            "Spec": {
                "Name": name,
                "Labels": labels,
                "Data": base64.b64encode(data.encode()).decode(),
            },
        }
        if old:
            self.docker.run("config", "rm", *old, step="marker", check=False)

    @staticmethod
    def _data(rec: Mapping[str, Any]) -> dict[str, Any]:
        return json.loads(base64.b64decode(rec["Spec"].get("Data") or b"e30=") or "{}")

    def marker(self, slot: str) -> SlotMarker | None:
        rec = self._record(slot)
        if rec is None:
            return None
        try:
            return SlotMarker.from_dict(self._data(rec)["marker"])
        except (ValueError, TypeError, KeyError) as e:
            raise BackendError("marker", f"slot {slot}: unreadable marker record: {e}") from None

    def markers(self) -> dict[str, SlotMarker]:
        self.check_engine()
        newest: dict[str, dict[str, Any]] = {}
        for rec in self._records():
            newest[rec["Spec"]["Labels"][LABEL_SLOT]] = rec
        out = {}
        for slot, rec in sorted(newest.items()):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                out[slot] = SlotMarker.from_dict(self._data(rec)["marker"])
        return out

    def mark(self, slot: str, marker: SlotMarker) -> None:
        self.check_engine()
        rec = self._record(slot)
        self._write_record(slot, marker, self._data(rec).get("deployed") if rec else None)

    def _ensure_marker(self, slot: str, recipe: str) -> SlotMarker:
        """A slot made without :meth:`mark` (a harness's cold slot) gets one before anything else."""
        m = self.marker(slot)
        if m is None:
            m = SlotMarker(
                slot=slot,
                recipe=recipe,
                role=COLD if slot.startswith("cold-") else NEXT,
                version="",
                commit="",
                run_id=self.run_id,
                created_at=utcnow(),
            )
            self._write_record(slot, m, None)
        return m

    def _set_deployed(self, slot: str, **fields: Any) -> None:
        rec = self._record(slot)
        if rec is None:
            raise BackendError("marker", f"slot {slot} has no marker")
        marker = SlotMarker.from_dict(self._data(rec)["marker"])
        self._write_record(slot, marker, {**self._data(rec).get("deployed", {}), **fields})

    # -- render ----------------------------------------------------------------------
    def _render(
        self, slot: str, checkout: Path, meta: RecipeMeta, tag: str
    ) -> tuple[dict[str, Any], str, dict[str, str]]:
        """(rendered stack, .env text, env): ``docker stack config`` over COMPOSE_FILE."""
        stack = stack_name(slot)
        overlay = {"DOMAIN": f"{slot}.{self.domain}", **meta.ENV_OVERLAY, "STACK_NAME": stack}
        env_text, env = app_env(checkout, overlay)
        env.setdefault("TYPE", meta.recipe)
        files = compose_files(checkout, env, tag)
        args = [a for f in files for a in ("-c", str(f))]
        r = self.docker.run(
            "stack",
            "config",
            *args,
            step="deploy",
            env=self._env(env),
            cwd=Path(checkout),
            check=False,
        )
        if r.returncode != 0:
            names = ", ".join(str(f.relative_to(Path(checkout).resolve())) for f in files)
            raise BackendError(
                "deploy", f"docker rejects {names} at {tag}: {r.stderr.strip()[-600:]}"
            )
        try:
            rendered = yaml.safe_load(r.stdout)
        except yaml.YAMLError as e:  # docker printed what it accepted; this would be a docker bug
            raise BackendError(
                "deploy", f"docker stack config output does not parse: {e}"
            ) from None
        return rendered, env_text, env

    # -- install -----------------------------------------------------------------------
    def provision(self, slot: str, checkout: Path, meta: RecipeMeta) -> None:
        self.check_engine()
        self._ensure_marker(slot, meta.recipe)
        rendered, env_text, env = self._render(slot, checkout, meta, Path(checkout).name)
        _only(rendered, meta)  # DEPS that are not services fail before any secret is made
        self._rendered[(slot, str(checkout))] = (rendered, env_text)
        labels = self._labels(slot, meta.recipe)
        names = set(self.docker.lines("secret", "ls", "--format", "{{.Name}}", step="provision"))
        for spec in secret_specs(rendered, stack_name(slot), env, env_text, meta.SECRETS):
            if (
                spec.name in names
            ):  # kept: an upgrade keeps its secrets; a new version is a new name
                have = self.docker.inspect("secret", [spec.name], "provision")[0]
                if have["Spec"].get("Labels", {}).get(LABEL_SLOT) != slot:
                    raise BackendError(
                        "provision",
                        f"secret {spec.name} exists and is not slot {slot}'s: "
                        "canon does not touch it; remove it or pick another slot",
                    )
                continue
            args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
            self.docker.run(
                "secret",
                "create",
                *args,
                "--label",
                f"canon.secret={spec.key}",
                spec.name,
                "-",
                input=generate_secret(spec.generator),
                step="provision",
                quiet=True,
            )

    def deploy(
        self, slot: str, checkout: Path, meta: RecipeMeta, *, version: str, commit: str
    ) -> None:
        self.check_engine()
        self._ensure_marker(slot, meta.recipe)
        cached = self._rendered.pop((slot, str(checkout)), None)
        rendered, env_text = cached or self._render(slot, checkout, meta, version)[:2]
        _only(rendered, meta)  # DEPS that are not services fail before anything is deployed
        doc = with_labels(rendered, self._labels(slot, meta.recipe))
        d = self._dir(slot)
        d.mkdir(parents=True, exist_ok=True)
        (d / ".env").write_text(env_text)
        _pin_files(doc, d / "files", Path(checkout))
        # as JSON (which is YAML): every string stays a string.  PyYAML writes 1234e10 bare,
        # and docker's YAML 1.2 reads that as a float (a label value of 1.234e+13)
        (d / "compose.yml").write_text(json.dumps(literal(doc), indent=1) + "\n")
        deps = d / "deps.compose.yml"  # the DEPS services alone, deployed and converged first
        deps.unlink(missing_ok=True)
        if meta.DEPS:
            deps.write_text(json.dumps(literal(_only(doc, meta)), indent=1) + "\n")
        self._up(slot, meta.DEPLOY_TIMEOUT_S)
        self._set_deployed(
            slot,
            recipe=meta.recipe,
            version=version,
            commit=commit,
            state="deployed",
            services=service_names(rendered),
            deadline_s=meta.DEPLOY_TIMEOUT_S,
            deployed_at=time.time(),
        )

    def _up(self, slot: str, deadline_s: float) -> None:
        """Deploy the slot's rendered stack and wait for it to converge, all within ``deadline_s``.

        With DEPS, their services go first (without ``--prune``: on an upgrade the others keep
        running) and must run before the whole stack is deployed."""
        self._stable.pop(slot, None)
        end = time.monotonic() + deadline_s
        d = self._dir(slot)
        for name, deps in (("deps.compose.yml", True), ("compose.yml", False)):
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
            self.wait_converged(slot, deadline_s, end=end, stable=not deps)

    def wait_converged(
        self, slot: str, deadline_s: float, *, end: float | None = None, stable: bool = True
    ) -> None:
        """Every service's tasks running (healthy where a healthcheck exists), or the failing task's error.

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
        filters = [
            "--filter",
            f"label={LABEL_SLOT}={slot}",
            "--filter",
            f"label={LABEL_INSTANCE}={self.instance}",
        ]
        while True:
            polled = time.monotonic()
            rows = self.docker.lines(
                "service", "ls", *filters, "--format", "{{.ID}} {{.Replicas}}", step="deploy"
            )
            short = {sid: _replicas(rep) for sid, _, rep in (row.partition(" ") for row in rows)}
            services: list[dict[str, Any]] = []
            tasks = None
            if not rows:
                problem = "no services"
            elif any(d == 0 or r < d for r, d in short.values()):
                problem = "tasks not running yet"
            else:
                services = self.docker.inspect("service", short, "deploy")
                problem = convergence_problem(services, _full_ids(services, short))
                tasks = None if problem else self._running_tasks(short)
                problem = problem or (None if tasks else "tasks not running yet")
            now = time.monotonic()
            if tasks is None:
                first_seen = None
            elif not stable or (seen and tasks == seen[1]):
                return
            elif first_seen is None or first_seen[0] != tasks:
                first_seen, problem = (tasks, now), "tasks not stable yet"
            elif now - first_seen[1] >= STABLE_S:
                self._stable[slot] = (tuple(short), tasks)
                return
            else:
                problem = f"tasks running for less than {STABLE_S:g}s"
            if time.monotonic() > end:
                services = services or self.docker.inspect("service", short, "deploy")
                problem = convergence_problem(services, _full_ids(services, short)) or problem
                raise BackendError(
                    "deploy",
                    f"slot {slot} did not converge within {deadline_s:g}s: "
                    f"{problem}{self._task_error(services)}",
                )
            time.sleep(max(0.05, 0.5 - (time.monotonic() - polled)))  # a poll every 0.5 s

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

    def _task_error(self, services: list[dict[str, Any]]) -> str:
        """The newest task error among the slot's services, for the failure message."""
        worst = ""
        for s in services:
            rows = self.docker.run(
                "service",
                "ps",
                s["ID"],
                "--no-trunc",
                "--format",
                "{{json .}}",
                step="deploy",
                check=False,
            ).stdout.splitlines()
            for row in rows:  # newest first
                with contextlib.suppress(ValueError):
                    t = json.loads(row)
                    if t.get("Error"):
                        return f"; last task error of {s['Spec']['Name']}: {t['Error']} ({t.get('CurrentState', '')})"
                    if not worst and not t.get("CurrentState", "").startswith("Running"):
                        worst = f"; task of {s['Spec']['Name']}: {t.get('CurrentState', '')}"
        return worst

    def _container(self, slot: str, service: str) -> str:
        """A running container of ``service`` in ``slot`` (on this node, as ``abra app run`` finds one)."""
        stack = stack_name(slot)
        ids = self.docker.lines(
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.swarm.service.name={stack}_{service}",
            "--filter",
            f"label={LABEL_SLOT}={slot}",
            "--filter",
            f"label={LABEL_INSTANCE}={self.instance}",
            "--filter",
            "status=running",
            step="exec",
        )
        if not ids:
            raise BackendError("exec", f"slot {slot}: no running container of service {service}")
        return ids[0]

    def _default_service(self, slot: str) -> str:
        rec = self._record(slot)
        services = self._data(rec).get("deployed", {}).get("services", []) if rec else []
        return "app" if "app" in services or not services else services[0]

    def exec(
        self, slot: str, step: str, *, timeout: float, what: str
    ) -> subprocess.CompletedProcess[str]:
        """``service: cmd`` (default service ``app``) run with ``sh -c`` inside the service's container."""
        service, cmd = split_step(step, self._default_service(slot))
        env = [a for k, v in self.slot_env(slot).items() for a in ("-e", f"{k}={v}")]
        return self.docker.run(
            "exec",
            *env,
            self._container(slot, service),
            "sh",
            "-c",
            cmd,
            step=what,
            check=False,
            timeout=timeout,
        )

    def run_install_steps(self, slot: str, meta: RecipeMeta) -> None:
        for i, step in enumerate(meta.INSTALL_STEPS, start=1):
            r = self.exec(slot, step, timeout=meta.DEPLOY_TIMEOUT_S, what="install")
            if r.returncode != 0:
                out = (r.stdout + r.stderr)[-500:].strip()
                raise BackendError(
                    "install", f"{meta.recipe}: step {i} {step!r} exited {r.returncode}: {out}"
                )

    def wait_ready(self, slot: str, meta: RecipeMeta) -> None:
        """Converged, then each probe passes (``cmd`` probes inside the container, ``http`` from here)."""
        end = time.monotonic() + meta.DEPLOY_TIMEOUT_S
        self.wait_converged(slot, meta.DEPLOY_TIMEOUT_S)
        env = self.slot_env(slot)
        wait_probes(
            list(meta.READY_PROBES),
            cwd=None,
            env=env,
            deadline_s=end - time.monotonic(),
            slot=slot,
            check=lambda probe: self._probe(slot, probe, env),
        )

    def _probe(self, slot: str, probe: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
        if "cmd" not in probe:
            return probe_once(probe, cwd=None, env=env)
        try:
            r = self.exec(
                slot, probe["cmd"], timeout=float(probe.get("timeout_s", 10)), what="ready"
            )
        except BackendError as e:
            return str(e)
        out = (r.stdout + r.stderr)[-300:].strip()
        return None if r.returncode == 0 else f"{probe['cmd']!r} exited {r.returncode}: {out}"

    # -- data ----------------------------------------------------------------------------
    def _volumes(self, slot: str) -> list[str]:
        return sorted(self.docker.ids("volume", self._sel(slot), "volumes"))

    def snapshot(self, slot: str) -> str:
        """Each named volume of the slot archived (tar) through a helper container."""
        snap = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        dest = self._dir(slot) / "snapshots" / snap
        dest.mkdir(parents=True)
        for vol in self._volumes(slot):
            with open(dest / f"{vol}.tar", "wb") as f:
                self._helper(
                    ["-v", f"{vol}:/v:ro"],
                    ["tar", "-C", "/v", "-cf", "-", "."],
                    step="snapshot",
                    stdout=f,
                )
        return snap

    def _helper(
        self, mounts: list[str], cmd: list[str], *, step: str, stdout=None, stdin=None
    ) -> None:
        argv = [
            *self.docker.argv0,
            "run",
            "--rm",
            "-i",
            "--label",
            "canon.made-by=canon",
            *mounts,
            self.helper_image,
            *cmd,
        ]
        proc = subprocess.run(
            argv,
            stdout=stdout or subprocess.PIPE,
            stdin=stdin or subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=self.docker.timeout_s * 5,
        )
        if proc.returncode != 0:
            raise BackendError(
                step,
                f"helper {self.helper_image} {' '.join(cmd[:3])} exited {proc.returncode}: "
                f"{proc.stderr.decode(errors='replace').strip()[-400:]}",
            )

    def restore(self, slot: str, snapshot: str) -> None:
        """Stack down, each archived volume emptied and refilled, stack up and converged again."""
        src = self._dir(slot) / "snapshots" / snapshot
        if not src.is_dir() or "/" in snapshot or snapshot.startswith("."):
            raise BackendError("restore", f"slot {slot} has no snapshot {snapshot!r}")
        recipe = (self.marker(slot) or _missing(slot)).recipe
        self._down(slot)
        have = set(self._volumes(slot))
        for archive in sorted(src.glob("*.tar")):
            vol = archive.stem
            if vol not in have:  # the stack's own labels, so the next deploy adopts it
                labels = {
                    **self._labels(slot, recipe),
                    "com.docker.stack.namespace": stack_name(slot),
                }
                self.docker.run(
                    "volume",
                    "create",
                    *[a for k, v in labels.items() for a in ("--label", f"{k}={v}")],
                    vol,
                    step="restore",
                )
            with open(archive, "rb") as f:
                self._helper(
                    ["-v", f"{vol}:/v"],
                    ["sh", "-c", "cd /v && rm -rf -- * .[!.]* ..?* && tar -xf -"],
                    step="restore",
                    stdin=f,
                )
        self._up(slot, self._deadline(slot))

    def wipe_data(self, slot: str) -> None:
        """Stack down, its volumes removed, stack up on fresh empty volumes."""
        self._down(slot)
        for vol in self._volumes(slot):
            self.docker.run("volume", "rm", vol, step="wipe")
        self._up(slot, self._deadline(slot))

    def _deadline(self, slot: str) -> float:
        """The meta's DEPLOY_TIMEOUT_S, as the last deploy of the slot recorded it."""
        return float((self.deployed(slot) or {}).get("deadline_s") or self.docker.timeout_s)

    # -- lifecycle -----------------------------------------------------------------------
    def _down(self, slot: str) -> None:
        """The slot's services removed and their containers gone; volumes, secrets, configs kept."""
        self._remove_services(slot, "undeploy", force=False)

    def _remove_services(self, slot: str, step: str, *, force: bool) -> None:
        """The slot's services removed, then every container they made gone (``force``: removed).

        A task the swarm was still preparing when its service went can create its container,
        and the volumes it mounts, a moment later.  So the slot's tasks are listed before
        (``service ps``: also tasks not yet on a node) and after (``node ps``: tasks made in
        between) the ``service rm``, and those still before their container exists are waited
        out (past ``preparing``, or gone) before the containers are counted."""
        want = self._sel(slot)
        self._stable.pop(slot, None)
        rows = self.docker.lines(
            "service", "ls", *_filters(want), "--format", "{{.ID}} {{.Name}}", step=step
        )
        end = time.monotonic() + self.docker.timeout_s
        if rows:
            ids = [r.split()[0] for r in rows]
            names = {r.split()[-1] for r in rows}
            early = _early(
                self.docker.lines(
                    "service",
                    "ps",
                    *ids,
                    "--no-trunc",
                    "--format",
                    "{{.ID}} {{.Name}} {{.CurrentState}}",
                    step=step,
                )
            )
            self.docker.run("service", "rm", *ids, step=step, check=not force)
            mine = (
                r
                for r in self.docker.run(
                    "node",
                    "ps",
                    "self",
                    "--no-trunc",
                    "--format",
                    "{{.ID}} {{.Name}} {{.CurrentState}}",
                    step=step,
                    check=False,
                ).stdout.splitlines()
                if _task_of(r, ids, names)
            )
            early |= _early(mine)
            while early:
                found = self.docker.run(
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
                        f"slot {slot}: tasks {sorted(early)} still preparing "
                        f"after {self.docker.timeout_s:g}s",
                    )
                time.sleep(0.1 if early else 0)
        while containers := self.docker.ids("container", want, step):
            if (
                force
                and not self.docker.run("rm", "-f", *containers, step=step, check=False).returncode
            ):
                continue
            if time.monotonic() > end:
                raise BackendError(
                    step,
                    f"slot {slot}: containers {containers} still there after "
                    f"{self.docker.timeout_s:g}s",
                )
            time.sleep(0.3)

    def undeploy(self, slot: str) -> None:
        """``warm = "running"``: nothing (the canonical stays up); ``"snapshot"``: services removed."""
        if self.warm == "running" or not self.deployed(slot):
            return
        self._down(slot)
        self._set_deployed(slot, state="undeployed")

    def teardown(self, slot: str) -> None:
        """Everything labelled with this slot, then its marker; never a canonical.

        Services first, then their containers (forced), then the slot's volumes, secrets,
        configs and networks (listed side by side, removed side by side), the marker last:
        a teardown cut short leaves a marked slot the janitor finds."""
        self.check_engine()
        refuse_canonical(slot, self.marker(slot))
        self._remove_services(slot, "teardown", force=True)
        want = self._sel(slot)
        fmt = ("--format", "{{.ID}} {{.Labels}}")
        kinds = ("volume", "secret", "config", "network")
        with ThreadPoolExecutor(max_workers=len(kinds)) as pool:  # independent kinds, side by side
            listed = dict(
                zip(
                    kinds,
                    pool.map(
                        lambda k: self.docker.lines(
                            k,
                            "ls",
                            *_filters(want),
                            *(fmt if k == "config" else ("-q",)),
                            step="teardown",
                        ),
                        kinds,
                    ),
                    strict=True,
                )
            )
            configs = [r.partition(" ") for r in listed["config"]]
            records = [i for i, _, labels in configs if f"{RECORD}=1" in labels.split(",")]
            listed["config"] = [i for i, _, _ in configs if i not in records]
            list(pool.map(lambda k: self._remove_all(slot, k, records, listed[k]), kinds))
        shutil.rmtree(self._dir(slot), ignore_errors=True)
        self._cache.pop(slot, None)
        self._stable.pop(slot, None)
        if records:
            self.docker.run("config", "rm", *records, step="teardown")

    def _remove_all(self, slot: str, kind: str, keep: list[str], ids: list[str]) -> None:
        """``ids`` (``kind`` objects of ``slot``) removed; on a failure (a network that lingers a
        moment) every ``kind`` object labelled with ``slot`` except ``keep``, retried a while."""
        for attempt in range(20):
            if not ids:
                return
            r = self.docker.run(kind, "rm", *ids, step="teardown", check=False)
            if r.returncode == 0:
                return
            if attempt == 19:
                raise BackendError(
                    "teardown", f"slot {slot}: docker {kind} rm failed: {r.stderr.strip()[-300:]}"
                )
            time.sleep(0.5)
            ids = [i for i in self.docker.ids(kind, self._sel(slot), "teardown") if i not in keep]

    def deployed(self, slot: str) -> dict[str, Any] | None:
        rec = self._record(slot)
        dep = self._data(rec).get("deployed") if rec else None
        return dep if dep and dep.get("commit") else None

    def slot_env(self, slot: str) -> dict[str, str]:
        env_file = self._dir(slot) / ".env"

        env = parse_env(env_file.read_text()) if env_file.exists() else {}
        return {
            "CANON_BACKEND": "swarm",
            "CANON_SLOT": slot,
            "CANON_STACK": stack_name(slot),
            "STACK_NAME": stack_name(slot),
            "DOMAIN": env.get("DOMAIN", f"{slot}.{self.domain}"),
            "CANON_DOCKER_CONTEXT": self.docker.context or "",
        }

    def disk_usage(self, slot: str | None = None) -> int:

        path = self._dir(slot) if slot else self.work
        return tree_size(path) if path.exists() else 0

    def slots(self) -> list[str]:
        self.check_engine()
        return sorted({r["Spec"]["Labels"][LABEL_SLOT] for r in self._records()})

    def purge(self) -> list[str]:
        """Every slot of this canon instance, canonicals too: only for ``canon demo``'s reset of
        its own workspace (a demo's instance is its own state dir)."""
        try:
            self.check_engine()
        except BackendError:
            return []
        done = []
        for slot, marker in self.markers().items():
            if marker.is_canonical:
                self.mark(slot, marker.as_role(RETIRED))
            self.teardown(slot)
            done.append(slot)
        return done


def _pin_files(doc: dict[str, Any], dest: Path, checkout: Path) -> None:
    """Copy the files configs and secrets are made from next to the rendered stack, so a later
    redeploy of the slot (restore, wipe) does not need the checkout."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    root = checkout.resolve()
    for kind in ("configs", "secrets"):
        for name, spec in (doc.get(kind) or {}).items():
            if isinstance(spec, dict) and spec.get("file"):
                src = Path(spec["file"]).resolve()
                if root not in src.parents:
                    raise BackendError(
                        "deploy", f"{kind} {name}: file {spec['file']} is outside the recipe"
                    )
                target = dest / f"{kind}-{name}"
                shutil.copyfile(src, target)
                spec["file"] = str(target)


def _missing(slot: str) -> SlotMarker:
    raise BackendError("marker", f"slot {slot} has no marker")
