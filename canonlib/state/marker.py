"""Slot markers: what canon writes on every slot it creates, never derived from the registry.

A leaf module (imports nothing of canon's), so every backend can carry a
marker its own way: ``local`` as ``<slot>/canon-slot.json``, ``abra`` as a
file beside its slot record, swarm as labels (:meth:`SlotMarker.labels`).

Roles: ``cold`` (a harness's throw-away slot), ``next`` (a promote under
way), ``canonical`` (the live known-good slot: cleanup never touches it),
``retired`` (a former canonical being torn down).  A slot's name is unique
to the run that made it (:func:`new_slot_name`), so no later run, registry
or promotion count can ever produce the name of a live slot.
"""

from __future__ import annotations

import secrets
from collections.abc import Container, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

COLD, NEXT, CANONICAL, RETIRED = "cold", "next", "canonical", "retired"
ROLES = (COLD, NEXT, CANONICAL, RETIRED)
MARKER_FILE = "canon-slot.json"
LABEL_PREFIX = "canon."


@dataclass(frozen=True)
class SlotMarker:
    """Who made a slot, for what, and what it is now."""

    slot: str
    recipe: str
    role: str
    version: str
    commit: str
    run_id: str | None = None
    created_at: str = ""
    promotion_id: int | None = None  # the registry row that made it canonical
    promotion_hash: str | None = None  # that row's chain hash
    previous_slot: str | None = None  # next/canonical: the canonical it replaces
    canon_version: str | None = None
    server: str | None = None  # the server (docker context / abra server) the slot lives on

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"slot marker role {self.role!r} is not one of {', '.join(ROLES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SlotMarker:
        """Tolerant of keys a newer canon added; ValueError/TypeError/KeyError when unusable."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if values.get("promotion_id") is not None:
            values["promotion_id"] = int(values["promotion_id"])
        return cls(**values)

    def labels(self) -> dict[str, str]:
        """Flat string labels (``canon.recipe`` …) for backends that carry markers as labels."""
        return {
            f"{LABEL_PREFIX}{k}": str(v) for k, v in self.to_dict().items() if v not in (None, "")
        }

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> SlotMarker | None:
        """The marker in ``labels`` (None when they carry none)."""
        d = {k[len(LABEL_PREFIX) :]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}
        if "role" not in d:
            return None
        return cls.from_dict(d)

    def as_role(self, role: str, **changes: Any) -> SlotMarker:
        return replace(self, role=role, **changes)

    @property
    def is_canonical(self) -> bool:
        return self.role == CANONICAL


def utcnow() -> str:
    """Now, as canon writes every time stamp (markers, registry rows): UTC, microseconds, Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_slot_name(prefix: str, recipe: str, taken: Container[str] = ()) -> str:
    """``<prefix>-<recipe>-<8 random hex>``, never one of ``taken``: unique to the run making it."""
    while True:
        name = f"{prefix}-{recipe}-{secrets.token_hex(4)}"
        if name not in taken:
            return name
