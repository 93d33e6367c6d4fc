"""Recorded values: what a notebook records while it runs, read back from the executed notebook.

A notebook records each value it shows as a claim with :func:`record` (and
shows the table rendered *from* that recorded value); the manifest and
``canon verify`` read them back with :func:`read_records`, and
:func:`notebook_problems` says why an executed notebook does not count.

Every evidence dir also holds ``records.json``: ``{notebook name: {record name:
value}}``, the one structure a report renders from (``report.dir_records``);
verify checks it equals what the notebooks recorded.

What the notebooks show of a sweep row is :data:`SHOWN_COLUMNS`
(:func:`shown_rows`): verify re-derives exactly those from the bundled registry.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import (
    Any,
    NotRequired,
    Required,
    TypedDict,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from canonlib.claims import ClaimJSON
from canonlib.evidence.verdict import Verdict
from canonlib.files import FileProblem, read_json_file
from canonlib.recipe.meta import RUNGS
from canonlib.state.row import RowJSON

RECORD_MIME = "application/vnd.canon.record+json"
RECORDS = "records.json"
SHOWN_COLUMNS = [
    "recipe",
    "decision",
    "latest",
    "canonical_before",
    "canonical_after",
    "upgrade_base_kind",
    "upgrade_base",
    "level",
    "tests_executed",
    "gate",
    "label",
    "error",
    "reason",
    "warnings",
    "known_red_run",
]
HISTORY_COLUMNS = [
    "run_id",
    "decision",
    "latest",
    "canonical_after",
    "level",
    "label",
    "error",
    "reason",
    "warnings",
]
SAMEVER_COLUMNS = [
    "recipe",
    "decision",
    "latest",
    "canonical_before",
    "canonical_after",
    "upgrade_base_kind",
    "upgrade_base",
    "label",
]
BEFORE_AFTER_COLUMNS = ["recipe", "canonical_before", "canonical_after", "changed"]
CLAIM_COLUMNS = ["name", "ok", "detail"]
DISK_COLUMNS = ["recipe", "mirror_bytes", "slot_bytes", "snapshot_bytes"]


RUNG_COLUMNS = ["run_id", *RUNGS]


# -- what a notebook records, declared once --------------------------------------------


class BeforeAfter(TypedDict):
    """A recipe's canonical before and after a sweep (:func:`before_after`)."""

    recipe: str | None
    canonical_before: str | None
    canonical_after: str | None
    changed: bool


class DiskRow(TypedDict):
    recipe: str
    mirror_bytes: int
    slot_bytes: int
    snapshot_bytes: int


class DiskRecord(TypedDict):
    """What the disk-budget notebook measured: per recipe, what is shared, the total and the
    configured budget."""

    rows: list[DiskRow]
    shared: dict[str, int]
    total_bytes: int
    budget_bytes: int


class PhaseFacts(TypedDict):
    """One cold run of the tagged-promote proof (the untagged commit, then the tag)."""

    green: bool
    level: int | None
    tagged: bool
    gate: str | None
    promoted: bool


class TaggedPromoteRecord(TypedDict):
    """The tagged-promote proof's facts; verify re-derives its claims from ``scratch_db``."""

    recipe: str
    tag: str
    commit: str
    base_release: str
    scratch_db: str
    untagged: PhaseFacts
    tagged: PhaseFacts


class SameverRecord(TypedDict):
    """The same-version proof's facts: its three scratch sweeps and the tag it made."""

    recipe: str
    runs: list[str]
    new_tag: str
    new_commit: str
    scratch_db: str


# one run's rung statuses: ``run_id`` and each rung it reached (canonlib.recipe.meta.RUNGS)
RungRow = dict[str, str | None]


class Recorded(TypedDict, total=False):
    """Every value a notebook may record, by name, with its type: each notebook records the
    names :data:`NOTEBOOK_RECORDS` gives it (``complete`` and ``claims`` are shared)."""

    complete: bool
    claims: list[ClaimJSON]
    sweep_run_id: str
    sweep_rows: list[RowJSON]
    canonicals_before_after: list[BeforeAfter]
    determinism_run_id: str
    determinism_rows: list[RowJSON]
    disk: DiskRecord
    investigated: str
    investigate_rows: list[RowJSON]
    investigate_rungs: list[RungRow]
    investigate_reason: str | None
    investigate_failing_since: str | None
    investigate_failing_runs: int
    investigate_log_tail: str | None
    tagged_promote: TaggedPromoteRecord
    samever: SameverRecord
    samever_rows: list[RowJSON]
    verified: str
    verify_ok: bool


# what an evidence dir's notebooks recorded: notebook name -> its records (records.json)
DirRecords = dict[str, Recorded]


