"""An evidence dir for people: ``summary.md`` and ``index.html``, rendered from the recorded values.

Everything the report shows comes from the manifest's Statement (the verdict,
the notebooks, the result rows read from the bundled registry) and from what
the notebooks recorded (``records.json``, else each notebook's records in the
manifest): the same values ``canon verify`` checks, so the page cannot say
something the evidence does not.

- :func:`report_view` reads those values once into a :class:`View`: the Statement as
  :mod:`.manifest` declares it (canon's own, or one ``canon verify`` checked holds those
  types), the records through :func:`canonlib.evidence.records.dir_records` (a record of
  another type is left out, as if not recorded); :func:`page_values` turns the view into
  the plain strings the pages show;
- the pages are Jinja2 templates in package data, one folder per evidence format
  (``templates/<format>/``; HTML autoescaped, Markdown through :func:`md_text`), a
  format's templates frozen once a canon shipped them (:data:`RENDERERS`);
- :func:`write_report` writes ``summary.md``, ``index.html`` and each
  notebook as ``<nb>.html`` (nbconvert, code hidden, outputs kept) into the
  dir, and appends the summary to ``$GITHUB_STEP_SUMMARY`` when it is set;
- :func:`report_claims` re-renders a dir's pages in its format and compares bytes.
"""

from __future__ import annotations

import contextlib
import functools
import html
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup

from canonlib import tables
from canonlib.claims import Claim, ClaimJSON
from canonlib.evidence import records
from canonlib.evidence.manifest import (
    EVIDENCE_FORMAT,
    HOST_ACCESS_FORMAT,
    MANIFEST,
    OUTSIDE_CHECKS,
    CanonPredicate,
    CodeJSON,
    HostAccessEntry,
    NotebookEntry,
    Outside,
    Statement,
    hash_tree,
)
from canonlib.evidence.records import (
    NOTEBOOK_CAP,
    RECORDS,
    DirRecords,
    DiskRecord,
    Recorded,
    before_after,
)
from canonlib.files import FileProblem, read_inside, read_json_file, read_small_file, write_atomic
from canonlib.recipe.meta import RUNGS
from canonlib.state.row import AskedJSON, RowJSON, parse_label
from canonlib.sweep.words import DECISION_WORDS, FAILING_LABELS

if TYPE_CHECKING:  # imported where used: nbconvert is slow to load
    from nbconvert import HTMLExporter
    from nbformat import NotebookNode

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
# format 3 on: a release held for what it asks of the host is an outcome of its own (it fails
# the week, like FAIL); format 2 and older pages render with the table without it (``?``)
HELD_OUTCOMES: dict[str, tuple[str, str]] = {
    **{k: v for k, v in OUTCOMES.items() if k in ("ERROR", "GREEN-BUT-PROMOTE-FAILED", "FAIL")},
    "HELD": ("#8c510a", "asks the host for more than HOST_ACCESS accepts: not deployed"),
    **{k: v for k, v in OUTCOMES.items() if k not in ("ERROR", "GREEN-BUT-PROMOTE-FAILED", "FAIL")},
}
ROW_COLOURS["HELD"] = "#f1dcb4"  # no format-2 page asks for it: outcome() never says HELD there
FAILING = FAILING_LABELS  # the outcomes that fail a week
LABEL_CHARS = 32  # a longer label is shown as its outcome when the reason says the rest


# -- cells and words (pure) -----------------------------------------------------------


def outcome(label: object, table: dict[str, tuple[str, str]] = OUTCOMES) -> str:
    """A label's outcome (:func:`canonlib.state.row.parse_label`: ``PASS``, ``FAIL``, ``ERROR``,
    …) as a page's ``table`` names it, else ``?`` (:data:`OUTCOMES` has no ``HELD``: format 2
    and older pages show a held row as ``?``; :data:`HELD_OUTCOMES` has it)."""
    head = parse_label(label).outcome
    return head.value if head is not None and head.value in table else "?"


