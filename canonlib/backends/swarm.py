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

The pieces, one concern each, which :class:`SwarmBackend` composes behind the
:class:`~canonlib.backends.base.Backend` methods::

    swarm_docker    running docker (argv, context, timeouts, the log); the labels
    swarm_records   the slot's marker and what is deployed, as docker configs
    swarm_render    the stack rendered, its secrets made, written next to its files
    swarm_converge  the stack deployed and converged (tasks running and stable)
    swarm_exec      install steps and ``cmd`` probes inside the slot's containers
    swarm_volumes   named volumes archived and refilled through a helper container
    swarm_teardown  services, containers and the rest removed by the slot's labels
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from canonlib.backends.base import BackendError, SilentServers, SlotRecord, refuse_canonical
from canonlib.backends.common import BackendUnavailable, probe_once, read_env_file, wait_probes
from canonlib.backends.compose import ComposeDoc, service_names, stack_name, with_labels
from canonlib.backends.swarm_converge import Convergence
from canonlib.backends.swarm_docker import Docker
from canonlib.backends.swarm_exec import exec_step
from canonlib.backends.swarm_records import Records, missing
from canonlib.backends.swarm_render import create_secrets, only_deps, render, write_stack
from canonlib.backends.swarm_teardown import remove_objects, remove_services
from canonlib.backends.swarm_volumes import Volumes, snapshot_dir
from canonlib.config import Config
from canonlib.files import tree_size
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import RETIRED, SlotMarker

WARM_MODES = ("running", "snapshot")


