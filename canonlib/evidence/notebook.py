"""Helpers the evidence notebooks call: each notebook stays a parameters cell and a few calls.

Tables are pandas DataFrames, figures matplotlib; every claim is recorded with
:func:`canonlib.evidence.records.record` so the manifest and ``canon verify`` can read it.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("agg")  # figures are rendered to PNG here, whatever the kernel's backend
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..claims import Claim  # noqa: E402
from ..config import Config, load_config  # noqa: E402
from ..registry import Registry  # noqa: E402
from ..sweep import sweep  # noqa: E402
from . import proofs  # noqa: E402
from .records import record  # noqa: E402


def show(fig) -> None:
    """Put ``fig`` into the notebook as a PNG output (kept in the evidence, hashed by the manifest)."""
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))


__all__ = ["record", "config", "frame"]

ROW_COLUMNS = ["recipe", "decision", "latest", "canonical_before", "canonical_after", "upgrade_base_kind",
               "level", "tests_executed", "label", "duration_s"]  # fmt: skip


def config(config_path: str) -> Config:
    return load_config(config_path or None)


def frame(rows: list[dict[str, Any]], columns: list[str] = ROW_COLUMNS) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df[[c for c in columns if c in df.columns]] if not df.empty else df


def record_claims(claims: list[Claim]) -> pd.DataFrame:
    record("claims", [c.to_dict() for c in claims])
    return pd.DataFrame([c.to_dict() for c in claims])


def run_or_read_sweep(cfg: Config, sweep_run_id: str | None) -> dict[str, Any]:
    """Run a sweep now, or read the rows of an earlier one from the registry."""
    with Registry.open(cfg.db_path) as reg:
        before = {c.recipe: c.version for c in reg.canonicals()}
    if sweep_run_id:
        with Registry.open(cfg.db_path) as reg:
            run = reg.run(sweep_run_id)
            if run is None:
                raise ValueError(f"no sweep run {sweep_run_id} in {cfg.db_path}")
            rows = reg.results(sweep_run_id)
        return {"run_id": sweep_run_id, "status": run["status"], "rows": rows, "before": None}
    result = sweep(cfg)
    return {"run_id": result.run_id, "status": result.status, "rows": result.rows, "before": before,
            "excluded": result.fleet.excluded}  # fmt: skip


def labels_and_durations(rows: list[dict[str, Any]]):
    df = frame(rows)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5))
    df["label"].str.extract(r"^([A-Z-]+)")[0].value_counts().plot.barh(ax=a, color="#4c72b0")
    a.set_title("labels")
    a.set_ylabel("")
    df.set_index("recipe")["duration_s"].fillna(0).plot.barh(ax=b, color="#55a868")
    b.set_title("seconds per recipe")
    fig.tight_layout()
    show(fig)


def canonicals_before_after(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = frame(rows, ["recipe", "canonical_before", "canonical_after", "label"])
    df["changed"] = df["canonical_before"] != df["canonical_after"]
    return df


def determinism(cfg: Config) -> tuple[dict[str, Any], list[Claim]]:
    result = sweep(cfg)
    with Registry.open(cfg.db_path) as reg:
        claims = proofs.determinism_claims(reg, result.run_id)
    return {"run_id": result.run_id, "rows": result.rows}, claims


def pick_recipe(cfg: Config, recipe: str) -> str:
    """The given recipe, or the first one with a canonical (a recipe known to go green)."""
    if recipe:
        return recipe
    with Registry.open(cfg.db_path) as reg:
        have = [c.recipe for c in reg.canonicals()]
    if not have:
        raise ValueError("no recipe has a canonical yet: run a sweep first, or pass recipe=")
    return sorted(have)[0]


def _keep_scratch_db(facts: dict[str, Any], evidence_dir: str, name: str) -> None:
    dest = Path(evidence_dir) / "scratch" / f"{name}.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = Path(facts["scratch_db"])
    with Registry.open(src) as reg:  # checkpoint the WAL so one file holds everything
        reg._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy2(src, dest)
    facts["scratch_db"] = str(dest.relative_to(evidence_dir))


def tagged_promote(cfg: Config, recipe: str, evidence_dir: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="canon-proof-") as tmp:
        facts = proofs.prove_tagged_promote(cfg, recipe, Path(tmp))
        _keep_scratch_db(facts, evidence_dir, "tagged_promote")
    return facts


def samever(cfg: Config, recipe: str, evidence_dir: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="canon-proof-") as tmp:
        facts = proofs.prove_samever(cfg, recipe, Path(tmp))
        _keep_scratch_db(facts, evidence_dir, "samever")
    return facts


def disk(cfg: Config) -> tuple[pd.DataFrame, dict[str, Any]]:
    from ..disk import disk_report

    rep = disk_report(cfg)
    df = pd.DataFrame([{"recipe": r.recipe, "mirror": r.mirror_bytes, "canonical slot": r.slot_bytes,
                        "of which snapshots": r.snapshot_bytes} for r in rep["rows"]])  # fmt: skip
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if not df.empty:
        df.set_index("recipe")[["mirror", "canonical slot"]].plot.barh(stacked=True, ax=ax)
    ax.set_title(f"bytes per recipe; total {rep['total']:,} of budget {rep['budget']:,}")
    fig.tight_layout()
    show(fig)
    summary = {"total_bytes": rep["total"], "budget_bytes": rep["budget"], "shared": rep["shared"]}
    return df, summary


def pick_investigate(cfg: Config, recipe: str) -> str:
    """The given recipe, else the last one that failed (FAIL or GREEN-BUT…), else the first with results."""
    if recipe:
        return recipe
    with Registry.open(cfg.db_path) as reg:
        rows = reg.results()
    bad = [r["recipe"] for r in rows if str(r["label"]).startswith(("FAIL", "GREEN-BUT"))]
    return (bad[-1:] or [r["recipe"] for r in rows][:1] or [""])[0]


def recipe_history(cfg: Config, recipe: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    with Registry.open(cfg.db_path) as reg:
        rows = reg.results(recipe=recipe)
    hist = frame(rows, ["run_id", "decision", "latest", "canonical_after", "level", "label"])
    rungs = pd.DataFrame(
        [{"run_id": r["run_id"], **(r["rungs"] or {})} for r in rows if r["rungs"]]
    )
    tail = ""
    failing = [
        r for r in rows if str(r["label"]).startswith(("FAIL", "ERROR", "GREEN")) and r["log_path"]
    ]
    if failing and Path(failing[-1]["log_path"]).exists():
        tail = Path(failing[-1]["log_path"]).read_text(errors="replace")[-3000:]
    return hist, rungs, tail


def verify_table(cfg: Config, target: str) -> tuple[pd.DataFrame, bool]:
    from .verify import verify

    claims = verify(Path(target), cfg)
    record("verified", str(target))
    df = record_claims(claims)
    return df, all(c.ok for c in claims)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
