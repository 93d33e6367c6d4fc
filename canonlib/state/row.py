"""A sweep's result row (:class:`ResultRow`), its label's outcome (:class:`Outcome`, read with
:func:`parse_label`, the one place a label is parsed) and a failure's cause (:class:`Cause`).

A row is stored twice: a line of ``<run>/results.jsonl`` (``json.dumps(row, sort_keys=True)``)
and a row of the registry's ``results`` table.  Rows written by an older canon lack the keys
added since; a row remembers which keys it was read with, so a line read and written back is
the same bytes.

Pure: values in, values out (no I/O).
"""

from __future__ import annotations

import enum
import errno as errnos
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast, get_args, get_origin, get_type_hints

from canonlib.files import FileProblem, parse_json


class Outcome(enum.Enum):
    """What a recipe's turn in a sweep came to: the head of its label."""

    PASS = "PASS"  # green, and the registry holds the tested release: promoted
    FAIL = "FAIL"  # the tests said red (or the harness timed out)
    ERROR = "ERROR"  # canon could not test it (sync, meta, checkout, the environment)
    SKIP = "SKIP"  # nothing to test this week
    HELD = "HELD"  # the release asks the host for more than HOST_ACCESS accepts: not deployed
    GREEN_NOT_PROMOTED = "GREEN-NOT-PROMOTED"  # green, a gate refused the promotion
    GREEN_BUT_PROMOTE_FAILED = "GREEN-BUT-PROMOTE-FAILED"  # green, the promotion failed
    PLAN = "PLAN"  # ``sweep --plan``: what it would do


# the outcomes that fail a sweep (and a week); HELD fails it like FAIL
FAILING = frozenset({Outcome.FAIL, Outcome.ERROR, Outcome.GREEN_BUT_PROMOTE_FAILED, Outcome.HELD})
# longest first, so GREEN-BUT-PROMOTE-FAILED is never read as a shorter head
_HEADS = sorted(Outcome, key=lambda o: -len(o.value))


@dataclass(frozen=True)
class Label:
    """A label read back: its outcome (None for words canon never writes) and the words in its
    parentheses (``level 2/5``, ``no-new-version``, ``sync: …``; empty when there are none)."""

    text: str
    outcome: Outcome | None
    words: str = ""

    @property
    def failing(self) -> bool:
        """It fails the sweep (FAIL, ERROR, GREEN-BUT-PROMOTE-FAILED, HELD)."""
        return self.outcome in FAILING

    @property
    def skipped(self) -> bool:
        return self.outcome is Outcome.SKIP

    @property
    def promoted(self) -> bool:
        """The turn promoted its release (``PASS (promoted)``)."""
        return self.outcome is Outcome.PASS

    def __str__(self) -> str:
        return self.text


def label_text(outcome: Outcome, words: str | None = None) -> str:
    """A label as canon writes it: ``HEAD`` or ``HEAD (words)``."""
    return f"{outcome.value} ({words})" if words is not None else outcome.value


def parse_label(text: object) -> Label:
    """The one reader of a label: its outcome is the head it starts with (the head alone, or
    followed by a space or ``(``); anything else (None, a label canon never writes) has none."""
    s = "" if text is None else str(text)
    for head in _HEADS:
        v = head.value
        if s == v or s.startswith((v + " ", v + "(")):
            rest = s[len(v) :].strip()
            words = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
            return Label(s, head, words)
    return Label(s, None, "")


class Cause(enum.Enum):
    """Why a row failed, decided where the failure was caught and recorded with the row."""

    VERDICT = "verdict"  # the recipe's tests said red
    TIMEOUT = "timeout"  # the harness ran out of time: no verdict
    ENVIRONMENT = "environment"  # canon's environment (sync, a backend, a killed harness …)
    FULL_DISK = "full-disk"  # a write failed on a full (or almost full) disk: no verdict


FULL_DISK_ERRNOS = frozenset({errnos.ENOSPC, errnos.EDQUOT, errnos.EFBIG})

