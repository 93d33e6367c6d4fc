"""Slot markers: what canon writes on every slot it creates, never derived from the registry.

A leaf module (imports only canon's leaves), so every backend can carry a
marker its own way: ``local`` as ``<slot>/canon-slot.json``, ``abra`` as a
file beside its slot record, swarm as labels (:meth:`SlotMarker.labels`).

Roles: ``cold`` (a harness's throw-away slot), ``next`` (a promote under
way), ``canonical`` (the live known-good slot: cleanup never touches it),
``retired`` (a former canonical being torn down).  A slot's name is unique
to the run that made it (:func:`new_slot_name`), so no later run, registry
or promotion count can ever produce the name of a live slot.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Container, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import TypedDict, Unpack

from canonlib.files import FileProblem, read_json_file

COLD, NEXT, CANONICAL, RETIRED = "cold", "next", "canonical", "retired"
ROLES = (COLD, NEXT, CANONICAL, RETIRED)
MARKER_FILE = "canon-slot.json"
LABEL_PREFIX = "canon."
MARKER_CAP = 64 * 1024  # a marker canon writes is well under 1 KiB

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,150}", re.ASCII)  # a recipe's or slot's name
_REQUIRED = ("slot", "recipe", "role", "version", "commit")
_LONGEST = 512  # any string field; canon's are under 100 characters


class MarkerProblem(ValueError):
    """A marker that does not fit the schema; the words fit after "marker ... "."""


def _check(d: object) -> SlotMarker:
    """The marker in ``d``, its fields checked for type and form (MarkerProblem when not)."""
    if not isinstance(d, Mapping):
        raise MarkerProblem(f"is a JSON {type(d).__name__}, not an object")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise MarkerProblem(f"lacks {', '.join(missing)}")
    known = {f.name for f in fields(SlotMarker)}
    optional = {f.name for f in fields(SlotMarker) if f.default is None}  # str | None fields
    values: dict[str, object] = {k: v for k, v in d.items() if k in known}
    text: dict[str, str] = {}  # every field but promotion_id that is a string
    for k, v in values.items():
        if k == "promotion_id":
            continue
        if k in optional and v is None:
            continue
        if not isinstance(v, str):
            raise MarkerProblem(f"has {k} of type {type(v).__name__}; a string is expected")
        if len(v) > _LONGEST:
            raise MarkerProblem(f"has a {k} of {len(v)} characters; the limit is {_LONGEST}")
        text[k] = v
    for k in ("slot", "recipe"):
        if not _NAME.fullmatch(text[k]) or ".." in text[k]:
            raise MarkerProblem(f"has {k} {text[k][:80]!r}, which is not a name canon makes")
    if text["role"] not in ROLES:
        raise MarkerProblem(f"has role {text['role'][:40]!r}, not one of {', '.join(ROLES)}")
    pid = values.get("promotion_id")
    if isinstance(pid, str) and re.fullmatch(r"[0-9]{1,18}", pid):  # labels carry strings
        pid = int(pid)
    promotion_id: int | None = None
    if isinstance(pid, int) and not isinstance(pid, bool) and pid >= 1:
        promotion_id = pid
    elif pid is not None:
        raise MarkerProblem(f"has promotion_id {str(pid)[:40]!r}; a positive integer is expected")
    return SlotMarker(
        slot=text["slot"],
        recipe=text["recipe"],
        role=text["role"],
        version=text["version"],
        commit=text["commit"],
        run_id=text.get("run_id"),
        created_at=text.get("created_at", ""),
        promotion_id=promotion_id,
        promotion_hash=text.get("promotion_hash"),
        previous_slot=text.get("previous_slot"),
        canon_version=text.get("canon_version"),
        server=text.get("server"),
    )


class MarkerJSON(TypedDict):
    """A :class:`SlotMarker` as JSON (a marker file, a swarm record's ``marker``)."""

    slot: str
    recipe: str
    role: str
    version: str
    commit: str
    run_id: str | None
    created_at: str
    promotion_id: int | None
    promotion_hash: str | None
    previous_slot: str | None
    canon_version: str | None
    server: str | None


class MarkerChanges(TypedDict, total=False):
    """What :meth:`SlotMarker.as_role` may change besides the role."""

    run_id: str | None
    promotion_id: int | None
    promotion_hash: str | None
    previous_slot: str | None
    server: str | None


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

    def to_dict(self) -> MarkerJSON:
        return MarkerJSON(
            slot=self.slot,
            recipe=self.recipe,
            role=self.role,
            version=self.version,
            commit=self.commit,
            run_id=self.run_id,
            created_at=self.created_at,
            promotion_id=self.promotion_id,
            promotion_hash=self.promotion_hash,
            previous_slot=self.previous_slot,
            canon_version=self.canon_version,
            server=self.server,
        )

    @classmethod
    def from_dict(cls, d: object) -> SlotMarker:
        """The marker in ``d`` (parsed JSON someone else may have written): tolerant of keys a
        newer canon added, :class:`MarkerProblem` (a ValueError) for anything that does not fit
        the schema: not an object, a field missing or of the wrong type, an unknown role."""
        return _check(d)

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

    def as_role(self, role: str, **changes: Unpack[MarkerChanges]) -> SlotMarker:
        return replace(self, role=role, **changes)

    @property
    def is_canonical(self) -> bool:
        return self.role == CANONICAL


def read_marker(path: str | os.PathLike[str], slot: str) -> SlotMarker | None:
    """The marker file at ``path`` (None when there is none), read as untrusted input: a
    regular file (no symlink, FIFO or device) of at most :data:`MARKER_CAP` bytes, JSON nested
    at most 64 deep, the schema of :meth:`SlotMarker.from_dict`, naming ``slot``.

    Raises :class:`MarkerProblem` with one line naming the slot and the file."""
    try:
        if os.path.islink(path):
            raise FileProblem(f"is a symlink (to {os.readlink(path)}); refused")
        return from_json(read_json_file(path, MARKER_CAP), slot, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except FileProblem as e:
        raise MarkerProblem(f"slot {slot}: marker {path} {e}; not read") from None


def from_json(doc: object, slot: str, where: object) -> SlotMarker:
    """``doc`` (parsed JSON) as the marker on ``slot``; MarkerProblem naming slot and ``where``.

    A marker naming another slot is read (it is a claim): proving it is the registry
    guard's job, which never adopts it."""
    try:
        return SlotMarker.from_dict(doc)
    except MarkerProblem as e:
        raise MarkerProblem(f"slot {slot}: marker {where} {e}; not read") from None


def utcnow() -> str:
    """Now, as canon writes every time stamp (markers, registry rows): UTC, microseconds, Z."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_slot_name(prefix: str, recipe: str, taken: Container[str] = ()) -> str:
    """``<prefix>-<recipe>-<8 random hex>``, never one of ``taken``: unique to the run making it."""
    while True:
        name = f"{prefix}-{recipe}-{secrets.token_hex(4)}"
        if name not in taken:
            return name
