"""Investigating one recipe without a sweep: which one, and why it fails.

Pure choices over result rows (:func:`failing_streaks`, :func:`pick`) and
:func:`investigation`, everything the investigate notebook records about a
recipe: its history, its rung statuses run by run, the reason of its last
failing row and that row's log tail.  Nothing here writes: no mirror is
fetched, no registry row is added (``canon investigate`` checks the run count).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from canonlib.evidence.records import RungRow
from canonlib.evidence.report import FAILING, label_head, outcome, reason
from canonlib.files import FileProblem, read_range
from canonlib.state.row import ResultRow
from canonlib.sweep.policy import SKIP_KNOWN_RED

TAIL_CHARS = 3000


def failing(row: ResultRow) -> bool:
    """A row that keeps a recipe failing: FAIL, ERROR, GREEN-BUT-PROMOTE-FAILED, or a skip
    because its latest tag is known red."""
    return outcome(row.label) in FAILING or row.decision == SKIP_KNOWN_RED


@dataclass(frozen=True)
class Streak:
    recipe: str
    since_run: str  # the first run of the failing streak that is still going on
    runs: int


def failing_streaks(rows: Sequence[ResultRow]) -> list[Streak]:
    """Each recipe whose latest row is failing, with the run its streak began.

    ``rows`` in run order (as the registry returns them).  Longest-failing first (earliest
    start, then most runs).
    """
    order: dict[str, int] = {}
    by: dict[str, list[ResultRow]] = {}
    for r in rows:
        order.setdefault(str(r.run_id), len(order))
        by.setdefault(r.recipe, []).append(r)
    out = []
    for recipe, rs in by.items():
        n = 0
        while n < len(rs) and failing(rs[-1 - n]):
            n += 1
        if n:
            out.append(Streak(recipe, str(rs[-n].run_id), n))
    return sorted(out, key=lambda s: (order[s.since_run], -s.runs, s.recipe))


def pick(rows: Sequence[ResultRow], recipe: str | None = None) -> str | None:
    """``recipe`` when given; else the recipe failing longest; else the last one that failed at
    all; else None."""
    if recipe:
        return recipe
    streaks = failing_streaks(rows)
    if streaks:
        return streaks[0].recipe
    bad = [r.recipe for r in rows if failing(r)]
    return bad[-1] if bad else None


def rung_rows(rows: Sequence[ResultRow]) -> list[RungRow]:
    """One record per run that ran the harness: ``run_id`` and the rung statuses it recorded."""
    return [{"run_id": r.run_id, **r.rungs} for r in rows if r.rungs]


def log_tail(path: str | Path | None, chars: int = TAIL_CHARS) -> str:
    """The last ``chars`` of the log at ``path`` (a row's ``log_path``); empty when there is
    none, or it is gone or not a regular file."""
    if not path:
        return ""
    p = Path(path)
    try:
        return read_range(p, -chars, chars).decode(errors="replace")
    except (OSError, FileProblem):  # gone, or not a regular file (a FIFO would hang a read)
        return ""


class Investigation(TypedDict):
    """What :func:`investigation` finds: the investigate notebook's records of these names
    (:class:`~canonlib.evidence.records.Recorded` declares each)."""

    investigated: str
    investigate_rungs: list[RungRow]
    investigate_reason: str
    investigate_failing_since: str | None
    investigate_failing_runs: int
    investigate_log_tail: str


def investigation(recipe: str, rows: Sequence[ResultRow]) -> Investigation:
    """What the investigate notebook records for ``recipe`` from its result ``rows`` (run order)."""
    bad = [r for r in rows if failing(r)]
    tested = [r for r in bad if outcome(r.label) in FAILING]  # not a known-red skip
    last = next(reversed(tested or bad), None)  # the row that failed, with its log
    streak = next((s for s in failing_streaks(rows) if s.recipe == recipe), None)
    if last is None:
        why = "no failing row: every recorded run of it passed or skipped"
    else:
        shown = last.to_dict()  # as the pages show a row
        head = label_head(shown)
        head = outcome(last.label) if head.endswith("(see reason)") else head
        why = f"{head} in run {last.run_id}: {reason(shown)}"
    return Investigation(
        investigated=recipe,
        investigate_rungs=rung_rows(rows),
        investigate_reason=why,
        investigate_failing_since=streak.since_run if streak else None,
        investigate_failing_runs=streak.runs if streak else 0,
        investigate_log_tail=log_tail(last.log_path) if last else "",
    )
