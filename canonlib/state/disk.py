"""Disk budget: bytes used by mirrors, canonical slots (with snapshots), evidence and state."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from canonlib.config import Config
from canonlib.files import tree_size
from canonlib.state.registry import Registry


@dataclass(frozen=True)
class DiskRow:
    recipe: str
    mirror_bytes: int
    slot_bytes: int
    snapshot_bytes: int

    @property
    def total(self) -> int:
        return self.mirror_bytes + self.slot_bytes


class DiskReport(TypedDict):
    """:func:`disk_report`: the rows, the shared parts (name -> bytes), their total, the budget."""

    rows: list[DiskRow]
    shared: dict[str, int]
    total: int
    budget: int
    within_budget: bool


def _size(p: Path) -> int:
    return tree_size(p) if p.exists() else 0


def disk_report(config: Config) -> DiskReport:
    """Per recipe: mirror, canonical slot (with snapshots), snapshots alone; and shared totals."""
    recipes = sorted({p.name.removesuffix(".git") for p in config.mirrors_dir.glob("*.git")})
    with Registry.open(config.db_path) as reg:
        deployments = {c.recipe: c.deployment for c in reg.canonicals()}
    rows = []
    for r in recipes:
        slot = config.slots_dir / d if (d := deployments.get(r)) else None
        rows.append(
            DiskRow(
                r,
                _size(config.mirror_path(r)),
                _size(slot) if slot else 0,
                _size(slot / "snapshots") if slot else 0,
            )
        )
    listed = set(deployments.values())
    other_slots = sum(_size(p) for p in config.slots_dir.glob("*") if p.name not in listed)
    shared = {
        "evidence": _size(config.evidence_dir),
        "state (registry, runs, logs)": sum(
            _size(p) for p in config.state_dir.glob("*") if p.name not in ("mirrors", "slots")
        ),
        "other slots (cold leftovers)": other_slots,
    }
    total = sum(r.total for r in rows) + sum(shared.values())
    return {
        "rows": rows,
        "shared": shared,
        "total": total,
        "budget": config.disk_budget_bytes,
        "within_budget": total <= config.disk_budget_bytes,
    }