@dataclass(frozen=True)
class Declared:
    """One value a notebook records: its name, its type (:class:`Recorded`'s) and, for a
    table, the columns it is shown with.  ``optional``: a run may leave it out."""

    name: str
    columns: tuple[str, ...] | None = None
    optional: bool = False

    @property
    def type(self) -> object:
        return _hints(Recorded)[self.name]

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not what this record holds (None when it is), naming where in it."""
        return type_problem(value, self.type)


def _declare(*records: Declared) -> dict[str, Declared]:
    return {r.name: r for r in (*records, Declared("complete"))}


_CLAIMS = Declared("claims", tuple(CLAIM_COLUMNS))
# what each notebook records, declared once: the notebooks record through these (record()
# refuses a name no notebook declares and takes a table's columns from here), and verify checks
# a dir's records against the declarations of its format (one undeclared fails, named)
NOTEBOOK_RECORDS: dict[str, dict[str, Declared]] = {
    "sweep": _declare(
        Declared("sweep_run_id"),
        Declared("sweep_rows", tuple(SHOWN_COLUMNS)),
        Declared("canonicals_before_after", tuple(BEFORE_AFTER_COLUMNS)),
    ),
    "determinism": _declare(
        Declared("determinism_run_id"),
        Declared("determinism_rows", tuple(SHOWN_COLUMNS)),
        _CLAIMS,
    ),
    "disk_budget": _declare(Declared("disk", tuple(DISK_COLUMNS)), _CLAIMS),
    "investigate": _declare(
        Declared("investigated"),
        Declared("investigate_rows", tuple(HISTORY_COLUMNS)),
        Declared("investigate_rungs", tuple(RUNG_COLUMNS)),
        Declared("investigate_reason"),
        Declared("investigate_failing_since"),
        Declared("investigate_failing_runs"),
        Declared("investigate_log_tail"),
    ),
    "tagged_promote": _declare(Declared("tagged_promote"), _CLAIMS),
    "samever": _declare(
        Declared("samever"),
        Declared("samever_rows", tuple(SAMEVER_COLUMNS)),
        _CLAIMS,
    ),
    "verify": _declare(Declared("verified"), _CLAIMS, Declared("verify_ok", optional=True)),
}
# the records of each evidence format (formats 2 and 3 changed the pages and the manifest, not
# the records)
FORMAT_RECORDS: dict[int, dict[str, dict[str, Declared]]] = {
    1: NOTEBOOK_RECORDS,
    2: NOTEBOOK_RECORDS,
    3: NOTEBOOK_RECORDS,
}
DECLARED: dict[str, Declared] = {
    name: d for records in NOTEBOOK_RECORDS.values() for name, d in records.items()
}


# -- checking a value against its declared type -----------------------------------------

# each JSON type in words
_KINDS: dict[type, str] = {str: "text", int: "a whole number", float: "a number"}
_KINDS.update({bool: "true/false", list: "a list", dict: "an object", type(None): "null"})


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _holds(at: str, value: object, want: str) -> str:
    return f"{at.lstrip('.')} holds {_kind(value)}, not {want}".lstrip()


def _words(tp: object) -> str:
    """A declared type in words: ``text or null``, ``a list``, ``an object``."""
    if get_origin(tp) in (Union, UnionType):
        return " or ".join(dict.fromkeys(_words(a) for a in get_args(tp)))
    origin = get_origin(tp) or tp
    if is_typeddict(origin):
        return "an object"
    return _KINDS.get(origin, str(origin)) if isinstance(origin, type) else str(origin)


def type_problem(value: object, tp: object, at: str = "") -> str | None:
    """Why JSON ``value`` is not of declared type ``tp`` (None when it is): where in it (``[2]
    .level``) and what it holds instead.  ``tp`` is one of the types records declare: str,
    int, float (an int is one), bool, None, a union of them, ``list[T]``, ``dict[str, T]`` or a
    TypedDict (its keys that are there must hold their types; a required key must be there;
    a key it does not name is left alone, as an older or newer canon may add one)."""
    if get_origin(tp) in (Union, UnionType):
        args = get_args(tp)
        if any(type_problem(value, a) is None for a in args):
            return None
        # a list or an object where one shape of them is declared: where inside it is wrong
        shaped = [a for a in args if isinstance(value, _runtime(a))]
        if len(shaped) == 1 and isinstance(value, list | dict):
            return type_problem(value, shaped[0], at)
        return _holds(at, value, _words(tp))
    if tp is type(None) or tp is None:
        return None if value is None else _holds(at, value, "null")
    origin = get_origin(tp) or tp
    if is_typeddict(origin):
        if not isinstance(value, dict):
            return _holds(at, value, "an object")
        hints = _hints(cast(type, origin))
        for key in sorted(_required(cast(type, origin))):
            if key not in value:
                return f"{at}.{key} is missing".lstrip(".")
        for key, want in hints.items():
            if key in value and (why := type_problem(value[key], want, f"{at}.{key}")):
                return why
        return None
    ok_types = (int, float) if origin is float else (_runtime(tp),)
    if not isinstance(value, ok_types) or (isinstance(value, bool) and origin is not bool):
        return _holds(at, value, _words(tp))
    item = (get_args(tp) or (object, object))[-1]  # list[T]'s T, dict[str, T]'s T
    if isinstance(value, list) and item is not object:
        for i, v in enumerate(value):
            if why := type_problem(v, item, f"{at}[{i}]"):
                return why
    if isinstance(value, dict) and item is not object:
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{at.lstrip('.')} has a key that is not text".lstrip()
            if why := type_problem(v, item, f"{at}[{k!r}]"):
                return why
    return None


def _runtime(tp: object) -> type:
    """The class a JSON value of declared type ``tp`` is an instance of (a TypedDict: dict)."""
    origin = get_origin(tp) or tp
    if is_typeddict(origin):
        return dict
    return origin if isinstance(origin, type) else object


@functools.cache
def _hints(td: type) -> dict[str, object]:
    """A TypedDict's keys and their types, resolved once."""
    return dict(get_type_hints(td))