class SwarmBackend(SilentServers):
    """The :class:`~canonlib.backends.base.Backend` on a Docker Swarm: a slot is a stack."""

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
        server: str | None = None,
    ):
        if warm not in WARM_MODES:
            raise BackendError(
                "config", f"backend.warm must be one of {', '.join(WARM_MODES)}, got {warm!r}"
            )
        self.work = Path(work_dir)
        self.docker = Docker(docker, context, timeout_s, log)
        self.server = server  # several servers: this one's name, stamped on every marker
        self.helper_image = helper_image
        self.warm = warm
        self.domain = domain
        self.run_id = run_id or os.environ.get("CANON_RUN_ID") or None
        # which canon made it: two canon installations (or the demo and a real one) on one swarm
        # never see, reap or count each other's slots
        self.instance = (
            instance or hashlib.sha256(str(self.work.resolve()).encode()).hexdigest()[:12]
        )
        self.records = Records(self.docker, self.instance, self.run_id)
        self.convergence = Convergence(self.docker, self.instance)
        self.volumes = Volumes(self.docker, helper_image)
        # provision -> deploy: (slot, checkout) -> (rendered stack, .env text)
        self._rendered: dict[tuple[str, str], tuple[ComposeDoc, str]] = {}

    @classmethod
    def from_config(
        cls, config: Config, *, run_dir: Path | None = None, server: str | None = None
    ) -> SwarmBackend:
        """The one-server backend; ``server`` (one of ``backend.servers``) names its context."""
        b = config.backend
        return cls(
            config.state_dir / "swarm",
            context=server or b.get("context"),
            server=server,
            docker=b.get("docker", "docker"),
            helper_image=b.get("helper_image", "busybox:1"),
            warm=b.get("warm", "running"),
            domain=b.get("domain", "canon.localhost"),
            timeout_s=float(b.get("timeout_s", 120)),
            instance=b.get("instance"),
            log=(run_dir / "docker.log") if run_dir else None,
        )

    def check_engine(self) -> None:
        """The engine answers and its swarm is active, or one line saying what to do."""
        self.docker.check_swarm()

    def _dir(self, slot: str) -> Path:
        return self.work / stack_name(slot)

    # -- records (the marker, and what is deployed) -------------------------------------
    def marker(self, slot: str) -> SlotMarker | None:
        return self.records.marker(slot)

    def markers(self) -> dict[str, SlotMarker]:
        self.check_engine()
        return self.records.markers()

    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]:
        self.check_engine()
        return self.records.scan_markers()

    def mark(self, slot: str, marker: SlotMarker) -> None:
        self.check_engine()
        if self.server is not None and marker.server != self.server:
            marker = replace(marker, server=self.server)
        self.records.mark(slot, marker)

    def deployed(self, slot: str) -> SlotRecord | None:
        return self.records.deployed(slot)

    def slots(self) -> list[str]:
        self.check_engine()
        return self.records.slots()

    # -- install -----------------------------------------------------------------------
    def provision(self, slot: str, checkout: Path, meta: RecipeMeta) -> None:
        self.check_engine()
        self.records.ensure_marker(slot, meta.recipe)
        tag = Path(checkout).name
        rendered, env_text, env = render(self.docker, slot, checkout, meta, tag, self.domain)
        only_deps(rendered, meta)  # DEPS that are not services fail before any secret is made
        self._rendered[(slot, str(checkout))] = (rendered, env_text)
        labels = self.records.labels(slot, meta.recipe)
        create_secrets(self.docker, slot, rendered, env, env_text, meta, labels)

    def deploy(
        self, slot: str, checkout: Path, meta: RecipeMeta, *, version: str, commit: str
    ) -> None:
        self.check_engine()
        self.records.ensure_marker(slot, meta.recipe)
        cached = self._rendered.pop((slot, str(checkout)), None)
        rendered, env_text = (
            cached or render(self.docker, slot, checkout, meta, version, self.domain)[:2]
        )
        only_deps(rendered, meta)  # DEPS that are not services fail before anything is deployed
        doc = with_labels(rendered, self.records.labels(slot, meta.recipe))
        write_stack(self._dir(slot), doc, env_text, Path(checkout), meta)
        self.convergence.up(slot, self._dir(slot), meta.DEPLOY_TIMEOUT_S)
        self.records.set_deployed(
            slot,
            recipe=meta.recipe,
            version=version,
            commit=commit,
            state="deployed",
            services=service_names(rendered),
            deadline_s=meta.DEPLOY_TIMEOUT_S,
            deployed_at=time.time(),
        )

    def wait_converged(
        self, slot: str, deadline_s: float, *, end: float | None = None, stable: bool = True
    ) -> None:
        """The slot's stack converged (:meth:`.swarm_converge.Convergence.wait`)."""
        self.convergence.wait(slot, deadline_s, end=end, stable=stable)

    def _default_service(self, slot: str) -> str:
        services = self.records.services(slot)
        return "app" if "app" in services or not services else services[0]

    def exec(
        self, slot: str, step: str, *, timeout: float, what: str
    ) -> subprocess.CompletedProcess[str]:
        """``service: cmd`` (default service ``app``) run with ``sh -c`` inside the service's
        container (:func:`.swarm_exec.exec_step`)."""
        return exec_step(
            self.docker,
            self.instance,
            slot,
            step,
            default_service=self._default_service(slot),
            env=self.slot_env(slot),
            timeout=timeout,
            what=what,
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
        """Converged, then each probe passes (``cmd`` probes inside the container, ``http`` from
        here)."""
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

    def _probe(self, slot: str, probe: Mapping[str, object], env: Mapping[str, str]) -> str | None:
        """:func:`.common.probe_once`, a ``cmd`` probe run inside the slot's container; an engine
        that is gone (confirmed by :class:`.swarm_docker.Docker`) is no verdict, never retried."""
        return probe_once(
            probe,
            cwd=None,
            env=env,
            run=lambda cmd, timeout: self.exec(slot, cmd, timeout=timeout, what="ready"),
            fatal=(BackendUnavailable,),
        )

    # -- data ----------------------------------------------------------------------------
    def snapshot(self, slot: str) -> str:
        """Each named volume of the slot archived (tar) through a helper container."""
        volumes = self.volumes.names(self.records.sel(slot))
        return self.volumes.archive(volumes, self._dir(slot) / "snapshots")

    def restore(self, slot: str, snapshot: str) -> None:
        """Stack down, each archived volume emptied and refilled, stack up and converged again."""
        src = snapshot_dir(self._dir(slot) / "snapshots", slot, snapshot)
        recipe = (self.marker(slot) or missing(slot)).recipe
        self._down(slot)
        have = set(self.volumes.names(self.records.sel(slot)))
        self.volumes.refill(src, have, slot, self.records.labels(slot, recipe))
        self._up(slot)

    def wipe_data(self, slot: str) -> None:
        """Stack down, its volumes removed, stack up on fresh empty volumes."""
        self._down(slot)
        for vol in self.volumes.names(self.records.sel(slot)):
            self.docker.run("volume", "rm", vol, step="wipe")
        self._up(slot)

    def _up(self, slot: str) -> None:
        """The slot's written stack deployed again, within the meta's DEPLOY_TIMEOUT_S as the
        last deploy of the slot recorded it."""
        deadline_s = float((self.deployed(slot) or {}).get("deadline_s") or self.docker.timeout_s)
        self.convergence.up(slot, self._dir(slot), deadline_s)

    # -- lifecycle -----------------------------------------------------------------------
    def _down(self, slot: str) -> None:
        """The slot's services removed and their containers gone; volumes, secrets, configs kept."""
        self.convergence.forget(slot)
        remove_services(self.docker, slot, self.records.sel(slot), "undeploy", force=False)

    def undeploy(self, slot: str) -> None:
        """``warm = "running"``: nothing (the canonical stays up); ``"snapshot"``: services
        removed."""
        if self.warm == "running" or not self.deployed(slot):
            return
        self._down(slot)
        self.records.set_deployed(slot, state="undeployed")

    def teardown(self, slot: str) -> None:
        """Everything labelled with this slot, then its marker; never a canonical.

        Services first, then their containers (forced), then the slot's volumes, secrets,
        configs and networks (listed side by side, removed side by side), the marker last:
        a teardown cut short leaves a marked slot the janitor finds."""
        self.check_engine()
        refuse_canonical(slot, self.marker(slot))
        self.convergence.forget(slot)
        remove_services(self.docker, slot, self.records.sel(slot), "teardown", force=True)
        records = remove_objects(self.docker, slot, self.records.sel(slot))
        shutil.rmtree(self._dir(slot), ignore_errors=True)
        self.records.forget(slot)
        if records:
            self.docker.run("config", "rm", *records, step="teardown")

    def slot_env(self, slot: str) -> dict[str, str]:
        env_file = self._dir(slot) / ".env"
        env = read_env_file(env_file)
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
