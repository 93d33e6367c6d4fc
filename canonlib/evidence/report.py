"""An evidence dir for people: ``summary.md`` and ``index.html``, rendered from the recorded values.

Everything the report shows comes from the manifest's Statement (the verdict,
the notebooks, the result rows read from the bundled registry) and from what
the notebooks recorded (``records.json``, else each notebook's records in the
manifest): the same values ``canon verify`` checks, so the page cannot say
something the evidence does not.

- :func:`report_view` gathers those values into a :class:`View` (pure);
- :func:`summary_md` and :func:`index_html` render it (pure); the page shows the
  figures the notebooks drew (:mod:`.figures`, each with its alt text);
- :func:`write_report` writes ``summary.md``, ``index.html`` and each
  notebook as ``<nb>.html`` (nbconvert, code hidden, outputs kept) into the
  dir, and appends the summary to ``$GITHUB_STEP_SUMMARY`` when it is set.
"""

from __future__ import annotations

import html
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canonlib import tables
from canonlib.claims import Claim
from canonlib.evidence.manifest import OUTSIDE_CHECKS, hash_tree
from canonlib.files import write_atomic
from canonlib.recipe.meta import RUNGS
from canonlib.sweep.words import DECISION_WORDS, FAILING_LABELS

SUMMARY = "summary.md"
INDEX = "index.html"

# outcome -> (colour of its row/bar, what it means); order is severity, worst first
OUTCOMES: dict[str, tuple[str, str]] = {
    "ERROR": ("#b2182b", "canon could not test it (sync, config or environment)"),
    "GREEN-BUT-PROMOTE-FAILED": ("#d6604d", "green, but the promotion failed"),
    "FAIL": ("#ef8a62", "a rung failed"),
    "GREEN-NOT-PROMOTED": ("#f4c542", "green, held back by a gate"),
    "PASS": ("#1a9850", "green and canonical"),
    "SKIP": ("#9e9e9e", "nothing to test"),
    "?": ("#6a3d9a", "no label"),
}
# the row background of each outcome (pale, so text stays readable)
ROW_COLOURS: dict[str, str] = {
    "ERROR": "#f4c7c3",
    "GREEN-BUT-PROMOTE-FAILED": "#f9d3c8",
    "FAIL": "#fbe0d0",
    "GREEN-NOT-PROMOTED": "#fdf1c7",
    "PASS": "#d9f0d3",
    "SKIP": "#eeeeee",
    "?": "#e7dcf0",
}
FAILING = FAILING_LABELS  # the outcomes that fail a week
LABEL_CHARS = 32  # a longer label is shown as its outcome when the reason says the rest


# -- cells and words (pure) -----------------------------------------------------------


def outcome(label: Any) -> str:
    """The outcome a label starts with (``PASS``, ``FAIL``, ``ERROR``, …), else ``?``."""
    text = str(label or "")
    for key in OUTCOMES:
        if key != "?" and (text == key or text.startswith(key + " ") or text.startswith(key + "(")):
            return key
    return "?"


def missing(v: Any) -> bool:
    return (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str | list | dict) and not v)
    )


def cell(v: Any) -> str:
    """A table cell: ``-`` for missing, integers as integers, lists joined; never cut."""
    if missing(v):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "; ".join(cell(x) for x in v)
    return str(v)


def first_failing_rung(rungs: Any) -> str | None:
    if not isinstance(rungs, dict):
        return None
    for i, name in enumerate(RUNGS, start=1):
        if rungs.get(name) == "fail":
            return f"L{i} {name}"
    return None


def reason(row: dict[str, Any]) -> str:
    """Why a row has its label, in words: the recorded reason, else the error, the gate, the
    failing rung, or what the skip means."""
    if not missing(row.get("reason")):
        return str(row["reason"])
    if not missing(row.get("error")):
        return str(row["error"])
    label = str(row.get("label") or "")
    kind = outcome(label)
    if kind == "FAIL":
        rung = first_failing_rung(row.get("rungs"))
        if "timeout" in label:
            return "the harness timed out" + (f" in {rung}" if rung else "")
        return f"{rung} failed" if rung else f"failed at level {cell(row.get('level'))}"
    if kind == "GREEN-NOT-PROMOTED" and not missing(row.get("gate")):
        return f"not promoted: {row['gate']}"
    if kind == "SKIP":
        words = DECISION_WORDS.get(str(row.get("decision")))
        if words:
            return words.report.format(
                **{k: cell(row.get(k)) for k in ("canonical_before", "latest")}
            )
    if kind == "PASS":
        return f"{row.get('latest') or 'it'} is the canonical now"
    return "-"


