"""What `canon status` and `canon pins` show: canonicals, their age, holds and pins."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from canonlib.backends import Backend, make_backend
from canonlib.config import Config
from canonlib.errors import CanonError
from canonlib.recipe.fleet import discover
from canonlib.recipe.mirror import mirror_for
from canonlib.state.registry import Canonical, Registry
from canonlib.state.registry_guard import MarkerScan, marker_scan
from canonlib.sweep.orchestrate import canonical_incident
from canonlib.sweep.recover import slot_gone


def age_days(promoted_at: str, now: datetime) -> float:
    then = datetime.strptime(promoted_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round((now - then).total_seconds() / 86400, 1)


class StatusRow(TypedDict):
    """A row of ``canon status``: a recipe of the fleet or the registry, its canonical."""

    recipe: str
    enrolled: bool
    canonical: str | None
    commit: str | None
    deployment: str | None
    server: str | None
    promoted_at: str | None
    age_days: float | None
    hold: str | None
    pin: str | None
    last_label: str | None
    incident: str | None
    source: str | None
    error: str | None


class PinRow(TypedDict):
    """A row of ``canon pins``: a pin the dynamic upgrade base makes redundant."""

    recipe: str
    pin: str
    meta: str


def status_rows(config: Config, now: datetime | None = None) -> list[StatusRow]:
    now = now or datetime.now(UTC)
    fleet = discover(config.fleet)
    metas = {r.name: r for r in fleet.recipes}
    canon, last = {}, {}
    if config.db_path.exists():  # a missing registry is reported, never recreated, by status
        with Registry.open(config.db_path, create=False) as reg:
            canon = {c.recipe: c for c in reg.canonicals()}
            for row in reg.results():
                last[row.recipe] = row.label
    try:  # one backend for every question below: each build asks the servers afresh
        backend: Backend | None = make_backend(config)
    except CanonError:
        backend = None
    found = _scan(config, backend)
    from_markers = _marked_canonicals(found, canon)
    canon.update(from_markers)
    slots = _slots(backend) if canon else None
    down = _down_servers(config, backend, found)
    rows: list[StatusRow] = []
    for name in sorted(metas.keys() | canon.keys()):
        fr, c = metas.get(name), canon.get(name)
        meta = fr.meta if fr else None
        rows.append(
            {
                "recipe": name,
                "enrolled": fr.enrolled if fr else False,
                "canonical": c.version if c else None,
                "commit": c.commit[:12] if c else None,
                "deployment": c.deployment if c else None,
                "server": c.server if c else None,
                "promoted_at": c.promoted_at if c else None,
                "age_days": age_days(c.promoted_at, now) if c and c.promoted_at else None,
                "hold": meta.HOLD if meta else None,
                "pin": meta.UPGRADE_BASE_VERSION if meta else None,
                "last_label": last.get(name),
                "incident": "; ".join(
                    i
                    for i in (
                        # a canonical on a server that does not answer is unreachable, not gone
                        slot_gone(c, slots)
                        if slots is not None and not (c and c.server in down)
                        else None,
                        _incident(config, c),
                        (
                            f"unreachable: server {c.server} does not answer"
                            if c and c.server in down
                            else None
                        ),
                    )
                    if i
                )
                or None,
                "source": (
                    "slot marker (the registry does not hold it)"
                    if name in from_markers
                    else "registry"
                    if c
                    else None
                ),
                "error": fr.error if fr else "not in the fleet any more",
            }
        )
    return rows


def _scan(config: Config, backend: Backend | None) -> MarkerScan | None:
    """The slots' canonical markers, sorted as the registry check sorts them (None: the
    backend or the state could not be read)."""
    if backend is None:
        return None
    try:
        return marker_scan(config.db_path, backend, config.state_dir)
    except CanonError:
        return None


def _marked_canonicals(
    found: MarkerScan | None, canon: dict[str, Canonical]
) -> dict[str, Canonical]:
    """Canonicals the slots' verified markers hold and the registry does not (a registry that
    is behind); an unreadable or unverified marker is never shown as a canonical."""
    out: dict[str, Canonical] = {}
    if found is None:
        return out
    for slot, m in sorted(found.verified.items()):
        if m.recipe in canon or m.recipe in found.conflicts:
            continue
        if slot in {v.previous_slot for v in found.verified.values()}:
            continue
        out[m.recipe] = Canonical(
            m.recipe, m.version, m.version, m.commit, slot, m.created_at, m.run_id, m.server
        )
    return out


def _slots(backend: Backend | None) -> set[str] | None:
    if backend is None:
        return None
    try:
        return set(backend.slots())
    except CanonError:
        return None


def _down_servers(
    config: Config, backend: Backend | None, found: MarkerScan | None
) -> dict[str, str]:
    """Several servers: those that do not answer now (server -> why).  The marker scan asked
    every server already; only when it could not run are they asked here."""
    if not config.backend.get("servers") or backend is None:
        return {}
    if found is None:
        try:
            backend.markers()  # asks every server; the silent ones are noted
        except CanonError:
            return {}
    return dict(backend.unreachable)


def _incident(config: Config, c: Canonical | None) -> str | None:
    """The canonical's tag deleted or moved in the mirror (as of the last sync), else None."""
    if c is None or not config.mirror_path(c.recipe).is_dir():
        return None
    try:
        now = mirror_for(config, c.recipe).tag_commit(c.tag)
    except CanonError as e:
        return f"cannot read {c.tag} in the mirror: {e}"
    return canonical_incident(c, {c.tag: now} if now else {})


def redundant_pins(config: Config) -> list[PinRow]:
    """Pins equal to the canonical: the dynamic upgrade base already gives that version."""
    fleet = discover(config.fleet)
    out: list[PinRow] = []
    with Registry.open(config.db_path) as reg:
        for fr in fleet.recipes:
            pin = fr.meta.UPGRADE_BASE_VERSION if fr.meta else None
            c = reg.read_registry(fr.name)
            if pin and c and fr.meta and pin == c.version:
                out.append({"recipe": fr.name, "pin": pin, "meta": str(fr.meta.path)})
    return out
