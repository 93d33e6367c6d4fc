"""What canon prints to a terminal: tables that fit its width, colour for outcomes, "did you mean".

A leaf module (imports nothing of canon's).  Colour only on a TTY whose ``TERM`` is
not ``dumb``, and never when ``NO_COLOR`` is set (https://no-color.org); tables are
cut to the terminal's width only on a TTY, so piped output and logs keep the full
text (and ``--json`` always does).

Text canon did not write (a recipe's reason, a tag, a branch or file name, a log
tail) is data: :func:`visible` shows its control characters and bidi overrides as
``^[`` or ``<U+202E>``, as git does, so it can neither drive the terminal nor
reorder what the operator reads.  The table renderer and the line printers call it.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

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


# bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), the invisible marks
# (U+200E, U+200F, U+061C) and the line and paragraph separators a terminal may break a line at
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C, 0x2028, 0x2029]


def _shown(c: int) -> str:
    if c < 0x20 or c == 0x7F:
        return f"^{chr(c ^ 0x40)}"  # caret notation: ESC is ^[, DEL is ^?, NUL is ^@
    if 0xDC80 <= c <= 0xDCFF:  # a byte that was not UTF-8, as Python's surrogateescape keeps it
        return f"\\x{c - 0xDC00:02x}"
    return f"<U+{c:04X}>"


_VISIBLE = {
    c: _shown(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0), *_BIDI, *range(0xD800, 0xE000)]
}


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control character (C0, DEL, C1), bidi override and lone surrogate
    shown visibly: ``^[`` for ESC, ``^M`` for CR, ``<U+202E>`` for RIGHT-TO-LEFT OVERRIDE,
    ``\\xff`` for a byte that was not UTF-8.  Characters in ``keep`` (``"\\n"`` where a
    line break is meant) stay as they are."""
    return text.translate(_table(keep))


@functools.cache
def _table(keep: str) -> dict[int, str]:
    return {c: s for c, s in _VISIBLE.items() if chr(c) not in keep}


def smart_tty(stream: TextIO | None = None) -> bool:
    """A terminal that takes escape codes (colour, a progress bar): a TTY whose ``TERM`` is
    not ``dumb`` (Emacs' shell, a serial console, a CI log that claims a TTY)."""
    stream = stream or sys.stdout
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_colour(stream: TextIO | None = None) -> bool:
    """Colour only on a :func:`smart_tty`, and never with ``NO_COLOR``."""
    return not os.environ.get("NO_COLOR") and smart_tty(stream)


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
    rows: Sequence[Sequence[object]],
    headers: Sequence[str],
    *,
    max_width: int | None = None,
    paint: bool = False,
) -> str:
    """A plain-text table (tabulate's ``simple``), cut to ``max_width`` with an ellipsis.

    Every cell is shown :func:`visible` (a cell is one line: a newline in it is ``^J``)."""
    from tabulate import tabulate

    cells = [[visible(str(c)) for c in r] for r in rows]
    heads = [visible(str(h)) for h in headers]
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
    # cells are text: numparse would show the version "1.10" as "1.1"
    text = tabulate(cells, headers=heads, tablefmt="simple", disable_numparse=True)
    if paint:
        lines = text.splitlines()
        text = "\n".join(lines[:2] + [colour(ln) for ln in lines[2:]])
    return text


def lines(items: Iterable[str], *, paint: bool = False) -> str:
    """One line per item, each :func:`visible` (a newline inside an item is ``^J``, so
    upstream text cannot fake a line of its own), outcome words coloured with ``paint``."""
    shown = (visible(x, keep="\t") for x in items)
    return "\n".join(colour(x) if paint else x for x in shown)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