# what a failing write says on a full disk: strerror(ENOSPC, EDQUOT), git, SQLite, canon's own.
# Only rows recorded before rows carried their cause are classified by these words
# (:func:`legacy_cause`); a new failure's cause is decided where it is caught.
FULL_DISK_WORDS = (
    "no space left on device",
    "disk quota exceeded",
    "out of diskspace",
    "database or disk is full",
    "[errno 28]",
    "disk almost full",
)


def names_full_disk(text: str | None) -> bool:
    """Whether ``text`` (a failure's reason) says a write failed on a full disk."""
    low = (text or "").lower()
    return any(w in low for w in FULL_DISK_WORDS)


def full_disk_errno(number: int | None) -> bool:
    return number in FULL_DISK_ERRNOS


def legacy_cause(row: Mapping[str, object]) -> Cause | None:
    """The cause of a row recorded before rows carried one (no ``cause`` key, or NULL), from its
    words: the one place the old text rule is applied.  None for a row that did not fail."""
    verdict, error = row.get("verdict"), row.get("error")
    if verdict != "red" and not error:
        return None
    reason = row.get("reason")
    if any(isinstance(t, str) and names_full_disk(t) for t in (reason, error)):
        return Cause.FULL_DISK
    if verdict == "red":
        return Cause.VERDICT
    return Cause.ENVIRONMENT


def row_cause(row: Mapping[str, object]) -> Cause | None:
    """A row's cause: the recorded one, else (an older row) :func:`legacy_cause`."""
    recorded = row.get("cause")
    if recorded is not None:
        try:
            return Cause(recorded)  # a Cause's value, or ValueError
        except ValueError:
            return None  # a cause this canon does not know: no claim
    return legacy_cause(row)


# -- a row as JSON (results.jsonl, --json, a notebook's record) -----------------------


class AskedJSON(TypedDict, total=False):
    """One item a release asks of the host, as a row's ``host_access`` holds it."""

    item: str
    file: str
    line: int
    service: str | None
    source: str | None
    accepted: bool
    refused: str | None


class RowJSON(TypedDict, total=False):
    """A :class:`ResultRow` as a JSON object: every key optional (an older canon's row lacks
    the newer ones, a notebook records some columns only).  ``tests/test_result_row.py`` checks
    its keys and types are :class:`ResultRow`'s fields."""

    recipe: str
    decision: str | None
    latest: str | None
    canonical_before: str | None
    canonical_after: str | None
    tested_commit: str | None
    upgrade_base_kind: str | None
    upgrade_base: str | None
    rungs: dict[str, str] | None
    level: int | None
    tests_executed: int | None
    rc: int | None
    gate: str | None
    label: str | None
    incidents: list[str] | None
    warnings: list[str] | None
    duration_s: float | None
    log_path: str | None
    error: str | None
    reason: str | None
    verdict: str | None
    tag_commit: str | None
    fleet_tests: str | None
    harness: str | None
    known_red_run: str | None
    host_access: list[AskedJSON] | None
    host_accepted: list[str] | None
    first_seen: str | None
    eligible_at: str | None
    server: str | None
    cause: str | None
    errno: int | None
    run_id: str | None


