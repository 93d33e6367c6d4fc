"""Promote: a faithful install of the tested release into a new canonical slot.

Same backend calls as the cold run: clean tree check -> provision -> deploy
into the *next* slot -> install steps -> ready probes -> snapshot -> undeploy
(data kept) -> re-read the tag from the mirror -> record (the swap: the
registry now names the new slot) -> retire the old slot.  Any failure before
the record tears the next slot down and leaves the old canonical deployed and
recorded; the failure is returned, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends import Backend
from .errors import CanonError
from .meta import RecipeMeta
from .mirror import Checkout, Mirror
from .registry import Registry


@dataclass
class PromoteResult:
    ok: bool
    step: str
    deployment: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class PromoteRefused(CanonError):
    pass


def next_slot(recipe: str, registry: Registry) -> str:
    n = len(registry.history(recipe)) + 1
    current = registry.read_registry(recipe)
    slot = f"warm-{recipe}-{n}"
    while current and current.deployment == slot:  # never deploy over the live canonical
        n += 1
        slot = f"warm-{recipe}-{n}"
    return slot


def promote(
    checkout: Checkout, meta: RecipeMeta, *, mirror: Mirror, backend: Backend, registry: Registry,
    run_id: str | None = None, now: str | None = None,
) -> PromoteResult:  # fmt: skip
    """Install ``checkout`` as ``meta.recipe``'s canonical; a failure is returned, not raised."""
    recipe = meta.recipe
    step = "clean tree"
    problem = checkout.state_problem()
    if problem:
        return PromoteResult(False, step, error=f"{step}: {problem}")
    previous = registry.read_registry(recipe)
    slot = next_slot(recipe, registry)
    try:
        step = "teardown leftovers"
        backend.teardown(slot)  # a killed earlier promote may have left this slot half-made
        step = "provision"
        backend.provision(slot, checkout.path, meta)
        step = "deploy"
        backend.deploy(slot, checkout.path, meta, version=checkout.tag, commit=checkout.commit)
        step = "install"
        backend.run_install_steps(slot, meta)
        step = "ready"
        backend.wait_ready(slot, meta)
        step = "snapshot"
        backend.snapshot(slot)
        step = "undeploy"
        backend.undeploy(slot)
        step = "tag check"
        now_commit = mirror.tag_commit(checkout.tag)
        if now_commit != checkout.commit:
            where = f"now {now_commit[:12]}" if now_commit else "deleted"
            raise PromoteRefused(
                f"tag {checkout.tag} moved during the run (tested {checkout.commit[:12]}, {where})"
            )
        step = "record"
        registry.record_promotion(recipe, checkout.tag, checkout.tag, checkout.commit,
                                  deployment=slot, run_id=run_id, now=now)  # fmt: skip
    except BaseException as e:  # every failure is recorded and the sweep goes on; signals go on up
        result = PromoteResult(False, step, slot, error=f"{step}: {e}")
        try:
            backend.teardown(slot)
        except Exception as te:  # noqa: BLE001
            result.warnings.append(f"teardown of {slot} after failed promote: {te}")
        if not isinstance(e, Exception):
            raise
        return result
    result = PromoteResult(True, "done", slot)
    if previous and previous.deployment and previous.deployment != slot:
        try:
            backend.teardown(previous.deployment)
        except Exception as e:  # noqa: BLE001 -- the promotion stands; the old slot is just left over
            result.warnings.append(f"retiring {previous.deployment} failed: {e}")
    return result
