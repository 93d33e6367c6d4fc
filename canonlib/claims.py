"""Claims and plain-text tables: what ``verify``, ``doctor`` and ``systemd verify`` print.

A leaf module: it imports nothing of canon's, so every side (cli, demo,
evidence, doctor, systemd) can use it without an import circle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

SWEEP_COLUMNS = [
    "recipe",
    "decision",
    "latest",
    "canonical_before",
    "canonical_after",
    "upgrade_base_kind",
    "level",
    "label",
]


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


CELL_CHARS = 90  # a longer cell is cut (the sweep table folds a long label into its reason)


def cell(v: Any) -> str:
    """A table cell: ``-`` for missing, short rung maps, lists joined, long text cut at 90."""
    if v is None:
        return "-"
    if isinstance(v, dict):
        return " ".join(f"{k[:4]}:{s[:4]}" for k, s in v.items())
    if isinstance(v, list):
        v = "; ".join(map(str, v)) or "-"
    text = str(v)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 3] + "..."


def why(row: dict) -> str:
    """A result row's reason, then its warnings (mirror, harness, promote)."""
    reason = row.get("reason")
    parts = [reason] if reason and reason not in str(row.get("label")) else []
    return "; ".join(parts + [f"warning: {w}" for w in row.get("warnings") or []])


def fold_label(row: dict) -> dict:
    """A label too long for its cell (an ERROR's whole message) as ``ERROR (see reason)``, its
    words moved to the reason, where they are shown whole."""
    label = str(row.get("label") or "")
    if len(label) <= CELL_CHARS:
        return row
    head, _, inner = label.partition(" (")
    return {
        **row,
        "label": f"{head} (see reason)",
        "reason": row.get("reason") or inner.removesuffix(")"),
    }


def sweep_table(rows: list[dict], width: int | None = None) -> str:
    """The sweep table as ``canon sweep`` prints it (a ``reason`` column: reason, then warnings),
    cut to ``width``, else to the terminal's; whole when printing to a file or a pipe."""
    from canonlib.cli.style import format_table
    from canonlib.term import width as terminal_width

    rows = [{**r, "reason": why(r) or None} for r in map(fold_label, rows)]
    columns = [*SWEEP_COLUMNS, *(["reason"] if any(r["reason"] for r in rows) else [])]
    return format_table(rows, columns, max_width=width or terminal_width())
