"""Evidence runs: a suite's notebooks executed with papermill into ``evidence/<run-id>/``.

The verdict of a notebook is ours, not papermill's: its exit status, no error
output, every code cell executed, the completion marker recorded by the last
cell, and every claim a notebook recorded holding.  After the notebooks:
``records.json``, the bundle (:mod:`.bundle`), the verdict (:mod:`.verdict`),
``manifest.json`` (:mod:`.manifest`) and, when a key exists, its DSSE
signature (:mod:`.signing`).

A SIGTERM/SIGINT stops the whole tree (papermill, its kernel, the harness the
kernel's sweep started), writes the dir's manifest marked ``interrupted`` and
re-raises, so ``canon`` exits 143/130.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import psutil

from canonlib.config import Config
from canonlib.errors import CanonError, UsageError
from canonlib.evidence import log, signing
from canonlib.evidence.bundle import write_refs_and_config, write_registry
from canonlib.evidence.manifest import (
    ENVELOPE,
    bundled_facts,
    claimed_sweep_runs,
    statement,
    write_manifest,
)
from canonlib.evidence.progress import watch_sweeps
from canonlib.evidence.records import (
    RECORDS,
    EvidenceRun,
    NotebookRun,
    load_notebook,
    notebook_problems,
    read_records,
)
from canonlib.evidence.report import add_report, warm_up
from canonlib.evidence.suites import SUITES, SWEEP_NOTEBOOKS
from canonlib.evidence.verdict import Verdict, verdict
from canonlib.files import FileProblem, read_range, write_atomic
from canonlib.state.registry import utcnow
from canonlib.sweep.orchestrate import Interrupted, new_run_id, sweep_lock

NOTEBOOK_TIMEOUT_S = 900
CELL_TIMEOUT_S = 600
STOP_GRACE_S = 15.0


def notebooks_dir() -> Path:
    env = os.environ.get("CANON_NOTEBOOKS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks"


# -- running one notebook ---------------------------------------------------------------


def kernel_home(tmp: Path) -> Path:
    """A kernelspec ``canon`` for *this* Python, first on JUPYTER_PATH: no other python3 wins."""
    kdir = tmp / "kernels" / "canon"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "canon",
                "language": "python",
            }
        )
    )
    return tmp


def _tree(root: psutil.Process, known: dict[int, psutil.Process]) -> None:
    """Add ``root``'s live descendants to ``known`` (kept even after they are re-parented)."""
    with contextlib.suppress(psutil.Error):
        for p in root.children(recursive=True):
            known.setdefault(p.pid, p)


def _wait_gone(known: dict[int, psutil.Process], pids: set[int] | None, until: float) -> None:
    """Wait until every process in ``known`` (or only those in ``pids``) exited, or ``until``."""
    while time.monotonic() < until:
        for p in list(known.values()):
            _tree(p, known)  # children born meanwhile count too
        alive = [p for p in known.values() if (pids is None or p.pid in pids) and _alive(p)]
        if not alive:
            return
        psutil.wait_procs(alive, timeout=0.1)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_tree(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """Stop ``pid`` (papermill) and every descendant -- the kernel and the harness sit in sessions
    of their own, so a process-group kill would miss them.  Descendants get SIGTERM first and up
    to ``grace_s`` to exit cleanly (the kernel's sweep marks its run interrupted and ends the
    kernel, the harness tears its slot down); then papermill gets SIGTERM; whatever is left,
    and the process groups they led, get SIGKILL."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    known: dict[int, psutil.Process] = {}
    _tree(root, known)
    for p in list(known.values()):
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _wait_gone(known, set(known), time.monotonic() + grace_s)
    known[pid] = root
    with contextlib.suppress(psutil.Error):
        root.send_signal(signal.SIGTERM)
    _wait_gone(known, None, time.monotonic() + min(grace_s, 2.0))
    for p in list(known.values()):
        _tree(p, known)
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if os.getpgid(p.pid) == p.pid:
                os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs([p for p in known.values() if _alive(p)], timeout=2)


def execute(
    src: Path,
    dest: Path,
    params: Mapping[str, object],
    *,
    cwd: Path,
    timeout_s: float,
    cell_timeout_s: float,
    log: Path,
) -> tuple[int | None, bool, float]:
    """papermill ``src`` -> ``dest`` in a child session, stopped at ``timeout_s`` (the watchdog)
    or when canon itself is interrupted (then the interrupt propagates).  ``params``: the
    notebooks' parameters, passed to papermill as JSON (``-y``)."""

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="canon-kernel-") as tmp:
        env = {
            **os.environ,
            "JUPYTER_PATH": str(kernel_home(Path(tmp))),
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "papermill",
            str(src),
            str(dest),
            "-k",
            "canon",
            "--language",
            "python",
            "--cwd",
            str(cwd),
            "--execution-timeout",
            str(int(cell_timeout_s)),
            "--no-progress-bar",
            "--log-output",
            "-y",
            json.dumps(params),
        ]
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                stop_tree(proc.pid, grace_s=1.0)
                rc = proc.wait()
            except BaseException:
                stop_tree(proc.pid)
                proc.wait()
                raise
    return rc, timed_out, time.monotonic() - t0


