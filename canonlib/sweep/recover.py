"""Recover what a dead run left: finish a recorded promote, reap its slots, retire the replaced.

It lives in the sweep, not in :mod:`canonlib.state.registry_guard`: it tears
slots down (by the markers the dead runs wrote, never by what the registry
says), and the guard itself never deletes a slot.
"""

from __future__ import annotations

from collections.abc import Container

from canonlib.backends import Backend
from canonlib.errors import CanonError
from canonlib.state.marker import CANONICAL, COLD, NEXT, RETIRED, SlotMarker
from canonlib.state.registry import Canonical, Registry
from canonlib.state.registry_guard import state_path, write_state
from canonlib.sweep.promote import retire


def recover(reg: Registry, backend: Backend, run_id: str) -> list[str]:
    """Call under the sweep lock, after :func:`~canonlib.state.registry_guard.require_current`.

    Returns what it did, one line each:

    - a canonical slot made by an older canon (no marker) gets its canonical marker;
    - a ``next`` slot of a dead run that the registry already names (the promote
      recorded, then died) is marked canonical, and the slot it replaced retired;
    - other ``next``, ``cold`` and ``retired`` slots of dead runs are torn down;
    - a canonical whose successor's marker names it as ``previous_slot`` is retired.
    Slots without a marker that the registry does not name are never touched.
    """
    notes: list[str] = []
    canon = {c.recipe: c for c in reg.canonicals()}
    last = {p.recipe: p for p in reg.history()}
    markers = backend.markers()
    c: Canonical | None
    for c in canon.values():  # adopt the canonical slots of an older canon
        p = last.get(c.recipe)
        dep = backend.deployed(c.deployment) if c.deployment else None
        if (
            c.deployment
            and c.deployment not in markers
            and p
            and dep
            and dep.get("commit") == c.commit
        ):
            m = SlotMarker(
                slot=c.deployment,
                recipe=c.recipe,
                role=CANONICAL,
                version=c.version,
                commit=c.commit,
                run_id=c.run_id,
                created_at=c.promoted_at,
                promotion_id=p.id,
                promotion_hash=p.hash,
            )
            backend.mark(c.deployment, m)
            markers[c.deployment] = m
            notes.append(
                f"{c.recipe}: marked slot {c.deployment} canonical (made by an older canon)"
            )
    for slot, m in sorted(markers.items()):
        if m.run_id == run_id:
            continue
        c = canon.get(m.recipe)
        if m.role == NEXT and c and c.deployment == slot and c.commit == m.commit:
            p = last[m.recipe]
            backend.mark(slot, m.as_role(CANONICAL, promotion_id=p.id, promotion_hash=p.hash))
            markers[slot] = m.as_role(CANONICAL, promotion_id=p.id, promotion_hash=p.hash)
            notes.append(
                f"{m.recipe}: finished the promote of {m.version} run {m.run_id} recorded "
                f"before it died: slot {slot} marked canonical"
            )
        elif m.role in (NEXT, COLD, RETIRED):
            try:
                backend.teardown(slot)
                notes.append(
                    f"reaped slot {slot} ({m.role} {m.recipe} {m.version}, left by run "
                    f"{m.run_id or '?'}, which is not running)"
                )
            except CanonError as e:
                notes.append(f"could not reap slot {slot}: {e}")
    for slot, m in sorted(markers.items()):
        c = canon.get(m.recipe)
        if m.role != CANONICAL or not c or c.deployment == slot:
            continue
        successor = markers.get(c.deployment or "")
        p = last.get(m.recipe)
        proven = (  # the successor is what the registry's own last promotion made
            successor is not None
            and p is not None
            and (successor.promotion_id, successor.promotion_hash) == (p.id, p.hash)
            and (p.deployment, p.commit) == (c.deployment, successor.commit)
        )
        if (
            proven
            and successor is not None
            and successor.is_canonical
            and successor.previous_slot == slot
        ):
            for w in retire(backend, slot, m.recipe, m.commit) or [f"retired slot {slot}"]:
                notes.append(f"{m.recipe}: {w} (replaced by {c.deployment})")
    if notes or not state_path(reg.path.parent).exists():
        write_state(reg)
    return notes


def slot_gone(canonical: Canonical | None, slots: Container[str]) -> str | None:
    """The incident of a canonical whose slot is gone (``slots``: the backend's), else None.

    It starts with "canonical " (a canonical incident: the sweep exits 1 until a new release
    is promoted or the recipe is held); nothing is torn down for it."""
    if canonical is None or not canonical.deployment or canonical.deployment in slots:
        return None
    return (
        f"canonical {canonical.version} ({canonical.commit[:12]}): its slot "
        f"{canonical.deployment} is gone, though the registry still names it; the next "
        "promotion of this recipe replaces it"
    )


def slot_gone_on(backend: Backend, canonical: Canonical | None) -> str | None:
    """:func:`slot_gone` against ``backend``'s slots; None when it cannot list them (its own
    step says so) or there is no canonical."""
    if canonical is None or not canonical.deployment:
        return None
    try:
        return slot_gone(canonical, backend.slots())
    except CanonError:
        return None
