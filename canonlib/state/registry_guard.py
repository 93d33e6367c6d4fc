"""A registry that knows when it is behind: the state file, the markers, backup/restore/rebuild.

Three records of the canonicals, kept apart on purpose:

- the registry (``state/canon.db``): the history and the current canonicals;
- the state file (``state/canonicals.json``), rewritten atomically after
  every promotion: each canonical's slot, version, commit and promotion row
  (id + chain hash), and the chain's head and length;
- the markers on the slots themselves (written by whoever made the slot).

The registry may be ahead of the other two (a crash between the record and
the marker), never behind: a registry that is missing, empty (0 bytes),
damaged, rolled back to an older copy, or that lost rows is found on start
by :func:`inspect`, and every mutating command refuses (exit 2) with the way
out: ``canon registry restore FILE`` or ``canon registry rebuild``.  Nothing
here ever deletes a slot.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypedDict

from canonlib.errors import CanonError, StateError
from canonlib.files import FileProblem, read_json_file, write_atomic
from canonlib.recipe.mirror import Mirror
from canonlib.state.marker import CANONICAL, SlotMarker
from canonlib.state.registry import (
    GENESIS,
    INSTANCE_FILE,
    Promotion,
    Registry,
    RegistryError,
    read_file_facts,
    read_instance_file,
    sqlite_backup,
    utcnow,
)

STATE_FILE = "canonicals.json"
BACKUPS_DIR = "backups"
KEEP_BACKUPS = 5


SHOWN = 8  # problems listed in a refusal
WAY_OUT = (
    "nothing was changed; the way out: `canon registry restore FILE` (a backup: {backups}) "
    "or `canon registry rebuild` (recreates the canonicals from the slots' markers it can "
    "verify{unverified})"
)
NOT_ADOPTED = "unverified marker: not adopted"
STATE_CAP = 4 << 20  # canonicals.json: a few hundred bytes a recipe


class Slots(Protocol):
    """What the guard asks of a backend (every :class:`canonlib.backends.Backend` is one; state/
    sits below backends/, so it names only the calls it makes)."""

    def markers(self) -> dict[str, SlotMarker]: ...

    def scan_markers(self) -> tuple[dict[str, SlotMarker], dict[str, str]]: ...

    def mark(self, slot: str, marker: SlotMarker) -> None: ...

    def slots(self) -> list[str]: ...


class RegistryBehind(CanonError):
    """The registry is missing, damaged or behind the deployed canonicals: a state problem."""

    exit_code = 2


# -- the state file ------------------------------------------------------------------


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


class StateCanonical(TypedDict):
    """One recipe's canonical in ``canonicals.json``; read back (:func:`read_state`), a key that
    is missing or of another type is None."""

    version: str | None
    tag: str | None
    commit: str | None
    slot: str | None
    promotion_id: int | None
    promotion_hash: str | None


class StateJSON(TypedDict):
    """``canonicals.json``: what the registry held when canon last wrote it."""

    chain_head: str
    chain_length: int
    canonicals: dict[str, StateCanonical]
    updated_at: str


def _write_json_atomically(path: Path, doc: StateJSON) -> None:
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def state_doc(reg: Registry) -> StateJSON:
    history = reg.history()
    last = {p.recipe: p for p in history}
    canonicals: dict[str, StateCanonical] = {}
    for c in reg.canonicals():
        p = last.get(c.recipe)
        canonicals[c.recipe] = {
            "version": c.version,
            "tag": c.tag,
            "commit": c.commit,
            "slot": c.deployment,
            "promotion_id": p.id if p else None,
            "promotion_hash": p.hash if p else None,
        }
    return {
        "chain_head": history[-1].hash if history else GENESIS,
        "chain_length": len(history),
        "canonicals": canonicals,
        "updated_at": utcnow(),
    }


def write_state(reg: Registry) -> Path:
    """Rewrite ``canonicals.json`` beside the registry from what it now holds."""
    path = state_path(reg.path.parent)
    _write_json_atomically(path, state_doc(reg))
    return path


def read_state(state_dir: Path) -> tuple[StateJSON | None, str | None]:
    """(state, problem): state None when absent; a problem when it is unreadable."""
    path = state_path(state_dir)
    try:
        doc: object = read_json_file(path, STATE_CAP)
    except FileNotFoundError:
        return None, None
    except FileProblem as e:
        return None, f"{path} {e}"
    if not isinstance(doc, dict):
        return None, f"{path} is not a canon state file"
    entries, length = doc.get("canonicals"), doc.get("chain_length", 0)
    if (
        not isinstance(entries, dict)
        or not all(isinstance(e, dict) for e in entries.values())
        or not isinstance(length, int)
    ):
        return None, f"{path} is not a canon state file"
    head, updated = doc.get("chain_head"), doc.get("updated_at")
    return {
        "chain_head": head if isinstance(head, str) else "",
        "chain_length": length,
        "canonicals": {str(r): _state_canonical(e) for r, e in entries.items()},
        "updated_at": updated if isinstance(updated, str) else "",
    }, None


def _state_canonical(entry: dict[str, object]) -> StateCanonical:
    def text(key: str) -> str | None:
        v = entry.get(key)
        return v if isinstance(v, str) else None

    pid = entry.get("promotion_id")
    return {
        "version": text("version"),
        "tag": text("tag"),
        "commit": text("commit"),
        "slot": text("slot"),
        "promotion_id": pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        "promotion_hash": text("promotion_hash"),
    }


# -- is the registry behind? -------------------------------------------------------------


@dataclass
class MarkerScan:
    """The canonical markers on the slots, sorted by what canon can prove of them.

    ``verified``: slot -> marker whose promotion (id and hash) canon recorded (in the
    registry's chain, a backup's, or the state file) for this recipe, version, commit and
    slot, and whose tag the mirror holds at that commit.  ``unverified``: slot -> why not
    (never adopted).  ``bad``: slot -> the one line saying why its marker could not be read.
    ``conflicts``: recipe -> two or more verified slots, none replacing the other.
    """

    verified: dict[str, SlotMarker] = field(default_factory=dict)
    unverified: dict[str, str] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    conflicts: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per marker canon will not use, and per recipe claimed twice."""
        out = [f"{line}" for _slot, line in sorted(self.bad.items())]
        out += [f"slot {s}: {NOT_ADOPTED}: {why}" for s, why in sorted(self.unverified.items())]
        out += [
            f"{r}: slots {' and '.join(slots)} both carry a verified canonical marker; "
            "remove or re-mark all but one before `canon registry rebuild`"
            for r, slots in sorted(self.conflicts.items())
        ]
        return out


