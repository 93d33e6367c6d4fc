"""What a Co-op Cloud deploy reads from a recipe, shared by every backend.

abra (and the ``swarm`` backend, which does what abra does under the hood)
deploy a recipe like this:

- the app's env is ``.env.sample`` with the operator's values set
  (:func:`app_env`), plus ``STACK_NAME`` and ``DOMAIN``, plus the literal
  ``export NAME=value`` lines of ``abra.sh`` (config versions);
- the compose files are the env's ``COMPOSE_FILE`` (colon-separated, default
  ``compose.yml``), each one inside the recipe (:func:`compose_files`);
- secrets are versioned: ``<stack>_<secret>_<version>``, the version from
  ``SECRET_<SECRET>_VERSION`` in the env (:func:`secret_name`).

Nothing here talks to docker; :mod:`.swarm` renders with ``docker stack
config``.  :func:`parse_compose_files` is the docker-free check the ``local``
backend uses so that a tree it would deploy at least parses as compose.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from canonlib.backends.base import BackendError
from canonlib.backends.common import json_object, parse_env, render_env
from canonlib.files import FileProblem, read_tree_file

DEFAULT_COMPOSE_FILE = "compose.yml"
_EXPORT = re.compile(r"^\s*export\s+([A-Za-z_][A-Za-z0-9_]*)=(['\"]?)([^'\"$`\\;|&]*)\2\s*$")
_STACK_OK = re.compile(r"[^a-zA-Z0-9_-]")
STACK_MAX = 40  # docker service names are <= 63 chars: <stack>_<service>

# a compose document as YAML gives it: docker's schema is open-ended and canon writes back every
# key it read, so a document stays a mapping whose parts are read with :func:`mapping`
ComposeDoc = dict[str, object]
mapping = json_object  # a part of a compose document: a mapping, or an empty one


def not_a_recipe(tree: Path, tag: str) -> str | None:
    """The L1 verdict for a tree that is not a recipe at all, else None."""
    if not (Path(tree) / DEFAULT_COMPOSE_FILE).is_file():
        return f"not a recipe: no {DEFAULT_COMPOSE_FILE} at {tag}"
    return None


def stack_name(slot: str) -> str:
    """abra's STACK_NAME is the domain with dots made underscores.

    Ours is the slot's, kept short.
    """
    name = _STACK_OK.sub("_", slot)
    if len(name) > STACK_MAX:
        digest = hashlib.sha256(slot.encode()).hexdigest()[:8]
        name = f"{name[: STACK_MAX - 9]}_{digest}"
    return name


def abra_sh_exports(tree: Path) -> dict[str, str]:
    """The literal ``export NAME=value`` lines of ``abra.sh`` (read, never executed)."""
    try:
        text = read_tree_file(tree, "abra.sh")
    except FileNotFoundError:
        return {}
    except FileProblem as e:
        raise BackendError("provision", f"abra.sh {e}") from None
    return {m[1]: m[3] for line in text.splitlines() if (m := _EXPORT.match(line))}


def env_sample(tree: Path) -> str:
    """The recipe's ``.env.sample`` ("" when it has none); a hostile one is refused, named."""
    try:
        return read_tree_file(tree, ".env.sample")
    except FileNotFoundError:
        return ""
    except FileProblem as e:
        raise BackendError("provision", f".env.sample {e}") from None