@functools.cache
def _required(td: type) -> frozenset[str]:
    """A TypedDict's required keys.  Its ``__required_keys__`` is wrong for a key marked
    ``Required``/``NotRequired`` when annotations are strings (``from __future__ import
    annotations``, Python 3.11): the marks are read here from the resolved hints instead."""
    required = set(getattr(td, "__required_keys__", ()))
    for key, hint in get_type_hints(td, include_extras=True).items():
        if get_origin(hint) is NotRequired:
            required.discard(key)
        elif get_origin(hint) is Required:
            required.add(key)
    return frozenset(required)


def declared_problems(fmt: int, notebook: str, recorded: Mapping[str, object]) -> list[str]:
    """What notebook ``notebook`` recorded that evidence format ``fmt`` does not declare, holds
    the wrong type, or leaves out; empty when every record is as declared."""
    declared = FORMAT_RECORDS.get(fmt, {}).get(notebook)
    if declared is None:
        return [f"format {fmt} declares no notebook {notebook!r}"]
    out = [
        f"record {name!r} is not one format {fmt} declares for {notebook}"
        for name in recorded
        if name not in declared
    ]
    for name, d in declared.items():
        if name not in recorded:
            if not d.optional and name != "complete":  # no completion: said by completion_problems
                out.append(f"record {name!r} is missing")
        elif why := d.problem(recorded[name]):
            out.append(f"record {name!r}{' ' if why.startswith('holds') else ': '}{why}")
    return out


def dir_records(raw: object) -> DirRecords:
    """What an evidence dir's notebooks recorded, read from its JSON (``records.json``, or the
    manifest's notebooks): each record kept only when it holds its declared type, so what
    reads a :data:`DirRecords` can trust its types.  A record dropped here is named by verify's
    declared-records claim (:func:`declared_problems`)."""
    out: DirRecords = {}
    if not isinstance(raw, dict):
        return out
    for notebook, recs in raw.items():
        if isinstance(notebook, str) and isinstance(recs, dict):
            kept = {
                name: v
                for name, v in recs.items()
                if name in DECLARED and DECLARED[name].problem(v) is None
            }
            out[notebook] = cast(Recorded, kept)
    return out


def before_after(rows: Sequence[RowJSON]) -> list[BeforeAfter]:
    """Each recipe's canonical before and after a sweep; ``changed`` only when they differ."""
    out = [
        BeforeAfter(
            recipe=r.get("recipe"),
            canonical_before=r.get("canonical_before"),
            canonical_after=r.get("canonical_after"),
            changed=r.get("canonical_before") != r.get("canonical_after"),
        )
        for r in rows
    ]
    return sorted(out, key=lambda r: str(r["recipe"]))


def shown_rows(rows: Sequence[RowJSON], columns: Sequence[str] = SHOWN_COLUMNS) -> list[RowJSON]:
    """The part of each result row a notebook shows (and records): ``columns`` of it, each
    there (None when the row has none)."""
    return [cast(RowJSON, {c: r.get(c) for c in columns}) for r in rows]


# -- what a record shows ------------------------------------------------------------
# A recorded value is shown by the very output that records it: text/plain (and, for a
# table, text/html) rendered here from the value.  verify re-renders and compares, so a
# notebook whose shown text was edited fails even when the hashes were recomputed.
# Keep these renderers stable: a change is a change of what old evidence verifies as.


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def table_rows(value: object) -> list[Mapping[str, object]]:
    """The rows a table record shows: the value itself, or a dict's ``rows``."""
    rows = value.get("rows", []) if isinstance(value, dict) else value
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def render_text(name: str, value: object, columns: list[str] | None = None) -> str:
    if not columns:
        return f"recorded {name} = {json.dumps(value, sort_keys=True)[:200]}"
    cells = [[_cell(r.get(c)) for c in columns] for r in table_rows(value)]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    if isinstance(value, dict):
        rest = {k: v for k, v in value.items() if k != "rows"}
        lines.append(json.dumps(rest, sort_keys=True))
    return f"recorded {name}:\n" + "\n".join(lines)