def cell(v: object) -> str:
    """A table cell: ``-`` for missing (None, NaN, empty), integers as integers, lists joined;
    never cut."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v in ("", [], {}):
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


def cells(values: Iterable[object]) -> list[str]:
    return [cell(v) for v in values]


def reason(row: RowJSON) -> str:
    """Why a row has its label, in words: the recorded reason, else the error, the gate, the
    failing rung, or what the skip means."""
    if said := row.get("reason") or row.get("error"):
        return said
    label = row.get("label") or ""
    kind = outcome(label)
    if kind == "FAIL":
        rungs = row.get("rungs") or {}
        rung = next((f"L{i} {n}" for i, n in enumerate(RUNGS, 1) if rungs.get(n) == "fail"), None)
        if "timeout" in label:
            return "the harness timed out" + (f" in {rung}" if rung else "")
        return f"{rung} failed" if rung else f"failed at level {cell(row.get('level'))}"
    if kind == "GREEN-NOT-PROMOTED" and (gate := row.get("gate")):
        return f"not promoted: {gate}"
    if kind == "SKIP" and (words := DECISION_WORDS.get(str(row.get("decision")))):
        return words.report.format(
            canonical_before=cell(row.get("canonical_before")), latest=cell(row.get("latest"))
        )
    if kind == "PASS":
        return f"{row.get('latest') or 'it'} is the canonical now"
    return "-"


def label_head(row: RowJSON) -> str:
    """The label as a table shows it beside its reason: whole when short; when its words in
    parentheses are long and the reason already says them, the outcome and ``(see reason)``."""
    label = row.get("label") or ""
    inner = label.partition("(")[2].rstrip(")")
    if len(label) <= LABEL_CHARS or not inner or inner not in reason(row):
        return label or "-"
    return f"{outcome(label)} (see reason)"


def code_line(code: CodeJSON | None) -> str:
    if not code:
        return "-"
    commit = (code.get("code_commit") or "")[:12]
    dirty = " (dirty)" if code.get("code_dirty") else ""
    return f"{code.get('code_version') or '-'} {commit}{dirty}".strip()


def notes(row: RowJSON) -> str:
    """Warnings and tag incidents, one string."""
    parts = [f"warning: {w}" for w in row.get("warnings") or []]
    parts += [f"tag incident: {i}" for i in row.get("incidents") or []]
    return "; ".join(parts)


def human_bytes(n: float | None) -> str:
    return "-" if n is None or math.isnan(n) else tables.human_bytes(n)


def short_date(iso: object) -> str:
    """``2026-11-27T21:57:27Z`` -> ``2026-11-27 21:57 UTC``."""
    text = str(iso or "")
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 else (text or "-")


class ShownClaim(ClaimJSON):
    """A claim as the pages list it, with the notebook that recorded it."""

    notebook: str


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
    code: CodeJSON | None
    notebooks: list[NotebookEntry]
    records: DirRecords
    sweep_run_id: str | None = None
    rows: list[RowJSON] = field(default_factory=list)
    claims: list[ShownClaim] = field(default_factory=list)
    disk: DiskRecord | None = None
    investigate: Recorded | None = None
    interrupted: str | None = None
    outside: Outside | None = None  # the run's signed / log
    host_access: list[HostAccessEntry] | None = None  # the manifest's record (format 3 on)


def dir_records(d: Path, canon: CanonPredicate) -> DirRecords:
    """``records.json`` when the run wrote one, else each notebook's records in the manifest;
    only the records that hold their declared types (:func:`records.dir_records`)."""
    raw: object = None
    with contextlib.suppress(OSError, FileProblem):
        raw = read_json_file(d / RECORDS, NOTEBOOK_CAP)
    if not isinstance(raw, dict):
        raw = {n["name"]: n.get("records") for n in canon["notebooks"]}
    return records.dir_records(raw)


def sweep_rows(recs: DirRecords, results: list[RowJSON]) -> tuple[str | None, list[RowJSON]]:
    """The week's sweep: the run the sweep notebook recorded, each row the bundled result with
    what the notebook recorded laid over it (the recorded value wins)."""
    rec = recs.get("sweep", {})
    run_id = rec.get("sweep_run_id")
    if run_id is None:
        return None, []
    base = {r.get("recipe"): r for r in results if r.get("run_id") == run_id}
    shown = rec.get("sweep_rows", list(base.values()))
    rows: list[RowJSON] = [{**base.get(r.get("recipe"), {}), **r} for r in shown]
    return run_id, sorted(rows, key=lambda r: str(r.get("recipe")))


def verdict_line(canon: CanonPredicate, result: str) -> str:
    v = canon.get("verdict")
    parts = [f"notebook {n} failed" for n in v["failed_notebooks"]] if v else []
    seen: dict[str, str] = {}
    for r in v["failing_rows"] if v else []:
        seen.setdefault(r["recipe"], r["label"])
    parts += [f"{k} {label}" for k, label in sorted(seen.items())]
    return f"{result}: " + "; ".join(parts) if parts else result


def report_view(d: str | Path, stmt: Statement) -> View:
    """The report's values from a manifest Statement (of its declared types: canon's own, or
    one ``canon verify`` checked) and the dir's records."""
    d = Path(d)
    canon = stmt["predicate"]["canon"]
    recs = dir_records(d, canon)
    result = stmt["predicate"].get("result") or "?"
    fleet = canon.get("fleet")
    run_id, rows = sweep_rows(recs, canon.get("results", []))
    return View(
        run_id=canon.get("run_id") or d.name,
        suite=canon["suite"] or "?",
        started=canon.get("started_at", ""),
        finished=canon.get("finished_at", ""),
        result=result,
        verdict_line=verdict_line(canon, result),
        fleet_commit=fleet["commit"] if fleet else None,
        fleet_dirty=bool(fleet and fleet["dirty"]),
        code=canon.get("code"),
        notebooks=canon["notebooks"],
        records=recs,
        sweep_run_id=run_id,
        rows=rows,
        claims=[
            ShownClaim(notebook=nb, **c) for nb, r in recs.items() for c in r.get("claims", [])
        ],
        disk=next((r["disk"] for r in recs.values() if "disk" in r), None),
        investigate=recs.get("investigate") or None,
        interrupted=canon.get("interrupted"),
        outside=canon.get("outside"),
        host_access=canon.get("host_access"),
    )


