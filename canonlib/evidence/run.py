"""Evidence runs: a suite's notebooks executed with papermill into ``evidence/<run-id>/``.

The verdict of a notebook is ours, not papermill's: its exit status, no error
output, every code cell executed, the completion marker recorded by the last
cell, and every claim a notebook recorded holding.  The manifest is written
by :mod:`canonlib.evidence.manifest`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..process import kill_group
from ..registry import utcnow
from ..sweep import new_run_id
from .manifest import write_manifest
from .records import EvidenceRun, NotebookRun, load_notebook, notebook_problems, read_records

SUITES: dict[str, list[str]] = {
    "weekly": ["sweep", "determinism", "disk_budget"],
    "proofs": ["tagged_promote", "samever", "disk_budget"],
    "all": ["sweep", "determinism", "tagged_promote", "samever", "disk_budget", "investigate"],
    "verify": ["verify"],
}
NOTEBOOK_TIMEOUT_S = 900
CELL_TIMEOUT_S = 600


def notebooks_dir() -> Path:
    env = os.environ.get("CANON_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"


# -- running ------------------------------------------------------------------------


def kernel_home(tmp: Path) -> Path:
    """A kernelspec named ``canon`` for *this* Python, first on JUPYTER_PATH, so no other python3 wins."""
    kdir = tmp / "kernels" / "canon"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "canon", "language": "python",
    }))  # fmt: skip
    return tmp


def execute(src: Path, dest: Path, params: dict[str, Any], *, cwd: Path, timeout_s: float,
            cell_timeout_s: float, log: Path) -> tuple[int | None, bool, float]:  # fmt: skip
    """papermill ``src`` -> ``dest`` in a child process group, killed at ``timeout_s`` (the watchdog)."""

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="canon-kernel-") as tmp:
        env = {
            **os.environ,
            "JUPYTER_PATH": str(kernel_home(Path(tmp))),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        argv = [sys.executable, "-m", "papermill", str(src), str(dest), "-k", "canon", "--language", "python", "--cwd", str(cwd),
                "--execution-timeout", str(int(cell_timeout_s)), "--no-progress-bar",
                "-y", json.dumps(params)]  # fmt: skip
        with open(log, "ab") as logf:
            proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
            try:
                rc = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(proc.pid, grace_s=1.0)
                rc = proc.wait()
    return rc, timed_out, time.monotonic() - t0


def run_suite(
    config: Config, suite: str, *, params: dict[str, Any] | None = None, out: Callable[[str], None] = print,
    notebooks: list[Path] | None = None, timeout_s: float = NOTEBOOK_TIMEOUT_S,
    cell_timeout_s: float = CELL_TIMEOUT_S,
) -> EvidenceRun:  # fmt: skip
    """Execute a suite's notebooks into a new evidence dir and write its manifest.

    ``suite`` names a list in :data:`SUITES` (or labels ``notebooks`` when those are given);
    ``params`` are passed to every notebook (``config_path`` and ``evidence_dir`` are always set);
    ``timeout_s`` is the outer watchdog per notebook, ``cell_timeout_s`` papermill's per cell.
    """
    if notebooks is None:
        if suite not in SUITES:
            from ..errors import UsageError

            raise UsageError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
        notebooks = [notebooks_dir() / f"{name}.ipynb" for name in SUITES[suite]]
    run_id = new_run_id(suite)
    d = config.evidence_dir / run_id
    d.mkdir(parents=True)
    started = utcnow()
    base_params = {"config_path": str(config.path or ""), "evidence_dir": str(d), **(params or {})}
    runs: list[NotebookRun] = []
    logs = Path(tempfile.mkdtemp(prefix="canon-evidence-logs-"))
    for src in notebooks:
        name = src.stem
        dest = d / f"{name}.ipynb"
        out(f"  running {name} ...")
        rc, timed_out, secs = execute(src, dest, base_params, cwd=d, timeout_s=timeout_s,
                                      cell_timeout_s=cell_timeout_s, log=logs / f"{name}.log")  # fmt: skip
        nb_run = NotebookRun(name, dest, rc, round(secs, 2), timed_out)
        if dest.exists():
            try:
                nb = load_notebook(dest)
                nb_run.records = read_records(nb)
                nb_run.problems = notebook_problems(nb)
            except (json.JSONDecodeError, OSError) as e:
                nb_run.problems = [f"executed notebook unreadable: {e}"]
        else:
            nb_run.problems = ["papermill wrote no output notebook"]
        if timed_out:
            nb_run.problems.insert(
                0, f"killed by the watchdog after {timeout_s:g}s (partial notebook kept)"
            )
        elif rc:
            nb_run.problems.insert(0, f"papermill exited {rc}")
        if not nb_run.ok:
            tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
            (d / f"{name}.failure.txt").write_text(
                "\n".join(nb_run.problems) + "\n\n--- papermill log tail ---\n" + tail
            )
        runs.append(nb_run)
        out(
            f"  {name}: {'ok' if nb_run.ok else 'FAILED: ' + '; '.join(nb_run.problems)} ({secs:.1f}s)"
        )
    shutil.rmtree(logs, ignore_errors=True)
    ev = EvidenceRun(d, suite, runs)
    write_manifest(config, ev, run_id=run_id, params=base_params, started=started)
    out(f"evidence {suite}: {'ok' if ev.ok else 'FAILED'}")
    out(str(d))
    return ev


