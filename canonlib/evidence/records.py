"""Recorded values: what a notebook records while it runs, read back from the executed notebook.

A notebook records each value it shows as a claim with :func:`record` (and
shows the table rendered *from* that recorded value); the manifest and
``canon verify`` read them back with :func:`read_records`, and
:func:`notebook_problems` says why an executed notebook does not count.

Every evidence dir also holds ``records.json``: ``{notebook name: {record name:
value}}``, the one structure a report renders from (:func:`dir_records`);
verify checks it equals what the notebooks recorded.

What the notebooks show of a sweep row is :data:`SHOWN_COLUMNS`
(:func:`shown_rows`): verify re-derives exactly those from the bundled registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RECORD_MIME = "application/vnd.canon.record+json"
RECORDS = "records.json"
SHOWN_COLUMNS = ["recipe", "decision", "latest", "canonical_before", "canonical_after", "upgrade_base_kind",
                 "upgrade_base", "level", "tests_executed", "gate", "label", "error"]  # fmt: skip
HISTORY_COLUMNS = ["run_id", "decision", "latest", "canonical_after", "level", "label", "error"]


def shown_rows(
    rows: list[dict[str, Any]], columns: list[str] = SHOWN_COLUMNS
) -> list[dict[str, Any]]:
    """The part of each result row a notebook shows (and records), sorted by recipe then run."""
    return [{c: r.get(c) for c in columns} for r in rows]


# -- inside a notebook ------------------------------------------------------------


def record(name: str, value: Any) -> None:
    """Record a named value in the executing notebook's output (read back by the manifest and verify)."""
    from IPython.display import display

    display(
        {RECORD_MIME: {name: value}, "text/plain": f"recorded {name} = {json.dumps(value)[:200]}"},
        raw=True,
    )


def read_records(nb: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = o.get("data", {})
            if RECORD_MIME in data and isinstance(data[RECORD_MIME], dict):
                out.update(data[RECORD_MIME])
    return out


def notebook_problems(nb: dict) -> list[str]:
    """Why an executed notebook does not count: unexecuted cells, errors, no completion marker, false claims."""
    problems = completion_problems(nb)
    for claim in read_records(nb).get("claims", []) or []:
        if isinstance(claim, dict) and not claim.get("ok"):
            problems.append(f"claim failed: {claim.get('name')}: {claim.get('detail')}")
    return problems


def completion_problems(nb: dict) -> list[str]:
    """Why an executed notebook did not complete: unexecuted cells, errors, no completion marker."""
    problems = []
    code = [
        c
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()
    ]
    if not code:
        problems.append("no code cells")
    for i, c in enumerate(code, start=1):
        if c.get("execution_count") is None:
            problems.append(f"code cell {i} of {len(code)} never ran")
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                problems.append(
                    f"code cell {i} raised {o.get('ename')}: {str(o.get('evalue'))[:200]}"
                )
    if read_records(nb).get("complete") is not True:
        problems.append("no completion marker (the last cell did not run to the end)")
    return problems


def load_notebook(path: Path) -> dict:
    nb = json.loads(path.read_text())
    if not isinstance(nb, dict):
        raise ValueError(f"{path.name} is not a notebook (top level is not an object)")
    return nb


def dir_records(d: str | Path) -> dict[str, dict[str, Any]]:
    """Every recorded value of evidence dir ``d``: ``{notebook: {name: value}}`` (from ``records.json``)."""
    return json.loads((Path(d) / RECORDS).read_text())


# -- what a run of a suite holds --------------------------------------------------


@dataclass
class NotebookRun:
    name: str
    path: Path
    rc: int | None
    seconds: float
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and not self.problems


@dataclass
class EvidenceRun:
    dir: Path
    suite: str
    notebooks: list[NotebookRun]
    verdict: Any = None  # the week's Verdict, set when the run is finished

    @property
    def ok(self) -> bool:
        """Every notebook completed with its claims holding (the verdict also weighs the sweep's rows)."""
        return bool(self.notebooks) and all(n.ok for n in self.notebooks)