def _access_status(a: AskedJSON) -> tuple[str, str]:
    """What became of one item asked, in words, and the outcome its row is coloured as."""
    if refused := a.get("refused"):
        return f"refused even if accepted: reaches canon's {refused}", "ERROR"
    if a.get("accepted"):
        return "WARNING: accepted (HOST_ACCESS)", "GREEN-NOT-PROMOTED"
    return "NOT accepted: held, not deployed", "FAIL"


def host_access_rows(record: list[HostAccessEntry]) -> list[tuple[list[str], str]]:
    """The manifest's host-access record as table rows (recipe, as what, tag, item, where,
    status) with the outcome each is coloured as: each item a canonical or a deployed release
    asks (all accepted: a warning), each item a held release asks (file:line, accepted or
    not); one row saying so for an entry that recorded nothing.  An item shown twice (a
    release promoted in this run is both deployed and canonical) is one row, both roles."""
    out: dict[tuple[str, ...], list[str]] = {}
    for e in record:
        asked = e.get("asked")
        base = (str(e.get("recipe")), cell(e.get("tag")))
        items = (
            [("-", "-", "not recorded (no row of it says what it asks)", "SKIP")]
            if asked is None
            else [
                (cell(a.get("item")), f"{cell(a.get('file'))}:{cell(a.get('line'))}")
                + _access_status(a)
                for a in asked
            ]
        )
        for item in items:
            roles = out.setdefault((*base, *item), [])
            if str(e.get("role")) not in roles:
                roles.append(str(e.get("role")))
    return [
        ([recipe, ", ".join(roles), tag, item, where, status], kind)
        for (recipe, tag, item, where, status, kind), roles in out.items()
    ]


def outside_rows(outside: Outside | None) -> list[list[str]]:
    """What neither these pages nor ``canon verify DIR`` alone checked: per check against the
    world, what the run says of it (None: nothing) and the option that checks it."""
    signed, log = (outside.get("signed"), outside.get("log")) if outside else (None, None)
    state = {
        "signature": "signed (manifest.dsse.json)"
        if signed
        else ("unsigned: no key on the machine" if signed is False else "not recorded"),
        "upstream": "checked at the run (bundle/refs.json), not since",
        "log": f"appended to {log} (log.proof)" if log else "not recorded",
    }
    return [[name, what, state[name], opt] for name, opt, what in OUTSIDE_CHECKS]