def label_head(row: dict[str, Any]) -> str:
    """The label as a table shows it beside its reason: whole when short; when its words in
    parentheses are long and the reason already says them, the outcome and ``(see reason)``."""
    label = str(row.get("label") or "")
    inner = label.partition("(")[2].rstrip(")")
    if len(label) <= LABEL_CHARS or not inner or inner not in reason(row):
        return label or "-"
    return f"{outcome(label)} (see reason)"


def code_line(code: dict[str, Any]) -> str:
    version = code.get("version") or code.get("code_version") or "-"
    commit = str(code.get("commit") or code.get("code_commit") or "")[:12]
    dirty = " (dirty)" if code.get("dirty") or code.get("code_dirty") else ""
    return f"{version} {commit}{dirty}".strip()


def notes(row: dict[str, Any]) -> str:
    """Warnings and tag incidents, one string."""
    parts = [f"warning: {w}" for w in row.get("warnings") or []]
    parts += [f"tag incident: {i}" for i in row.get("incidents") or []]
    return "; ".join(parts)


def canonical_changes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recipe's canonical before and after; ``changed`` only when they differ (missing ->
    missing is no change)."""
    out = []
    for r in rows:
        before, after = r.get("canonical_before"), r.get("canonical_after")
        b, a = (None if missing(before) else before), (None if missing(after) else after)
        out.append({"recipe": r.get("recipe"), "before": b, "after": a, "changed": b != a})
    return out


def human_bytes(n: Any) -> str:
    return "-" if missing(n) else tables.human_bytes(n)


def short_date(iso: Any) -> str:
    """``2026-11-27T21:57:27Z`` -> ``2026-11-27 21:57 UTC``."""
    text = str(iso or "")
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 else (text or "-")


# -- the view -----------------------------------------------------------------------


@dataclass
class View:
    """Every value the report shows."""

    run_id: str
    suite: str
    started: str
    finished: str
    result: str
    verdict_line: str
    fleet_commit: str | None
    fleet_dirty: bool
    code: dict[str, Any]
    notebooks: list[dict[str, Any]]
    records: dict[str, dict[str, Any]]
    sweep_run_id: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)  # {notebook, name, ok, detail}
    disk: dict[str, Any] | None = None
    investigate: dict[str, Any] | None = None
    interrupted: str | None = None
    outside: dict[str, Any] = field(default_factory=dict)  # the run's signed / log, in the manifest

    @property
    def failing(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if outcome(r.get("label")) in FAILING]

    @property
    def recipes(self) -> list[str]:
        return [str(r.get("recipe")) for r in self.rows]


def dir_records(d: Path, canon: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``records.json`` when the run wrote one, else each notebook's records in the manifest."""
    f = d / "records.json"
    if f.exists():
        try:
            recs = json.loads(f.read_text())
            if isinstance(recs, dict):
                return recs
        except (OSError, json.JSONDecodeError):
            pass
    return {n.get("name"): n.get("records") or {} for n in canon.get("notebooks", [])}


def sweep_rows(
    records: dict[str, dict[str, Any]], results: list[dict[str, Any]]
) -> tuple[str | None, list[dict]]:
    """The week's sweep: the run the sweep notebook recorded, each row the bundled result with
    what the notebook recorded laid over it (the recorded value wins)."""
    rec = records.get("sweep") or {}
    run_id = rec.get("sweep_run_id")
    if run_id is None:
        return None, []
    base = {r.get("recipe"): dict(r) for r in results if r.get("run_id") == run_id}
    shown = rec.get("sweep_rows")
    if not isinstance(shown, list):
        labels = rec.get("labels") if isinstance(rec.get("labels"), dict) else {}
        shown = [{"recipe": k, "label": v} for k, v in labels.items()] or list(base.values())
    rows = [{**base.get(r.get("recipe"), {}), **r} for r in shown if isinstance(r, dict)]
    return run_id, sorted(rows, key=lambda r: str(r.get("recipe")))


