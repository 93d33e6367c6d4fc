"""What canon prints to a terminal: tables that fit its width, colour for outcomes, "did you mean".

A leaf module (imports nothing of canon's).  Colour only on a TTY and never when
``NO_COLOR`` is set (https://no-color.org); tables are cut to the terminal's
width only on a TTY, so piped output and logs keep the full text (and
``--json`` always does).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

ELLIPSIS = "…"
MIN_COL = 6
GAP = 2  # tabulate's "simple" format puts two spaces between columns

GREEN, YELLOW, RED, DIM, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[2m", "\033[0m"
# outcome words, most specific first (GREEN-BUT-PROMOTE-FAILED is a failure, not a green)
OUTCOMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"GREEN-BUT-PROMOTE-FAILED|\bFAIL(?:ED)?\b|\bERROR\b|^INCIDENT\b"), RED),
    (re.compile(r"GREEN-NOT-PROMOTED|\bWARN(?:ING)?\b|\bunsigned\b"), YELLOW),
    (re.compile(r"\bPASS(?:ED)?\b|^ok\b"), GREEN),
    (re.compile(r"\bSKIP\b|\bPLAN\b"), DIM),
]


def use_colour(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def width(stream: TextIO | None = None) -> int | None:
    """The width to fit tables to on a TTY (``$COLUMNS`` wins there); else None: print whole."""
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return shutil.get_terminal_size().columns if tty else None


def colour(line: str) -> str:
    """``line`` with its first outcome word coloured."""
    for pattern, code in OUTCOMES:
        m = pattern.search(line)
        if m:
            return f"{line[: m.start()]}{code}{m.group(0)}{RESET}{line[m.end() :]}"
    return line


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def fit_widths(natural: Sequence[int], total: int, gap: int = GAP) -> list[int]:
    """Column widths that fit ``total``: narrow columns keep their width, the wide ones share
    what is left equally (never below MIN_COL, so a very narrow terminal wraps instead)."""
    room = total - gap * (len(natural) - 1)
    if sum(natural) <= room:
        return list(natural)
    widths = list(natural)
    left = len(natural)
    for i in sorted(range(len(natural)), key=lambda j: natural[j]):
        share = max(MIN_COL, room // left)
        widths[i] = min(natural[i], share)
        room -= widths[i]
        left -= 1
    return widths


def table(
    rows: Sequence[Sequence[Any]],
    headers: Sequence[str],
    *,
    max_width: int | None = None,
    paint: bool = False,
) -> str:
    """A plain-text table (tabulate's ``simple``), cut to ``max_width`` with an ellipsis."""
    from tabulate import tabulate

    cells = [[str(c) for c in r] for r in rows]
    heads = [str(h) for h in headers]
    if max_width and cells:
        # tabulate makes a column at least its header + 2 wide (its MIN_PADDING)
        natural = [max([len(h) + 2, *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
        if sum(natural) + GAP * (len(heads) - 1) > max_width:  # too wide: drop all-empty columns
            keep = [i for i in range(len(heads)) if any(r[i] not in ("", "-") for r in cells)]
            heads = [heads[i] for i in keep]
            cells = [[r[i] for i in keep] for r in cells]
        natural = [max([len(h) + 2, *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
        widths = fit_widths(natural, max_width)
        cells = [[cut(c, w) for c, w in zip(r, widths, strict=True)] for r in cells]
        heads = [cut(h, w - 2) for h, w in zip(heads, widths, strict=True)]
    text = tabulate(cells, headers=heads, tablefmt="simple")
    if paint:
        lines = text.splitlines()
        text = "\n".join(lines[:2] + [colour(ln) for ln in lines[2:]])
    return text


def lines(items: Iterable[str], *, paint: bool = False) -> str:
    return "\n".join(colour(x) if paint else x for x in items)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