@dataclass(eq=False)
class ResultRow:
    """One recipe's row of one sweep.  Every field may be None (not known, or not reached)."""

    recipe: str
    decision: str | None = None
    latest: str | None = None
    canonical_before: str | None = None
    canonical_after: str | None = None
    tested_commit: str | None = None
    upgrade_base_kind: str | None = None
    upgrade_base: str | None = None
    rungs: dict[str, str] | None = None
    level: int | None = None
    tests_executed: int | None = None
    rc: int | None = None
    gate: str | None = None
    label: str | None = None
    incidents: list[str] | None = None
    warnings: list[str] | None = None
    duration_s: float | None = None
    log_path: str | None = None
    error: str | None = None
    # 2: why, and what a verdict is about (the known-red memory's key)
    reason: str | None = None
    verdict: str | None = None
    tag_commit: str | None = None
    fleet_tests: str | None = None
    harness: str | None = None
    known_red_run: str | None = None
    # 4: what the release asks of the host and what the meta accepted; a cooling tag's times
    host_access: list[AskedJSON] | None = None
    host_accepted: list[str] | None = None
    first_seen: str | None = None
    eligible_at: str | None = None
    # 6 (servers): the server the cold run ran on
    server: str | None = None
    # 7: why it failed, decided where it was caught, and the OSError's errno when one was
    cause: Cause | None = None
    errno: int | None = None
    # the registry's run of the row (not a key of a results.jsonl line)
    run_id: str | None = None
    # the keys the row was read with, in their order (None: a new row, every field); keys no
    # field declares
    keys: tuple[str, ...] | None = field(default=None, repr=False)
    extra: dict[str, object] = field(default_factory=dict, repr=False)
    # read without a recorded cause: ``cause`` is :func:`legacy_cause`'s, and is written back
    # as it was read (absent, or NULL)
    legacy_cause: bool = field(default=False, repr=False)

    # -- reading ---------------------------------------------------------------------

    @property
    def parsed_label(self) -> Label:
        return parse_label(self.label)

    @property
    def outcome(self) -> Outcome | None:
        return self.parsed_label.outcome

    @property
    def failing(self) -> bool:
        return self.parsed_label.failing

    # -- conversions -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ResultRow:
        """A row from a results.jsonl object or a registry row; a value of the wrong type is a
        ValueError naming its key.  A row without a recorded cause is given its
        :func:`legacy_cause` (in memory only: it is not written back)."""
        if not isinstance(data.get("recipe"), str):
            raise ValueError("row: recipe: not a string")
        values: dict[str, Any] = {}
        extra: dict[str, object] = {}
        for k, v in data.items():
            want = _TYPES.get(k)
            if want is None:
                extra[k] = v
                continue
            if v is not None and (not isinstance(v, want) or isinstance(v, bool)):
                raise ValueError(f"row: {k}: {type(v).__name__}, not {want[0].__name__}")
            values[k] = v
        values["cause"] = row_cause(data)
        legacy = data.get("cause") is None
        if not legacy and values["cause"] is None:
            extra["cause"] = data["cause"]  # a cause this canon does not know: kept as read
        return cls(**values, keys=tuple(data), extra=extra, legacy_cause=legacy)

    @classmethod
    def from_json(cls, line: str | bytes) -> ResultRow:
        """A row from one line of a results.jsonl (ValueError when it is not one)."""
        try:
            data = parse_json(line)
        except FileProblem as e:
            raise ValueError(f"row: {e}") from None
        if not isinstance(data, dict):
            raise ValueError("row: not a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> RowJSON:
        """The row as a JSON object: the keys it was read with, in their order (a new row:
        every stored field), and the keys it carried that no field declares (there as read,
        though :class:`RowJSON` does not name them)."""
        names = self.keys if self.keys is not None else _STORED
        out: dict[str, object] = {}
        for name in names:
            if name == "cause" and self.legacy_cause:
                out[name] = None  # not recorded: its words were read, nothing is written
            elif name == "cause" and self.cause is None and name in self.extra:
                out[name] = self.extra[name]
            elif name in _TYPES:
                v = getattr(self, name)
                out[name] = v.value if isinstance(v, Cause) else v
            elif name in self.extra:
                out[name] = self.extra[name]
        return cast(RowJSON, out)

    def to_json(self) -> str:
        """The results.jsonl line (without its newline)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _field_types() -> dict[str, tuple[type, ...]]:
    """Each field of a row, in the order the registry's columns were added (``RESULT_FIELDS``),
    and the JSON classes its value may be, read from :class:`RowJSON` (a number: int or float)."""
    out: dict[str, tuple[type, ...]] = {}
    for name, tp in get_type_hints(RowJSON).items():
        base = next(a for a in get_args(tp) or (tp,) if a is not type(None))
        origin = get_origin(base) or base
        out[name] = (int, float) if origin is float else (origin,)
    return out


_TYPES = _field_types()
# what a new row stores (results.jsonl and the registry): every field but the registry's run id
_STORED = tuple(k for k in _TYPES if k != "run_id")
