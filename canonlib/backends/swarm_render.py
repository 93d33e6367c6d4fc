"""A swarm slot's stack as docker will deploy it: rendered, its secrets made, written to disk.

``docker stack config -c <COMPOSE_FILE…>`` renders and validates the recipe's compose
files (env: ``.env.sample`` + overlay, ``STACK_NAME``, ``DOMAIN``, ``abra.sh`` exports);
:func:`create_secrets` makes the secrets abra would, by abra's names, each value on stdin
and never logged; :func:`write_stack` leaves the labelled stack (and the DEPS services
alone) next to the files its configs and secrets are made from, so a redeploy of the slot
(restore, wipe) does not need the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from canonlib.backends.base import BackendError
from canonlib.backends.common import generate_secret
from canonlib.backends.compose import (
    ComposeDoc,
    app_env,
    compose_files,
    literal,
    mapping,
    secret_specs,
    stack_name,
)
from canonlib.backends.swarm_docker import LABEL_SLOT, Docker, label_args
from canonlib.recipe.meta import RecipeMeta

_ENV_PASS = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
STACK_FILE = "compose.yml"
DEPS_FILE = "deps.compose.yml"  # the DEPS services alone, deployed and converged first


def docker_env(app: Mapping[str, str]) -> dict[str, str]:
    """The environment ``docker stack config`` interpolates with: the app's env, not the
    operator's."""
    return {**{k: os.environ[k] for k in _ENV_PASS if k in os.environ}, **app}


def render(
    docker: Docker, slot: str, checkout: Path, meta: RecipeMeta, tag: str, domain: str
) -> tuple[ComposeDoc, str, dict[str, str]]:
    """(rendered stack, .env text, env): ``docker stack config`` over COMPOSE_FILE."""
    import yaml  # deferred: ~15 ms that a sweep with nothing to test never needs

    stack = stack_name(slot)
    overlay = {"DOMAIN": f"{slot}.{domain}", **meta.ENV_OVERLAY, "STACK_NAME": stack}
    env_text, env = app_env(checkout, overlay)
    env.setdefault("TYPE", meta.recipe)
    files = compose_files(checkout, env, tag)
    args = [a for f in files for a in ("-c", str(f))]
    r = docker.run(
        "stack",
        "config",
        *args,
        step="deploy",
        env=docker_env(env),
        cwd=Path(checkout),
        check=False,
    )
    if r.returncode != 0:
        names = ", ".join(str(f.relative_to(Path(checkout).resolve())) for f in files)
        raise BackendError("deploy", f"docker rejects {names} at {tag}: {r.stderr.strip()[-600:]}")
    try:
        rendered: object = yaml.safe_load(r.stdout)
    except yaml.YAMLError as e:  # docker printed what it accepted; this would be a docker bug
        raise BackendError("deploy", f"docker stack config output does not parse: {e}") from None
    return mapping(rendered), env_text, env


def only_deps(doc: Mapping[str, object], meta: RecipeMeta) -> ComposeDoc:
    """``doc`` with only the services the meta's DEPS name, or an error naming the ones it lacks."""
    services = mapping(doc.get("services"))
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


def create_secrets(
    docker: Docker,
    slot: str,
    rendered: Mapping[str, object],
    env: Mapping[str, str],
    env_text: str,
    meta: RecipeMeta,
    labels: Mapping[str, str],
) -> None:
    """Each secret the stack needs and the swarm lacks, made with a generated value.

    One that exists is kept (an upgrade keeps its secrets; a new version is a new name),
    unless it is not this slot's: canon does not touch it."""
    names = set(docker.lines("secret", "ls", "--format", "{{.Name}}", step="provision"))
    for spec in secret_specs(rendered, stack_name(slot), env, env_text, meta.SECRETS):
        if spec.name in names:
            have = docker.inspect("secret", [spec.name], "provision")[0]
            if have.labels.get(LABEL_SLOT) != slot:
                raise BackendError(
                    "provision",
                    f"secret {spec.name} exists and is not slot {slot}'s: "
                    "canon does not touch it; remove it or pick another slot",
                )
            continue
        docker.run(
            "secret",
            "create",
            *label_args(labels),
            "--label",
            f"canon.secret={spec.key}",
            spec.name,
            "-",
            input=generate_secret(spec.generator),
            step="provision",
            quiet=True,
        )


def write_stack(d: Path, doc: ComposeDoc, env_text: str, checkout: Path, meta: RecipeMeta) -> None:
    """The labelled stack ``doc`` in ``d``: its ``.env``, pinned files, the stack, the DEPS
    stack."""
    d.mkdir(parents=True, exist_ok=True)
    (d / ".env").write_text(env_text)
    pin_files(doc, d / "files", Path(checkout))
    # as JSON (which is YAML): every string stays a string.  PyYAML writes 1234e10 bare,
    # and docker's YAML 1.2 reads that as a float (a label value of 1.234e+13)
    (d / STACK_FILE).write_text(json.dumps(literal(doc), indent=1) + "\n")
    deps = d / DEPS_FILE
    deps.unlink(missing_ok=True)
    if meta.DEPS:
        deps.write_text(json.dumps(literal(only_deps(doc, meta)), indent=1) + "\n")


def pin_files(doc: ComposeDoc, dest: Path, checkout: Path) -> None:
    """Copy the files configs and secrets are made from next to the rendered stack, so a later
    redeploy of the slot (restore, wipe) does not need the checkout."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    root = checkout.resolve()
    for kind in ("configs", "secrets"):
        for name, spec in mapping(doc.get(kind)).items():
            if isinstance(spec, dict) and spec.get("file"):
                src = Path(str(spec["file"])).resolve()
                if root not in src.parents:
                    raise BackendError(
                        "deploy", f"{kind} {name}: file {spec['file']} is outside the recipe"
                    )
                target = dest / f"{kind}-{name}"
                shutil.copyfile(src, target)
                spec["file"] = str(target)