def _finish_notebook(nb_run: NotebookRun, log: Path, d: Path, timeout_s: float) -> None:
    dest = nb_run.path
    if dest.exists():
        try:
            nb = load_notebook(dest)
            nb_run.records = read_records(nb)
            nb_run.problems = notebook_problems(nb)
        except (ValueError, OSError) as e:
            nb_run.problems = [f"executed notebook unreadable: {e}"]
    else:
        nb_run.problems = ["papermill wrote no output notebook"]
    if nb_run.timed_out:
        nb_run.problems.insert(
            0, f"killed by the watchdog after {timeout_s:g}s (partial notebook kept)"
        )
    elif nb_run.rc:
        nb_run.problems.insert(0, f"papermill exited {nb_run.rc}")
    if not nb_run.ok:
        try:
            tail = read_range(log, -3000, 3000).decode(errors="replace")
        except (FileNotFoundError, FileProblem):
            tail = ""
        write_atomic(
            d / f"{nb_run.name}.failure.txt",
            "\n".join(nb_run.problems) + "\n\n--- papermill log tail ---\n" + tail,
        )


# -- a suite -------------------------------------------------------------------------------


def check_sweep_lock(config: Config) -> None:
    """Take the sweep lock and let it go, before a suite that sweeps makes its dir.

    The sweep runs in a notebook's kernel (another process), so the suite cannot hold the lock
    for it; but what the sweep would meet there (another sweep holding the lock: exit 75; a
    read-only state dir: exit 2 naming the lock) is refused here, with nothing written, instead
    of a FAILED week in a new evidence dir.  A sweep starting in between still fails in the
    notebook.
    """
    with sweep_lock(config.lock_path, f"pid={os.getpid()} evidence run started={utcnow()}"):
        pass


