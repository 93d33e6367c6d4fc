"""Helpers the evidence notebooks call: each notebook stays a parameters cell and a few calls.

Tables are pandas DataFrames, figures matplotlib.  Every value a notebook shows
as a claim is first recorded with :func:`canonlib.evidence.records.record` and
the table is rendered *from the recorded value*, so what a reader sees is what
``canon verify`` re-derives and compares.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ParamSpec, TypedDict, TypeVar

import matplotlib

matplotlib.use("agg")  # figures are rendered to PNG here, whatever the kernel's backend
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from canonlib.claims import Claim  # noqa: E402
from canonlib.config import Config, load_config  # noqa: E402
from canonlib.evidence import proofs  # noqa: E402
from canonlib.evidence.figures import disk_figure, rungs_figure, sweep_figure
from canonlib.evidence.figures import show as show_alt
from canonlib.evidence.investigate import investigation, pick
from canonlib.evidence.records import (  # noqa: E402
    BEFORE_AFTER_COLUMNS,
    CLAIM_COLUMNS,
    DISK_COLUMNS,
    HISTORY_COLUMNS,
    RUNG_COLUMNS,
    SAMEVER_COLUMNS,
    SHOWN_COLUMNS,
    DiskRecord,
    DiskRow,
    before_after,
    record,
    shown_rows,
)
from canonlib.evidence.report import human_bytes
from canonlib.evidence.verify import verify
from canonlib.recipe.fleet import discover
from canonlib.state.disk import disk_report
from canonlib.state.registry import (
    Registry,  # noqa: E402
    utcnow,
)
from canonlib.state.row import RowJSON
from canonlib.sweep.orchestrate import Interrupted, raise_interrupted, sweep  # noqa: E402


def show(fig: Figure) -> None:
    """Put ``fig`` into the notebook as a PNG (kept in the evidence, hashed by the manifest)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))


__all__ = ["record", "config", "frame", "Claim"]

ROW_COLUMNS = SHOWN_COLUMNS
P = ParamSpec("P")
T = TypeVar("T")


def config(config_path: str) -> Config:
    """The run's config; SIGTERM in this kernel then ends a sweep as it ends ``canon sweep``."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupted)
    return load_config(config_path or None)


def _until_signal(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn``; when canon stops the tree (SIGTERM), let the sweep mark its run interrupted
    and tear its slot down, then end this kernel at once with 128+signal."""
    try:
        return fn(*args, **kwargs)
    except Interrupted as e:
        sys.stdout.flush()
        os._exit(e.exit_code)


def record_rows(
    name: str, rows: Sequence[RowJSON], columns: list[str] = SHOWN_COLUMNS
) -> pd.DataFrame:
    """Record the shown part of ``rows`` under ``name`` and return the table rendered from it."""
    shown = sorted(
        shown_rows(rows, columns), key=lambda r: (str(r.get("recipe")), str(r.get("run_id")))
    )
    record(name, shown, columns)
    return frame(shown, columns)


def frame(rows: Sequence[Mapping[str, object]], columns: list[str] = ROW_COLUMNS) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df[[c for c in columns if c in df.columns]] if not df.empty else df


def record_claims(claims: list[Claim]) -> pd.DataFrame:
    record("claims", [c.to_dict() for c in claims], CLAIM_COLUMNS)
    return pd.DataFrame([c.to_dict() for c in claims])


class SweepRead(TypedDict):
    """The sweep notebook's sweep, run now or read back (:func:`run_or_read_sweep`)."""

    run_id: str
    status: str
    rows: list[RowJSON]


def run_or_read_sweep(cfg: Config, sweep_run_id: str | None) -> SweepRead:
    """Run a sweep now, or read the rows of an earlier one from the registry; record
    ``sweep_run_id`` and ``sweep_rows`` (shown as a table)."""
    sweep = _sweep_or_read(cfg, sweep_run_id)
    record("sweep_run_id", sweep["run_id"])
    record_rows("sweep_rows", sweep["rows"])
    return sweep