@dataclass
class Finding:
    """What :func:`inspect` found; ``problems`` empty means the registry is current."""

    db: Path
    problems: list[str] = field(default_factory=list)
    canonical_markers: dict[str, SlotMarker] = field(default_factory=dict)
    scan: MarkerScan = field(default_factory=MarkerScan)

    @property
    def behind(self) -> bool:
        return bool(self.problems)

    def message(self, doing: str) -> str:
        backups = newest_backup(self.db.parent)
        where = str(backups) if backups else f"none in {self.db.parent / BACKUPS_DIR}"
        lines = [f"registry {self.db} is behind the deployed canonicals; refusing to {doing}:"]
        lines += [f"  - {p}" for p in self.problems[:SHOWN]]
        if len(self.problems) > SHOWN:
            lines.append(f"  - and {len(self.problems) - SHOWN} more")
        lines += [f"  - {p}" for p in self.scan.lines()[:SHOWN]]
        n = len(self.scan.unverified) + len(self.scan.bad)
        if self.scan.conflicts:
            lines.append(
                f"  nothing was changed; `canon registry rebuild` refuses while a recipe has two "
                f"canonical slots; or `canon registry restore FILE` (a backup: {where})"
            )
        else:
            lines.append(
                "  "
                + WAY_OUT.format(
                    backups=where,
                    unverified=f"; it adopts none of the {n} listed as not read or unverified"
                    if n
                    else "",
                )
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Witness:
    """What a witness says of a promotion: a registry's row (its own, a backup's) or an entry
    of the state file (None: the entry does not say)."""

    recipe: str
    version: str | None
    commit: str | None
    slot: str | None
    tag: str | None

    @classmethod
    def of(cls, p: Promotion) -> Witness:
        return cls(p.recipe, p.version, p.commit, p.deployment, p.tag)


class Witnesses:
    """The promotions canon itself recorded, read once on demand: the registry's chain,
    every backup's chain in ``state/backups`` and the state file's canonicals."""

    def __init__(
        self,
        state_dir: Path,
        db: Path | None,
        state: StateJSON | None,
        also: tuple[Path, ...] = (),
    ):
        self.state_dir, self.db, self.state, self.also = Path(state_dir), db, state, also
        self._rows: dict[tuple[int, str], tuple[Witness, str]] | None = None
        self._tags: dict[tuple[str, str], str | None] = {}

    def rows(self) -> dict[tuple[int, str], tuple[Witness, str]]:
        """(promotion id, hash) -> (what the witness says of it, where it says so)."""
        if self._rows is None:
            rows: dict[tuple[int, str], tuple[Witness, str]] = {}
            for recipe, e in sorted((self.state["canonicals"] if self.state else {}).items()):
                if e["promotion_id"] is not None:
                    row = Witness(recipe, e["version"], e["commit"], e["slot"], e["tag"])
                    rows[(e["promotion_id"], str(e["promotion_hash"]))] = (row, STATE_FILE)
            files = sorted(backups_dir(self.state_dir).glob("*.db")) + list(self.also)
            if self.db is not None:
                files.append(self.db)  # the registry's own rows win
            for f in files:
                for p in read_file_facts(f)[1]:
                    rows[(p.id, p.hash)] = (Witness.of(p), f.name)
            self._rows = rows
        return self._rows

    def tag_commit(self, recipe: str, tag: str) -> str | None:
        key = (recipe, tag)
        if key not in self._tags:
            path = self.state_dir / "mirrors" / f"{recipe}.git"
            commit = None
            with contextlib.suppress(CanonError):
                commit = Mirror(recipe, path, "").tag_commit(tag) if path.is_dir() else None
            self._tags[key] = commit
        return self._tags[key]

    def why_not(self, slot: str, m: SlotMarker) -> str | None:
        """None when ``m`` (the canonical marker on ``slot``) is proven, else why not."""
        claim = f"{m.recipe} {m.version[:60]}"
        if m.slot != slot:
            return f"{claim}: it names slot {m.slot}, not its own"
        if m.promotion_id is None or not m.promotion_hash:
            return f"{claim}: it names no promotion"
        found = self.rows().get((m.promotion_id, m.promotion_hash))
        if found is None:
            return (
                f"{claim}: promotion #{m.promotion_id} ({m.promotion_hash[:12]}) is in neither "
                f"the registry's chain, a backup's nor {STATE_FILE}"
            )
        row, where = found
        for k, have, want in (
            ("recipe", row.recipe, m.recipe),
            ("version", row.version, m.version),
            ("commit", row.commit, m.commit),
        ):
            if have != want:
                return f"{claim}: promotion #{m.promotion_id} in {where} is for {k} {have}"
        if row.slot != slot:
            return f"{claim}: promotion #{m.promotion_id} in {where} is for slot {row.slot}"
        tag = row.tag or m.version
        try:
            now = self.tag_commit(m.recipe, tag)
        except CanonError:
            now = None
        if now is None:
            return f"{claim}: tag {tag} is not in the mirror of {m.recipe}"
        if now != m.commit:
            return f"{claim}: tag {tag} points at {now[:12]} in the mirror, not {m.commit[:12]}"
        return None


def scan(
    backend: Slots, witnesses: Witnesses, named: dict[str, tuple[str | None, str]] | None = None
) -> MarkerScan:
    """Sort the backend's canonical markers (see :class:`MarkerScan`).  ``named``: recipe ->
    (slot, commit) the registry names; such a slot's marker needs no proof (nothing adopts
    it)."""
    markers, bad = backend.scan_markers()
    out = MarkerScan(bad=dict(bad))
    for slot, m in sorted(markers.items()):
        if m.role != CANONICAL:
            continue
        if (named or {}).get(m.recipe) == (slot, m.commit) and m.slot == slot:
            out.verified[slot] = m
            continue
        why = witnesses.why_not(slot, m)
        if why:
            out.unverified[slot] = why
        else:
            out.verified[slot] = m
    by_recipe: dict[str, list[str]] = {}
    for slot, m in out.verified.items():
        by_recipe.setdefault(m.recipe, []).append(slot)
    for recipe, slots in by_recipe.items():
        replaced = {out.verified[s].previous_slot for s in slots}
        live = [s for s in slots if s not in replaced]
        if len(live) > 1:
            out.conflicts[recipe] = sorted(live)
    return out


def _expected(markers: dict[str, SlotMarker], state: StateJSON | None) -> str | None:
    recipes = sorted(
        {m.recipe for m in markers.values()} | set(state["canonicals"] if state else ())
    )
    if not recipes:
        return None
    shown = ", ".join(recipes[:6]) + (f" and {len(recipes) - 6} more" if len(recipes) > 6 else "")
    return f"{len(recipes)} canonical(s) are deployed ({shown})"


def _scan_slots(
    db: Path, backend: Slots, state_dir: Path
) -> tuple[MarkerScan, StateJSON | None, str | None, bool]:
    """The slots' canonical markers sorted against the registry at ``db`` and the state file;
    with the state file, why it cannot be read, and whether ``db`` is a usable file."""
    state, problem = read_state(state_dir)
    usable = db.exists() and db.stat().st_size > 0
    named: dict[str, tuple[str | None, str]] = {}
    if usable:
        with contextlib.suppress(RegistryError, StateError), Registry.open(db, create=False) as reg:
            named = {c.recipe: (c.deployment, c.commit) for c in reg.canonicals()}
    found = scan(backend, Witnesses(state_dir, db if usable else None, state), named)
    return found, state, problem, usable


def marker_scan(db: Path, backend: Slots, state_dir: Path) -> MarkerScan:
    """The slots' canonical markers, sorted as :func:`inspect` sorts them (without its check of
    the registry itself)."""
    return _scan_slots(Path(db), backend, Path(state_dir))[0]


def inspect(db: Path, backend: Slots, state_dir: Path | None = None) -> Finding:
    """Compare the registry at ``db`` with the slots' verified markers and the state file."""
    db = Path(db)
    state_dir = Path(state_dir) if state_dir else db.parent
    found, state, problem, usable = _scan_slots(db, backend, state_dir)
    markers = found.verified
    finding = Finding(db, canonical_markers=markers, scan=found)
    if problem:
        finding.problems.append(problem)
    expected = _expected(markers, state)
    if not usable:
        what = "missing" if not db.exists() else "empty (0 bytes)"
        if expected:
            finding.problems.append(f"the registry file is {what}, but {expected}")
        elif found.unverified:  # nothing to rebuild from, and still not a fresh start
            finding.problems.append(
                f"the registry file is {what}, but {len(found.unverified)} slot(s) carry a "
                "canonical marker canon cannot verify"
            )
        return finding
    try:
        with Registry.open(db, create=False) as reg:
            damage = reg.quick_check()
            if damage:
                finding.problems.append(f"the registry file is damaged: {damage}")
                return finding
            mine, here = reg.instance_id(), read_instance_file(state_dir)
            if mine and here and mine != here:
                finding.problems.append(
                    f"the registry belongs to another canon instance ({mine}); this state dir's "
                    f"is {here} ({state_dir / INSTANCE_FILE})"
                )
            _compare(reg, markers, state, finding)
    except RegistryError as e:
        finding.problems.append(str(e))
    return finding


def _compare(
    reg: Registry, markers: dict[str, SlotMarker], state: StateJSON | None, finding: Finding
) -> None:
    history = reg.history()
    by_id = {p.id: p for p in history}
    hashes = {p.hash for p in history}
    last = {p.recipe: p for p in history}
    canon = {c.recipe: c for c in reg.canonicals()}
    if not canon and (markers or (state and state["canonicals"])):
        finding.problems.append(f"the registry holds no canonical, but {_expected(markers, state)}")
        return
    for slot, m in sorted(markers.items()):
        p = by_id.get(m.promotion_id) if m.promotion_id is not None else None
        mine = last.get(m.recipe)
        c = canon.get(m.recipe)
        if c is not None and c.deployment == slot and c.commit == m.commit:
            continue  # the registry names exactly this slot (its row may be a rebuild's)
        if m.promotion_id is not None and (p is None or p.hash != m.promotion_hash):
            if mine is not None and mine.id > m.promotion_id and mine.hash in hashes:
                continue  # the registry is ahead of this slot (a newer promotion replaced it)
            finding.problems.append(
                f"{m.recipe}: slot {slot} is the canonical {m.version} ({m.commit[:12]}, promotion "
                f"#{m.promotion_id}), which the registry does not hold"
            )
        elif m.recipe not in canon:
            finding.problems.append(
                f"{m.recipe}: the registry lost its canonicals row (slot {slot} holds {m.version})"
            )
        elif mine is not None and m.promotion_id is not None and mine.id < m.promotion_id:
            finding.problems.append(
                f"{m.recipe}: the registry's canonical {canon[m.recipe].version} is older than "
                f"slot {slot}'s {m.version}"
            )
    if state:
        n = state["chain_length"]
        head = state["chain_head"] or GENESIS
        if n > len(history):
            finding.problems.append(
                f"the registry holds {len(history)} promotion(s); {STATE_FILE} recorded {n} "
                "(an older copy, or rows were lost)"
            )
        elif head != GENESIS and head not in hashes:
            finding.problems.append(
                f"the chain head {head[:12]} recorded in {STATE_FILE} is not in the registry"
            )
        for recipe, entry in sorted(state["canonicals"].items()):
            pid = entry["promotion_id"]
            p = by_id.get(pid) if pid is not None else None
            c = canon.get(recipe)
            if c is not None and (c.deployment, c.commit) == (entry["slot"], entry["commit"]):
                continue
            if pid is not None and (p is None or p.hash != entry["promotion_hash"]):
                finding.problems.append(
                    f"{recipe}: {STATE_FILE} names promotion #{pid} ({entry['version']}), "
                    "which the registry does not hold"
                )
            elif recipe not in canon:
                finding.problems.append(f"{recipe}: the registry lost its canonicals row")
    # one finding per cause is enough to act on
    finding.problems = list(dict.fromkeys(finding.problems))


def require_current(db: Path, backend: Slots, doing: str) -> Finding:
    """Raise :class:`RegistryBehind` (exit 2) when the registry is behind; else the finding."""
    finding = inspect(db, backend)
    if finding.behind:
        raise RegistryBehind(finding.message(doing))
    return finding


def behind_warning(db: Path, backend: Slots) -> str | None:
    """For read-only commands: a line when the registry is behind, one per marker canon does
    not use (unreadable, unverified, a recipe claimed twice); None when there is nothing."""
    try:
        finding = inspect(db, backend)
    except StateError:  # a state dir it cannot open (read-only, full): the command's read says so
        return None
    except CanonError as e:
        return f"canon: warning: could not check the registry: {e}"
    lines = [f"canon: warning: {line}" for line in finding.scan.lines()]
    if finding.behind:
        more = len(finding.problems) - 1
        lines.insert(
            0,
            f"canon: warning: registry is behind the deployed canonicals ({finding.problems[0]}"
            f"{f'; and {more} more' if more else ''}); "
            "see `canon registry rebuild` / `canon registry restore FILE`",
        )
    return "\n".join(lines) or None


# -- backup / restore / rebuild --------------------------------------------------------


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def backup(db: Path, dest: Path) -> Path:
    """A consistent copy of ``db`` (SQLite online backup, WAL included), written atomically."""
    if not db.exists() or db.stat().st_size == 0:
        raise RegistryBehind(f"{db}: no registry to back up")
    dest = Path(dest)
    try:
        sqlite_backup(db, dest)
    except sqlite3.DatabaseError as e:
        raise RegistryBehind(f"{db}: cannot back it up ({e})") from None
    return dest


def backups_dir(state_dir: Path) -> Path:
    return Path(state_dir) / BACKUPS_DIR


def newest_backup(state_dir: Path) -> Path | None:
    found = sorted(backups_dir(state_dir).glob("canon-*.db"))
    return found[-1] if found else None


def auto_backup(db: Path, keep: int = KEEP_BACKUPS) -> Path | None:
    """Before a sweep writes: a backup in ``state/backups``, keeping the last ``keep``."""
    if not db.exists() or db.stat().st_size == 0:
        return None
    d = backups_dir(db.parent)
    dest = backup(db, d / f"canon-{_stamp()}.db")
    for old in sorted(d.glob("canon-*.db"))[:-keep]:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{old}{suffix}")
    return dest


def _set_aside(db: Path) -> Path | None:
    """Move the current registry (and its -wal/-shm) into backups: it is never deleted."""
    if not db.exists():
        return None
    dest = backups_dir(db.parent) / f"replaced-{_stamp()}.db"
    dest.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            os.replace(src, f"{dest}{suffix}")
    return dest


def _checked_copy(src: Path, tmp: Path, state_dir: Path) -> None:
    """``src`` copied into ``tmp`` by the backup API, this instance's, migrated, sound and with
    an intact chain.  Every message names ``src``, never the temp file."""
    if not src.is_file() or src.stat().st_size == 0:
        raise RegistryBehind(f"{src}: not a registry file (missing or empty)")
    try:
        backup(src, tmp)
        theirs, _ = read_file_facts(tmp)
        here = read_instance_file(state_dir) or _current_instance(state_dir)
        if theirs and here and theirs != here:
            raise RegistryBehind(
                f"{src} is the registry of another canon instance ({theirs}); this one is "
                f"{here} ({Path(state_dir) / INSTANCE_FILE}); refusing it: restore one of this "
                f"instance's backups (in {backups_dir(state_dir)})"
            )
        with Registry.open(tmp, create=False) as reg:
            damage = reg.quick_check()
            if damage:
                raise RegistryBehind(f"{src}: damaged ({damage}); pick another backup")
            chain = reg.verify_chain()
            if not chain.ok:
                raise RegistryBehind(
                    f"{src}: its promotion chain does not check ({chain.problems[0]}); pick another"
                )
    except (RegistryError, StateError) as e:
        raise RegistryBehind(_naming(str(e), tmp, src)) from None


def _naming(text: str, tmp: Path, src: Path) -> str:
    """``text`` with canon's temp file replaced by the file the operator gave."""
    for suffix in ("-wal", "-shm", ""):
        text = text.replace(f"{tmp}{suffix}", f"{src}{suffix}")
    return text


def _current_instance(state_dir: Path) -> str | None:
    """The current registry's instance id (None when it has none or is unusable)."""
    db = Path(state_dir) / "canon.db"
    ident, _ = read_file_facts(db) if db.exists() and db.stat().st_size else (None, [])
    return ident


def _swap_in(tmp: Path, db: Path) -> Path | None:
    aside = _set_aside(db)
    os.replace(tmp, db)
    return aside


def restore(db: Path, src: Path, backend: Slots) -> list[str]:
    """Replace the registry with ``src`` after checking it; the old one is kept in backups."""
    src = Path(src).resolve()
    tmp = db.parent / f".restore-{_stamp()}.db"
    try:
        _checked_copy(src, tmp, db.parent)
        with Registry.open(tmp, create=False) as reg:
            named = sorted(c.deployment for c in reg.canonicals() if c.deployment)
        here = set(backend.slots())
        gone = [s for s in named if s not in here]
        names_gone = f"{src} names canonical slot(s) that do not exist here: {', '.join(gone)}"
        finding = inspect(tmp, backend, state_dir=db.parent)
        if finding.behind:
            raise RegistryBehind(
                f"{src} is behind the deployed canonicals too:\n"
                + "\n".join(f"  - {_naming(p, tmp, src)}" for p in finding.problems[:SHOWN])
                + (f"\n  - {names_gone}" if gone else "")
                + f"\n  restore a newer backup, or `canon registry rebuild --from {src}` "
                "(keeps its history and re-adds what the verified markers hold)"
            )
        if gone:
            raise RegistryBehind(
                f"{names_gone}; it is not this instance's registry, or those slots were "
                "removed: restore another backup, or `canon registry rebuild`"
            )
        aside = _swap_in(tmp, db)
    except (RegistryError, StateError) as e:
        raise RegistryBehind(_naming(str(e), tmp, src)) from None
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")
    with Registry.open(db, create=False) as reg:
        write_state(reg)
        n = len(reg.canonicals())
    notes = [f"restored {db} from {src}: {n} canonical(s), chain checks"]
    if aside:
        notes.append(f"the registry it replaced is kept as {aside}")
    return notes


def _usable(db: Path) -> bool:
    if not db.exists() or db.stat().st_size == 0:
        return False
    try:
        with Registry.open(db, create=False) as reg:
            return reg.quick_check() is None and reg.verify_chain().ok
    except RegistryError:
        return False


def rebuild(db: Path, backend: Slots, *, base: Path | None = None) -> list[str]:
    """Recreate the canonicals from the slots' markers, as ``rebuild`` rows in the chain.

    Starts from ``base`` (a backup), else the current registry when it is
    usable, else an empty one.  A recipe whose registry canonical already is
    its marked slot gets no new row; every other marked canonical gets one.
    The slots are then re-marked with their promotion rows and the state file
    rewritten.  The registry it replaces is kept in ``state/backups``.
    """
    notes: list[str] = []
    tmp = db.parent / f".rebuild-{_stamp()}.db"
    state, _problem = read_state(db.parent)
    usable = _usable(db)
    named: dict[str, tuple[str | None, str]] = {}
    if usable:
        with Registry.open(db, create=False) as reg:
            named = {c.recipe: (c.deployment, c.commit) for c in reg.canonicals()}
    also = (Path(base).resolve(),) if base is not None else ()
    found = scan(backend, Witnesses(db.parent, db if usable else None, state, also), named)
    if found.conflicts:
        raise RegistryBehind(
            "nothing was changed; refusing to rebuild: "
            + "; ".join(
                f"{r}: slots {' and '.join(slots)} both carry a verified canonical marker "
                "(neither names the other as the slot it replaced); remove or re-mark all but "
                "the one that is live, then rebuild"
                for r, slots in sorted(found.conflicts.items())
            )
        )
    notes += found.lines()
    replaced = {m.previous_slot for m in found.verified.values()}
    by_recipe: dict[str, tuple[str, SlotMarker]] = {}
    for slot, m in sorted(found.verified.items()):
        if slot in replaced:
            continue
        by_recipe[m.recipe] = (slot, m)
    run_id = f"rebuild-{_stamp()}"
    try:
        if base is not None:
            _checked_copy(Path(base).resolve(), tmp, db.parent)
            notes.append(f"started from {base}")
        elif _usable(db):
            backup(db, tmp)
            notes.append(f"started from the current {db.name} (its chain checks)")
        else:
            notes.append(f"started from an empty registry ({db.name} is missing or unusable)")
        remark: dict[str, tuple[SlotMarker, Promotion]] = {}
        with Registry.open(tmp) as reg:
            for recipe, (slot, m) in sorted(by_recipe.items()):
                c = reg.read_registry(recipe)
                last = next(reversed(reg.history(recipe)), None)
                if c and c.deployment == slot and c.commit == m.commit and last is not None:
                    remark[slot] = (m, last)
                    continue
                p = reg.record_promotion(
                    recipe,
                    m.version,
                    m.version,
                    m.commit,
                    deployment=slot,
                    run_id=run_id,
                    kind="rebuild",
                    server=m.server,
                )
                remark[slot] = (m, p)
                notes.append(
                    f"{recipe}: canonical {m.version} ({m.commit[:12]}) in slot {slot}, "
                    f"from its marker (promotion #{p.id}, rebuild)"
                )
        aside = _swap_in(tmp, db)
    finally:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{tmp}{suffix}")
    for slot, (m, p) in remark.items():
        backend.mark(slot, m.as_role(CANONICAL, promotion_id=p.id, promotion_hash=p.hash))
    with Registry.open(db, create=False) as reg:
        write_state(reg)
    if aside:
        notes.append(f"the registry it replaced is kept as {aside}")
    if not by_recipe:
        notes.append(
            "no slot carries a verified canonical marker: the registry holds what it started from"
        )
    return notes


# -- after a crash: finish or reap what dead runs left ------------------------------------