# -- the pages: templates, one folder per format --------------------------------------
# Each page is a Jinja2 template in package data (templates/<format>/…), fed the plain values
# of :func:`page_values`.  A format's templates are frozen once a canon shipped them: verify
# re-renders an old dir with the templates of its format and compares bytes.  Format 1 (dirs
# with no format in the manifest) was written by two canons with different pages; verify tries
# each, and says which matched.


@dataclass(frozen=True)
class Renderer:
    """The page templates of one evidence format, as one canon shipped them."""

    format: int
    name: str  # the canon commit that shipped them ("" for this canon's own format)
    folder: str  # under templates/

    def __str__(self) -> str:
        return f"format {self.format}" + (f", as canon {self.name} wrote it" if self.name else "")


RENDERERS = (
    Renderer(1, "69e593b", "1/69e593b"),
    Renderer(1, "cbc0eaf", "1/cbc0eaf"),
    Renderer(2, "", "2"),  # frozen as canon d3d45ba shipped it (the last canon of format 2)
    Renderer(EVIDENCE_FORMAT, "", str(EVIDENCE_FORMAT)),
)
CURRENT = RENDERERS[-1]


def renderers(fmt: int) -> list[Renderer]:
    """The renderers of evidence format ``fmt`` (none for a format this canon does not know)."""
    return [r for r in RENDERERS if r.format == fmt]


def _escape_html(v: object) -> Markup:
    """``html.escape``, as the format-1 pages escaped (``&#x27;`` for a quote)."""
    return Markup(html.escape(str(v)))


def md_cell(v: object) -> str:
    """A Markdown table cell as format 1 wrote it: ``|`` escaped, newlines as spaces."""
    return cell(v).replace("|", "\\|").replace("\n", " ")


