"""Whether a release may be deployed at all, decided before its cold run on every backend.

Two gates, each a thin shell over a pure decision:

- **the release cooldown** (:func:`cooling`): a tag canon's mirror first saw less than
  ``MIN_RELEASE_AGE`` (else ``[sweep] min_release_age``) ago waits: ``SKIP (cooling)``
  (``policy.cooling_until``);
- **host access by consent** (:func:`host_gate`): what the release's compose files ask of
  the host (``recipe.hostaccess``, rendered with the env a slot gets, ``COMPOSE_FILE``
  resolved as the backends resolve it) against the recipe's ``HOST_ACCESS``.  More than
  accepted, or a bind of canon's own places (state, evidence, keys, fleet, config: refused
  even when accepted), and the release is not deployed: ``HELD (host access)``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from canonlib.backends.base import BackendError
from canonlib.backends.compose import app_env, compose_files
from canonlib.config import Config, parse_age
from canonlib.errors import CanonError
from canonlib.files import FileProblem, read_tree_file
from canonlib.recipe.hostaccess import (
    Access,
    ComposeUnreadable,
    host_path,
    meta_line,
    not_accepted,
    reaching,
    read_host_access,
)
from canonlib.recipe.meta import RecipeMeta
from canonlib.recipe.mirror import Mirror
from canonlib.state.row import AskedJSON
from canonlib.sweep import policy

CHECK_STACK = "canon-host-access-check"  # STACK_NAME while no slot exists yet


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the cooldown --------------------------------------------------------------------


def min_release_age_s(config: Config, meta: RecipeMeta) -> int:
    """The recipe's cooldown in seconds: its MIN_RELEASE_AGE, else canon.toml's."""
    if meta.MIN_RELEASE_AGE is not None:
        return parse_age(meta.MIN_RELEASE_AGE)
    return config.min_release_age_s


def cooling(
    config: Config, meta: RecipeMeta, mirror: Mirror, tag: str, commit: str, now: float
) -> tuple[str, str, str] | None:
    """The row's fields for a tag still cooling (``first_seen``, ``eligible_at``, ``reason``),
    or None when it may run."""
    age = min_release_age_s(config, meta)
    if age <= 0:
        return None
    first = mirror.first_seen(tag, commit, now)
    until = policy.cooling_until(first, age, now)
    if until is None:
        return None
    where = "MIN_RELEASE_AGE" if meta.MIN_RELEASE_AGE is not None else "[sweep] min_release_age"
    return (
        iso(first),
        iso(until),
        f"{tag} first seen by canon's mirror {iso(first)}; cooling until {iso(until)} "
        f"({where} {meta.MIN_RELEASE_AGE or _human(age)})",
    )


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- host access ---------------------------------------------------------------------


@dataclass(frozen=True)
class HostGate:
    accepted: list[str]
    asked: list[Access] = field(default_factory=list)
    new: list[Access] = field(default_factory=list)
    refused: list[tuple[Access, str]] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.new or self.refused)

    def row(self) -> tuple[list[AskedJSON], list[str]]:
        """``host_access`` (each item asked: item, file, line, service, source, accepted,
        refused) and ``host_accepted`` (the meta's HOST_ACCESS), for the result row."""
        new = {a.item for a in self.new}
        refused = {a.item: what for a, what in self.refused}
        return (
            [
                AskedJSON(
                    item=a.item,
                    file=a.file,
                    line=a.line,
                    service=a.service,
                    source=a.source,
                    accepted=a.item not in new and a.item not in refused,
                    refused=refused.get(a.item),
                )
                for a in self.asked
            ],
            list(self.accepted),
        )

    def reason(self, meta: RecipeMeta) -> str:
        parts = []
        if self.new:
            items = "; ".join(f"{a.item} ({a.where})" for a in self.new)
            parts.append(
                f"asks the host for more than accepted: {items}; to accept, set in {meta.path}: "
                f"{meta_line(self.accepted, self.new)}"
            )
        if self.refused:
            items = "; ".join(f"{a.item} ({a.where}) reaches canon's {w}" for a, w in self.refused)
            parts.append(f"refused even if accepted: {items}")
        return "not deployed: " + "; ".join(parts)

    def warnings(self) -> list[str]:
        """One line per accepted item: every row that deploys it says so."""
        seen = dict.fromkeys(a.item for a in self.asked)
        return [f"host access (accepted in HOST_ACCESS): {item}" for item in seen]


def _protected(config: Config) -> dict[str, list[str]]:
    places = {
        "state dir": config.state_dir,
        "evidence dir": config.evidence_dir,
        "keys": config.state_dir / "keys",
        "fleet": config.fleet,
    }
    if config.path is not None:
        places["config"] = config.path
    out: dict[str, list[str]] = {}
    for what, path in places.items():
        p = os.path.abspath(path)
        out[what] = sorted({os.path.normpath(p), os.path.realpath(p)})
    return out


def host_gate(config: Config, meta: RecipeMeta, tree: Path, tag: str) -> HostGate:
    """What the release at ``tree`` asks of the host against what ``meta`` accepts.

    The env is the one a slot gets (``.env.sample`` + ENV_OVERLAY + abra.sh's exports),
    ``COMPOSE_FILE`` resolved by ``backends.compose``.  A tree that is no recipe, or whose
    env the backends cannot read, asks nothing here: its cold run fails on it at L1.  A
    compose file canon cannot read is an error: what it asks cannot be known.
    """
    accepted = list(meta.HOST_ACCESS)
    try:
        env = app_env(tree, {"STACK_NAME": CHECK_STACK, "TYPE": meta.recipe, **meta.ENV_OVERLAY})[1]
        paths = compose_files(tree, env, tag)
    except BackendError:
        return HostGate(accepted)
    root = Path(tree).resolve()
    texts = []
    for path in paths:
        rel = str(path.relative_to(root))
        try:
            texts.append((rel, read_tree_file(tree, rel)))
        except (FileNotFoundError, FileProblem) as e:
            raise CanonError(f"host access: {rel} at {tag}: {e}; not deployed") from None
    try:
        asked = read_host_access(texts, env)
    except ComposeUnreadable as e:
        raise CanonError(
            f"host access: {e} at {tag}: canon cannot tell what it asks of the host, "
            "so it is not deployed"
        ) from None
    home = os.path.expanduser("~")
    # a link on the host that leads into canon's places reaches them too
    linked = [
        dataclasses.replace(a, source=real)
        for a in asked
        if (hp := host_path(a, str(root), home)) and (real := os.path.realpath(hp)) != hp
    ]
    reached = reaching([*asked, *linked], _protected(config), str(root), home)
    refused = list({a.item: (a, what) for a, what in reversed(reached)}.values())[::-1]
    refused_items = {a.item for a, _ in refused}
    new = [a for a in not_accepted(asked, accepted) if a.item not in refused_items]
    return HostGate(accepted, asked, new, refused)
