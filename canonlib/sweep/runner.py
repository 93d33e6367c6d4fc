"""Cold runs: the configured harness on a clean checkout of one exact tag.

The harness is a child process in its own process group, with the CCCI_*
environment recipe CIs use, a timeout that kills the whole group, and its
output captured to a size-capped log.  Its result file is read back, and the
verdict is recomputed here from the rung statuses (policy.level/is_green):
the harness's exit code is recorded, never trusted.  After the run the
checkout must still be at the tag's commit and clean, or the result is void; a
red run on an almost full disk (``knownred.disk_room``) is no verdict either: it
may have failed for want of space.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from canonlib.files import FileProblem, read_json_file
from canonlib.process import kill_group
from canonlib.recipe.meta import RUNGS, RecipeMeta
from canonlib.recipe.mirror import Checkout
from canonlib.state.row import Cause, full_disk_errno
from canonlib.sweep import policy
from canonlib.sweep.knownred import disk_room

LOG_CAP_BYTES = 2 * 1024 * 1024


@dataclass
class ColdResult:
    recipe: str
    version: str
    commit: str
    rc: int | None = None
    rungs: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    level: int = 0
    green: bool = False
    tests_executed: int = 0
    timed_out: bool = False
    duration_s: float = 0.0
    log_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # no verdict: the run did not run, could not finish, or is not trusted
    # why it is not green, decided here (a full disk, the environment, the tests' verdict)
    full_disk: bool = False  # it failed on a full or almost full disk
    errno: int | None = None  # the OSError's errno, when one made it fail (the harness's too)

    @property
    def verdict(self) -> str | None:
        """``green``/``red``: a verdict about the recipe; None when the run gave none (an error,
        a timeout: canon's environment may be at fault, so it is never remembered as red)."""
        if self.error or self.timed_out:
            return None
        return "green" if self.green else "red"

    @property
    def reason(self) -> str | None:
        """Why the run is not green: the error, the timeout, or the first failing rung."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration_s:.0f}s"
        if self.green:
            return None
        return policy.first_failure(self.rungs, self.reasons) or (
            f"harness exited {self.rc}" if self.rc else "no test executed"
        )

    @property
    def cause(self) -> Cause | None:
        """Why it is not green; None when it is."""
        if self.full_disk or full_disk_errno(self.errno):
            return Cause.FULL_DISK
        if self.error:
            return Cause.ENVIRONMENT
        if self.timed_out:
            return Cause.TIMEOUT
        return None if self.green else Cause.VERDICT


def _pump(stream: IO[bytes], log_path: Path, cap: int) -> None:
    """Copy the child's output to the log, keeping the first ``cap`` bytes, draining the rest."""
    kept = dropped = 0
    with open(log_path, "ab") as log:
        while chunk := stream.read(65536):
            room = cap - kept
            if room > 0:
                log.write(chunk[:room])
                kept += min(room, len(chunk))
            dropped += max(0, len(chunk) - max(room, 0))
        if dropped:
            log.write(
                f"\n[canon: log capped at {cap} bytes; {dropped} more bytes dropped]\n".encode()
            )


def cold_run(
    recipe: str,
    checkout: Checkout,
    meta: RecipeMeta,
    *,
    command: list[str],
    log_path: Path,
    timeout_s: float,
    base: policy.UpgradeBase | None = None,
    env: Mapping[str, str] | None = None,
    log_cap: int = LOG_CAP_BYTES,
    stop: threading.Event | None = None,
) -> ColdResult:
    """Run ``command`` as the harness for ``recipe`` at ``checkout``; never raises for a bad run.

    ``command`` is the harness argv; ``log_path`` receives its output; ``timeout_s``
    bounds the whole run (the meta's ``COLD_TIMEOUT_S`` when smaller); ``base`` is
    the resolved upgrade base; ``env`` adds variables (e.g. the config's child env);
    ``stop``, when set by another thread, ends the run like a signal would (:class:`Interrupted`).
    """
    result = ColdResult(recipe, checkout.tag, checkout.commit, log_path=str(log_path))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result_file = log_path.with_suffix(".result.json")
    result_file.unlink(missing_ok=True)
    child_env = {
        **os.environ,
        **(env or {}),
        "CCCI_RECIPE": recipe,
        "CCCI_RECIPE_DIR": str(checkout.path),
        "CCCI_VERSION": checkout.tag,
        "CCCI_COMMIT": checkout.commit,
        "CCCI_SKIP_FETCH": "1",
        "CCCI_MODE": "cold",
        "CCCI_UPGRADE_BASE": (base.version or "") if base else "",
        "CCCI_UPGRADE_BASE_KIND": base.kind if base else "skip",
        "CCCI_UPGRADE_BASE_REASON": base.reason if base else "no base resolved",
        "CCCI_UPGRADE_BASE_COMMIT": (base.commit or "") if base else "",
        "CCCI_RESULT_FILE": str(result_file),
    }
    timeout = min(timeout_s, float(meta.COLD_TIMEOUT_S))
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(f"$ {' '.join(command)}  # {recipe} {checkout.tag} {checkout.commit}\n".encode())
    try:
        proc = subprocess.Popen(
            command,
            cwd=checkout.path,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        result.error = f"runner: cannot start harness {command[0]!r}: {e}"
        result.errno = e.errno
        result.rungs = dict.fromkeys(RUNGS, policy.UNVERIFIED)
        return result
    pump = threading.Thread(target=_pump, args=(proc.stdout, log_path, log_cap), daemon=True)
    pump.start()
    try:
        result.rc, result.timed_out = _wait(proc, t0 + timeout, stop)
        if result.timed_out:
            kill_group(proc.pid)
            result.rc = proc.wait()
    except BaseException:
        kill_group(proc.pid, grace_s=10.0)  # SIGINT/SIGTERM of canon: let the harness tear down
        proc.wait()
        raise
    finally:
        kill_group(proc.pid, grace_s=1.0)  # stragglers left in the group
        pump.join(timeout=10)
        proc.stdout.close()  # type: ignore[union-attr]  # Popen(stdout=PIPE) has one
    result.duration_s = time.monotonic() - t0
    if result.rc is not None and result.rc < 0 and not result.timed_out:
        result.error = f"runner: the harness was killed by {_signal_name(-result.rc)}"
    _read_result(result, result_file)
    problem = checkout.state_problem()
    if problem:
        result.green = False
        result.error = f"runner: result not trusted: {problem}"
    if result.verdict == "red":  # whichever harness: a failure on an almost full disk is no verdict
        room = disk_room([log_path.parent, checkout.path, child_env.get("TMPDIR")])
        if room:
            result.error = f"runner: {room} (it failed there: {result.reason})"
            result.full_disk = True
    return result


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(BaseException):  # noqa: N818 -- a signal, like KeyboardInterrupt
    """The sweep was interrupted: a signal (``signum``: SIGINT, SIGTERM …) in the sweep's own
    thread, or, in a worker's cold run, the sweep's stop event (no ``signum`` of its own)."""

    def __init__(self, signum: int | None = None):
        super().__init__(
            f"signal {signal.Signals(signum).name}" if signum else "the sweep was interrupted"
        )
        self.signum = signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "SIGINT"

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, stop: threading.Event | None
) -> tuple[int | None, bool]:
    """(rc, timed out); raises :class:`Interrupted` as soon as ``stop`` is set."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, True
        try:
            return proc.wait(timeout=min(left, 0.2) if stop is not None else left), False
        except subprocess.TimeoutExpired:
            if stop is not None and stop.is_set():
                raise Interrupted() from None


RESULT_CAP = 1 << 20  # a harness result file: rungs, reasons, a few counts


def _read_result(result: ColdResult, path: Path) -> None:
    data: dict[str, object] = {}
    try:
        # written by the harness, a child process: read as untrusted (no FIFO, capped, depth)
        doc: object = read_json_file(path, RESULT_CAP)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        data = doc
    except FileNotFoundError:
        if not result.timed_out and not result.error:
            result.error = f"runner: the harness wrote no result file (exit {result.rc})"
    except (ValueError, OSError, FileProblem) as e:
        result.error = f"runner: the harness result file {path} is unreadable: {e}"
        data = {}
    found = data.get("rungs")
    rungs: dict[str, object] = found if isinstance(found, dict) else {}
    result.rungs = {
        r: s if isinstance(s, str) and s in policy.STATUSES else policy.UNVERIFIED
        for r, s in ((r, rungs.get(r, policy.UNVERIFIED)) for r in RUNGS)
    }
    reasons = data.get("reasons")
    result.reasons = (
        {str(k): str(v) for k, v in reasons.items()} if isinstance(reasons, dict) else {}
    )
    tests = data.get("tests_executed", 0)
    result.tests_executed = tests if isinstance(tests, int) and not isinstance(tests, bool) else 0
    warnings = data.get("warnings")
    result.warnings += [str(w) for w in warnings] if isinstance(warnings, list) else []
    error = data.get("error")
    if error and not result.error:
        result.error = f"harness: {error}"
        # the harness decided its error's cause where it caught it (canon harness writes both)
        number = data.get("errno")
        result.errno = number if isinstance(number, int) and not isinstance(number, bool) else None
        result.full_disk = data.get("cause") == Cause.FULL_DISK.value
    result.level = policy.level(result.rungs)
    result.green = (
        not result.error
        and not result.timed_out
        and result.rc == 0
        and policy.is_green(result.rungs, result.tests_executed)
    )
