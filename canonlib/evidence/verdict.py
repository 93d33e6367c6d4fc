"""The verdict of an evidence run: was the week green?  Pure; kept apart from "is it authentic".

FAILED when any notebook failed (papermill, an error output, a cell that never
ran, no completion marker, a recorded claim that does not hold) or any sweep
the run records has a row labelled FAIL, ERROR or GREEN-BUT-PROMOTE-FAILED --
the same rule and exit code (1) as ``canon sweep``.  A FAILED week still
verifies: verify re-derives this verdict from the bundle and checks the
manifest says the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from canonlib.state.row import RowJSON, parse_label

PASSED = "PASSED"
FAILED = "FAILED"


class FailingRow(TypedDict):
    """A row that failed the week, as the verdict names it."""

    run_id: str
    recipe: str
    label: str


class VerdictJSON(TypedDict):
    """A verdict as the manifest holds it (``predicate.canon.verdict``)."""

    result: str
    failed_notebooks: list[str]
    failing_rows: list[FailingRow]
    recipes: list[str]


@dataclass(frozen=True)
class Verdict:
    result: str
    failed_notebooks: list[str] = field(default_factory=list)
    failing_rows: list[FailingRow] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == PASSED

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    @property
    def recipes(self) -> list[str]:
        return sorted({r["recipe"] for r in self.failing_rows})

    def summary(self) -> str:
        """One line: ``PASSED`` or ``FAILED: notebook x failed; lasuite-docs ERROR (sync: …)``."""
        if self.ok:
            return PASSED
        parts = [f"notebook {n} failed" for n in self.failed_notebooks]
        seen: dict[str, str] = {}
        for r in self.failing_rows:
            seen.setdefault(r["recipe"], r["label"])
        parts += [f"{recipe} {label}" for recipe, label in sorted(seen.items())]
        return f"{FAILED}: " + "; ".join(parts)

    def to_dict(self) -> VerdictJSON:
        return VerdictJSON(
            result=self.result,
            failed_notebooks=self.failed_notebooks,
            failing_rows=self.failing_rows,
            recipes=self.recipes,
        )


def verdict(notebooks_ok: dict[str, bool], rows: Sequence[RowJSON]) -> Verdict:
    """``notebooks_ok``: notebook name -> completed with every claim holding; ``rows``: the
    result rows of every sweep the run records (each with ``run_id``, ``recipe``, ``label``)."""
    failed = [name for name, ok in notebooks_ok.items() if not ok]
    failing = [
        FailingRow(
            run_id=str(r.get("run_id")),
            recipe=str(r.get("recipe")),
            label=str(r.get("label")),
        )
        for r in rows
        if parse_label(r.get("label")).failing
    ]
    result = FAILED if failed or failing or not notebooks_ok else PASSED
    return Verdict(result, failed, failing)
