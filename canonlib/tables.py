"""Plain-text tables: the one renderer every ``canon`` table goes through.

:func:`format_table` lays rows out (whole cells; cut to a width only when
printing to a terminal, by :func:`canonlib.term.table`); :func:`sweep_table` is
the sweep's table as ``canon sweep`` and the demo print it; :func:`human_bytes` is the
one way a byte count is shown.  A leaf module: it imports only :mod:`canonlib.term`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from canonlib import term

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


def human_bytes(n: float) -> str:
    """``512 B``, ``8.0 KiB``, ``1.0 MiB``, … (GiB at most)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


CELL_CHARS = 90  # a longer cell is cut (the sweep table folds a long label into its reason)


def cut_cell(v: Any) -> str:
    """A terminal table cell: ``-`` for missing, short rung maps, lists joined, long text cut at 90.

    The evidence pages' :func:`canonlib.evidence.report.cell` never cuts.
    """
    if v is None:
        return "-"
    if isinstance(v, dict):
        return " ".join(f"{k[:4]}:{s[:4]}" for k, s in v.items())
    if isinstance(v, list):
        v = "; ".join(map(str, v)) or "-"
    text = str(v)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 3] + "..."


# a result row as JSON (canonlib.state.row.RowJSON; a leaf reads it as a mapping)
Row = Mapping[str, object]


def why(row: Row) -> str:
    """A result row's reason, then its warnings (mirror, harness, promote)."""
    reason, warnings = row.get("reason"), row.get("warnings")
    parts = [reason] if isinstance(reason, str) and reason not in str(row.get("label")) else []
    parts += [f"warning: {w}" for w in warnings] if isinstance(warnings, list) else []
    return "; ".join(parts)


def fold_label(row: Row) -> Row:
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


def sweep_table(rows: Sequence[Row], width: int | None = None) -> str:
    """The sweep table as ``canon sweep`` prints it (a ``reason`` column: reason, then warnings),
    cut to ``width``, else to the terminal's; whole when printing to a file or a pipe."""
    rows = [{**r, "reason": why(r) or None} for r in map(fold_label, rows)]
    columns = [*SWEEP_COLUMNS, *(["reason"] if any(r["reason"] for r in rows) else [])]
    return format_table(rows, columns, max_width=width or term.width())


def format_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    *,
    max_width: int | None,
    paint: bool = False,
) -> str:
    """``rows`` as a table of whole cells, cut to ``max_width`` when there is one."""
    body = [[whole_cell(r.get(c)) for c in columns] for r in rows]
    return term.table(body, list(columns), max_width=max_width, paint=paint)


def whole_cell(v: Any) -> str:
    """A cell with its whole text (a terminal cuts it to fit; a pipe or a file keeps it all)."""
    if isinstance(v, str) and v:
        return v
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "; ".join(v) or "-"
    return cut_cell(v)
