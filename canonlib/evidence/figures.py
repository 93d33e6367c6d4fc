"""The evidence figures, each with its alt text: a reader sees the answer, a screen reader hears it.

- :func:`sweep_figure`: one bar per recipe (its seconds), coloured by outcome, its
  label and reason written beside it; the run id and date in the title;
- :func:`disk_figure`: bytes per recipe (mirror, slot, snapshots) and the whole
  (mirrors, slots, snapshots, evidence, state) against the budget, drawn;
- :func:`rungs_figure`: a recipe's rung statuses run by run.

Used by the notebooks (:func:`show`) and by ``index.html`` (:func:`png_b64`).
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("agg")  # rendered to PNG, whatever the kernel's backend
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from canonlib.evidence.records import DiskRecord, RungRow  # noqa: E402
from canonlib.evidence.report import (  # noqa: E402
    FAILING,
    HELD_OUTCOMES,
    human_bytes,
    label_head,
    outcome,
    reason,
    short_date,
)
from canonlib.recipe.meta import RUNGS  # noqa: E402
from canonlib.state.row import RowJSON  # noqa: E402

REASON_CHARS = 80  # beside a bar; the tables carry the full reason
PNG_META = {"Software": None}  # no version stamp: the same values give the same bytes


def unit_for(max_bytes: float) -> tuple[str, float]:
    """The unit a byte axis reads best in: ``("KiB", 1024)``, ``("MiB", …)`` or ``("GiB", …)``."""
    if max_bytes >= 1 << 30:
        return "GiB", float(1 << 30)
    if max_bytes >= 1 << 20:
        return "MiB", float(1 << 20)
    return "KiB", 1024.0


def _num(v: float | None) -> float:
    return 0.0 if v is None or math.isnan(v) else float(v)


def sweep_alt(rows: Sequence[RowJSON], run_id: str, started: str) -> str:
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(outcome(r.get("label"), HELD_OUTCOMES), []).append(str(r.get("recipe")))
    parts = [f"{k}: {', '.join(by[k])}" for k in HELD_OUTCOMES if k in by]
    failing = [
        f"{r.get('recipe')} {r.get('label')}: {reason(r)}"
        for r in rows
        if outcome(r.get("label"), HELD_OUTCOMES) in FAILING
    ]
    alt = (
        f"Bar chart of sweep {run_id} on {short_date(started)}: seconds per recipe for "
        f"{len(rows)} recipes, coloured by outcome. " + "; ".join(parts) + "."
    )
    return alt + (" Failing: " + "; ".join(failing) + "." if failing else " Nothing failed.")


def sweep_figure(rows: Sequence[RowJSON], run_id: str, started: str) -> tuple[Figure, str]:
    """One bar per recipe: its seconds, coloured by outcome, label and reason beside it."""
    rows = sorted(rows, key=lambda r: str(r.get("recipe")), reverse=True)  # top-down alphabetical
    secs = [_num(r.get("duration_s")) for r in rows]
    top = max(secs + [1.0])
    fig, ax = plt.subplots(figsize=(12, 0.42 * len(rows) + 1.9), layout="constrained")
    kinds = [outcome(r.get("label"), HELD_OUTCOMES) for r in rows]
    y = range(len(rows))
    ax.barh(
        y,
        [max(s, top * 0.004) for s in secs],
        color=[HELD_OUTCOMES[k][0] for k in kinds],
        edgecolor="#333",
        linewidth=0.5,
    )
    for i, r in enumerate(rows):
        why, head = reason(r), label_head(r)
        text = head + (f" — {why}" if why != "-" and why not in head else "")
        text = textwrap.shorten(text, REASON_CHARS, placeholder=" …")
        ax.text(secs[i] + top * 0.01, i, text, va="center", fontsize=8)
    ax.set_yticks(list(y), [str(r.get("recipe")) for r in rows])
    ax.set_xlim(0, top * 2.1)  # room for the words beside the bars
    ax.set_xlabel("seconds (sync + cold run + promote)")
    ax.set_ylabel("recipe")
    ax.set_title(f"sweep {run_id} — {short_date(started)}: {len(rows)} recipes by outcome")
    present = [k for k in HELD_OUTCOMES if k in kinds]
    fig.legend(
        handles=[Patch(color=HELD_OUTCOMES[k][0], label=k) for k in present],
        loc="outside lower center",
        ncol=min(len(present), 6),
        fontsize=8,
        frameon=False,
    )
    return fig, sweep_alt(rows[::-1], run_id, started)


DISK_PARTS = ("mirror", "canonical slot", "snapshots")
DISK_COLOURS = {
    "mirror": "#4c72b0",
    "canonical slot": "#55a868",
    "snapshots": "#8172b2",
    "evidence": "#ccb974",
    "state": "#64b5cd",
    "other slots": "#c44e52",
}


def disk_parts(disk: DiskRecord, recipes: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per recipe (by name): mirror, slot without its snapshots, snapshots (:data:`DISK_PARTS`);
    every recipe of ``recipes`` too (zero when it has no mirror or slot)."""
    rows = {r["recipe"]: r for r in disk["rows"]}
    out = {}
    for name in sorted(set(rows) | set(recipes or [])):
        r = rows.get(
            name, {"recipe": name, "mirror_bytes": 0, "slot_bytes": 0, "snapshot_bytes": 0}
        )
        snap = float(r["snapshot_bytes"])
        slot = max(float(r["slot_bytes"]) - snap, 0.0)
        out[name] = dict(zip(DISK_PARTS, (float(r["mirror_bytes"]), slot, snap), strict=True))
    return out