def verdict_line(canon: dict[str, Any], result: str) -> str:
    v = canon.get("verdict")
    if not isinstance(v, dict):
        return result
    parts = [f"notebook {n} failed" for n in v.get("failed_notebooks") or []]
    seen: dict[str, str] = {}
    for r in v.get("failing_rows") or []:
        seen.setdefault(str(r.get("recipe")), str(r.get("label")))
    parts += [f"{k} {label}" for k, label in sorted(seen.items())]
    return f"{result}: " + "; ".join(parts) if parts else result


def report_view(d: str | Path, stmt: dict[str, Any]) -> View:
    """The report's values from a manifest Statement and the dir's records."""
    d = Path(d)
    pred = stmt.get("predicate", {})
    canon = pred.get("canon", {})
    records = dir_records(d, canon)
    result = str(pred.get("result") or "?")
    fleet = canon.get("fleet") or {}
    run_id, rows = sweep_rows(records, canon.get("results") or [])
    claims = [
        {"notebook": nb, **c}
        for nb, rec in records.items()
        for c in (rec.get("claims") or [])
        if isinstance(c, dict)
    ]
    disk = next(
        (rec["disk"] for rec in records.values() if isinstance(rec.get("disk"), dict)), None
    )
    inv = records.get("investigate")
    return View(
        run_id=str(canon.get("run_id") or d.name),
        suite=str(canon.get("suite") or "?"),
        started=str(canon.get("started_at") or ""),
        finished=str(canon.get("finished_at") or ""),
        result=result,
        verdict_line=verdict_line(canon, result),
        fleet_commit=fleet.get("commit"),
        fleet_dirty=bool(fleet.get("dirty")),
        code=canon.get("code") or {},
        notebooks=list(canon.get("notebooks") or []),
        records=records,
        sweep_run_id=run_id,
        rows=rows,
        claims=claims,
        disk=disk,
        investigate=inv if isinstance(inv, dict) and inv else None,
        interrupted=canon.get("interrupted"),
        outside=canon.get("outside") if isinstance(canon.get("outside"), dict) else {},
    )


def outside_rows(outside: dict[str, Any]) -> list[list[str]]:
    """What neither these pages nor ``canon verify DIR`` alone checked: per check against the
    world, what the run says of it and the option that checks it."""
    signed = outside.get("signed")
    log = outside.get("log")
    state = {
        "signature": "signed (manifest.dsse.json)"
        if signed
        else ("unsigned: no key on the machine" if signed is False else "not recorded"),
        "upstream": "checked at the run (bundle/refs.json), not since",
        "log": f"appended to {log} (log.proof)" if log else "not recorded",
    }
    return [[name, what, state[name], opt] for name, opt, what in OUTSIDE_CHECKS]


OUTSIDE_HEAD = (
    "These pages and `canon verify DIR` re-check the run from the dir alone. Three checks "
    "against the world they do not make; run them with:"
)
STRICT_LINE = "canon verify DIR --key canon.pub --upstream --log CLONE --strict"


# -- summary.md -----------------------------------------------------------------------


def _md(v: Any) -> str:
    return cell(v).replace("|", "\\|").replace("\n", " ")


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return out


def disk_lines(disk: dict[str, Any]) -> tuple[str, list[list[Any]]]:
    total, budget = disk.get("total_bytes"), disk.get("budget_bytes")
    within = isinstance(total, int) and isinstance(budget, int) and total <= budget
    head = (
        f"{human_bytes(total)} of a {human_bytes(budget)} budget "
        f"({'within' if within else 'OVER'} budget)"
    )
    rows = [
        [
            r.get("recipe"),
            human_bytes(r.get("mirror_bytes")),
            human_bytes(r.get("slot_bytes")),
            human_bytes(r.get("snapshot_bytes")),
        ]
        for r in disk.get("rows") or []
    ]
    rows += [[k, "-", "-", "-", human_bytes(b)] for k, b in (disk.get("shared") or {}).items()]
    return head, rows


