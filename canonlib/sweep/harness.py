"""``canon harness``: the built-in cold-run harness.

Reads the CCCI_* environment the runner sets, deploys the checkout through the
configured backend into a throw-away slot, climbs the rungs and writes
``$CCCI_RESULT_FILE``.  Its slots are always torn down, on failure and on
SIGTERM too.

Rungs: L1 install, L2 upgrade (from ``CCCI_UPGRADE_BASE``), L3 backup/restore,
L4 functional (pytest on the fleet's ``tests/<recipe>/``), L5 lint.  A rung in
the meta's ``EXPECTED_NA`` is ``skip``; a rung that should have run and could
not is ``unverified``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from canonlib import git
from canonlib.backends import Backend, BackendError, make_backend
from canonlib.backends.common import BackendUnavailable, run_group
from canonlib.backends.compose import app_env, not_a_recipe
from canonlib.config import load_config
from canonlib.errors import CanonError
from canonlib.files import RECIPE_FILE_CAP, FileProblem, read_tree_file, write_atomic
from canonlib.process import watch_parent
from canonlib.recipe import lint
from canonlib.recipe.meta import RUNGS, RecipeMeta, load_meta
from canonlib.state.marker import COLD, SlotMarker, new_slot_name, utcnow
from canonlib.state.row import Cause, full_disk_errno, names_full_disk
from canonlib.sweep import admission, policy
from canonlib.sweep.knownred import disk_room

ABRA_LINT_TIMEOUT_S = 60.0


def tree_reader(tree: Path) -> lint.Reader:
    """The checkout's files, read safely (no link out of the recipe, no FIFO, a size cap)."""

    def read(path: str) -> str | None:
        try:
            return read_tree_file(tree, path)
        except FileNotFoundError:
            return None

    return read


def commit_reader(repo: Path, commit: str) -> lint.Reader:
    """The files of ``commit`` in ``repo`` (the upgrade base's), read from git's objects."""

    def read(path: str) -> str | None:
        try:
            return git.read_blob(repo, commit, path, cap=RECIPE_FILE_CAP)
        except CanonError as e:  # too big, or git failed
            raise FileProblem(str(e)) from None

    return read


def lint_release(recipe_dir: Path, tag: str, base: lint.Base | None = None) -> lint.Release:
    """What L5 lints, gathered from the checkout: its files, COMPOSE_FILE as abra reads
    .env.sample, and what the tag is (annotated or lightweight)."""
    try:
        compose_file = app_env(recipe_dir, {})[1].get("COMPOSE_FILE")
    except BackendError:  # a hostile .env.sample / abra.sh: the lint names it (R008)
        compose_file = None
    try:
        tag_type = git.tag_object_type(recipe_dir, tag)
    except CanonError:
        tag_type = None
    return lint.Release(tag, tree_reader(recipe_dir), compose_file, tag_type, base)


