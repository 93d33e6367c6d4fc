"""The weekly sweep: sync -> decide -> cold run -> gate -> promote -> label, per recipe.

One sweep at a time per state dir (an OS lock that dies with the process).
Every enrolled mirror is synced first (in parallel, bounded); then each
recipe takes its turn in isolation: whatever goes wrong for one recipe is its
own ERROR/FAIL row and the others go on.  Labels are derived from the
registry after the recipe's turn, never from an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import json
import os
import queue as queues
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TypedDict

from canonlib import __version__, git
from canonlib.backends import Backend, make_backend, on_server
from canonlib.config import Config
from canonlib.errors import CanonError, StateError, UsageError, one_line, os_error_message
from canonlib.faults import point
from canonlib.recipe.fleet import Fleet, FleetRecipe, discover
from canonlib.recipe.meta import RecipeMeta
from canonlib.recipe.mirror import SyncReport, mirror_for, owner_tag, reap_leftovers
from canonlib.recipe.versions import latest_release
from canonlib.state import registry_guard
from canonlib.state.registry import Canonical, Registry, utcnow
from canonlib.state.row import Cause, ResultRow, RowJSON, full_disk_errno
from canonlib.sweep import admission, policy, schedule
from canonlib.sweep.knownred import disk_room, harness_identity, tests_digest
from canonlib.sweep.promote import errno_of, promote
from canonlib.sweep.recover import recover, slot_gone, slot_gone_on
from canonlib.sweep.runner import Interrupted as Interrupted  # re-exported: the sweep's signal
from canonlib.sweep.runner import cold_run
from canonlib.term import did_you_mean

if TYPE_CHECKING:
    from tqdm import tqdm


class LockedError(CanonError):
    exit_code = 75


def raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def sweep_lock(path: Path, holder: str) -> Iterator[None]:
    """An exclusive flock on ``path``; released when the process dies, however it dies.

    A lock that cannot be made (a read-only or kernel dir, a FIFO, device or symlink where
    the lock file goes) is a :class:`StateError` naming ``path``, exit 2.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        raise StateError(_lock_message(path, e)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateError(f"{path}: {_NOT_A_LOCK}")
    f = os.fdopen(fd, "r+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read(4096).strip() or "unknown"
            raise LockedError(
                f"another sweep holds {path} ({who}); try again when it has finished"
            ) from None
        except OSError as e:
            raise StateError(_lock_message(path, e)) from None
        f.seek(0)
        f.truncate()
        f.write(holder + "\n")
        f.flush()
        yield
    finally:
        f.close()


_NOT_A_LOCK = "not a regular file, and canon's lock goes there; move it away and re-run"


def _lock_message(path: Path, e: OSError) -> str:
    if e.errno == errno.ELOOP:  # O_NOFOLLOW: a symlink where the lock goes
        return f"{path}: a symbolic link, {_NOT_A_LOCK.removeprefix('not a regular file, ')}"
    if e.filename is None:
        e.filename = str(path)
    return os_error_message(e, path.parent) or (
        f"{path}: cannot make the lock there ({e.strerror or e}); point state_dir / "
        "$CANON_STATE at a directory canon may write"
    )


def new_run_id(kind: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}-{secrets.token_hex(2)}"


class CodeIdentity(TypedDict):
    """:func:`code_identity`: the running canon's version, commit and whether it is edited."""

    code_version: str
    code_commit: str | None
    code_dirty: bool | None


def code_identity() -> CodeIdentity:
    """canon's own version, git commit and dirty flag (commit None when not run from a checkout)."""
    src = Path(__file__).resolve().parents[1]  # the canonlib package
    head = git.run(["rev-parse", "HEAD"], cwd=src, check=False, timeout=30)
    if head.returncode != 0:
        return {"code_version": __version__, "code_commit": None, "code_dirty": None}
    status = git.run(["status", "--porcelain", "--", "."], cwd=src, check=False, timeout=30)
    return {
        "code_version": __version__,
        "code_commit": head.stdout.strip(),
        "code_dirty": bool(status.stdout.strip()),
    }


def any_failing(rows: list[ResultRow]) -> bool:
    return any(r.failing for r in rows)


CANONICAL_INCIDENT = "canonical "


def canonical_incident(canonical: Canonical | None, tags: dict[str, str]) -> str | None:
    """The canonical's tag deleted or moved upstream (``tags``: the mirror's tag -> commit)."""
    if canonical is None:
        return None
    now = tags.get(canonical.tag)
    if now == canonical.commit:
        return None
    what = "deleted upstream" if now is None else f"moved upstream to {now[:12]}"
    return f"{CANONICAL_INCIDENT}{canonical.tag} ({canonical.commit[:12]}): its tag was {what}"


def canonical_incidents(rows: list[ResultRow]) -> list[tuple[str, str, bool]]:
    """(recipe, incident, acknowledged) for every canonical incident; a HOLD acknowledges it."""
    return [
        (r.recipe, i, r.decision == policy.SKIP_HELD)
        for r in rows
        for i in (r.incidents or [])
        if str(i).startswith(CANONICAL_INCIDENT)
    ]


@dataclass
class SweepResult:
    run_id: str
    run_dir: Path
    results: list[ResultRow]  # one row per recipe, by recipe
    status: str
    fleet: Fleet
    plan: bool = False
    sync_reports: dict[str, SyncReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the start found and did (reaped slots …)

    @property
    def rows(self) -> list[RowJSON]:
        """The rows as JSON objects (``canon sweep --json``, the notebooks' records)."""
        return [r.to_dict() for r in self.results]

    @property
    def exit_code(self) -> int:
        """1 for a failing label, or a canonical incident not acknowledged by a HOLD."""
        open_incidents = [i for i in canonical_incidents(self.results) if not i[2]]
        return 1 if any_failing(self.results) or open_incidents else 0


Reports = dict[str, SyncReport | CanonError]  # each recipe's sync: its report, or why it failed


def sync_all(config: Config, recipes: list[str]) -> Reports:
    """Sync every mirror, ``sync.parallel`` at a time; a failure is that recipe's value."""

    def one(recipe: str) -> SyncReport | CanonError:
        try:
            return mirror_for(config, recipe).sync()
        except CanonError as e:
            return e
        except Exception as e:  # noqa: BLE001 -- isolation: an unexpected failure is this recipe's ERROR
            return CanonError(f"{recipe}: unexpected {type(e).__name__}: {e}")

    if not recipes:
        return {}
    with ThreadPoolExecutor(max_workers=min(config.sync_parallel, len(recipes))) as pool:
        return dict(zip(recipes, pool.map(one, recipes), strict=True))


def _progress(
    total: int, enabled: bool
) -> contextlib.AbstractContextManager[tqdm[NoReturn] | None]:
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm import tqdm

    return tqdm(total=total, file=sys.stderr, unit="recipe", leave=False)


class _Sweep:
    """One sweep's state; ``recipe_turn`` is one recipe's isolated path through it."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        run_id: str,
        run_dir: Path,
        plan: bool,
        harness: str,
        retry: frozenset[str] = frozenset(),
        backend: Backend | None = None,
    ) -> None:
        self.config = config
        self.run_id = run_id
        self.run_dir = run_dir
        self.plan = plan
        self.harness = harness  # identity of the harness: part of every verdict's key
        self.retry = retry  # recipes whose known-red memory is not consulted
        self.stop = (
            threading.Event()
        )  # set when the sweep is interrupted: workers abort their cold runs
        self._backend = backend
        self._local = threading.local()
        self._local.registry = registry  # the sweep's own thread uses the sweep's connection
        self._opened: list[Registry] = []
        self._write = threading.Lock()
        self._promoting = threading.Lock()  # one backend, several cold runs: one promote at a time
        self._slots: set[str] | None = None  # the backend's slots, listed once (see _gone)
        self._slots_listed = False
        self.servers: list[str] = list(config.backend.get("servers") or [])
        # several servers: placement is decided one at a time (counting the promotes in flight),
        # then one promote at a time on each server, the servers' at once (see _promote_on)
        self._placing = threading.Lock()
        self._placed: dict[str, str] = {}  # recipe -> server its promote in flight goes to
        self._server_promoting = {srv: threading.Lock() for srv in self.servers}

    @property
    def registry(self) -> Registry:
        """This thread's connection (SQLite's are per thread; writes serialise in SQLite)."""
        reg = getattr(self._local, "registry", None)
        if reg is None:
            reg = self._local.registry = Registry.open(self.config.db_path)
            with self._write:
                self._opened.append(reg)
        return reg

    def close(self) -> None:
        for reg in self._opened:
            reg.close()

    def turn(
        self, fr: FleetRecipe, synced: SyncReport | CanonError | None, server: str | None = None
    ) -> ResultRow:
        """One recipe's turn (its cold run on ``server``, when there are several), its row
        recorded (registry + results.jsonl) as soon as it is done."""
        row = self.recipe_turn(fr, synced, server)
        if not self.plan:
            self.registry.record_result(self.run_id, row)
            point("sweep:row-recorded")
            with self._write, open(self.run_dir / "results.jsonl", "a") as f:
                f.write(row.to_json() + "\n")
        return row

    def event(self, recipe: str, what: str) -> None:
        """A line of what is happening now (``progress.jsonl``), for whoever watches the run: a cold
        run can take an hour, and its row lands only at the end."""
        if self.plan:
            return
        with (
            contextlib.suppress(OSError),
            self._write,
            open(self.run_dir / "progress.jsonl", "a") as f,
        ):
            f.write(json.dumps({"recipe": recipe, "event": what}) + "\n")

    def with_room(self, error: str | None, row: ResultRow) -> str:
        """``error``, led by where the disk is almost full (the state dir, this run's TMPDIR):
        a failure there may be for want of space, and freeing it is what to do; then the row's
        cause is a full disk."""
        room = disk_room([self.config.state_dir, tempfile.gettempdir()])
        error = error or "failed"
        if room:
            row.cause = Cause.FULL_DISK
        return f"{room}: {error}" if room and "free space" not in error else error

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.config)
        return self._backend

    def recipe_turn(
        self, fr: FleetRecipe, synced: SyncReport | CanonError | None, server: str | None = None
    ) -> ResultRow:
        t0 = time.monotonic()
        row = ResultRow(fr.name, incidents=[], warnings=[])
        before = self.registry.read_registry(fr.name)
        row.canonical_before = before.version if before else None
        stage = "meta"
        try:
            if fr.error:
                raise CanonError(fr.error.removeprefix("meta: "))
            meta = fr.meta
            assert meta is not None  # discover gives a recipe either its meta or an error
            stage = "sync"
            if isinstance(synced, Exception):
                raise synced
            if synced is None:
                raise CanonError("mirror was not synced")
            report = synced
            row.incidents = report.incidents
            row.warnings = report.warnings
            stage = "decide"
            latest = latest_release(report.tags, allow_prerelease=meta.ALLOW_PRERELEASE)
            row.latest = latest
            # only a tag that would run can be known-red: the memory is read for those alone
            # (a no-op week asks the registry nothing)
            runs = policy.sweep_decision(latest, row.canonical_before, meta.HOLD)
            # the recipe's earlier rows, read at most once a turn (known-red, then known-held)
            earlier = functools.cache(lambda: self.registry.results(recipe=fr.name))
            red = self._known_red(fr, latest, report, row, earlier, look=runs == policy.RUN)
            decision = policy.sweep_decision(
                latest,
                row.canonical_before,
                meta.HOLD,
                known_red=red.run_id if red else None,
            )
            decision = self._admit(fr, meta, latest, report, row, decision, earlier)
            row.decision = decision
            if decision == policy.SKIP_KNOWN_RED:
                assert red is not None  # sweep_decision says known-red only when given one
                row.known_red_run = red.run_id
                row.reason = f"red in run {red.run_id}: {red.reason or red.label}"
            elif decision == policy.SKIP_HELD:
                row.reason = f"HOLD: {meta.HOLD}"
            elif decision == policy.SKIP_NO_NEW:
                ported = policy.backports(report.added, row.canonical_before, meta.ALLOW_PRERELEASE)
                if ported and row.canonical_before is not None:
                    row.reason = policy.backport_reason(ported, row.canonical_before)
            turn = policy.Turn(decision)
            if decision == policy.RUN:
                assert latest is not None  # sweep_decision runs only a release
                base = policy.upgrade_base(
                    latest,
                    row.canonical_before,
                    report.tags,
                    meta.UPGRADE_BASE_VERSION,
                    allow_prerelease=meta.ALLOW_PRERELEASE,
                )
                base = dataclasses.replace(base, commit=base_commit(base, before, report.tags))
                row.upgrade_base_kind, row.upgrade_base = base.kind, base.version
                if self.plan:
                    row.label = policy.plan_label(f"run {latest}, base {base.kind}")
                    return row
                stage = "cold run"
                self.event(
                    fr.name,
                    f"cold-testing {latest} (L2 from {base.kind}"
                    f"{' ' + base.version if base.version else ''})",
                )
                turn = self._run_and_promote(fr, meta, latest, base, report, row, server)
            elif self.plan:
                row.label = policy.plan_label(decision)
                return row
        except Exception as e:  # noqa: BLE001 -- isolation: whatever breaks is this recipe's ERROR row
            detail = (
                one_line(e)
                if isinstance(e, CanonError)
                else f"unexpected {type(e).__name__}: {one_line(e)}"
            )
            # the cause, decided here: the runner's for its own error (already in the row), else
            # a full disk (its errno, or the disk almost full), else the environment
            if row.cause not in (Cause.ENVIRONMENT, Cause.FULL_DISK) or isinstance(e, OSError):
                row.errno = errno_of(e)
                row.cause = Cause.FULL_DISK if full_disk_errno(row.errno) else Cause.ENVIRONMENT
            turn = policy.Turn(
                row.decision or "error", error=f"{stage}: {self.with_room(detail, row)}"
            )
            row.error = row.reason = turn.error
        # labels come from the registry after the turn; a turn that ran nothing changed nothing
        after = self.registry.read_registry(fr.name) if row.tested_commit else before
        row.canonical_after = after.version if after else None
        down = self._unreachable(after, fresh=bool(row.error))
        if down:
            row.incidents = [*(row.incidents or []), down]
        if isinstance(synced, SyncReport):  # the canonical (after the turn) against upstream's tags
            incident = canonical_incident(after, synced.tags)
            if incident:
                row.incidents = [*(row.incidents or []), incident]
        # a canonical on a server that does not answer is unreachable, not gone
        gone = None if down else self._gone(before, after)
        if gone:  # the registry names a slot that is not there: loud, and nothing torn down
            row.incidents = [*(row.incidents or []), gone]
        row.label = policy.label(
            turn, after.version if after else None, after.commit if after else None
        )
        row.duration_s = round(time.monotonic() - t0, 3)
        return row

    def _gone(self, before: Canonical | None, after: Canonical | None) -> str | None:
        """:func:`recover.slot_gone` of the canonical after a turn.  The backend's slots are
        listed once a sweep, not once a recipe (a no-op sweep would list them per recipe): no
        turn removes another recipe's canonical slot, so that listing answers for every
        canonical a turn left as it was; one a turn promoted into is looked up afresh."""
        if after is None or not after.deployment:
            return None
        if before is None or after.deployment != before.deployment:
            return slot_gone_on(self.backend, after)
        with self._write:
            if not self._slots_listed:
                try:
                    self._slots = set(self.backend.slots())
                except CanonError:
                    self._slots = None  # it cannot list them (its own step says so): no claim
                self._slots_listed = True
        return slot_gone(after, self._slots) if self._slots is not None else None

    def _admit(
        self,
        fr: FleetRecipe,
        meta: RecipeMeta,
        latest: str | None,
        report: SyncReport,
        row: ResultRow,
        decision: str,
        earlier: Callable[[], list[ResultRow]],
    ) -> str:
        """A release that would run waits out its cooldown, and one already held for what it
        asks of the host stays held (same tag commit, same HOST_ACCESS) without a checkout."""
        if decision != policy.RUN:
            return decision
        assert latest is not None  # sweep_decision runs only a release
        mirror = mirror_for(self.config, fr.name)
        wait = admission.cooling(
            self.config, meta, mirror, latest, report.tags[latest], time.time()
        )
        if wait:
            row.first_seen, row.eligible_at, row.reason = wait
            return policy.SKIP_COOLING
        key = policy.HeldKey(latest, report.tags[latest], tuple(meta.HOST_ACCESS))
        held = None if fr.name in self.retry else policy.known_held(earlier(), key)
        if held:
            row.host_access, row.host_accepted = held.host_access, held.host_accepted
            row.reason = held.reason
            return policy.HELD_HOST
        return decision

    def _unreachable(self, canonical: Canonical | None, *, fresh: bool = False) -> str | None:
        """Several servers: the canonical's server does not answer (its slot is kept, and never
        re-promoted elsewhere for that); ``fresh`` asks it now (after an error), not within
        the last seconds."""
        if canonical is None or canonical.server not in self.servers:
            return None
        server = canonical.server
        if not self.backend.answers(server, 0.0 if fresh else 5.0):  # abra's: always answers
            return None
        return f"canonical {canonical.version} unreachable: its server {server} does not answer"

    def home(self, fr: FleetRecipe, meta: RecipeMeta, canonical: Canonical | None) -> str | None:
        """Several servers: where the recipe's canonical lives after this promote.  Each other
        canonical counts where it lives, or where its promote in flight goes (the caller holds
        ``_placing``: two new recipes never both take the same least-loaded server)."""
        if not self.servers:
            return None
        current = canonical.server if canonical else None
        if current is None and canonical is not None and canonical.deployment:
            current = self.backend.server_of(canonical.deployment)
        where = {c.recipe: c.server for c in self.registry.canonicals() if c.server is not None}
        where.update(self._placed)
        where.pop(fr.name, None)
        held: dict[str, int] = {}
        for srv in where.values():
            held[srv] = held.get(srv, 0) + 1
        return schedule.home(fr.name, self.servers, pinned=meta.SERVER, current=current, held=held)

    @contextlib.contextmanager
    def _promote_on(self, fr: FleetRecipe, meta: RecipeMeta) -> Iterator[str | None]:
        """Hold what a promote must hold; yields the server it goes to (None: one backend).

        One backend: one promote at a time, as ever.  Several servers: the recipe's home is
        decided under a short global lock and counted as in flight until its promote ends; then
        one promote at a time on that server, while other servers' promotes run at once (a
        swarm promote waits seconds for its slot to converge).  The registry serialises its own
        writes (the chain append is one ``BEGIN IMMEDIATE`` transaction); each recipe has one
        turn a sweep, so one promote."""
        if not self.servers:
            with self._promoting:
                yield None
            return
        with self._placing:
            assert fr.name not in self._placed  # one turn, one promote, per recipe a sweep
            home = self.home(fr, meta, self.registry.read_registry(fr.name))
            assert home is not None  # several servers: always one of them
            self._placed[fr.name] = home
        try:
            with self._server_promoting[home]:
                yield home
        finally:
            with self._placing:
                del self._placed[fr.name]

    def _run_and_promote(
        self,
        fr: FleetRecipe,
        meta: RecipeMeta,
        latest: str,
        base: policy.UpgradeBase | None,
        report: SyncReport,
        row: ResultRow,
        server: str | None = None,
    ) -> policy.Turn:
        mirror = mirror_for(self.config, fr.name)
        log_path = self.run_dir / "logs" / f"{fr.name}.log"
        child_env = {**self.config.child_env(), "CANON_RUN_ID": self.run_id}
        if self.servers:
            down = ", ".join(self.backend.unreachable)
            if server is None:
                raise CanonError(
                    f"no server left to cold-test it on: {down or 'none'} did not answer"
                )
            child_env["CANON_SERVER"] = row.server = server
            if meta.SERVER is not None:  # a SERVER not in the pool: said before any cold run
                schedule.home(fr.name, self.servers, pinned=meta.SERVER, current=None, held={})
        with mirror.checkout(latest) as co:
            access = admission.host_gate(self.config, meta, co.path, latest)
            row.host_access, row.host_accepted = access.row()
            if access.held:  # nothing deploys: no harness, no slot, no promote
                row.decision, row.reason = policy.HELD_HOST, access.reason(meta)
                return policy.Turn(policy.HELD_HOST)
            row.warnings = [*(row.warnings or []), *access.warnings()]
            cold = cold_run(
                fr.name,
                co,
                meta,
                command=self.config.harness_command,
                log_path=log_path,
                timeout_s=self.config.harness_timeout_s,
                base=base,
                stop=self.stop,
                env=child_env,
            )
            row.tested_commit = cold.commit
            row.rungs = cold.rungs
            row.level = cold.level
            row.verdict = cold.verdict
            row.tests_executed = cold.tests_executed
            row.rc = cold.rc
            row.log_path = str(log_path)
            row.reason = cold.reason
            row.warnings = [*(row.warnings or []), *cold.warnings]
            row.cause, row.errno = cold.cause, cold.errno  # decided by the runner
            if cold.error:
                raise CanonError(cold.error.removeprefix("runner: "))
            tagged = mirror.tag_commit(latest) == cold.commit  # re-read after the run
            gate = policy.gate_reason(
                enrolled=meta.enrolled, green=cold.green, cold=True, is_ref=False, tagged=tagged
            )
            if gate is None and report.incidents:
                gate = f"tag incident upstream: {report.incidents[0]}"
            row.gate = gate
            if cold.green and gate is not None:
                row.reason = f"not promoted: {gate}"
            if cold.green and gate is None:
                self.event(fr.name, f"green: promoting {latest}")
                with self._promote_on(fr, meta) as home:  # one at a time on each server
                    result = promote(
                        co,
                        meta,
                        mirror=mirror,
                        backend=on_server(self.backend, home) if home else self.backend,
                        registry=self.registry,
                        run_id=self.run_id,
                    )
                if not result.ok:
                    row.errno = result.errno
                    row.cause = Cause.FULL_DISK if result.full_disk else Cause.ENVIRONMENT
                    row.error = row.reason = f"promote: {self.with_room(result.error, row)}"
                row.warnings = [*(row.warnings or []), *result.warnings]
        return policy.Turn(
            policy.RUN,
            green=cold.green,
            level=cold.level,
            timed_out=cold.timed_out,
            gate=gate,
            tested_version=latest,
            tested_commit=cold.commit,
        )

    def _known_red(
        self,
        fr: FleetRecipe,
        latest: str | None,
        report: SyncReport,
        row: ResultRow,
        earlier: Callable[[], list[ResultRow]],
        *,
        look: bool = True,
    ) -> ResultRow | None:
        """Fill the row's verdict key; with ``look``, the earlier red row on that key, unless the
        recipe is retried."""
        if latest is None:
            return None
        row.tag_commit = report.tags.get(latest)
        row.harness = self.harness
        row.fleet_tests = tests_digest(fr.path)
        if not look or fr.name in self.retry or not row.tag_commit:
            return None
        key = policy.RedKey(latest, row.tag_commit, row.fleet_tests, self.harness)
        return policy.known_red(earlier(), key)


def _turns(
    s: _Sweep, todo: list[FleetRecipe], reports: Reports, parallel: int
) -> Iterator[ResultRow]:
    """Each recipe's turn; with ``parallel`` > 1 (one per abra server), cold runs overlap."""
    if parallel <= 1 or len(todo) <= 1:
        for fr in todo:
            yield s.turn(fr, reports.get(fr.name))
        return
    pool = ThreadPoolExecutor(max_workers=min(parallel, len(todo)), thread_name_prefix="canon-turn")
    futures = [pool.submit(s.turn, fr, reports.get(fr.name)) for fr in todo]
    try:
        for f in as_completed(futures):
            yield f.result()
    except BaseException:
        s.stop.set()  # running cold runs kill their harness (which tears its slot down)
        for f in futures:
            f.cancel()
        raise
    finally:
        pool.shutdown(wait=True)


def _server_turns(
    s: _Sweep, todo: list[FleetRecipe], reports: Reports, per_server: int
) -> Iterator[ResultRow]:
    """Several servers: ``per_server`` workers on each server; each takes the next recipe,
    longest expected cold run first (:func:`.schedule.order`), when it is free. A worker
    whose server stops answering takes no more (its recipes go to the others); recipes left
    when no server answers get their turn without one (an ERROR row if they need a cold run)."""
    expected = schedule.expected_durations(s.registry.results())
    by_name = {fr.name: fr for fr in todo}
    waiting = [by_name[r] for r in schedule.order([fr.name for fr in todo], expected)]
    taking = threading.Lock()
    answers = s.backend.answers  # swarm: ask the engine; abra: trust it (always answers)

    def worker(server: str) -> list[ResultRow]:
        while not s.stop.is_set():
            if answers(server) is not None:
                return []
            with taking:
                if not waiting:
                    return []
                fr = waiting.pop(0)
            done.put(s.turn(fr, reports.get(fr.name), server))
        return []

    done: queues.Queue[ResultRow] = queues.Queue()
    workers = [srv for srv in s.servers for _ in range(per_server)]
    pool = ThreadPoolExecutor(max_workers=len(workers), thread_name_prefix="canon-server")
    futures = [pool.submit(worker, srv) for srv in workers]
    try:
        got = 0
        while got < len(todo):
            try:
                yield done.get(timeout=0.2)
                got += 1
                continue
            except queues.Empty:
                pass
            for f in futures:
                if f.done() and (e := f.exception()) is not None:
                    raise e
            if all(f.done() for f in futures) and done.empty():
                break
        for fr in list(waiting):  # no server answered for these
            yield s.turn(fr, reports.get(fr.name), None)
    except BaseException:
        s.stop.set()
        raise
    finally:
        pool.shutdown(wait=True)


def base_commit(
    base: policy.UpgradeBase, canonical: Canonical | None, tags: dict[str, str]
) -> str | None:
    """The commit the upgrade rung installs first: what is deployed for the canonical (its
    tag may be gone or moved upstream), else the base tag's commit in the mirror."""
    if base.kind == "canonical" and canonical is not None:
        return canonical.commit
    return tags.get(base.version) if base.version else None


def sweep(
    config: Config,
    *,
    only: list[str] | None = None,
    plan: bool = False,
    progress: bool = False,
    run_id: str | None = None,
    retry: list[str] | None = None,
) -> SweepResult:
    """Run one sweep (or, with ``plan``, say what it would do, touching only the mirrors).

    ``only`` limits it to the named recipes (each must be in the fleet); ``progress``
    shows a progress bar on stderr; ``run_id`` names the run (a new sortable id by default);
    ``retry`` names recipes to cold-test again even when their latest tag is known-red.
    """
    fleet = discover(config.fleet)
    fleet.require_enrolled()
    todo = fleet.to_sweep()
    known = {r.name for r in fleet.recipes}
    unknown = [r for r in (retry or []) if r not in known]
    if unknown:
        raise UsageError(f"--retry: not in the fleet {fleet.tests_dir}: {', '.join(unknown)}")
    if only:
        unknown = [r for r in only if r not in known]
        if unknown:
            hint = did_you_mean(unknown[0], sorted(known)) if len(unknown) == 1 else ""
            raise UsageError(f"not in the fleet {fleet.tests_dir}: {', '.join(unknown)}{hint}")
        todo = [r for r in todo if r.name in only]
        if not todo:
            raise UsageError(f"none of {', '.join(only)} is enrolled in {fleet.tests_dir}")
    run_id = run_id or new_run_id("plan" if plan else "sweep")
    run_dir = config.runs_dir / run_id
    holder = f"pid={os.getpid()} run={run_id} started={utcnow()}"
    code = code_identity()
    harness = harness_identity(code, config.harness_command)
    with (
        sweep_lock(config.lock_path, holder),
        _checked_registry(config, plan) as (registry, backend, marker_lines),
        contextlib.ExitStack() as stack,
    ):
        _check_servers(config, registry, backend)
        notes = marker_lines + ([] if plan else _recover(registry, backend, run_id))
        if not plan:  # checkouts, clones and temp dirs a dead run left behind
            notes += reap_leftovers(
                config.state_dir / "checkouts", config.mirrors_dir, config.state_dir / "tmp"
            )
            stack.enter_context(private_tmp(config.state_dir / "tmp", run_id))
            run_dir.mkdir(parents=True, exist_ok=True)
            registry.start_run(
                run_id,
                "sweep",
                fleet_path=str(fleet.root),
                fleet_commit=fleet.commit,
                config_hash=config.digest,
                code_version=code["code_version"],
                code_commit=code["code_commit"],
            )
        reports = sync_all(config, [r.name for r in todo if r.meta is not None])
        s = _Sweep(
            config, registry, run_id, run_dir, plan, harness, frozenset(retry or ()), backend
        )
        rows: list[ResultRow] = []
        status = "ok"
        try:
            with _progress(len(todo), progress) as bar:
                turns = (
                    _server_turns(s, todo, reports, config.per_server)
                    if s.servers and config.backend.get("kind") in ("swarm", "abra")
                    else _turns(s, todo, reports, config.cold_parallel)
                )
                for row in turns:
                    rows.append(row)
                    if bar is not None:
                        bar.set_description(row.recipe)
                        bar.update(1)
        except (Interrupted, KeyboardInterrupt):
            status = "interrupted"
            raise
        finally:
            s.close()
            if not plan:
                if status != "interrupted":
                    status = "failed" if any_failing(rows) else "ok"
                registry.finish_run(run_id, status)
    rows.sort(key=lambda r: r.recipe)
    sync_reports = {k: v for k, v in reports.items() if isinstance(v, SyncReport)}
    return SweepResult(run_id, run_dir, rows, status, fleet, plan, sync_reports, notes)


@contextlib.contextmanager
def private_tmp(root: Path, run_id: str) -> Iterator[Path]:
    """``TMPDIR`` for this run and everything it starts (harness, fleet pytest, git, abra's secret
    files): ``<root>/<run id>~<pid>~``, 0700, removed when the run ends; a SIGKILLed run's is
    reaped by the next start, so nothing it wrote is left in /tmp."""
    path = root / f"{run_id}{owner_tag()}"
    path.mkdir(mode=0o700, parents=True)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(path)
    try:
        yield path
    finally:
        if saved[0] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[0]
        tempfile.tempdir = saved[1]
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _checked_registry(config: Config, plan: bool) -> Iterator[tuple[Registry, Backend, list[str]]]:
    """Under the lock: refuse a registry behind the deployed canonicals (a missing one is
    never recreated), back it up before a sweep writes, then open it."""
    backend = make_backend(config)
    found = registry_guard.require_current(config.db_path, backend, "plan" if plan else "sweep")
    if not plan:
        registry_guard.auto_backup(config.db_path)
    with Registry.open(config.db_path) as registry:
        yield registry, backend, found.scan.lines()


def _check_servers(config: Config, registry: Registry, backend: Backend) -> None:
    """Several servers: refuse (exit 2) a server dropped from the config while it holds
    canonicals, and two servers that are the same swarm."""
    servers = list(config.backend.get("servers") or [])
    if not servers:
        return
    gone = schedule.orphaned(((c.recipe, c.server) for c in registry.canonicals()), servers)
    if gone:
        raise UsageError(schedule.orphan_message(gone))
    backend.check_distinct()


def _recover(registry: Registry, backend: Backend, run_id: str) -> list[str]:
    """Runs a dead canon left ``running`` are abandoned; its slots finished or reaped."""
    notes = [
        f"run {r} was left running by a canon that died: marked abandoned"
        for r in registry.abandon_running()
    ]
    return notes + recover(registry, backend, run_id)