def render_html(name: str, value: object, columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in table_rows(value)
    )
    rest = ""
    if isinstance(value, dict):
        extra = {k: v for k, v in value.items() if k != "rows"}
        rest = f"<p>{html.escape(json.dumps(extra, sort_keys=True))}</p>"
    return (
        f'<table class="canon-record" data-record="{html.escape(name)}">'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>{rest}"
    )


def record_output(
    name: str, value: object, columns: list[str] | None = None
) -> tuple[dict[str, object], dict[str, object]]:
    """(data, metadata) of the display output that records ``name`` and shows it."""
    data: dict[str, object] = {
        RECORD_MIME: {name: value},
        "text/plain": render_text(name, value, columns),
    }
    if columns:
        data["text/html"] = render_html(name, value, columns)
    return data, ({RECORD_MIME: {"columns": columns}} if columns else {})


def record(name: str, value: object, columns: list[str] | None = None) -> None:
    """Record a declared value (:data:`NOTEBOOK_RECORDS`) in the executing notebook's output,
    shown as text (or, for a table, as a table of its rows); the manifest and verify read it
    back.  A name no notebook declares is refused before it reaches the evidence."""
    from IPython.display import display  # deferred: only a notebook's kernel has IPython

    d = DECLARED.get(name)
    if d is None:
        raise ValueError(f"record {name!r} is declared by no notebook (evidence/records.py)")
    data, metadata = record_output(name, value, columns or (list(d.columns) if d.columns else None))
    display(data, raw=True, metadata=metadata)


def shown_problems(nb: dict[str, Any]) -> list[str]:
    """Record outputs whose shown text is not the rendering of their recorded value."""
    problems = []
    for i, cell in enumerate(nb.get("cells", []), start=1):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = o.get("data", {})
            rec = data.get(RECORD_MIME)
            if not isinstance(rec, dict):
                continue
            columns = (o.get("metadata", {}).get(RECORD_MIME) or {}).get("columns")
            for name, value in rec.items():
                want, _ = record_output(name, value, columns)
                for mime in ("text/plain", "text/html"):
                    got = data.get(mime)
                    got = "".join(got) if isinstance(got, list) else got
                    if want.get(mime) != got:
                        problems.append(
                            f"cell {i} shows {name} as something other than its recorded value "
                            f"({mime} edited)"
                        )
    return problems


def read_records(nb: dict[str, Any]) -> dict[str, object]:
    """What notebook ``nb`` recorded, by name, as JSON (its types not checked here)."""
    out: dict[str, object] = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = o.get("data", {})
            if RECORD_MIME in data and isinstance(data[RECORD_MIME], dict):
                out.update(data[RECORD_MIME])
    return out


def notebook_problems(nb: dict[str, Any]) -> list[str]:
    """Why an executed notebook does not count.

    Unexecuted cells, errors, no completion marker, false claims.
    """
    problems = completion_problems(nb)
    claims = read_records(nb).get("claims")
    for claim in claims if isinstance(claims, list) else []:
        if isinstance(claim, dict) and not claim.get("ok"):
            problems.append(f"claim failed: {claim.get('name')}: {claim.get('detail')}")
    return problems


def completion_problems(nb: dict[str, Any]) -> list[str]:
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


NOTEBOOK_CAP = 64 << 20  # an executed notebook: 10-160 KiB in the demo's weekly dir, figures in


def load_notebook(path: Path) -> dict[str, Any]:
    """An executed notebook's JSON: ValueError (naming the file) when it is not one."""
    try:
        nb = read_json_file(path, NOTEBOOK_CAP)
    except FileProblem as e:
        raise ValueError(f"{path.name} {e}") from None
    if not isinstance(nb, dict):
        raise ValueError(f"{path.name} is not a notebook (top level is not an object)")
    return nb


# -- what a run of a suite holds --------------------------------------------------


@dataclass
class NotebookRun:
    name: str
    path: Path
    rc: int | None
    seconds: float
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)
    records: dict[str, object] = field(default_factory=dict)  # as read, types not checked

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and not self.problems


@dataclass
class EvidenceRun:
    dir: Path
    suite: str
    notebooks: list[NotebookRun]
    verdict: Verdict | None = None  # the week's, set when the run is finished

    @property
    def ok(self) -> bool:
        """Every notebook completed with its claims holding.

        The verdict also weighs the sweep's rows.
        """
        return bool(self.notebooks) and all(n.ok for n in self.notebooks)
