"""The SQLite registry (``state/canon.db``): canonicals, promotion history, runs, results.

A promotion and its history row are written in one transaction, so a crash
leaves the old canonical or the new, never half.  ``promotions`` is a hash
chain: each row stores the sha256 of its canonical JSON, which includes the
previous row's hash, so an edited history row is detectable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypedDict, cast

from canonlib.errors import CanonError, StateError, sqlite_state_message
from canonlib.faults import point
from canonlib.files import (
    FileProblem,
    read_small_file,
    replace_durably,
    temp_beside,
    write_atomic,
)
from canonlib.state.marker import utcnow as utcnow  # re-exported: the registry's clock
from canonlib.state.row import ResultRow, RowJSON

GENESIS = "0" * 64
DB_NAME = "canon.db"
INSTANCE_FILE = "instance-id"  # beside canon.db: this state dir's instance id, one line
_INSTANCE_ID = re.compile(r"[0-9a-f]{32}")

RESULT_FIELDS = (
    "recipe",
    "decision",
    "latest",
    "canonical_before",
    "canonical_after",
    "tested_commit",
    "upgrade_base_kind",
    "upgrade_base",
    "rungs",
    "level",
    "tests_executed",
    "rc",
    "gate",
    "label",
    "incidents",
    "warnings",
    "duration_s",
    "log_path",
    "error",
    # 2: why, and what a verdict is about (the known-red memory's key)
    "reason",
    "verdict",
    "tag_commit",
    "fleet_tests",
    "harness",
    "known_red_run",
    # 4: what the release asks of the host and what the meta accepted; a cooling tag's times
    "host_access",
    "host_accepted",
    "first_seen",
    "eligible_at",
    # 6 (servers): the server the cold run ran on
    "server",
    # 7: why it failed (state.row.Cause), decided where it was caught; the OSError's errno
    "cause",
    "errno",
)
_JSON_FIELDS = {"rungs", "incidents", "warnings", "host_access", "host_accepted"}

RUN_FIELDS = (
    "run_id",
    "kind",
    "started_at",
    "finished_at",
    "code_version",
    "code_commit",
    "fleet_path",
    "fleet_commit",
    "config_hash",
    "status",
)

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE canonicals (
        recipe TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        tag TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        deployment TEXT,
        promoted_at TEXT NOT NULL,
        run_id TEXT
    );
    CREATE TABLE promotions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipe TEXT NOT NULL,
        version TEXT NOT NULL,
        tag TEXT NOT NULL,
        commit_sha TEXT NOT NULL,
        deployment TEXT,
        previous_version TEXT,
        previous_commit TEXT,
        promoted_at TEXT NOT NULL,
        run_id TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX promotions_recipe ON promotions(recipe, id);
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        code_version TEXT,
        code_commit TEXT,
        fleet_path TEXT,
        fleet_commit TEXT,
        config_hash TEXT,
        status TEXT NOT NULL
    );
    CREATE TABLE results (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        recipe TEXT NOT NULL,
        decision TEXT, latest TEXT, canonical_before TEXT, canonical_after TEXT,
        tested_commit TEXT, upgrade_base_kind TEXT, upgrade_base TEXT, rungs TEXT,
        level INTEGER, tests_executed INTEGER, rc INTEGER, gate TEXT, label TEXT NOT NULL,
        incidents TEXT, warnings TEXT, duration_s REAL, log_path TEXT, error TEXT,
        PRIMARY KEY (run_id, recipe)
    );
    """,
    # 2: every result row says why (reason) and what its verdict is about; a known-red
    # skip names the run that found the tag red
    """
    ALTER TABLE results ADD COLUMN reason TEXT;
    ALTER TABLE results ADD COLUMN verdict TEXT;
    ALTER TABLE results ADD COLUMN tag_commit TEXT;
    ALTER TABLE results ADD COLUMN fleet_tests TEXT;
    ALTER TABLE results ADD COLUMN harness TEXT;
    ALTER TABLE results ADD COLUMN known_red_run TEXT;
    """,
    # 3: a promotion row's kind: "promote", or "rebuild" (recreated from the slots' markers)
    """
    ALTER TABLE promotions ADD COLUMN kind TEXT NOT NULL DEFAULT 'promote';
    """,
    # 4 (instance): a key/value table; its row instance_id names the canon instance this
    # registry belongs to (filled on open by _ensure_instance, also kept in state/instance-id),
    # so `registry restore` can tell this instance's backups from another's
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 5: host access by consent (each item asked, with file, line and whether it was accepted;
    # the meta's HOST_ACCESS) and the release cooldown (when the mirror first saw the tag,
    # when it becomes eligible)
    """
    ALTER TABLE results ADD COLUMN host_access TEXT;
    ALTER TABLE results ADD COLUMN host_accepted TEXT;
    ALTER TABLE results ADD COLUMN first_seen TEXT;
    ALTER TABLE results ADD COLUMN eligible_at TEXT;
    """,
    # 6 (servers): where each canonical lives, and where each cold run ran (several servers);
    # NULL for a row written before, or on one server without a name
    """
    ALTER TABLE canonicals ADD COLUMN server TEXT;
    ALTER TABLE results ADD COLUMN server TEXT;
    """,
    # 7: a failure's cause (verdict, timeout, environment, full-disk: state.row.Cause), decided
    # where it was caught, and the errno of the OSError when one was; NULL for a row written
    # before (read with state.row.legacy_cause) and for a row that did not fail
    """
    ALTER TABLE results ADD COLUMN cause TEXT;
    ALTER TABLE results ADD COLUMN errno INTEGER;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_README = """\
This directory is canon's state: the SQLite registry (canon.db), the recipe
mirrors and the canonical slots.  canon owns it; do not edit it by hand.
Inspect it with `canon status`, `canon history RECIPE` and `canon verify`.
"""


class RegistryError(CanonError):
    """The registry file is unusable or damaged: a state problem (exit 2)."""

    exit_code = 2


class _DamageGuard:
    """``with _DamageGuard(path):`` a damaged page surfaces as sqlite3.DatabaseError mid-query:
    one clear error naming the file instead.  A plain context manager, not a decorator,
    so that mutation testing (mutmut skips decorated functions) reaches the methods it guards.
    """

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, e: BaseException | None, tb: object) -> None:
        if isinstance(e, sqlite3.DatabaseError):
            raise RegistryError(
                f"{self.path}: the registry is damaged ({e}); restore a backup with "
                "`canon registry restore FILE` or recreate it with `canon registry rebuild`"
            ) from None


@dataclass(frozen=True)
class Canonical:
    recipe: str
    version: str
    tag: str
    commit: str
    deployment: str | None
    promoted_at: str
    run_id: str | None
    server: str | None = None  # the server its slot lives on (several servers); None: the one


@dataclass(frozen=True)
class Promotion:
    id: int
    recipe: str
    version: str
    tag: str
    commit: str
    deployment: str | None
    previous_version: str | None
    previous_commit: str | None
    promoted_at: str
    run_id: str | None
    prev_hash: str
    hash: str
    kind: str = "promote"

    def body(self) -> dict[str, object]:
        """The hashed part: every field but ``hash`` (``prev_hash`` included).

        ``kind`` is hashed only when it is not the default "promote", so rows
        written before it existed keep their hashes."""
        skip = ("hash", "kind") if self.kind == "promote" else ("hash",)
        return {k: v for k, v in asdict(self).items() if k not in skip}


class RunJSON(TypedDict):
    """A row of the registry's ``runs`` table (:data:`RUN_FIELDS`)."""

    run_id: str
    kind: str
    started_at: str
    finished_at: str | None
    code_version: str | None
    code_commit: str | None
    fleet_path: str | None
    fleet_commit: str | None
    config_hash: str | None
    status: str


def _run(row: sqlite3.Row) -> RunJSON:
    return cast(RunJSON, {k: row[k] for k in RUN_FIELDS})  # RUN_FIELDS: RunJSON's keys


def promotion_hash(body: Mapping[str, object]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    head: str
    length: int
    problems: list[str]


def _promotion(row: sqlite3.Row) -> Promotion:
    """A ``promotions`` row (a backup's from before ``kind`` existed: "promote")."""
    return Promotion(
        row["id"],
        row["recipe"],
        row["version"],
        row["tag"],
        row["commit_sha"],
        row["deployment"],
        row["previous_version"],
        row["previous_commit"],
        row["promoted_at"],
        row["run_id"],
        row["prev_hash"],
        row["hash"],
        row["kind"] if "kind" in row.keys() else "promote",  # noqa: SIM118 (a Row's `in` is its values)
    )


def _canonical(row: sqlite3.Row) -> Canonical:
    return Canonical(
        row["recipe"],
        row["version"],
        row["tag"],
        row["commit_sha"],
        row["deployment"],
        row["promoted_at"],
        row["run_id"],
        row["server"],
    )


class Registry:
    """One SQLite file.  Open with :meth:`open`; every write is one transaction."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self._conn = conn

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Registry:
        """Open (and migrate) the registry; ``create=False`` refuses a missing file."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise RegistryError(f"{path}: no registry here")
            path.parent.mkdir(parents=True, exist_ok=True)
            _create_atomically(path)
        conn = None
        try:
            conn = _connect(path)
            _migrate(conn, path)
            _ensure_instance(conn, path)
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            state_problem = sqlite_state_message(e, path)  # full disk, read-only: not a bad db
            if state_problem:
                raise StateError(state_problem) from None
            raise RegistryError(
                f"{path}: not a usable canon registry ({e}); move it aside and re-run, "
                "or restore it from a backup"
            ) from None
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def instance_id(self) -> str | None:
        """The id of the canon instance this registry belongs to (set on first open)."""
        with _DamageGuard(self.path):
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
            return row[0] if row else None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    # -- canonicals ----------------------------------------------------------
    def read_registry(self, recipe: str) -> Canonical | None:
        """The recipe's current canonical, or None when it was never promoted."""
        with _DamageGuard(self.path):
            row = self._conn.execute(
                "SELECT * FROM canonicals WHERE recipe = ?", (recipe,)
            ).fetchone()
            return _canonical(row) if row else None

    def canonicals(self) -> list[Canonical]:
        with _DamageGuard(self.path):
            rows = self._conn.execute("SELECT * FROM canonicals ORDER BY recipe").fetchall()
            return [_canonical(r) for r in rows]

    def record_promotion(
        self,
        recipe: str,
        version: str,
        tag: str,
        commit: str,
        *,
        deployment: str | None = None,
        run_id: str | None = None,
        now: str | None = None,
        kind: str = "promote",
        server: str | None = None,
    ) -> Promotion:
        """Make (version, commit) the recipe's canonical and append it to the history chain.

        ``kind`` is "promote", or "rebuild" for a canonical recreated from its slot's marker;
        ``server`` is where its slot lives (kept with the canonical, not in the hashed chain)."""
        with _DamageGuard(self.path):
            now = now or utcnow()
            self._conn.execute("PRAGMA synchronous=FULL")  # a promotion survives power loss too
            try:
                return self._record_promotion(
                    recipe, version, tag, commit, deployment, run_id, now, kind, server
                )
            finally:
                self._conn.execute("PRAGMA synchronous=NORMAL")

    def _record_promotion(
        self,
        recipe: str,
        version: str,
        tag: str,
        commit: str,
        deployment: str | None,
        run_id: str | None,
        now: str,
        kind: str,
        server: str | None = None,
    ) -> Promotion:
        with self._tx() as c:
            prev = c.execute("SELECT * FROM canonicals WHERE recipe = ?", (recipe,)).fetchone()
            last = c.execute("SELECT hash FROM promotions ORDER BY id DESC LIMIT 1").fetchone()
            next_id = c.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM promotions").fetchone()[0]
            promo = Promotion(
                id=next_id,
                recipe=recipe,
                version=version,
                tag=tag,
                commit=commit,
                deployment=deployment,
                previous_version=prev["version"] if prev else None,
                previous_commit=prev["commit_sha"] if prev else None,
                promoted_at=now,
                run_id=run_id,
                prev_hash=last["hash"] if last else GENESIS,
                hash="",
                kind=kind,
            )
            promo = replace(promo, hash=promotion_hash(promo.body()))
            self._insert_history(c, promo)
            point("registry:mid-record")
            self._upsert_canonical(c, promo)
            # where its slot lives, in the same transaction (not in the hashed chain)
            c.execute("UPDATE canonicals SET server = ? WHERE recipe = ?", (server, recipe))
        return promo

    def _insert_history(self, c: sqlite3.Connection, p: Promotion) -> None:
        c.execute(
            "INSERT INTO promotions (id, recipe, version, tag, commit_sha, deployment,"
            " previous_version, previous_commit, promoted_at, run_id, prev_hash, hash, kind)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                p.id,
                p.recipe,
                p.version,
                p.tag,
                p.commit,
                p.deployment,
                p.previous_version,
                p.previous_commit,
                p.promoted_at,
                p.run_id,
                p.prev_hash,
                p.hash,
                p.kind,
            ),
        )

    def _upsert_canonical(self, c: sqlite3.Connection, p: Promotion) -> None:
        c.execute(
            "INSERT INTO canonicals (recipe, version, tag, commit_sha, deployment, promoted_at,"
            " run_id) VALUES (?,?,?,?,?,?,?) ON CONFLICT(recipe) DO UPDATE SET"
            " version=excluded.version, tag=excluded.tag, commit_sha=excluded.commit_sha,"
            " deployment=excluded.deployment, promoted_at=excluded.promoted_at,"
            " run_id=excluded.run_id",
            (p.recipe, p.version, p.tag, p.commit, p.deployment, p.promoted_at, p.run_id),
        )

    def history(self, recipe: str | None = None) -> list[Promotion]:
        """Promotions, oldest first (all recipes when ``recipe`` is None)."""
        with _DamageGuard(self.path):
            if recipe is None:
                rows = self._conn.execute("SELECT * FROM promotions ORDER BY id").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM promotions WHERE recipe = ? ORDER BY id", (recipe,)
                ).fetchall()
            return [_promotion(r) for r in rows]

    def chain_head(self) -> str:
        with _DamageGuard(self.path):
            row = self._conn.execute(
                "SELECT hash FROM promotions ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return row["hash"] if row else GENESIS

    def verify_chain(self) -> ChainCheck:
        """Re-hash every promotion; check links, and that each canonical is its last promotion.

        It reads only through history() and canonicals(), each guarded against damage."""
        problems: list[str] = []
        prev = GENESIS
        promos = self.history()
        last_by_recipe: dict[str, Promotion] = {}
        p: Promotion | None
        for p in promos:
            if p.prev_hash != prev:
                problems.append(
                    f"promotions row {p.id} ({p.recipe}): prev_hash does not link to row before it"
                )
            if promotion_hash(p.body()) != p.hash:
                problems.append(
                    f"promotions row {p.id} ({p.recipe} {p.version}): hash mismatch, row was edited"
                )
            prev = p.hash
            last_by_recipe[p.recipe] = p
        canon = {c.recipe: c for c in self.canonicals()}
        for recipe in sorted(canon.keys() | last_by_recipe.keys()):
            c, p = canon.get(recipe), last_by_recipe.get(recipe)
            if c is None or p is None:
                problems.append(f"canonicals row {recipe}: has no matching promotion history")
            elif (c.version, c.tag, c.commit) != (p.version, p.tag, p.commit):
                problems.append(
                    f"canonicals row {recipe}: {c.version}@{c.commit[:12]} differs from its last "
                    f"promotion (row {p.id}: {p.version}@{p.commit[:12]})"
                )
        return ChainCheck(not problems, prev, len(promos), problems)

    # -- runs and results ----------------------------------------------------
    def start_run(
        self, run_id: str, kind: str, *, now: str | None = None, **info: str | None
    ) -> None:
        with _DamageGuard(self.path):
            row = {k: info.get(k) for k in RUN_FIELDS}
            row.update(run_id=run_id, kind=kind, started_at=now or utcnow(), status="running")
            with self._tx() as c:
                marks = ", ".join("?" * len(RUN_FIELDS))
                c.execute(
                    f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES ({marks})",
                    [row[k] for k in RUN_FIELDS],
                )

    def finish_run(self, run_id: str, status: str, *, now: str | None = None) -> None:
        with _DamageGuard(self.path), self._tx() as c:
            c.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                (status, now or utcnow(), run_id),
            )

    def abandon_running(self, *, now: str | None = None) -> list[str]:
        """Runs left ``running`` by a canon that died: call only while holding the sweep lock."""
        with _DamageGuard(self.path):
            with self._tx() as c:
                ids = [r[0] for r in c.execute("SELECT run_id FROM runs WHERE status = 'running'")]
                c.execute(
                    "UPDATE runs SET status = 'abandoned', finished_at = ? "
                    "WHERE status = 'running'",
                    (now or utcnow(),),
                )
            return ids

    def quick_check(self) -> str | None:
        """None when SQLite's quick_check finds the file sound, else its first complaint."""
        with _DamageGuard(self.path):
            rows = [r[0] for r in self._conn.execute("PRAGMA quick_check")]
            return None if rows == ["ok"] else "; ".join(rows[:3])

    def run(self, run_id: str) -> RunJSON | None:
        with _DamageGuard(self.path):
            row = self._conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return _run(row) if row else None

    def runs(self, kind: str | None = None) -> list[RunJSON]:
        args: tuple[str, ...]
        with _DamageGuard(self.path):
            q, args = "SELECT * FROM runs", ()
            if kind:
                q, args = q + " WHERE kind = ?", (kind,)
            return [_run(r) for r in self._conn.execute(q + " ORDER BY started_at, run_id", args)]

    def record_result(self, run_id: str, row: ResultRow | RowJSON) -> None:
        """Store ``run_id``'s row for its recipe (a mapping: one that names only some keys)."""
        got = row.to_dict() if isinstance(row, ResultRow) else row
        with _DamageGuard(self.path):
            values = [
                json.dumps(got.get(k)) if k in _JSON_FIELDS else got.get(k) for k in RESULT_FIELDS
            ]
            cols = ("run_id",) + RESULT_FIELDS
            marks = ", ".join("?" * len(cols))
            with self._tx() as c:
                c.execute(
                    f"INSERT OR REPLACE INTO results ({', '.join(cols)}) VALUES ({marks})",
                    [run_id, *values],
                )

    def results(self, run_id: str | None = None, recipe: str | None = None) -> list[ResultRow]:
        """The result rows (each with its ``run_id``), oldest run first, by recipe within a run."""
        with _DamageGuard(self.path):
            q = "SELECT r.* FROM results r JOIN runs USING (run_id) WHERE 1=1"
            args: list[str] = []
            if run_id:
                q, args = q + " AND r.run_id = ?", [*args, run_id]
            if recipe:
                q, args = q + " AND r.recipe = ?", [*args, recipe]
            out = []
            for r in self._conn.execute(q + " ORDER BY runs.started_at, r.run_id, r.recipe", args):
                d = dict(r)
                for k in _JSON_FIELDS:
                    d[k] = json.loads(d[k]) if d[k] is not None else None
                try:
                    out.append(ResultRow.from_dict(d))
                except ValueError as e:
                    raise RegistryError(
                        f"{self.path}: result of run {d['run_id']}, recipe {d['recipe']!r}: "
                        f"{e}; restore a backup with `canon registry restore FILE` or recreate "
                        "it with `canon registry rebuild`"
                    ) from None
            return out