# Markdown's marks, each escaped with a backslash; "_" only where it could open or close
# emphasis (inside a word, as in a path or a test name, it cannot)
_MD_MARK = re.compile(r"[\\`*\[\]|~!#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md_text(v: object) -> str:
    """Upstream text as Markdown text, never markup: ``&``, ``<`` and ``>`` as entities, every
    other Markdown mark backslash-escaped, line breaks and control characters as spaces."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(v))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_MARK.sub(lambda m: "\\" + m.group(0), text)


def md_code(v: object) -> str:
    """A Markdown code span holding ``v`` as it is: fenced by more backticks than it holds."""
    text = "".join(" " if ord(ch) < 32 else ch for ch in str(v))
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _template_source(folder: str, name: str) -> str:
    return resources.files("canonlib.evidence").joinpath("templates", folder, name).read_text()


@functools.cache
def environment(r: Renderer) -> jinja2.Environment:
    """The Jinja2 environment of renderer ``r``: autoescape on for HTML, strict about names."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: _template_source(r.folder, name)),
        autoescape=lambda name: not (name or "").endswith(".md.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(h=_escape_html, mdcell=md_cell, md=md_text, code=md_code)
    return env


def render(r: Renderer, page: str, values: Mapping[str, object]) -> str:
    return environment(r).get_template(f"{page}.j2").render(values)


def _row_style(label: object, table: dict[str, tuple[str, str]] = OUTCOMES) -> str:
    return f"background:{ROW_COLOURS[outcome(label, table)]}"


# a table's columns: a row's key, or a function of the row
Column = str | Callable[[RowJSON], str]
RECIPES_MD: tuple[Column, ...] = (
    "recipe", label_head, reason, notes, "latest", "level", "tests_executed",
)  # fmt: skip
RECIPES_HTML: tuple[Column, ...] = (
    "recipe", label_head, reason, notes, "latest", "canonical_before", "canonical_after",
    "level", "tests_executed", "duration_s",
)  # fmt: skip
HISTORY: tuple[Column, ...] = (
    "run_id", "decision", "latest", "canonical_after", "level", label_head, reason,
)  # fmt: skip


def row_cells(row: RowJSON, columns: tuple[Column, ...]) -> list[str]:
    """``row``'s cells in ``columns``, each as a table shows it (:func:`cell`)."""
    return cells(c(row) if callable(c) else row.get(c) for c in columns)


def disk_values(disk: DiskRecord) -> dict[str, object]:
    """The disk section: the total against the budget, and a row per recipe and per part
    shared (recipe or part, mirror, slot, snapshots, bytes)."""
    total, budget = disk["total_bytes"], disk["budget_bytes"]
    head = (
        f"{human_bytes(total)} of a {human_bytes(budget)} budget "
        f"({'within' if total <= budget else 'OVER'} budget)"
    )
    rows = [
        [
            cell(r["recipe"]),
            *map(human_bytes, (r["mirror_bytes"], r["slot_bytes"], r["snapshot_bytes"])),
            "-",
        ]
        for r in disk["rows"]
    ]
    rows += [[cell(k), "-", "-", "-", human_bytes(b)] for k, b in disk["shared"].items()]
    return {"head": head, "rows": rows}


def page_values(
    v: View,
    *,
    links: dict[str, str],
    figures: dict[str, tuple[str, str]],
    fmt: int = EVIDENCE_FORMAT,
) -> dict[str, object]:
    """Every value the pages show, as plain strings (a table cell already ``cell``-formatted):
    the templates lay them out and escape them.

    ``links``: notebook name -> its rendered HTML file (relative);
    ``figures``: name -> (base64 PNG, alt); ``fmt``: the evidence format the values are for
    (format 3 on, a HELD row is coloured, marked and listed in the legend as ``HELD``).
    """
    table = HELD_OUTCOMES if fmt >= HOST_ACCESS_FORMAT else OUTCOMES
    changes = before_after(v.rows)
    inv = v.investigate
    history = inv.get("investigate_rows", []) if inv else []
    access = v.host_access
    host = host_access_rows(access or [])
    return {
        "suite": v.suite,
        "run_id": v.run_id,
        "result": v.result,
        "verdict_line": v.verdict_line,
        "verdict_rest": v.verdict_line.removeprefix(v.result).removeprefix(": "),
        "started": short_date(v.started),
        "finished": short_date(v.finished),
        "fleet_commit": v.fleet_commit,
        "fleet_dirty": v.fleet_dirty,
        "fleet_html": (v.fleet_commit or "-")[:12] + (" (dirty)" if v.fleet_dirty else ""),
        "code_line": code_line(v.code),
        "interrupted": v.interrupted,
        "sweep_run_id": str(v.sweep_run_id),
        "recipes": [
            {
                "md": row_cells(r, RECIPES_MD),
                "html": row_cells(r, RECIPES_HTML),
                "style": _row_style(r.get("label"), table),
                "attrs": (str(r.get("recipe")), outcome(r.get("label"), table)),
            }
            for r in v.rows
        ],
        "legend": [(ROW_COLOURS[k], k, words) for k, (_, words) in table.items() if k != "?"],
        "changes": [
            cells([c["recipe"], c["canonical_before"], c["canonical_after"], c["changed"]])
            for c in changes
        ],
        "change_styles": ["font-weight:bold" if c["changed"] else "" for c in changes],
        "investigate": inv
        and {
            "investigated": inv.get("investigated", "-"),
            "investigated_cell": cell(inv.get("investigated")),
            "reason": inv.get("investigate_reason"),
            "reason_cell": cell(inv.get("investigate_reason")),
            "rows": [row_cells(r, HISTORY) for r in history],
            "row_styles": [_row_style(r.get("label"), table) for r in history],
            "rungs": [
                cells(r.get(k) for k in ("run_id", *RUNGS))
                for r in inv.get("investigate_rungs", [])
            ],
            "log_tail": inv.get("investigate_log_tail"),
        },
        "rungs_names": list(RUNGS),
        "claims": [cells([c["notebook"], c["name"], c["ok"], c["detail"]]) for c in v.claims],
        "claim_styles": [_row_style("PASS" if c["ok"] else "ERROR") for c in v.claims],
        "failed_claims": [
            cells([c["notebook"], c["name"], c["detail"]]) for c in v.claims if not c["ok"]
        ],
        "outside": outside_rows(v.outside),
        "host_access": None
        if access is None
        else {
            "rows": [r for r, _ in host],
            "styles": [_row_style(k) for _, k in host],
            "entries": len(access),
        },
        "disk": v.disk and disk_values(v.disk),
        "figures": figures,
        "notebooks": [_notebook_values(n, links.get(n["name"])) for n in v.notebooks],
    }


def _notebook_values(n: NotebookEntry, link: str | None) -> dict[str, object]:
    ok, seconds, problems = n.get("ok", False), cell(n.get("seconds")), cell(n.get("problems"))
    return {
        "name": n["name"],
        "link": link,
        "ipynb": _ipynb(n),
        "ok": ok,
        "style": _row_style("PASS" if ok else "ERROR"),
        "seconds": seconds,
        "problems": problems,
        "md": [cell(n["name"]), "ok" if ok else "FAILED", seconds, problems],
    }


def pages(
    v: View,
    *,
    links: dict[str, str],
    figures: dict[str, tuple[str, str]],
    renderer: Renderer = CURRENT,
) -> dict[str, str]:
    """summary.md and index.html of view ``v``, as ``renderer`` renders them."""
    values = page_values(v, links=links, figures=figures, fmt=renderer.format)
    return {SUMMARY: render(renderer, SUMMARY, values), INDEX: render(renderer, INDEX, values)}


# -- writing ---------------------------------------------------------------------------

_EXPORTER: list[HTMLExporter] = []
_EXPORTER_LOCK = threading.Lock()


def notebook_exporter() -> HTMLExporter:
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


def render_notebook(nb: NotebookNode, name: str, dest: Path) -> None:
    """Notebook ``nb`` as a page of its own: no scripts, nothing fetched, a link to the index."""
    body, _ = notebook_exporter().from_notebook_node(nb)
    values = {"title": name, "index": INDEX, "body": Markup(body)}  # nbconvert escaped the body
    write_atomic(dest, render(CURRENT, "notebook.html", values))


def notebook_figures(nb: NotebookNode) -> list[tuple[str, str]]:
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


def _ipynb(n: NotebookEntry) -> str:
    """The file of notebook entry ``n``, in the dir."""
    return n.get("file") or f"{n['name']}.ipynb"


def _read_notebook(src: Path) -> NotebookNode:
    import nbformat

    nb: NotebookNode = nbformat.reads(read_small_file(src, NOTEBOOK_CAP).decode(), as_version=4)
    return nb


def _in_dir(d: Path, v: View) -> dict[str, Path]:
    """Each notebook of view ``v`` whose file is in dir ``d``: name -> file."""
    return {n["name"]: d / _ipynb(n) for n in v.notebooks if (d / _ipynb(n)).exists()}


def write_report(d: str | Path, stmt: Statement) -> list[Path]:
    """Write ``summary.md``, ``index.html`` and ``<nb>.html`` per executed notebook into ``d``."""
    d = Path(d)
    v = report_view(d, stmt)
    written: list[Path] = []
    parsed: dict[str, NotebookNode] = {}  # read once: rendered here, its figure shown in the index
    for name, src in _in_dir(d, v).items():
        dest = d / f"{name}.html"
        try:
            nb = parsed[name] = _read_notebook(src)
            render_notebook(nb, name, dest)
        except Exception as e:  # noqa: BLE001 -- a broken notebook is shown as such, not a crash
            values = {"file": src.name, "error": str(e)}
            write_atomic(dest, render(CURRENT, "unrendered.html", values))
        written.append(dest)
    links, figs = _links_figures(d, v, parsed)
    written_pages = pages(v, links=links, figures=figs)
    for name, text in written_pages.items():
        write_atomic(d / name, text)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        try:
            with open(step, "a") as f:
                f.write(written_pages[SUMMARY] + "\n")
        except OSError:
            pass  # a CI nicety; the report itself is written
    return [d / SUMMARY, d / INDEX, *written]


def _links_figures(
    d: Path, v: View, parsed: Mapping[str, NotebookNode]
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What the pages of view ``v`` of dir ``d`` link and show, whatever renders them: each
    notebook in the dir linked as ``<nb>.html``, and its first figure (from ``parsed`` when the
    caller has read it, else read from the dir; nothing rendered)."""
    links: dict[str, str] = {}
    figs: dict[str, tuple[str, str]] = {}
    for name, src in _in_dir(d, v).items():
        links[name] = f"{name}.html"
        if name not in FIGURE_OF:
            continue
        try:
            shown = notebook_figures(parsed.get(name) or _read_notebook(src))
        except Exception:  # noqa: BLE001 -- a broken notebook has no figure to show
            continue
        if shown:
            figs[FIGURE_OF[name]] = shown[0]
    return links, figs


def page_format(canon: Mapping[str, object]) -> int | None:
    """The evidence format a manifest's ``canon`` object says its pages are in (1 when it says
    none); None when the field is there but not a format number.  It takes the object as JSON,
    not as a :class:`CanonPredicate`: a newer canon's manifest need not be today's Statement."""
    fmt = canon.get("format", 1)
    return fmt if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt >= 1 else None


def newer_format(canon: Mapping[str, object]) -> int | None:
    """The format of a dir written by a newer canon than this one, from its manifest's
    ``canon`` object as JSON (None when this canon knows its format)."""
    fmt = page_format(canon)
    return fmt if fmt is not None and fmt > EVIDENCE_FORMAT else None


def _difference(path: Path, have: str, want: str) -> str:
    """Where page ``have`` first differs from ``want``: its line and column, and the text there."""
    got, exp = have.splitlines(), want.splitlines()
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
    return f"{path}: says what the recorded values do not (edited after the run?); {where}"


def report_claims(d: str | Path, stmt: Statement) -> list[Claim]:
    """summary.md and index.html are what the recorded values render to, in the dir's format: a
    page edited after the run (its hash rewritten in the manifest, too) fails here, naming the
    first line that differs.  A format-1 dir may match either canon that wrote that format; the
    claim names the one that did.  A dir of a newer format is not checked here (the caller says
    so in one line: :func:`newer_format`)."""
    d = Path(d)
    canon = stmt["predicate"]["canon"]
    listed = [name for name in (SUMMARY, INDEX) if name in canon["files"]]
    if not listed:
        return [Claim("report pages", True, "this run has no summary.md/index.html to check")]
    fmt = page_format(canon)
    if fmt is None:
        return [Claim("report pages", False, f"{d / MANIFEST}: its format is not a number")]
    if fmt > EVIDENCE_FORMAT:
        return []
    have: dict[str, str | None] = {}
    for n in listed:
        try:
            have[n] = read_inside(d, n, NOTEBOOK_CAP).decode(errors="replace")
        except FileNotFoundError:
            have[n] = None
        except FileProblem as e:
            return [Claim(f"report {n}", False, f"{d / n} {e}")]
    view = report_view(d, stmt)
    links, figs = _links_figures(d, view, {})  # read once, whichever renderers are tried
    tried = [(r, pages(view, links=links, figures=figs, renderer=r)) for r in renderers(fmt)]
    # the renderer that matched most pages (the newest on a tie): the pages are compared with it
    _, best, want = max(
        (sum(have[n] == w[n] for n in listed), i, r, w) for i, (r, w) in enumerate(tried)
    )[1:]
    return [
        Claim(f"report {n}", True, f"rendered from the recorded values ({best})")
        if have[n] == want[n]
        else Claim(f"report {n}", False, f"{d / n}: missing")
        if have[n] is None
        else Claim(f"report {n}", False, _difference(d / n, have[n] or "", want[n]))
        for n in listed
    ]


# -- finding and opening ---------------------------------------------------------------


def latest_dir(evidence_dir: str | Path) -> Path | None:
    """The newest finished evidence dir (one with a manifest) under ``evidence_dir``; run ids sort
    by time."""
    root = Path(evidence_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).exists()]
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


def add_report(d: str | Path, stmt: Statement, out: Callable[[str], None] = print) -> None:
    """Write the report for Statement ``stmt`` (canon's own, being made) into ``d`` and list its
    files in the Statement's file hashes (call it before the manifest is written or signed).  A
    report that cannot be rendered is said in one line; the evidence itself is never lost to it."""
    d = Path(d)
    try:
        write_report(d, stmt)
    except Exception as e:  # noqa: BLE001 -- the evidence matters more than its page
        out(f"  report: could not render summary.md/index.html: {type(e).__name__}: {e}")
    stmt["predicate"]["canon"]["files"] = hash_tree(d)
