"""The swarm backend's one way to run docker, and the labels that select canon's objects.

:class:`Docker` runs the CLI (argv lists, a context, timeouts, its own process group, a
log that never holds a secret); :func:`label_filters` and :func:`label_args` turn a label
mapping into ``--filter``/``--label`` arguments.  Everything the swarm backend makes
carries :data:`LABEL_INSTANCE` (which canon made it) and :data:`LABEL_SLOT`.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from canonlib.backends.base import BackendError
from canonlib.backends.common import BackendUnavailable, json_object, run_group

RECORD = "canon.record"
# what the docker CLI says when its engine is gone (killed, its socket refused, its host down);
# only a hint: ``docker exec`` passes on the probed app's own stderr, which may say the same
GONE = (
    "Cannot connect to the Docker daemon",
    "Is the docker daemon running",
    "connection refused",
    "no such host",
    "error during connect",
)
LABEL_SLOT = "canon.slot"
LABEL_INSTANCE = "canon.instance"


@dataclass(frozen=True)
class Inspected:
    """One object as ``docker inspect`` shows it (a config, a secret, a service), narrowed to
    what canon reads of it; a part it lacks (or of another type) reads as empty."""

    id: str  # ID
    name: str  # Spec.Name ("?" when it has none)
    labels: dict[str, str]  # Spec.Labels
    data: str  # Spec.Data: a config's bytes, base64 ("" when none)
    mode: frozenset[str]  # the keys of a service's Spec.Mode (Replicated, ReplicatedJob …)
    update_state: str | None  # a service's UpdateStatus.State
    update_message: str  # a service's UpdateStatus.Message

    @classmethod
    def from_json(cls, doc: object) -> Inspected:
        d = json_object(doc)
        spec = json_object(d.get("Spec"))
        update = json_object(d.get("UpdateStatus"))
        ident, name, data = d.get("ID"), spec.get("Name"), spec.get("Data")
        state, message = update.get("State"), update.get("Message")
        return cls(
            id=ident if isinstance(ident, str) else "",
            name=name if isinstance(name, str) else "?",
            labels={
                str(k): v for k, v in json_object(spec.get("Labels")).items() if isinstance(v, str)
            },
            data=data if isinstance(data, str) else "",
            mode=frozenset(str(k) for k in json_object(spec.get("Mode"))),
            update_state=state if isinstance(state, str) else None,
            update_message=message if isinstance(message, str) else "",
        )


def label_filters(labels: Mapping[str, str]) -> list[str]:
    """``--filter label=k=v`` for each label (``label=k`` for an empty value)."""
    return [
        a for k, v in labels.items() for a in ("--filter", f"label={k}={v}" if v else f"label={k}")
    ]


def label_args(labels: Mapping[str, str]) -> list[str]:
    """``--label k=v`` for each label, as ``docker … create`` takes them."""
    return [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]


def _log(log: Path, args: tuple[str, ...], out: str, err: str, *, quiet: bool) -> None:
    """The command and the tail of what it printed (stderr only for ``ls``/``inspect``)."""
    with log.open("a") as f:
        f.write(f"$ docker {' '.join(args)}\n")
        if quiet:
            f.write("[output withheld: may contain secrets]\n")
        elif args[0] not in ("inspect", "ls") and (
            len(args) < 2 or args[1] not in ("inspect", "ls")
        ):
            f.write(out[-2000:] + err[-2000:])
        else:
            f.write(err[-2000:])


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
        self._swarm_checked = False

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
            _log(self.log, args, out, err, quiet=quiet)
        if proc.returncode != 0 and any(g in err for g in GONE) and self._gone(args, env):
            # the engine itself is gone: a fault of canon's environment, never a verdict
            self._swarm_checked = False
            raise BackendUnavailable(step, f"{self.where} does not answer: {err.strip()[-300:]}")
        if check and proc.returncode != 0:
            detail = err.strip() or ("" if quiet else out.strip())
            raise BackendError(step, f"docker {' '.join(args[:3])} failed: {detail[-800:]}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def _gone(self, args: tuple[str, ...], env: Mapping[str, str] | None) -> bool:
        """Whether the engine is really gone after a command whose stderr read as if it were:
        ``docker version`` against the same context and environment does not answer either.
        A failing ``docker exec`` prints the probed app's own words ("connection refused" from
        an app whose database is not up yet), which say nothing about the engine."""
        if args[0] in ("info", "version"):
            return True  # the command was itself the engine check
        try:
            r = run_group(
                [*self.argv0, "version", "--format", "{{.Server.Version}}"],
                cwd=None,
                env=os.environ if env is None else env,
                timeout=min(30.0, self.timeout_s),
                merge_stderr=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return True
        return r.returncode != 0

    @property
    def where(self) -> str:
        return f"docker context {self.context!r}" if self.context else "the local docker engine"

    def cluster_id(self) -> str:
        """The swarm's cluster id: two servers with the same one are the same swarm."""
        self.check_swarm()
        r = self.run("info", "--format", "{{.Swarm.Cluster.ID}}", step="swarm", timeout=30)
        return r.stdout.strip()

    def lines(self, *args: str, step: str) -> list[str]:
        return [x for x in self.run(*args, step=step).stdout.splitlines() if x.strip()]

    def ids(self, kind: str, labels: Mapping[str, str], step: str) -> list[str]:
        """IDs (names for volumes) of ``kind`` objects carrying every label in ``labels``."""
        filters = label_filters(labels)
        if kind == "container":
            return self.lines("ps", "-aq", *filters, step=step)
        return self.lines(kind, "ls", "-q", *filters, step=step)

    def inspect(self, kind: str, ids: Iterable[str], step: str) -> list[Inspected]:
        ids = list(ids)
        if not ids:
            return []
        found: object = json.loads(self.run(kind, "inspect", *ids, step=step).stdout or "[]")
        return [Inspected.from_json(doc) for doc in found] if isinstance(found, list) else []

    def check_swarm(self) -> None:
        """The engine answers, is a manager, and its swarm is active; or one line saying what to
        do (a context that does not exist, an engine that does not answer, a worker node)."""
        if self._swarm_checked:
            return
        where = self.where
        local = not self.context or self.context.startswith("canon-s")
        hint = "; run scripts/swarm-up" if local else ""
        try:
            r = self.run(
                "info",
                "--format",
                "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
                step="swarm",
                check=False,
                timeout=30,
            )
        except BackendUnavailable as e:
            raise BackendUnavailable("swarm", f"{e.args[0].split(': ', 1)[-1]}{hint}") from None
        except BackendError as e:
            raise BackendUnavailable("swarm", f"{where} does not answer ({e}){hint}") from None
        state, _, manager = r.stdout.strip().partition(" ")
        if r.returncode != 0:
            err = r.stderr.strip()
            if "context not found" in err or "does not exist" in err:
                raise BackendUnavailable(
                    "swarm",
                    f"{where} does not exist: create it (docker context create {self.context} "
                    "--docker host=ssh://root@<server>) or fix canon.toml's [backend]",
                )
            raise BackendUnavailable("swarm", f"{where} does not answer: {err[-300:]}{hint}")
        if state != "active":
            raise BackendUnavailable(
                "swarm", f"{where} is not in an active swarm ({state}): docker swarm init"
            )
        if manager != "true":
            raise BackendUnavailable(
                "swarm",
                f"{where} is a swarm worker, not a manager: point it at a manager node "
                "(one where docker node ls works)",
            )
        self._swarm_checked = True
