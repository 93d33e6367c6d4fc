"""Promote: a faithful install of the tested release into a new canonical slot.

Same backend calls as the cold run: clean tree check -> a new slot with a name
unique to this run, marked ``next`` -> provision -> deploy -> install steps ->
ready probes -> snapshot -> undeploy (data kept) -> re-read the tag from the
mirror -> record (the swap: the registry now names the new slot) -> mark the
new slot ``canonical`` and write the state file -> retire the old slot, but
only when its own marker says it is this recipe's previous canonical.  Any
failure before the record tears down the slot this promote made (never
another) and leaves the old canonical deployed and recorded; the failure is
returned, never raised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from canonlib import __version__
from canonlib.backends import Backend
from canonlib.errors import CanonError, os_error_message
from canonlib.faults import point
from canonlib.recipe.meta import RecipeMeta
from canonlib.recipe.mirror import Checkout, Mirror
from canonlib.state.marker import CANONICAL, NEXT, RETIRED, SlotMarker, new_slot_name, utcnow
from canonlib.state.registry import Registry
from canonlib.state.registry_guard import write_state
from canonlib.state.row import full_disk_errno


@dataclass
class PromoteResult:
    ok: bool
    step: str
    deployment: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    errno: int | None = None  # the OSError's errno, when one made it fail

    @property
    def full_disk(self) -> bool:
        """It failed writing on a full disk (its errno says so)."""
        return full_disk_errno(self.errno)


class PromoteRefused(CanonError):
    pass


# promotes on several servers run at once: each rewrites canonicals.json from the registry,
# read and replaced under this lock, so the last file written is read after the last record
# (two unlocked writers could put an older reading last)
_STATE_WRITES = threading.Lock()


def next_slot(recipe: str, backend: Backend) -> str:
    """A slot name no other run can produce (and not one the backend already has)."""
    return new_slot_name("warm", recipe, set(backend.slots()) | set(backend.markers()))


def promote(
    checkout: Checkout,
    meta: RecipeMeta,
    *,
    mirror: Mirror,
    backend: Backend,
    registry: Registry,
    run_id: str | None = None,
    now: str | None = None,
) -> PromoteResult:
    """Install ``checkout`` as ``meta.recipe``'s canonical; a failure is returned, not raised."""
    recipe = meta.recipe
    step = "clean tree"
    problem = checkout.state_problem()
    if problem:
        return PromoteResult(False, step, error=f"{step}: {problem}")
    previous = registry.read_registry(recipe)
    slot = next_slot(recipe, backend)
    marker = SlotMarker(
        slot=slot,
        recipe=recipe,
        role=NEXT,
        version=checkout.tag,
        commit=checkout.commit,
        run_id=run_id,
        created_at=utcnow(),
        previous_slot=previous.deployment if previous else None,
        canon_version=__version__,
        server=backend.server,  # several servers: the one it goes to
    )
    try:
        step = "mark"
        backend.mark(slot, marker)  # first: the slot exists only with its marker
        point("promote:marked-next")
        step = "provision"
        backend.provision(slot, checkout.path, meta)
        step = "deploy"
        backend.deploy(slot, checkout.path, meta, version=checkout.tag, commit=checkout.commit)
        point("promote:deployed")
        step = "install"
        backend.run_install_steps(slot, meta)
        step = "ready"
        backend.wait_ready(slot, meta)
        step = "snapshot"
        backend.snapshot(slot)
        step = "undeploy"
        backend.undeploy(slot)
        point("promote:undeployed")
        step = "tag check"
        now_commit = mirror.tag_commit(checkout.tag)
        if now_commit != checkout.commit:
            where = f"now {now_commit[:12]}" if now_commit else "deleted"
            raise PromoteRefused(
                f"tag {checkout.tag} moved during the run (tested {checkout.commit[:12]}, {where})"
            )
        step = "record"
        promo = registry.record_promotion(
            recipe,
            checkout.tag,
            checkout.tag,
            checkout.commit,
            deployment=slot,
            run_id=run_id,
            now=now,
            server=marker.server,
        )
        point("promote:recorded")
    except BaseException as e:  # every failure is recorded and the sweep goes on; signals go on up
        result = PromoteResult(
            False, step, slot, error=f"{step}: {failure_words(e)}", errno=errno_of(e)
        )
        try:
            backend.teardown(slot)  # the slot this promote made and marked `next`, nothing else
        except Exception as te:  # noqa: BLE001
            result.warnings.append(f"teardown of {slot} after failed promote: {te}")
        if not isinstance(e, Exception):
            raise
        return result
    result = PromoteResult(True, "done", slot)
    try:  # the promotion stands from here on; a failure below is a warning the next start repairs
        backend.mark(
            slot, marker.as_role(CANONICAL, promotion_id=promo.id, promotion_hash=promo.hash)
        )
        point("promote:marked-canonical")
        with _STATE_WRITES:
            write_state(registry)
        point("promote:state-written")
    except Exception as e:  # noqa: BLE001
        result.warnings.append(f"marking {slot} canonical failed ({e}); the next sweep repairs it")
        return result
    if previous and previous.deployment and previous.deployment != slot:
        result.warnings += retire(backend, previous.deployment, recipe, previous.commit)
    return result


def failure_words(e: BaseException) -> str:
    """What failed; a full disk (or a read-only one) as its one line: the path written to and
    what to do (a copy's error names the file it could not write, not the one it read)."""
    if isinstance(e, OSError):
        written = OSError(e.errno, e.strerror, e.filename2) if e.filename2 else e
        return os_error_message(written, None) or str(e)
    return str(e)


def errno_of(e: BaseException) -> int | None:
    """The errno of the OSError that ``e`` is, or was raised from (a backend's or a state error
    that wraps one); None when there is none."""
    seen: BaseException | None = e
    for _ in range(8):  # a short chain: cause or context
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def retire(backend: Backend, slot: str, recipe: str, commit: str) -> list[str]:
    """Tear down ``slot`` only when its marker says it is ``recipe``'s canonical at ``commit``."""
    try:
        old = backend.markers().get(slot)
        if (
            old is None
            or old.recipe != recipe
            or old.role not in (CANONICAL, RETIRED)
            or old.commit != commit
        ):
            what = f"{old.role} {old.recipe} {old.version}" if old else "no marker"
            return [
                f"left {slot} in place: its marker ({what}) does not say it is "
                f"{recipe}'s previous canonical"
            ]
        backend.mark(slot, old.as_role(RETIRED))
        point("promote:old-marked-retired")
        backend.teardown(slot)
    except Exception as e:  # noqa: BLE001 -- the promotion stands; the old slot is just left over
        return [f"retiring {slot} failed: {e}"]
    return []
