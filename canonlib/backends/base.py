"""What every backend is: the :class:`Backend` protocol, :class:`BackendError`, the teardown guard.

The backends (``local``, ``swarm``, ``abra``) and their shared pieces import
from here; :mod:`canonlib.backends` picks one (:func:`~canonlib.backends.make_backend`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypedDict

from canonlib.errors import CanonError
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import SlotMarker


class BackendError(CanonError):
    """A backend step failed; ``step`` names it (provision, deploy, install, ready, …)."""

    def __init__(self, step: str, msg: str):
        super().__init__(f"{step}: {msg}")
        self.step = step


def refuse_canonical(slot: str, marker: SlotMarker | None) -> None:
    """Every backend's teardown guard: a slot whose marker says canonical is never torn down."""
    if marker is not None and marker.is_canonical:
        raise BackendError(
            "teardown",
            f"slot {slot} carries a canonical marker ({marker.recipe} "
            f"{marker.version}); canon never tears a canonical down",
        )


class SlotRecord(TypedDict, total=False):
    """What a slot's record says (local's ``deployed.json``, abra's ``canon-slots/<slot>.json``,
    a swarm record's ``deployed``): every key optional, as each backend writes some of them.
    Read back as untrusted (:func:`~canonlib.backends.common.slot_record`)."""

    recipe: str
    version: str
    commit: str
    state: str  # provisioned, deployed, undeployed
    deployed_at: float
    server: str  # abra: the server the app is on
    domain: str  # abra: the app's domain
    snapshot: str  # abra: the last backup's stamp
    services: list[str]  # swarm: the service names of the last deploy
    deadline_s: float  # swarm: the last deploy's DEPLOY_TIMEOUT_S


class Backend(Protocol):
    name: str
    server: str | None  # several servers: the one this backend talks to (see on_server)

    def provision(self, slot: str, checkout: Path, meta: RecipeMeta) -> None:
        """Dependencies and secrets for ``slot`` (secret values are never printed)."""

    def deploy(
        self, slot: str, checkout: Path, meta: RecipeMeta, *, version: str, commit: str
    ) -> None:
        """Deploy the recipe tree at ``checkout`` into ``slot``, keeping the slot's data."""

    def run_install_steps(self, slot: str, meta: RecipeMeta) -> None: ...

    def wait_ready(self, slot: str, meta: RecipeMeta) -> None:
        """Run the meta's ready probes with retries until ``DEPLOY_TIMEOUT_S``."""

    def snapshot(self, slot: str) -> str: ...

    def restore(self, slot: str, snapshot: str) -> None: ...

    def wipe_data(self, slot: str) -> None: ...

    def undeploy(self, slot: str) -> None:
        """Stop the app, keep its data (the canonical slot between sweeps)."""

    def teardown(self, slot: str) -> None:
        """Remove app, data, snapshots and secrets; a missing slot is fine.

        Refuses (BackendError) a slot whose marker says ``canonical``."""

    def mark(self, slot: str, marker: SlotMarker) -> None:
        """Write ``marker`` on ``slot`` (creating what the slot needs to carry it)."""

    def markers(self) -> dict[str, SlotMarker]:
        """Every slot that carries a marker, by slot name."""

    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]:
        """(slot -> readable marker, slot -> the one line saying why its marker is unreadable):
        :meth:`markers` is the first."""

    def deployed(self, slot: str) -> SlotRecord | None:
        """What is in ``slot``: recipe, version, commit; None when empty."""

    def slot_env(self, slot: str) -> dict[str, str]:
        """Environment that tells functional tests where the slot is."""

    def disk_usage(self, slot: str | None = None) -> int: ...

    def slots(self) -> list[str]: ...

    # several servers (the swarm pool); a backend on one server, or one that trusts its
    # servers to answer (abra), says nothing: None, {}, no check

    @property
    def unreachable(self) -> dict[str, str]:
        """The servers that did not answer when last asked: server -> why."""

    def answers(self, server: str, max_age_s: float = 5.0) -> str | None:
        """None when ``server`` answers; else why not (asked at most every ``max_age_s``)."""

    def server_of(self, slot: str) -> str | None:
        """The server ``slot`` lives on, when the backend knows it."""

    def check_distinct(self) -> None:
        """Refuse (ConfigError) two servers that are the same engine."""


class SilentServers:
    """The several-servers part of :class:`Backend` for a backend that says nothing there (one
    server, or abra, which trusts its servers): every server answers, no slot's server is
    known, no two servers are the same engine."""

    server: str | None = None

    @property
    def unreachable(self) -> dict[str, str]:
        return {}

    def answers(self, server: str, max_age_s: float = 5.0) -> str | None:
        return None

    def server_of(self, slot: str) -> str | None:
        return None

    def check_distinct(self) -> None:
        return None