def _sweep_or_read(cfg: Config, sweep_run_id: str | None) -> SweepRead:
    if sweep_run_id:
        with Registry.open(cfg.db_path) as reg:
            run = reg.run(sweep_run_id)
            if run is None:
                raise ValueError(f"no sweep run {sweep_run_id} in {cfg.db_path}")
            rows = [r.to_dict() for r in reg.results(sweep_run_id)]  # the notebook's records
        return SweepRead(run_id=sweep_run_id, status=run["status"], rows=rows)
    result = _until_signal(sweep, cfg)
    return SweepRead(run_id=result.run_id, status=result.status, rows=result.rows)


def labels_and_durations(rows: Sequence[RowJSON], run_id: str = "", started: str = "") -> None:
    """The sweep figure, its alt text below.

    One bar per recipe coloured by outcome, its reason beside it.
    """
    show_alt(*sweep_figure(rows, run_id, started or utcnow()))


def canonicals_before_after(rows: Sequence[RowJSON]) -> pd.DataFrame:
    """Record and show each recipe's canonical before and after the sweep."""
    value = before_after(rows)
    record("canonicals_before_after", value, BEFORE_AFTER_COLUMNS)
    return frame(value, BEFORE_AFTER_COLUMNS)


def determinism(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A second sweep straight away: record its run id, rows and claims; tables from the records."""
    result = _until_signal(sweep, cfg)
    record("determinism_run_id", result.run_id)
    with Registry.open(cfg.db_path) as reg:
        claims = proofs.determinism_claims(reg, result.run_id)
    return record_rows("determinism_rows", result.rows), record_claims(claims)


def pick_recipe(cfg: Config, recipe: str) -> str:
    """The given recipe, or the first whose canonical is its latest tested release (a recipe known
    to go green: one whose newest tag is red or known-red would fail the proofs for that reason)."""
    if recipe:
        return recipe
    with Registry.open(cfg.db_path) as reg:
        have = sorted(c.recipe for c in reg.canonicals())
        settled = [
            r
            for r in have
            if all(x.latest == reg.read_registry(r).version for x in reg.results(recipe=r)[-1:])  # type: ignore[union-attr]  # r has a canonical
        ]
    if not have:
        raise ValueError("no recipe has a canonical yet: run a sweep first, or pass recipe=")
    return (settled or have)[0]


def _keep_scratch_db(scratch_db: str, evidence_dir: str, name: str) -> str:
    """Copy a proof's scratch registry into the dir (``scratch/<name>.db``); its path there."""
    dest = Path(evidence_dir) / "scratch" / f"{name}.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = Path(scratch_db)
    with Registry.open(src) as reg:  # checkpoint the WAL so one file holds everything
        reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy2(src, dest)
    return str(dest.relative_to(evidence_dir))


F = TypeVar("F", proofs.TaggedPromoteFacts, proofs.SameverFacts)


def _prove(
    prove: Callable[[Config, str, Path], F], cfg: Config, recipe: str, evidence_dir: str, name: str
) -> F:
    """Run proof ``prove`` in a scratch dir (purged after, whatever happens); its facts, their
    ``scratch_db`` the scratch registry's path once kept in the dir (``scratch/<name>.db``)."""
    with tempfile.TemporaryDirectory(prefix="canon-proof-") as tmp:
        try:
            facts = _until_signal(prove, cfg, recipe, Path(tmp))
        finally:
            proofs.purge_scratch(Path(tmp))
        facts["scratch_db"] = _keep_scratch_db(facts["scratch_db"], evidence_dir, name)
        return facts


def tagged_promote(cfg: Config, recipe: str, evidence_dir: str) -> proofs.TaggedPromoteFacts:
    """Run the tagged-promote proof.

    Record its facts (shown) for verify to re-derive the claims from.
    """
    facts = _prove(proofs.prove_tagged_promote, cfg, recipe, evidence_dir, "tagged_promote")
    record("tagged_promote", {k: v for k, v in facts.items() if k != "claims"})
    return facts


def samever(cfg: Config, recipe: str, evidence_dir: str) -> proofs.SameverFacts:
    """Run the same-version proof; record its facts and the three scratch sweeps' rows (shown)."""
    facts = _prove(proofs.prove_samever, cfg, recipe, evidence_dir, "samever")
    record("samever", {k: v for k, v in facts.items() if k not in ("claims", "rows")})
    record("samever_rows", shown_rows(facts["rows"], SAMEVER_COLUMNS), SAMEVER_COLUMNS)
    return facts


def disk(cfg: Config) -> tuple[pd.DataFrame, DiskRecord, pd.DataFrame]:
    """Measure, record ``disk`` (every figure shown) and its claims.

    The table and figure come from the record.
    """
    rep = disk_report(cfg)
    summary = DiskRecord(
        rows=[
            DiskRow(
                recipe=r.recipe,
                mirror_bytes=r.mirror_bytes,
                slot_bytes=r.slot_bytes,
                snapshot_bytes=r.snapshot_bytes,
            )
            for r in rep["rows"]
        ],
        shared=rep["shared"],
        total_bytes=rep["total"],
        budget_bytes=rep["budget"],
    )
    record("disk", summary, DISK_COLUMNS)
    df = pd.DataFrame(summary["rows"])
    try:
        recipes = [r.name for r in discover(cfg.fleet).recipes]  # every recipe drawn, zero or not
    except Exception:  # noqa: BLE001 -- a fleet that cannot be read still gets its disk figure
        recipes = []
    title = f"— budget {human_bytes(summary['budget_bytes'])}"
    show_alt(*disk_figure(summary, recipes=recipes, title=title))
    return df, summary, record_claims(proofs.disk_claims(summary))


def pick_investigate(cfg: Config, recipe: str) -> str:
    """The given recipe, else the one failing longest, else the last that failed, else the first."""
    if recipe:
        return recipe
    with Registry.open(cfg.db_path) as reg:
        rows = reg.results()
    return pick(rows) or ([r.recipe for r in rows][:1] or [""])[0]


def recipe_history(cfg: Config, recipe: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Record ``investigated``, ``investigate_rows`` and ``investigate_rungs``.

    The tables come from the records.
    """
    with Registry.open(cfg.db_path) as reg:
        rows = reg.results(recipe=recipe)
    inv = investigation(recipe, rows)  # the rungs, the reason, the streak, the last log's tail
    record("investigated", inv["investigated"])
    hist = record_rows("investigate_rows", [r.to_dict() for r in rows], HISTORY_COLUMNS)
    rungs_rows = inv["investigate_rungs"]
    record("investigate_rungs", rungs_rows, RUNG_COLUMNS)
    rungs = pd.DataFrame(rungs_rows)
    record("investigate_reason", inv["investigate_reason"])
    record("investigate_failing_since", inv["investigate_failing_since"])
    record("investigate_failing_runs", inv["investigate_failing_runs"])
    record("investigate_log_tail", inv["investigate_log_tail"])
    print(f"{recipe}: {inv['investigate_reason']}")
    if inv["investigate_failing_since"]:
        since, n = inv["investigate_failing_since"], inv["investigate_failing_runs"]
        print(f"failing since run {since} ({n} run(s))")
    if rungs_rows:
        show_alt(*rungs_figure(rungs_rows, recipe))
    return hist, rungs, inv["investigate_log_tail"] or "(no log: it never reached the harness)"


def verify_table(target: str) -> tuple[pd.DataFrame, bool]:
    """``canon verify TARGET`` from cold (no config, no state), its claims recorded."""
    claims = verify(Path(target))
    record("verified", str(target))
    df = record_claims(claims)
    return df, all(c.ok for c in claims)
