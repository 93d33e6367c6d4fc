"""The suites and what an evidence dir of each may hold: verify fails on anything missing or extra.

Each suite declares its notebooks.  A dir of suite S holds exactly: one
executed ``<nb>.ipynb`` per notebook of S, ``records.json``, the bundle
(``bundle/registry.db``, ``bundle/refs.json``, ``bundle/config.json``), and
optionally a ``<nb>.failure.txt`` per failed notebook, ``results/<run>.jsonl``
per recorded sweep run, ``scratch/<nb>.db`` per proof notebook, and the
report (``summary.md``, ``index.html``, ``<nb>.html``, ``logs/<nb>.log``).
``manifest.json`` and its signature ``manifest.dsse.json`` sit beside them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from canonlib.evidence.bundle import CONFIG, REFS, REGISTRY
from canonlib.evidence.records import RECORDS

SUITES: dict[str, list[str]] = {
    "weekly": ["sweep", "determinism", "disk_budget"],
    "proofs": ["tagged_promote", "samever", "disk_budget"],
    "all": ["sweep", "determinism", "tagged_promote", "samever", "disk_budget", "investigate"],
    "investigate": ["investigate"],
    "verify": ["verify"],
}
PROOF_NOTEBOOKS = ("tagged_promote", "samever")
# the notebooks that sweep the configured state dir (the proofs sweep a scratch one)
SWEEP_NOTEBOOKS = ("sweep", "determinism")
REPORT_FILES = ("summary.md", "index.html")
_RUN_ID = re.compile(r"[A-Za-z0-9._-]+")


def required_files(notebooks: Iterable[str]) -> set[str]:
    return {f"{nb}.ipynb" for nb in notebooks} | {RECORDS, REGISTRY, REFS, CONFIG}


def file_problem(name: str, notebooks: list[str], sweep_runs: Iterable[str]) -> str | None:
    """Why ``name`` does not belong in a dir of these notebooks (None when it does)."""
    if name in required_files(notebooks) or name in REPORT_FILES:
        return None
    stem, _, ext = name.partition(".")
    if "/" not in name and stem in notebooks and ext in ("failure.txt", "html"):
        return None
    folder, _, base = name.partition("/")
    if folder == "results" and base.endswith(".jsonl") and base[:-6] in set(sweep_runs):
        return None
    if (
        folder == "scratch"
        and base.endswith(".db")
        and base[:-3] in notebooks
        and base[:-3] in PROOF_NOTEBOOKS
    ):
        return None
    if folder == "logs" and base.endswith(".log") and base[:-4] in notebooks:
        return None
    if name.endswith(".ipynb"):
        return "a notebook the suite does not declare"
    return "a file no suite writes"
