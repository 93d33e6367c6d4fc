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
from typing import Any

from canonlib.errors import CanonError, StateError
from canonlib.files import write_atomic
from canonlib.state.marker import CANONICAL, SlotMarker
from canonlib.state.registry import GENESIS, Registry, RegistryError, sqlite_backup, utcnow

STATE_FILE = "canonicals.json"
BACKUPS_DIR = "backups"
KEEP_BACKUPS = 5
SHOWN = 8  # problems listed in a refusal
WAY_OUT = (
    "nothing was changed; the way out: `canon registry restore FILE` (a backup: {backups}) "
    "or `canon registry rebuild` (recreates the canonicals from the slots' markers)"
)


class RegistryBehind(CanonError):
    """The registry is missing, damaged or behind the deployed canonicals: a state problem."""

    exit_code = 2


# -- the state file ------------------------------------------------------------------


def state_path(state_dir: Path) -> Path:
    return Path(state_dir) / STATE_FILE


def _write_json_atomically(path: Path, doc: Any) -> None:
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")


def state_doc(reg: Registry) -> dict[str, Any]:
    history = reg.history()
    last = {p.recipe: p for p in history}
    canonicals = {}
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


def read_state(state_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(state, problem): state None when absent; a problem when it is unreadable."""
    path = state_path(state_dir)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"{path} is unreadable ({e})"
    if not isinstance(doc, dict) or not isinstance(doc.get("canonicals"), dict):
        return None, f"{path} is not a canon state file"
    return doc, None


# -- is the registry behind? -------------------------------------------------------------


@dataclass
class Finding:
    """What :func:`inspect` found; ``problems`` empty means the registry is current."""

    db: Path
    problems: list[str] = field(default_factory=list)
    canonical_markers: dict[str, SlotMarker] = field(default_factory=dict)

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
        lines.append("  " + WAY_OUT.format(backups=where))
        return "\n".join(lines)


def canonical_markers(backend: Any) -> dict[str, SlotMarker]:
    return {s: m for s, m in backend.markers().items() if m.role == CANONICAL}


def _expected(markers: dict[str, SlotMarker], state: dict[str, Any] | None) -> str | None:
    recipes = sorted(
        {m.recipe for m in markers.values()} | set((state or {}).get("canonicals", {}))
    )
    if not recipes:
        return None
    shown = ", ".join(recipes[:6]) + (f" and {len(recipes) - 6} more" if len(recipes) > 6 else "")
    return f"{len(recipes)} canonical(s) are deployed ({shown})"


def inspect(db: Path, backend: Any, state_dir: Path | None = None) -> Finding:
    """Compare the registry at ``db`` with the slots' markers and the state file."""
    db = Path(db)
    state_dir = Path(state_dir) if state_dir else db.parent
    markers = canonical_markers(backend)
    finding = Finding(db, canonical_markers=markers)
    state, problem = read_state(state_dir)
    if problem:
        finding.problems.append(problem)
    expected = _expected(markers, state)
    if not db.exists() or db.stat().st_size == 0:
        if expected:
            what = "missing" if not db.exists() else "empty (0 bytes)"
            finding.problems.append(f"the registry file is {what}, but {expected}")
        return finding
    try:
        with Registry.open(db, create=False) as reg:
            damage = reg.quick_check()
            if damage:
                finding.problems.append(f"the registry file is damaged: {damage}")
                return finding
            _compare(reg, markers, state, finding)
    except RegistryError as e:
        finding.problems.append(str(e))
    return finding


def _compare(
    reg: Registry, markers: dict[str, SlotMarker], state: dict[str, Any] | None, finding: Finding
) -> None:
    history = reg.history()
    by_id = {p.id: p for p in history}
    hashes = {p.hash for p in history}
    last = {p.recipe: p for p in history}
    canon = {c.recipe: c for c in reg.canonicals()}
    if not canon and (markers or (state or {}).get("canonicals")):
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
        n = int(state.get("chain_length") or 0)
        head = state.get("chain_head") or GENESIS
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
            pid = entry.get("promotion_id")
            p = by_id.get(pid)
            c = canon.get(recipe)
            if c is not None and (c.deployment, c.commit) == (
                entry.get("slot"),
                entry.get("commit"),
            ):
                continue
            if pid is not None and (p is None or p.hash != entry.get("promotion_hash")):
                finding.problems.append(
                    f"{recipe}: {STATE_FILE} names promotion #{pid} ({entry.get('version')}), "
                    "which the registry does not hold"
                )
            elif recipe not in canon:
                finding.problems.append(f"{recipe}: the registry lost its canonicals row")
    # one finding per cause is enough to act on
    finding.problems = list(dict.fromkeys(finding.problems))


def require_current(db: Path, backend: Any, doing: str) -> Finding:
    """Raise :class:`RegistryBehind` (exit 2) when the registry is behind; else the finding."""
    finding = inspect(db, backend)
    if finding.behind:
        raise RegistryBehind(finding.message(doing))
    return finding


def behind_warning(db: Path, backend: Any) -> str | None:
    """For read-only commands: one line when the registry is behind, else None."""
    try:
        finding = inspect(db, backend)
    except StateError:  # a state dir it cannot open (read-only, full): the command's read says so
        return None
    except CanonError as e:
        return f"canon: warning: could not check the registry: {e}"
    if not finding.behind:
        return None
    return (
        f"canon: warning: registry is behind the deployed canonicals ({finding.problems[0]}"
        f"{f'; and {len(finding.problems) - 1} more' if len(finding.problems) > 1 else ''}); "
        "see `canon registry rebuild` / `canon registry restore FILE`"
    )


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


def _checked_copy(src: Path, tmp: Path) -> None:
    """``src`` copied into ``tmp`` by the backup API, migrated, sound and with an intact chain."""
    if not src.is_file() or src.stat().st_size == 0:
        raise RegistryBehind(f"{src}: not a registry file (missing or empty)")
    try:
        backup(src, tmp)
        with Registry.open(tmp, create=False) as reg:
            damage = reg.quick_check()
            if damage:
                raise RegistryBehind(f"{src}: damaged ({damage}); pick another backup")
            chain = reg.verify_chain()
            if not chain.ok:
                raise RegistryBehind(
                    f"{src}: its promotion chain does not check ({chain.problems[0]}); pick another"
                )
    except RegistryError as e:
        raise RegistryBehind(str(e)) from None


def _swap_in(tmp: Path, db: Path) -> Path | None:
    aside = _set_aside(db)
    os.replace(tmp, db)
    return aside


def restore(db: Path, src: Path, backend: Any) -> list[str]:
    """Replace the registry with ``src`` after checking it; the old one is kept in backups."""
    src = Path(src).resolve()
    tmp = db.parent / f".restore-{_stamp()}.db"
    try:
        _checked_copy(src, tmp)
        finding = inspect(tmp, backend, state_dir=db.parent)
        if finding.behind:
            raise RegistryBehind(
                f"{src} is behind the deployed canonicals too:\n"
                + "\n".join(f"  - {p}" for p in finding.problems[:SHOWN])
                + f"\n  restore a newer backup, or `canon registry rebuild --from {src}` "
                "(keeps its history and re-adds what the markers hold)"
            )
        aside = _swap_in(tmp, db)
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


def rebuild(db: Path, backend: Any, *, base: Path | None = None) -> list[str]:
    """Recreate the canonicals from the slots' markers, as ``rebuild`` rows in the chain.

    Starts from ``base`` (a backup), else the current registry when it is
    usable, else an empty one.  A recipe whose registry canonical already is
    its marked slot gets no new row; every other marked canonical gets one.
    The slots are then re-marked with their promotion rows and the state file
    rewritten.  The registry it replaces is kept in ``state/backups``.
    """
    notes: list[str] = []
    tmp = db.parent / f".rebuild-{_stamp()}.db"
    markers = canonical_markers(backend)
    by_recipe: dict[str, tuple[str, SlotMarker]] = {}
    for slot, m in sorted(markers.items()):
        have = by_recipe.get(m.recipe)
        if have is None or (m.promotion_id or 0, m.created_at) > (
            have[1].promotion_id or 0,
            have[1].created_at,
        ):
            by_recipe[m.recipe] = (slot, m)
    run_id = f"rebuild-{_stamp()}"
    try:
        if base is not None:
            _checked_copy(Path(base).resolve(), tmp)
            notes.append(f"started from {base}")
        elif _usable(db):
            backup(db, tmp)
            notes.append(f"started from the current {db.name} (its chain checks)")
        else:
            notes.append(f"started from an empty registry ({db.name} is missing or unusable)")
        remark: dict[str, tuple[SlotMarker, Any]] = {}
        with Registry.open(tmp) as reg:
            for recipe, (slot, m) in sorted(by_recipe.items()):
                c = reg.read_registry(recipe)
                last = ([p for p in reg.history(recipe)] or [None])[-1]
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
        notes.append("no slot carries a canonical marker: the registry holds what it started from")
    return notes


# -- after a crash: finish or reap what dead runs left ------------------------------------