def _connect(path: Path) -> sqlite3.Connection:
    # one connection per thread (sweep workers each open their own); closing may happen elsewhere
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: every commit survives a crash of canon; promotions switch to FULL (power loss)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise RegistryError(
            f"{path}: schema version {current} is newer than this canon ({SCHEMA_VERSION}); "
            "upgrade canon"
        )
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[version].split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def read_instance_file(state_dir: str | os.PathLike[str]) -> str | None:
    """The instance id kept in ``state_dir/instance-id`` (None when missing or not an id)."""
    try:
        text = read_small_file(Path(state_dir) / INSTANCE_FILE, 1024).decode(errors="replace")
    except (FileNotFoundError, FileProblem):
        return None
    text = text.strip()
    return text if _INSTANCE_ID.fullmatch(text) else None


def _ensure_instance(conn: sqlite3.Connection, path: Path) -> None:
    """A registry without an instance id gets one (the state dir's, else a new one), silently:
    a new registry, and one made by a canon before ids.  ``canon.db`` also leaves the id in
    ``instance-id`` beside it when that is missing (a read-only state dir is not an error)."""
    try:
        ident = _instance_row(conn, path)
    except sqlite3.DatabaseError:  # damaged pages: the first real query names the file; a later
        return  # open, once the registry is sound again, gives it its id
    if path.name == DB_NAME and not (path.parent / INSTANCE_FILE).exists():
        with contextlib.suppress(OSError):
            write_atomic(path.parent / INSTANCE_FILE, ident + "\n")