def disk_whole(disk: DiskRecord, parts: dict[str, dict[str, float]]) -> dict[str, float]:
    def pick(word: str) -> float:
        return sum(float(v) for k, v in disk["shared"].items() if k.startswith(word))

    return {
        **{k: sum(p[k] for p in parts.values()) for k in DISK_PARTS},
        "evidence": pick("evidence"),
        "state": pick("state"),
        "other slots": pick("other"),
    }


def disk_alt(disk: DiskRecord, parts: dict[str, dict[str, float]], whole: dict[str, float]) -> str:
    total, budget = disk["total_bytes"], disk["budget_bytes"]
    biggest = sorted(parts.items(), key=lambda p: -sum(p[1].values()))[:3]
    return (
        f"Disk use: {human_bytes(total)} of a {human_bytes(budget)} budget "
        f"({'within' if total <= budget else 'OVER'} budget). "
        + ", ".join(f"{k} {human_bytes(v)}" for k, v in whole.items())
        + f". {len(parts)} recipes drawn; the largest: "
        + ", ".join(f"{name} {human_bytes(sum(p.values()))}" for name, p in biggest)
        + "."
    )


def disk_figure(
    disk: DiskRecord, *, recipes: list[str] | None = None, title: str = ""
) -> tuple[Figure, str]:
    """The disk figure, two panels.

    Left: bytes per recipe (every recipe, zero drawn as zero); right: the whole, the budget drawn.
    """
    parts = disk_parts(disk, recipes)
    whole = disk_whole(disk, parts)
    budget = float(disk["budget_bytes"])
    n = max(len(parts), 1)
    fig, (a, b) = plt.subplots(
        1,
        2,
        figsize=(12, 0.35 * n + 2.4),
        layout="constrained",
        gridspec_kw={"width_ratios": [3, 2]},
    )
    name, div = unit_for(max([sum(p.values()) for p in parts.values()] + [1]))
    left = [0.0] * len(parts)
    ys = range(len(parts))
    for k in DISK_PARTS:
        vals = [p[k] / div for p in parts.values()]
        a.barh(ys, vals, left=left, color=DISK_COLOURS[k], label=k)
        left = [x + v for x, v in zip(left, vals, strict=True)]
    a.set_yticks(list(ys), list(parts))
    a.invert_yaxis()
    a.set_xlabel(name)
    a.set_title("per recipe")
    wname, wdiv = unit_for(max(sum(whole.values()), budget, 1))
    at = 0.0
    for k, v in whole.items():
        b.barh([0], [v / wdiv], left=[at], color=DISK_COLOURS[k], label=k)
        at += v / wdiv
    if budget:
        b.axvline(budget / wdiv, color="#b2182b", linestyle="--", linewidth=2, label="budget")
        b.set_xlim(0, max(at, budget / wdiv) * 1.08)
    b.set_yticks([0], ["all"])
    b.set_xlabel(wname)
    total = disk["total_bytes"]
    share = f"{100 * float(total) / budget:.1f}% of" if budget else "no"
    b.set_title(f"total {human_bytes(total)}: {share} budget")
    fig.suptitle(f"disk use {title}".strip())
    handles, labels = b.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8, frameon=False
    )
    return fig, disk_alt(disk, parts, whole)


RUNG_COLOURS = {"pass": "#1a9850", "fail": "#d73027", "skip": "#bdbdbd", "unverified": "#ffffff"}


def rungs_figure(rungs_rows: list[RungRow], recipe: str) -> tuple[Figure, str]:
    """Rung statuses run by run (rows: runs, oldest first; columns: L1..L5)."""
    from matplotlib.colors import to_rgb

    runs = [str(r.get("run_id")) for r in rungs_rows]
    grid = [
        [to_rgb(RUNG_COLOURS.get(str(r.get(k) or "unverified"), "#ffffff")) for k in RUNGS]
        for r in rungs_rows
    ]
    fig, ax = plt.subplots(figsize=(8, 0.35 * max(len(runs), 1) + 1.8), layout="constrained")
    if grid:
        ax.imshow(grid, aspect="auto")
    ax.set_xticks(range(len(RUNGS)), [f"L{i} {n}" for i, n in enumerate(RUNGS, start=1)])
    ax.set_yticks(range(len(runs)), runs)
    ax.set_xlabel("rung")
    ax.set_ylabel("sweep run (oldest at the top)")
    ax.set_title(f"{recipe}: rung statuses over time")
    fig.legend(
        handles=[Patch(facecolor=c, edgecolor="#555", label=k) for k, c in RUNG_COLOURS.items()],
        loc="outside lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    fails = [
        f"{r.get('run_id')}: " + ", ".join(k for k in RUNGS if r.get(k) == "fail")
        for r in rungs_rows
        if any(r.get(k) == "fail" for k in RUNGS)
    ]
    alt = f"Rung statuses of {recipe} over {len(runs)} runs. " + (
        "Failing rungs: " + "; ".join(fails) + "." if fails else "No rung failed."
    )
    return fig, alt


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata=PNG_META)
    plt.close(fig)
    return buf.getvalue()


def png_b64(fig: Figure, alt: str) -> tuple[str, str]:
    return base64.b64encode(png_bytes(fig)).decode(), alt


def show(fig: Figure, alt: str) -> None:
    """Put ``fig`` into the notebook as a PNG with its alt text (and the text printed beneath).

    The alt text holds upstream words (a recipe's name, its failing step's reason): it goes in
    as text, escaped, never as Markdown or HTML a renderer would turn into markup."""
    from IPython.display import Image, display

    display(Image(data=png_bytes(fig), format="png"), metadata={"image/png": {"alt": alt}})
    display({"text/plain": alt, "text/html": f"<p><em>{html.escape(alt)}</em></p>"}, raw=True)