def summary_md(v: View) -> str:
    """The report as Markdown (a terminal and a forge's web view both read it)."""
    mark = "✅" if v.result == "PASSED" else "❌"
    fleet = f"`{v.fleet_commit[:12]}`" if v.fleet_commit else "-"
    lines = [
        f"# canon evidence {v.suite}: {mark} {v.result}",
        "",
        f"**{v.verdict_line}**",
        "",
        f"- run `{v.run_id}`, {short_date(v.started)} → {short_date(v.finished)}",
        f"- fleet commit {fleet}{' (dirty)' if v.fleet_dirty else ''}; canon {code_line(v.code)}",
    ]
    if v.interrupted:
        lines.append(f"- **interrupted by {v.interrupted}**: this dir holds what ran until then")
    if v.rows:
        lines += ["", f"## Recipes (sweep `{v.sweep_run_id}`)", ""]
        lines += md_table(
            ["recipe", "label", "reason", "warnings / incidents", "latest", "level", "tests"],
            [
                [
                    r.get("recipe"),
                    label_head(r),
                    reason(r),
                    notes(r),
                    r.get("latest"),
                    r.get("level"),
                    r.get("tests_executed"),
                ]
                for r in v.rows
            ],
        )
        changes = canonical_changes(v.rows)
        lines += ["", "## Canonicals before → after", ""]
        lines += md_table(
            ["recipe", "before", "after", "changed"],
            [[c["recipe"], c["before"], c["after"], c["changed"]] for c in changes],
        )
    if v.investigate:
        lines += ["", "## Investigation", ""] + investigate_md(v.investigate)
    failed = [c for c in v.claims if not c.get("ok")]
    lines += [
        "",
        "## Claims checked",
        "",
        f"{len(v.claims)} claims recorded, {len(failed)} failed.",
    ]
    if failed:
        lines += [""] + md_table(
            ["notebook", "claim", "detail"],
            [[c["notebook"], c.get("name"), c.get("detail")] for c in failed],
        )
    lines += ["", "## Not checked here", "", OUTSIDE_HEAD, ""]
    lines += md_table(["check", "what it checks", "this run", "option"], outside_rows(v.outside))
    lines += ["", f"All of them, each a failure when it cannot run: `{STRICT_LINE}`"]
    if v.disk:
        head, rows = disk_lines(v.disk)
        lines += ["", "## Disk", "", head, ""]
        lines += md_table(
            ["recipe / shared", "mirror", "canonical slot", "of which snapshots", "bytes"],
            [r + ["-"] * (5 - len(r)) for r in rows],
        )
    lines += ["", "## Notebooks", ""]
    lines += md_table(
        ["notebook", "result", "seconds", "problems"],
        [
            [n.get("name"), "ok" if n.get("ok") else "FAILED", n.get("seconds"), n.get("problems")]
            for n in v.notebooks
        ],
    )
    lines += ["", "Re-check it: `canon verify DIR` (DIR: this evidence dir, on any machine)", ""]
    return "\n".join(lines)


def investigate_md(inv: dict[str, Any]) -> list[str]:
    lines = [f"Recipe **{inv.get('investigated', '-')}**."]
    if inv.get("investigate_reason"):
        lines += ["", f"Why: {inv['investigate_reason']}"]
    rungs = inv.get("investigate_rungs") or []
    if rungs:
        lines += [""] + md_table(
            ["run", *RUNGS], [[r.get("run_id"), *[r.get(k) for k in RUNGS]] for r in rungs]
        )
    return lines