def _instance_row(conn: sqlite3.Connection, path: Path) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
    ident = row[0] if row else None
    if ident is None:
        ident = read_instance_file(path.parent) or uuid.uuid4().hex
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)", (ident,)
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        ident = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()[0]
    return str(ident)


def read_file_facts(path: str | os.PathLike[str]) -> tuple[str | None, list[Promotion]]:
    """(instance id, promotions whose hash checks) of the registry file at ``path``, opened
    read-only and never migrated (a backup stays as it is); (None, []) when it is unreadable."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None, []
    conn.row_factory = sqlite3.Row
    ident, promos = None, []
    try:
        with contextlib.suppress(sqlite3.Error):
            row = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
            ident = row[0] if row else None
        with contextlib.suppress(sqlite3.Error):
            for r in conn.execute("SELECT * FROM promotions ORDER BY id"):
                p = _promotion(r)
                if promotion_hash(p.body()) == p.hash:
                    promos.append(p)
    finally:
        conn.close()
    return ident, promos


def _create_atomically(path: Path) -> None:
    """Build a migrated db in a temp file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=".canon-db-", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            _migrate(conn, path)
        finally:
            conn.close()
        # atomic, and never clobbers a db another process made first
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    readme = path.parent / "README"
    if not readme.exists():
        write_atomic(readme, _README)


def read_registry(path: str | os.PathLike[str], recipe: str) -> Canonical | None:
    """Convenience: open the registry at ``path`` and read one recipe's canonical."""
    with Registry.open(path) as reg:
        return reg.read_registry(recipe)


def sqlite_backup(src: Path, dest: Path) -> None:
    """A consistent copy of the SQLite db ``src`` (online backup API, WAL included) at ``dest``.

    One self-contained file (journal mode DELETE: no -wal/-shm beside it), filled in
    a temp file beside ``dest`` and renamed into place durably; ``src`` is opened
    read-only.  Raises :class:`sqlite3.DatabaseError` when ``src`` cannot be read.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(dest)
    try:
        source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
                target.commit()
            finally:
                target.close()
        finally:
            source.close()
        replace_durably(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