def abra_lint(
    recipe: str, recipe_dir: Path, commit: str, log: Callable[[str], None]
) -> tuple[list[lint.Finding], str]:
    """abra's own ``abra recipe lint`` on a clone of the checkout (its findings, and a note when
    it gave none).  abra needs a terminal, so it runs under ``script``; its exit code is 0 with
    failing rules too, so its table is what counts."""
    abra, script = shutil.which("abra"), shutil.which("script")
    if not abra:
        return [], "abra's lint not run (no abra on PATH)"
    if not script:
        return [], "abra's lint not run (no `script` to give abra a terminal)"
    with tempfile.TemporaryDirectory(prefix="canon-abra-lint-") as tmp:
        try:
            git.clone_at(recipe_dir, Path(tmp) / "recipes" / recipe, commit)
        except CanonError as e:
            return [], f"abra's lint not run (cannot place the recipe where abra reads it: {e})"
        command = shlex.join([abra, "recipe", "lint", "--chaos", "--no-input", recipe])
        env = {**os.environ, "ABRA_DIR": tmp, "NO_COLOR": "1"}
        try:
            proc = run_group(
                [script, "-qec", command, "/dev/null"],
                cwd=Path(tmp),
                env=env,
                timeout=ABRA_LINT_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return [], f"abra's lint gave no verdict: timed out after {ABRA_LINT_TIMEOUT_S:g}s"
    log(f"$ {command}\n{proc.stdout}")
    table = lint.parse_abra_table(proc.stdout)
    if table.problem:
        return [], f"abra's lint gave no verdict (exit {proc.returncode}): {table.problem}"
    return table.findings, ""


def functional_tests(
    fleet_tests: Path,
    recipe: str,
    env: Mapping[str, str],
    timeout_s: float,
    log: Callable[[str], None],
) -> tuple[str, int, set[str], str]:
    """Run pytest on ``<fleet>/tests/<recipe>/``: (status, tests executed, failed test ids, reason).

    pytest runs in its own process group: a timeout kills it and everything it started.
    """
    tests_dir = fleet_tests / recipe
    failed: set[str] = set()
    executed = 0
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            f"--rootdir={tests_dir}",
            "-o",
            "addopts=",
            str(tests_dir),
        ]
        try:
            proc = run_group(argv, cwd=tests_dir, env={**os.environ, **env}, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return policy.FAIL, 0, failed, f"functional tests timed out after {timeout_s:g}s"
        log(proc.stdout[-6000:])
        if junit.exists():
            for case in ET.parse(junit).getroot().iter("testcase"):
                if case.find("skipped") is not None:
                    continue
                executed += 1
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.add(f"{case.get('classname')}::{case.get('name')}")
    if executed == 0:
        return (
            policy.UNVERIFIED,
            0,
            failed,
            f"no test executed under {tests_dir} (no evidence is not a pass)",
        )
    if proc.returncode != 0:
        return (
            policy.FAIL,
            executed,
            failed,
            f"pytest exited {proc.returncode}: {', '.join(sorted(failed)) or 'see log'}",
        )
    return policy.PASS, executed, failed, ""


class EnvironmentFault(Exception):  # noqa: N818 -- not a verdict about the recipe
    """canon's own environment failed: no verdict.

    Disk full, a backend that cannot start, a bug.  ``errno``: the OSError's, when one was.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno

    @property
    def full_disk(self) -> bool:
        """A write failed on a full disk: its errno says so, or (git, docker: a child's
        message, no errno) its words do."""
        return full_disk_errno(self.errno) or (self.errno is None and names_full_disk(str(self)))


# (status, reason) of one rung; the run's verdict (green/red) is made of its rungs' statuses
RungStatus = tuple[str, str]


class Harness:
    """One cold run's state; each rung is a function of it returning ``(status, reason)``."""

    def __init__(self, env: Mapping[str, str]):
        self.env = dict(env)
        self.recipe = env["CCCI_RECIPE"]
        self.recipe_dir = Path(env["CCCI_RECIPE_DIR"])
        self.version = env["CCCI_VERSION"]
        self.commit = env["CCCI_COMMIT"]
        self.base = env.get("CCCI_UPGRADE_BASE") or None
        self.base_kind = env.get("CCCI_UPGRADE_BASE_KIND", "skip")
        self.base_reason = env.get("CCCI_UPGRADE_BASE_REASON", "")
        self.base_commit = env.get("CCCI_UPGRADE_BASE_COMMIT") or None
        self.result_file = Path(env["CCCI_RESULT_FILE"])
        self.rungs: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.warnings: list[str] = []
        self.error: str | None = None  # an EnvironmentFault: the run gives no verdict
        self.errno: int | None = None  # the error's OSError errno, when one was
        self.full_disk = False  # the error is a full (or almost full) disk
        self.tests_executed = 0
        self.failed_fresh: set[str] = set()
        self.installed = False
        self.config = load_config()
        self.meta: RecipeMeta = load_meta(self.config.fleet_tests / self.recipe)
        self.backend: Backend = make_backend(  # several servers: the one the sweep gave this run
            self.config,
            run_dir=self.result_file.parent,
            server=env.get("CANON_SERVER")
            or next(iter(self.config.backend.get("servers", [])), None),
        )
        self.run_id = env.get("CANON_RUN_ID") or None
        self.slot = new_slot_name(
            "cold", self.recipe, set(self.backend.slots())
        )  # unique to this run

    def upgrade_base_commit(self) -> str:
        """The base's commit (the sweep's, else its tag's); a missing one is no verdict."""
        assert self.base is not None  # its callers ask only when there is a base
        ref = self.base_commit or f"refs/tags/{self.base}"
        if not self.base_commit:
            git.check_ref_name(self.base)
        found = git.run(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=self.recipe_dir,
            check=False,
        )
        if found.returncode:
            raise EnvironmentFault(
                f"upgrade base {self.base_kind} {self.base} "
                f"({self.base_commit[:12] if self.base_commit else 'no such tag'}) is not in the "
                f"mirror, so the upgrade cannot be tested; set UPGRADE_BASE_VERSION "
                f"in {self.recipe}'s recipe_meta.py to upgrade from another release"
            )
        self.base_commit = found.stdout.strip()
        return self.base_commit

    def log(self, text: str) -> None:
        if text.strip():
            print(text.rstrip(), flush=True)

    def set(self, rung: str, status: str, reason: str = "") -> None:
        self.rungs[rung] = status
        if reason:
            self.reasons[rung] = reason
        self.log(
            f"[canon harness] {self.recipe} {rung}: {status}{' (' + reason + ')' if reason else ''}"
        )

    def install(self, slot: str, tree: Path, version: str, commit: str) -> None:
        marker = SlotMarker(
            slot=slot,
            recipe=self.recipe,
            role=COLD,
            version=version,
            commit=commit,
            run_id=self.run_id,
            created_at=utcnow(),
        )
        self.backend.mark(slot, marker)
        self.backend.provision(slot, tree, self.meta)
        self.backend.deploy(slot, tree, self.meta, version=version, commit=commit)
        self.backend.run_install_steps(slot, self.meta)
        self.backend.wait_ready(slot, self.meta)

    def functional(self, slot: str) -> tuple[str, int, builtins.set[str], str]:
        env = {
            **self.backend.slot_env(slot),
            **{k: v for k, v in self.env.items() if k.startswith("CCCI_")},
        }
        status, n, failed, reason = functional_tests(
            self.config.fleet_tests, self.recipe, env, float(self.meta.DEPLOY_TIMEOUT_S), self.log
        )
        self.tests_executed += n
        return status, n, failed, reason

    def climb(self) -> None:
        """Every rung in climbing order; an environment fault stops the climb without a verdict."""
        for rung, fn, needs_install in CLIMB:
            na = self.meta.expected_na.get(rung)
            if na:
                self.set(rung, policy.SKIP, f"EXPECTED_NA: {na}")
            elif needs_install and not self.installed:
                self.set(rung, policy.UNVERIFIED, "install did not pass")
            else:
                try:
                    status, reason = fn(self)
                    room = None if status in (policy.PASS, policy.SKIP) else self.disk_room()
                    if room:  # it may have failed for want of space: no verdict
                        self.error = f"{rung}: {room} (it failed there: {reason or status})"
                        self.full_disk = True
                    else:
                        self.set(rung, status, reason)
                except EnvironmentFault as e:
                    self.error = f"{rung}: {self.full_disk_words(e)}"
                    self.errno, self.full_disk = e.errno, e.full_disk or self.full_disk
                except Exception as e:  # noqa: BLE001 -- a bug in canon is no verdict either
                    self.error = f"{rung}: unexpected {type(e).__name__}: {e}"
                if self.error:
                    self.log(f"[canon harness] {self.recipe} {rung}: no verdict: {self.error}")
                    return

    def disk_room(self) -> str | None:
        """Where this run writes (its TMPDIR, the slots, the checkout, the result file), almost
        full: :func:`canonlib.sweep.knownred.disk_room`."""
        return disk_room(
            [
                self.config.slots_dir,
                tempfile.gettempdir(),
                self.recipe_dir,
                self.result_file.parent,
            ]
        )

    def full_disk_words(self, fault: EnvironmentFault) -> str:
        """``fault``'s words, saying where the disk is almost full and what to do when it is."""
        error = str(fault)
        room = self.disk_room()
        if room:
            self.full_disk = True
        if room and room not in error:
            return f"{room}: {error}"
        if not room and fault.full_disk and "free space" not in error:
            return f"{error}; free space on that filesystem and re-run"
        return error

    def teardown(self, slot: str) -> None:
        try:
            self.backend.teardown(slot)
        except (BackendError, CanonError, OSError) as e:
            self.warnings.append(f"teardown of {slot} failed: {e}")

    def write_result(self) -> dict[str, Any]:
        rungs = {r: self.rungs.get(r, policy.UNVERIFIED) for r in RUNGS}
        result = {
            "recipe": self.recipe,
            "version": self.version,
            "commit": self.commit,
            "upgrade_base": self.base,
            "upgrade_base_kind": self.base_kind,
            "upgrade_base_commit": self.base_commit,
            "rungs": rungs,
            "reasons": self.reasons,
            "level": policy.level(rungs),
            "tests_executed": self.tests_executed,
            "warnings": self.warnings,
            "green": self.error is None and policy.is_green(rungs, self.tests_executed),
            "error": self.error,
        }
        if self.error:  # its cause, decided where the error was caught (the runner reads both)
            result["errno"] = self.errno
            result["cause"] = (Cause.FULL_DISK if self.full_disk else Cause.ENVIRONMENT).value
        write_atomic(self.result_file, json.dumps(result, indent=1))
        return result


@contextlib.contextmanager
def rung_status_of(prefix: str = "") -> Iterator[list[RungStatus]]:
    """Turn what a backend raises into a rung's status: its errors FAIL the rung; the environment's
    (disk full, a backend that cannot start, anything unexpected) are :class:`EnvironmentFault`."""
    out: list[RungStatus] = []
    try:
        yield out
    except EnvironmentFault:
        raise
    except BackendUnavailable as e:
        raise EnvironmentFault(str(e)) from None
    except (BackendError, CanonError) as e:
        out[:] = [(policy.FAIL, f"{prefix}{e}")]
    except OSError as e:
        raise EnvironmentFault(f"{prefix}{e}", e.errno) from None
    except Exception as e:  # noqa: BLE001 -- a bug in canon is no verdict about the recipe
        raise EnvironmentFault(f"{prefix}unexpected {type(e).__name__}: {e}") from None


def rung_install(h: Harness) -> RungStatus:
    """L1: provision, deploy, install steps, ready probes, in the cold slot."""
    problem = not_a_recipe(h.recipe_dir, h.version)  # any backend: no compose.yml, no recipe
    if problem:
        return policy.FAIL, problem
    with rung_status_of() as v:
        h.install(h.slot, h.recipe_dir, h.version, h.commit)
        h.installed = True
        v.append((policy.PASS, ""))
    return v[0]


def rung_upgrade(h: Harness) -> RungStatus:
    """L2: install the upgrade base in a slot of its own, deploy this version over it, test.

    A base that asks the host for more than the meta's HOST_ACCESS accepts (or for canon's
    own places) is not deployed: the rung is ``fail``, naming each item and the line to add."""
    if not h.base or h.base_kind == "skip":
        return policy.SKIP, f"no upgrade base: {h.base_reason or 'none resolved'}"
    slot, origin = f"{h.slot}-up", f"from {h.base_kind} {h.base}"
    base_commit = h.upgrade_base_commit()  # outside rung_status_of: a missing base is no verdict
    try:
        with (
            tempfile.TemporaryDirectory(prefix="canon-base-") as tmp,
            rung_status_of(f"{origin}: ") as v,
        ):
            base_tree = Path(tmp) / "base"
            try:  # canon's own clone of a commit the mirror has: a failure is no verdict
                git.clone_at(h.recipe_dir, base_tree, base_commit)
            except (CanonError, OSError) as e:
                raise EnvironmentFault(
                    f"{origin}: cannot check out the base: {e}",
                    e.errno if isinstance(e, OSError) else None,
                ) from None
            # the base is a release too: one asking the host for more than HOST_ACCESS accepts
            # (a pinned UPGRADE_BASE_VERSION or a step-back older than the meta) never deploys
            gate = admission.host_gate(h.config, h.meta, base_tree, h.base)
            if gate.held:
                v.append((policy.FAIL, f"{origin}: the upgrade base {gate.reason(h.meta)}"))
                return v[0]
            h.install(slot, base_tree, h.base, base_commit)
            h.backend.provision(slot, h.recipe_dir, h.meta)  # secrets the new version adds
            h.backend.deploy(slot, h.recipe_dir, h.meta, version=h.version, commit=h.commit)
            h.backend.wait_ready(slot, h.meta)
            status, _n, _failed, reason = h.functional(slot)
            v.append((status, origin + (f": {reason}" if reason else "")))
    finally:
        h.teardown(slot)
    return v[0]


def rung_functional(h: Harness) -> RungStatus:
    """L4: the recipe's own tests from the fleet, against the fresh install."""
    with rung_status_of() as v:
        status, _n, failed, reason = h.functional(h.slot)
        h.failed_fresh = failed
        v.append((status, reason))
    return v[0]


def rung_backup(h: Harness) -> RungStatus:
    """L3: snapshot, wipe, restore; every test that passed on the fresh install still passes."""
    with rung_status_of() as v:
        snap = h.backend.snapshot(h.slot)
        h.backend.wipe_data(h.slot)
        h.backend.restore(h.slot, snap)
        h.backend.wait_ready(h.slot, h.meta)
        status, n, failed, reason = h.functional(h.slot)
        if status == policy.UNVERIFIED:
            v.append((status, f"after restore: {reason}"))
        elif new := failed - h.failed_fresh:
            v.append((policy.FAIL, f"after restore these fail: {', '.join(sorted(new))}"))
        else:
            v.append((policy.PASS, f"{n} test(s) after restore, no new failure"))
    return v[0]


def rung_lint(h: Harness) -> RungStatus:
    """L5: the recipe itself at the tag, by canon's rules and, where abra is on PATH, abra's
    (:mod:`canonlib.recipe.lint`); errors fail the rung, warnings go to the results row."""
    base, notes = None, []
    if h.base and h.base_kind != "skip":
        try:
            commit = h.upgrade_base_commit()
            base = lint.Base(h.base_kind, h.base, commit_reader(h.recipe_dir, commit))
        except EnvironmentFault as e:
            notes.append(f"C005 not checked: {e}")
    findings = lint.lint(lint_release(h.recipe_dir, h.version, base))
    theirs, note = abra_lint(h.recipe, h.recipe_dir, h.commit, h.log)
    findings = lint.merge(findings, theirs)
    notes += [note] if note else []
    h.warnings += [f"L5 {f}" for f in lint.warnings(findings)] + [f"L5: {n}" for n in notes]
    failed = lint.errors(findings)
    return (policy.FAIL if failed else policy.PASS), "; ".join(map(str, failed))


# climbing order: L4 runs before L3, whose check is "what passed fresh still passes after restore"
CLIMB = (
    ("install", rung_install, False),
    ("upgrade", rung_upgrade, False),
    ("functional", rung_functional, True),
    ("backup", rung_backup, True),
    ("lint", rung_lint, False),
)


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    missing = [
        k
        for k in (
            "CCCI_RECIPE",
            "CCCI_RECIPE_DIR",
            "CCCI_VERSION",
            "CCCI_COMMIT",
            "CCCI_RESULT_FILE",
        )
        if not env.get(k)
    ]
    if missing:
        print(
            f"canon harness: missing {', '.join(missing)}; the harness is started by `canon sweep`",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    watch_parent()  # a SIGKILLed canon cannot reach this session: end (and tear down) with it
    try:
        h = Harness(env)
    except (CanonError, OSError) as e:  # config, meta or backend: the harness could not start
        _write_error(Path(env["CCCI_RESULT_FILE"]), f"the harness could not start: {e}")
        print(f"canon harness: could not start: {e}", file=sys.stderr)
        return 2
    try:
        h.climb()
    finally:
        h.teardown(h.slot)
        result = h.write_result()
        shutil.rmtree(h.result_file.parent / "abra", ignore_errors=True)
    verdict = (
        f"no verdict ({result['error']})"
        if result["error"]
        else ("green" if result["green"] else "not green")
    )
    print(
        f"[canon harness] {h.recipe} {h.version}: level {result['level']}/{len(RUNGS)}, "
        f"{result['tests_executed']} test(s), {verdict}"
    )
    return 0 if result["green"] else 1


def _write_error(result_file: Path, error: str) -> None:
    with contextlib.suppress(OSError):  # disk full: the runner sees no result file, also an ERROR
        write_atomic(result_file, json.dumps({"error": error}))