# -- index.html -----------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:78em;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #bbb;
padding:.3em .5em;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.reason{white-space:normal;overflow-wrap:anywhere;min-width:18em;max-width:36em}
td.notes{white-space:normal;overflow-wrap:anywhere;max-width:16em}
td.label{white-space:nowrap}
td.num{text-align:right}
.verdict{display:inline-block;padding:.3em .8em;border-radius:.3em;color:#fff;font-weight:bold}
.PASSED{background:#1a9850} .FAILED{background:#b2182b}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #555;margin-right:.3em;
vertical-align:middle}
figure{margin:1em 0} figcaption{font-size:.9em;color:#444} img{max-width:100%}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dl.meta dt{font-weight:bold}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap}
"""


def _e(v: Any) -> str:
    return html.escape(cell(v))


def _row_style(label: Any) -> str:
    return f"background:{ROW_COLOURS[outcome(label)]}"


def _code_spans(text: str) -> str:
    """Markdown's `code` spans as <code>, the rest escaped."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def html_table(
    headers: list[str],
    rows: list[list[Any]],
    *,
    styles: list[str] | None = None,
    classes: dict[int, str] | None = None,
    row_attrs: list[str] | None = None,
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        style = f' style="{styles[i]}"' if styles else ""
        attrs = f" {row_attrs[i]}" if row_attrs else ""
        tds = "".join(
            f'<td class="{(classes or {}).get(j, "")}">{_e(c)}</td>' for j, c in enumerate(r)
        )
        body.append(f"<tr{style}{attrs}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(png_b64: str, alt: str) -> str:
    return (
        f'<figure><img src="data:image/png;base64,{png_b64}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def legend_html() -> str:
    items = [
        f'<li><span class="swatch" style="background:{ROW_COLOURS[k]}"></span>'
        f"<b>{html.escape(k)}</b>: "
        f"{html.escape(words)}</li>"
        for k, (_, words) in OUTCOMES.items()
        if k != "?"
    ]
    return f'<ul class="legend">{"".join(items)}</ul>'


def index_html(v: View, *, links: dict[str, str], figures: dict[str, tuple[str, str]]) -> str:
    """The report as one self-contained page: no network, no JavaScript.

    ``links``: notebook name -> its rendered HTML file (relative);
    ``figures``: name -> (base64 PNG, alt).
    """
    fleet = (v.fleet_commit or "-")[:12] + (" (dirty)" if v.fleet_dirty else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>canon evidence {html.escape(v.suite)} {html.escape(v.run_id)}: "
        f"{html.escape(v.result)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>canon evidence: {html.escape(v.suite)}</h1>",
        f'<p><span class="verdict {html.escape(v.result)}" id="verdict">'
        f"{html.escape(v.result)}</span> "
        f"{html.escape(v.verdict_line.removeprefix(v.result).removeprefix(': '))}</p>",
        '<dl class="meta">',
        f"<dt>run</dt><dd>{html.escape(v.run_id)}</dd>",
        f"<dt>started</dt><dd>{html.escape(short_date(v.started))}</dd>",
        f"<dt>finished</dt><dd>{html.escape(short_date(v.finished))}</dd>",
        f"<dt>fleet commit</dt><dd><code>{html.escape(fleet)}</code></dd>",
        f"<dt>canon</dt><dd>{html.escape(code_line(v.code))}</dd>",
        "</dl>",
    ]
    if v.interrupted:
        parts.append(
            f"<p><b>Interrupted by {html.escape(v.interrupted)}</b>: "
            "this dir holds what ran until then.</p>"
        )
    if v.rows:
        parts += [
            f'<h2 id="recipes">Recipes '
            f"<small>(sweep {html.escape(str(v.sweep_run_id))})</small></h2>",
            html_table(
                [
                    "recipe",
                    "label",
                    "reason",
                    "warnings / incidents",
                    "latest",
                    "canonical before",
                    "canonical after",
                    "level",
                    "tests",
                    "seconds",
                ],
                [
                    [
                        r.get("recipe"),
                        label_head(r),
                        reason(r),
                        notes(r),
                        r.get("latest"),
                        r.get("canonical_before"),
                        r.get("canonical_after"),
                        r.get("level"),
                        r.get("tests_executed"),
                        r.get("duration_s"),
                    ]
                    for r in v.rows
                ],
                styles=[_row_style(r.get("label")) for r in v.rows],
                classes={1: "label", 2: "reason", 3: "notes", 7: "num", 8: "num", 9: "num"},
                row_attrs=[
                    f'data-recipe="{html.escape(str(r.get("recipe")))}" '
                    f'data-outcome="{outcome(r.get("label"))}"'
                    for r in v.rows
                ],
            ),
            legend_html(),
        ]
    if "sweep" in figures:
        parts.append(figure_html(*figures["sweep"]))
    if v.rows:
        changes = canonical_changes(v.rows)
        parts += [
            '<h2 id="canonicals">Canonicals before → after</h2>',
            html_table(
                ["recipe", "before", "after", "changed"],
                [[c["recipe"], c["before"], c["after"], c["changed"]] for c in changes],
                styles=["font-weight:bold" if c["changed"] else "" for c in changes],
            ),
        ]
    if v.investigate:
        parts += investigate_html(v.investigate)
    if "investigate" in figures:
        parts.append(figure_html(*figures["investigate"]))
    failed = sum(not c.get("ok") for c in v.claims)
    parts += [
        f'<h2 id="claims">Claims checked <small>({len(v.claims)}, {failed} failed)</small></h2>',
        html_table(
            ["notebook", "claim", "holds", "detail"],
            [
                [c.get("notebook"), c.get("name"), bool(c.get("ok")), c.get("detail")]
                for c in v.claims
            ],
            styles=[_row_style("PASS" if c.get("ok") else "ERROR") for c in v.claims],
            classes={3: "reason"},
        ),
    ]
    parts += [
        '<h2 id="not-checked">Not checked here</h2>',
        f"<p>{_code_spans(OUTSIDE_HEAD)}</p>",
        html_table(["check", "what it checks", "this run", "option"], outside_rows(v.outside)),
        "<p>All of them, each a failure when it cannot run: "
        f"<code>{html.escape(STRICT_LINE)}</code></p>",
    ]
    if v.disk:
        head, rows = disk_lines(v.disk)
        parts += [
            f'<h2 id="disk">Disk</h2><p>{html.escape(head)}</p>',
            html_table(
                ["recipe / shared", "mirror", "canonical slot", "of which snapshots", "bytes"],
                [r + ["-"] * (5 - len(r)) for r in rows],
                classes={1: "num", 2: "num", 3: "num", 4: "num"},
            ),
        ]
    if "disk" in figures:
        parts.append(figure_html(*figures["disk"]))
    nb_rows = []
    for n in v.notebooks:
        name = str(n.get("name"))
        link = links.get(name)
        page = (
            f'<a href="{html.escape(link)}">{html.escape(name)}</a>' if link else html.escape(name)
        )
        ipynb = html.escape(str(n.get("file") or f"{name}.ipynb"))
        ok = bool(n.get("ok"))
        nb_rows.append(
            f'<tr style="{_row_style("PASS" if ok else "ERROR")}"><td>{page}</td>'
            f'<td>{"ok" if ok else "FAILED"}</td><td class="num">{_e(n.get("seconds"))}</td>'
            f'<td class="reason">{_e(n.get("problems"))}</td>'
            f'<td><a href="{ipynb}">{ipynb}</a></td></tr>'
        )
    parts += [
        '<h2 id="notebooks">Notebooks</h2>',
        "<table><thead><tr><th>notebook (rendered, code hidden)</th><th>result</th><th>seconds</th>"
        "<th>problems</th><th>executed notebook</th></tr></thead>"
        f"<tbody>{''.join(nb_rows)}</tbody></table>",
        "<p>Rendered from the values the notebooks recorded and the manifest; re-check them with "
        f"<code>canon verify {html.escape(v.run_id)}</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def investigate_html(inv: dict[str, Any]) -> list[str]:
    out = [f'<h2 id="investigate">Investigation: {_e(inv.get("investigated"))}</h2>']
    if inv.get("investigate_reason"):
        out.append(f'<p class="reason">Why: {_e(inv["investigate_reason"])}</p>')
    rows = inv.get("investigate_rows") or []
    if rows:
        out.append(
            html_table(
                ["run", "decision", "latest", "canonical after", "level", "label", "reason"],
                [
                    [
                        r.get("run_id"),
                        r.get("decision"),
                        r.get("latest"),
                        r.get("canonical_after"),
                        r.get("level"),
                        label_head(r),
                        reason(r),
                    ]
                    for r in rows
                ],
                styles=[_row_style(r.get("label")) for r in rows],
                classes={6: "reason"},
            )
        )
    rungs = inv.get("investigate_rungs") or []
    if rungs:
        out.append(
            html_table(
                ["run", *RUNGS], [[r.get("run_id"), *[r.get(k) for k in RUNGS]] for r in rungs]
            )
        )
    if inv.get("investigate_log_tail"):
        out.append(
            "<h3>Last failing log, tail</h3>"
            f"<pre>{html.escape(str(inv['investigate_log_tail']))}</pre>"
        )
    return out


# -- writing ---------------------------------------------------------------------------

NOTEBOOK_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:78em;padding:0 1em;color:#222}
table{border-collapse:collapse} th,td{border:1px solid #bbb;padding:.2em .5em} img{max-width:100%}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}
"""


_EXPORTER: list[Any] = []
_EXPORTER_LOCK = threading.Lock()


def notebook_exporter():
    """nbconvert's HTML exporter (the bare template, code and prompts hidden, outputs kept), made
    once per process with its template compiled."""
    with _EXPORTER_LOCK:
        if not _EXPORTER:
            import nbformat
            from nbconvert import HTMLExporter

            ex = HTMLExporter(
                template_name="basic",
                exclude_input=True,
                exclude_input_prompt=True,
                exclude_output_prompt=True,
            )
            ex.from_notebook_node(nbformat.v4.new_notebook())  # compiles the template
            _EXPORTER.append(ex)
        return _EXPORTER[0]


def warm_up() -> threading.Thread:
    """Load nbconvert in the background while the notebooks run (canon itself only waits then),
    so writing the report at the end costs little."""
    t = threading.Thread(target=notebook_exporter, name="canon-report-warm-up", daemon=True)
    t.start()
    return t


def render_notebook(nb, name: str, dest: Path, exporter) -> None:
    """Notebook ``nb`` as a page of its own: no scripts, nothing fetched, a link to the index."""
    body, _ = exporter.from_notebook_node(nb)
    title = html.escape(name)
    write_atomic(
        dest,
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{NOTEBOOK_CSS}</style></head><body>"
        f'<p><a href="{INDEX}">← the run\'s index</a></p>\n'
        f"{body}\n</body></html>\n",
    )


def notebook_figures(nb: dict) -> list[tuple[str, str]]:
    """The figures a notebook shows with alt text, as (base64 PNG, alt): the index reuses them
    rather than drawing them again (they were drawn from the same rows)."""
    out = []
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            png = (o.get("data") or {}).get("image/png")
            alt = ((o.get("metadata") or {}).get("image/png") or {}).get("alt")
            if isinstance(png, str) and isinstance(alt, str) and alt:
                out.append((png.replace("\n", ""), alt))
    return out


FIGURE_OF = {"sweep": "sweep", "disk_budget": "disk", "investigate": "investigate"}


def write_report(d: str | Path, stmt: dict[str, Any]) -> list[Path]:
    """Write ``summary.md``, ``index.html`` and ``<nb>.html`` per executed notebook into ``d``."""
    import nbformat

    d = Path(d)
    v = report_view(d, stmt)
    written: list[Path] = []
    parsed: dict[str, Any] = {}  # read once: rendered here, its figure shown in the index
    exporter = None
    for n in v.notebooks:
        name = str(n.get("name"))
        src = d / str(n.get("file") or f"{name}.ipynb")
        if not src.exists():
            continue
        dest = d / f"{name}.html"
        try:
            nb = parsed[name] = nbformat.reads(src.read_text(), as_version=4)
            exporter = exporter or notebook_exporter()
            render_notebook(nb, name, dest, exporter)
        except Exception as e:  # noqa: BLE001 -- a broken notebook is shown as such, not a crash
            write_atomic(
                dest,
                f"<!DOCTYPE html><p>{html.escape(src.name)} could not be rendered: "
                f"{html.escape(str(e))}</p>\n",
            )
        written.append(dest)
    pages = _pages(d, v, parsed)
    md = pages[SUMMARY]
    for name, text in pages.items():
        write_atomic(d / name, text)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        try:
            with open(step, "a") as f:
                f.write(md + "\n")
        except OSError:
            pass  # a CI nicety; the report itself is written
    return [d / SUMMARY, d / INDEX, *written]


def _pages(d: Path, v: View, parsed: dict[str, Any] | None = None) -> dict[str, str]:
    """summary.md and index.html for view ``v`` of dir ``d``: each notebook in the dir is linked
    as ``<nb>.html`` and shows its first figure (from ``parsed`` when the caller has read it,
    else read from the dir; nothing rendered)."""
    import nbformat

    parsed = parsed or {}

    links: dict[str, str] = {}
    figs: dict[str, tuple[str, str]] = {}
    for n in v.notebooks:
        name = str(n.get("name"))
        src = d / str(n.get("file") or f"{name}.ipynb")
        if not src.exists():
            continue
        links[name] = f"{name}.html"
        try:
            nb = parsed.get(name) or nbformat.reads(src.read_text(), as_version=4)
            shown = notebook_figures(nb)
        except Exception:  # noqa: BLE001 -- a broken notebook has no figure to show
            continue
        if shown and name in FIGURE_OF:
            figs[FIGURE_OF[name]] = shown[0]
    return {SUMMARY: summary_md(v), INDEX: index_html(v, links=links, figures=figs)}


def report_claims(d: str | Path, stmt: dict[str, Any]) -> list[Claim]:
    """summary.md and index.html are what the recorded values render to: a page edited after the
    run (its hash rewritten in the manifest, too) fails here, naming the first line that differs."""
    d = Path(d)
    files = (stmt.get("predicate", {}).get("canon", {}) or {}).get("files") or {}
    listed = [name for name in (SUMMARY, INDEX) if name in files]
    if not listed:
        return [Claim("report pages", True, "this run has no summary.md/index.html to check")]
    want = _pages(d, report_view(d, stmt))
    out = []
    for name in listed:
        have = (d / name).read_text() if (d / name).is_file() else None
        if have == want[name]:
            out.append(Claim(f"report {name}", True, "rendered from the recorded values"))
            continue
        if have is None:
            out.append(Claim(f"report {name}", False, f"{d / name}: missing"))
            continue
        got, exp = have.splitlines(), want[name].splitlines()
        i = next(
            (i for i, (a, b) in enumerate(zip(got, exp, strict=False)) if a != b),
            min(len(got), len(exp)),
        )
        line, other = (got[i] if i < len(got) else ""), (exp[i] if i < len(exp) else "")
        j = next(
            (j for j, (a, b) in enumerate(zip(line, other, strict=False)) if a != b),
            min(len(line), len(other)),
        )
        where = (
            f"line {i + 1}, column {j + 1}: {line[max(0, j - 30) : j + 50]!r}"
            if line
            else "a line is missing"
        )
        out.append(
            Claim(
                f"report {name}",
                False,
                f"{d / name}: says what the recorded values do not (edited after the run?); "
                f"{where}",
            )
        )
    return out


# -- finding and opening ---------------------------------------------------------------


def latest_dir(evidence_dir: str | Path) -> Path | None:
    """The newest finished evidence dir (one with a manifest) under ``evidence_dir``; run ids sort
    by time."""
    root = Path(evidence_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").exists()]
    return max(done, key=lambda p: p.name) if done else None


def has_display() -> bool:
    import sys

    return sys.platform == "darwin" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


def open_index(d: str | Path) -> tuple[Path, bool]:
    """Open ``d``'s index.html in a browser when there is a display; returns (path, opened)."""
    import webbrowser

    path = (Path(d) / INDEX).resolve()
    if not has_display():
        return path, False
    try:
        return path, webbrowser.open(path.as_uri())
    except webbrowser.Error:
        return path, False


# -- the hook an evidence run calls ------------------------------------------------------


def add_report(d: str | Path, stmt: dict[str, Any], out=print) -> dict[str, Any]:
    """Write the report for Statement ``stmt`` into ``d`` and list its files in the Statement's
    file hashes (call it before the manifest is written or signed).  A report that cannot be
    rendered is said in one line; the evidence itself is never lost to it."""
    d = Path(d)
    try:
        write_report(d, stmt)
    except Exception as e:  # noqa: BLE001 -- the evidence matters more than its page
        out(f"  report: could not render summary.md/index.html: {type(e).__name__}: {e}")
    stmt.setdefault("predicate", {}).setdefault("canon", {})["files"] = hash_tree(d)
    return stmt
