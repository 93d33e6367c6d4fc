"""Claims and plain-text tables: what ``verify``, ``doctor`` and ``systemd verify`` print.

A leaf module: it imports nothing of canon's, so every side (cli, demo,
evidence, doctor, systemd) can use it without an import circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

SWEEP_COLUMNS = ["recipe", "decision", "latest", "canonical_before", "canonical_after",
                 "upgrade_base_kind", "level", "label"]  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One checked statement: its name, whether it holds, and the detail a reviewer needs."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_lines(claims: Iterable[Claim]) -> list[str]:
    """One line per claim, then a count: ``ok    name: detail`` / ``FAIL  name: detail``."""
    claims = list(claims)
    lines = [f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}" for c in claims]
    failed = sum(not c.ok for c in claims)
    lines.append(f"{len(claims) - failed} passed, {failed} failed")
    return lines


def cell(v: Any) -> str:
    """A table cell: ``-`` for missing, short rung maps, lists joined, long text cut at 90."""
    if v is None:
        return "-"
    if isinstance(v, dict):
        return " ".join(f"{k[:4]}:{s[:4]}" for k, s in v.items())
    if isinstance(v, list):
        v = "; ".join(map(str, v)) or "-"
    text = str(v)
    return text if len(text) <= 90 else text[:87] + "..."


def table(rows: list[dict], columns: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(
        [[cell(r.get(c)) for c in columns] for r in rows], headers=columns, tablefmt="simple"
    )
