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


def table(rows: list[dict], columns: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(
        [[cell(r.get(c)) for c in columns] for r in rows], headers=columns, tablefmt="simple"
    )


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
    """The sweep table plus a ``reason`` column (reason, then warnings) cut to ``width``, else
    to the terminal's (``$COLUMNS`` wins there); not cut when printing to a file or a pipe."""
    from .term import width as terminal_width

    rows = [fold_label(r) for r in rows]
    base = table(rows, SWEEP_COLUMNS).splitlines()
    reasons = [why(r) for r in rows]
    if not any(reasons):
        return "\n".join(base)
    if width is None:
        width = terminal_width()  # None off a terminal: a pipe or a log gets every word
    left = max(map(len, base))
    room = max(20, width - left - 2) if width else max(map(len, reasons))
    reasons = [r if len(r) <= room else r[: room - 1] + "…" for r in reasons]
    rule = "-" * max(6, *map(len, reasons))
    return "\n".join(f"{line.ljust(left)}  {extra}".rstrip()
                     for line, extra in zip(base, ["reason", rule, *reasons], strict=True))  # fmt: skip