def run_suite(
    config: Config,
    suite: str,
    *,
    params: Mapping[str, object] | None = None,
    out: Callable[[str], None] = print,
    notebooks: list[Path] | None = None,
    timeout_s: float = NOTEBOOK_TIMEOUT_S,
    cell_timeout_s: float = CELL_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> EvidenceRun:
    """Execute a suite's notebooks into a new evidence dir.

    Then write its records, bundle, manifest and signature.

    ``suite`` names a list in :data:`SUITES` (or labels ``notebooks`` when those are given);
    ``params`` are passed to every notebook (``config_path`` and ``evidence_dir`` are always set);
    ``timeout_s`` is the outer watchdog per notebook, ``cell_timeout_s`` papermill's per cell;
    ``progress`` (default ``out``) hears each notebook start and end and each sweep row as it lands.
    The returned run's :attr:`~EvidenceRun.verdict` is the week's verdict (exit code included).
    """
    if notebooks is None:
        if suite not in SUITES:
            raise UsageError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
        notebooks = [notebooks_dir() / f"{name}.ipynb" for name in SUITES[suite]]
    if any(nb.stem in SWEEP_NOTEBOOKS for nb in notebooks):
        check_sweep_lock(config)
    run_id = new_run_id(suite)
    d = config.evidence_dir / run_id
    d.mkdir(parents=True)
    started = utcnow()
    base_params: dict[str, object] = {
        "config_path": str(config.path or ""),
        "evidence_dir": str(d),
        **(params or {}),
    }
    ev = EvidenceRun(d, suite, [])
    progress = progress or out
    warm_up()  # nbconvert loads while the notebooks run
    logs = d / "logs"  # papermill's logs, kept in the dir
    logs.mkdir()
    try:
        for src in notebooks:
            name = src.stem
            progress(f"  running {name} ...")
            log = logs / f"{name}.log"
            nb_run = NotebookRun(name, d / f"{name}.ipynb", None, 0.0)
            ev.notebooks.append(nb_run)
            with watch_sweeps(config.runs_dir, progress):
                rc, timed_out, secs = execute(
                    src,
                    nb_run.path,
                    base_params,
                    cwd=d,
                    timeout_s=timeout_s,
                    cell_timeout_s=cell_timeout_s,
                    log=log,
                )
            nb_run.rc, nb_run.timed_out, nb_run.seconds = rc, timed_out, round(secs, 2)
            _finish_notebook(nb_run, log, d, timeout_s)
            outcome = "ok" if nb_run.ok else "FAILED: " + "; ".join(nb_run.problems)
            progress(f"  {name}: {outcome} ({secs:.1f}s)")
    except (Interrupted, KeyboardInterrupt) as e:
        why = e.signal_name if isinstance(e, Interrupted) else "SIGINT"
        if ev.notebooks and (nb_run := ev.notebooks[-1]).rc is None:
            nb_run.rc = e.exit_code if isinstance(e, Interrupted) else 128 + signal.SIGINT
            _finish_notebook(nb_run, logs / f"{nb_run.name}.log", d, timeout_s)
            nb_run.problems.insert(0, f"interrupted by {why}")
        with contextlib.suppress(Exception):  # the interrupt is what the caller must hear about
            finish(
                config,
                ev,
                run_id=run_id,
                params=base_params,
                started=started,
                interrupted=why,
                out=out,
            )
            out(f"evidence {suite}: interrupted by {why}; the dir is marked interrupted: {d}")
        raise
    finish(config, ev, run_id=run_id, params=base_params, started=started, out=out)
    out(f"evidence {suite}: {ev.verdict.summary() if ev.verdict else '?'}")
    out(str(d))
    return ev


def claimed_recipes(
    rows: Iterable[Mapping[str, object]],
    canonicals: Iterable[Mapping[str, object]],
    records: Iterable[Mapping[str, object]],
) -> set[str]:
    """The recipes a dir's claims name: its rows', its canonicals' and its proofs' (whose refs
    and config the bundle keeps)."""
    named = [*rows, *canonicals]
    for rec in records:
        for key in ("tagged_promote", "samever"):
            proof = rec.get(key)
            if isinstance(proof, dict) and proof.get("recipe"):
                named.append(proof)
    return {recipe for r in named if isinstance(recipe := r.get("recipe"), str)}


def finish(
    config: Config,
    ev: EvidenceRun,
    *,
    run_id: str,
    params: dict[str, object],
    started: str,
    interrupted: str | None = None,
    out: Callable[[str], None] = print,
) -> Verdict:
    """records.json, results, bundle, verdict, manifest, (with a key) its signature, and the
    evidence log's entry (:mod:`.log`: ``log.proof``)."""
    d = ev.dir
    records = [n.records for n in ev.notebooks]
    write_atomic(
        d / RECORDS,
        json.dumps({n.name: n.records for n in ev.notebooks}, indent=1, sort_keys=True) + "\n",
    )
    sweep_runs = claimed_sweep_runs(records)
    for rid in sweep_runs:
        src = config.runs_dir / rid / "results.jsonl"
        if src.exists():
            (d / "results").mkdir(exist_ok=True)
            shutil.copy2(src, d / "results" / f"{rid}.jsonl")
    write_registry(config, d)
    facts = bundled_facts(d, sweep_runs)
    write_refs_and_config(config, d, claimed_recipes(facts["rows"], facts["canonicals"], records))
    notebooks_ok = {n.name: n.ok for n in ev.notebooks}
    if interrupted:
        notebooks_ok["(interrupted)"] = False
    ev.verdict = verdict(notebooks_ok, facts["rows"])
    stmt = statement(
        config,
        ev,
        ev.verdict,
        facts,
        run_id=run_id,
        params=params,
        started=started,
        interrupted=interrupted,
    )
    kp = signing.key_paths(config.state_dir)
    stmt["predicate"]["canon"]["outside"] = {
        "signed": kp.private.exists(),
        "log": config.log_origin,
    }
    # summary.md, index.html, <nb>.html: rendered from stmt, hashed into it
    add_report(d, stmt)
    payload = write_manifest(d, stmt)
    if kp.private.exists():
        signing.write_envelope(
            d / ENVELOPE, signing.sign(payload, signing.load_private(kp.private))
        )
    try:
        log.append(config, d, out)
    except (CanonError, OSError, ValueError) as e:  # the evidence stands; `canon log append` later
        out(f"  log: {d.name} not appended to {config.log_repo}: {e}")
    week: Verdict = ev.verdict
    return week