def app_env(tree: Path, overlay: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """(the app's .env text, its values): ``.env.sample`` + overlay, then abra.sh's exports."""
    text = render_env(env_sample(tree), overlay)
    env = parse_env(text, what=".env.sample")
    env.update(abra_sh_exports(tree))
    return text, env


def compose_files(tree: Path, env: Mapping[str, str], tag: str) -> list[Path]:
    """The env's ``COMPOSE_FILE`` entries, each an existing file inside ``tree``."""
    tree = Path(tree)
    problem = not_a_recipe(tree, tag)
    if problem:
        raise BackendError("deploy", problem)
    names = [n for n in (env.get("COMPOSE_FILE") or DEFAULT_COMPOSE_FILE).split(":") if n]
    root = tree.resolve()
    out = []
    for name in names:
        path = (tree / name).resolve()
        if root not in path.parents:
            raise BackendError(
                "deploy", f"COMPOSE_FILE entry {name!r} is outside the recipe at {tag}"
            )
        if not path.is_file():
            raise BackendError("deploy", f"COMPOSE_FILE names {name} but {tag} has no such file")
        out.append(path)
    return out


def parse_compose_files(tree: Path, env: Mapping[str, str], tag: str) -> ComposeDoc:
    """Each compose file parses as YAML with a ``services`` mapping; the merged top-level keys.

    No interpolation and no schema: that is docker's job (``docker stack config``)
    in the swarm backend; this is what the docker-free ``local`` backend can check.
    """
    import yaml  # deferred: ~15 ms that a sweep with nothing to test never needs

    merged: ComposeDoc = {"services": {}}
    for path in compose_files(tree, env, tag):
        rel = path.relative_to(Path(tree).resolve())
        try:
            doc: object = yaml.safe_load(read_tree_file(tree, str(rel)))
        except FileProblem as e:
            raise BackendError("deploy", f"{rel} at {tag} {e}") from None
        except yaml.YAMLError as e:
            raise BackendError(
                "deploy", f"{rel} at {tag} does not parse: {str(e).splitlines()[0]}"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("services", {}), dict):
            raise BackendError(
                "deploy", f"{rel} at {tag} is not a compose file (no services mapping)"
            )
        for key, value in doc.items():
            have = merged.get(key)
            if isinstance(value, dict) and isinstance(have, dict):
                merged[key] = {**have, **value}
            else:
                merged[key] = value
    if not merged["services"]:
        raise BackendError("deploy", f"the compose files at {tag} define no services")
    return merged


def split_step(step: str, default: str) -> tuple[str, str]:
    """``"db: psql …"`` → (db, psql …); a step without a ``service:`` prefix runs in ``default``
    (abra's ``app run <service>``: install steps and ``cmd`` probes in a service's container)."""
    service, sep, cmd = step.partition(":")
    if not sep or not service.strip() or " " in service.strip() or "/" in service:
        return default, step
    return service.strip(), cmd.strip()


# -- secrets -------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretSpec:
    key: str  # the name in compose.yml / the meta (db_password)
    name: str  # the docker secret (<stack>_db_password_v1)
    generator: str | None  # the meta's generator, or one read from .env.sample


def secret_version(env: Mapping[str, str], key: str) -> str:
    return env.get(f"SECRET_{key.upper()}_VERSION") or "v1"


def secret_name(stack: str, key: str, version: str) -> str:
    """abra's versioned secret name; docker caps secret names at 64 characters."""
    name = f"{stack}_{key}_{version}"
    if len(name) > 64:
        raise BackendError(
            "provision",
            f"secret name {name!r} is longer than docker's 64 characters: shorten the slot",
        )
    return name


def _length_hint(env_text: str, key: str) -> str | None:
    """abra's ``SECRET_X_VERSION=v1 # length=48`` comment, as a generator."""
    for line in env_text.splitlines():
        if line.strip().startswith(f"SECRET_{key.upper()}_VERSION="):
            m = re.search(r"#.*\blength=(\d+)", line)
            return f"alnum:{m[1]}" if m else None
    return None


def secret_specs(
    rendered: Mapping[str, object],
    stack: str,
    env: Mapping[str, str],
    env_text: str,
    meta_secrets: Mapping[str, str | None],
) -> list[SecretSpec]:
    """The secrets to create before deploy, by abra's names.

    Compose's external ones plus the meta's.
    """
    specs: dict[str, SecretSpec] = {}
    for key, spec in mapping(rendered.get("secrets")).items():
        if not isinstance(spec, dict) or not spec.get("external"):
            continue  # a file-based secret: docker creates it from the recipe
        name = str(spec.get("name") or key)
        gen = meta_secrets.get(key) or _length_hint(env_text, key)
        specs[key] = SecretSpec(key, name, gen)
    for key, gen in meta_secrets.items():
        if key not in specs:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                raise BackendError("provision", f"bad secret name {key!r} in the meta")
            specs[key] = SecretSpec(key, secret_name(stack, key, secret_version(env, key)), gen)
    return list(specs.values())


# -- labels --------------------------------------------------------------------------


def _add_labels(obj: dict[str, object], key: str, labels: Mapping[str, str]) -> None:
    current = obj.get(key)
    if isinstance(current, list):
        current = dict(str(x).partition("=")[::2] for x in current)
    obj[key] = {**mapping(current), **labels}


def with_labels(rendered: Mapping[str, object], labels: Mapping[str, str]) -> ComposeDoc:
    """The rendered stack with ``labels`` on every service, container, volume, network,
    config and secret the stack will create (external ones are not the stack's)."""
    import yaml  # deferred: see parse_compose_files

    doc: ComposeDoc = yaml.safe_load(yaml.safe_dump(dict(rendered)))  # a deep copy
    for service in mapping(doc.get("services")).values():
        if not isinstance(service, dict):
            continue
        deploy = service.setdefault("deploy", {})
        if not isinstance(deploy, dict):
            deploy = service["deploy"] = {}
        _add_labels(deploy, "labels", labels)
        _add_labels(service, "labels", labels)
    networks = doc.setdefault("networks", {})
    if isinstance(networks, dict):
        networks.setdefault("default", {})  # the implicit <stack>_default network
    for kind in ("volumes", "networks", "configs", "secrets"):
        specs = mapping(doc.get(kind))
        for name, spec in list(specs.items()):
            spec = mapping(spec)
            if not spec.get("external"):
                _add_labels(spec, "labels", labels)
                specs[name] = spec
    return doc


def literal(doc: object) -> object:
    """``$`` escaped as ``$$`` in every key and string, so a rendered stack deploys as rendered
    (``docker stack deploy`` interpolates again; the escape makes that an identity)."""
    if isinstance(doc, dict):
        return {literal(k): literal(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [literal(x) for x in doc]
    return doc.replace("$", "$$") if isinstance(doc, str) else doc


def service_names(rendered: Mapping[str, object]) -> list[str]:
    return [str(name) for name in mapping(rendered.get("services"))]
