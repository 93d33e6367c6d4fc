"""After a SIGKILLed canon: its harness notices and tears down; the next start reaps leftovers.

Real processes throughout: `python -m canonlib sweep` runs the built-in harness,
whose functional test (a real pytest in the fleet) parks until canon is killed
with SIGKILL.  The harness (in its own session, so the kill does not reach it)
must notice its parent is gone, tear its cold slot down and take its pytest with
it; the checkout canon left in state/checkouts and the run's temp dir in
state/tmp (the TMPDIR of everything it started) are reaped by the next sweep,
which says so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from canonlib.process import pid_alive
from canonlib.recipe.mirror import reap_leftovers
from tests.cli import canon_argv
from tests.procs import alive
from tests.workspace import Workspace

PARKED_TEST = textwrap.dedent("""\
    import os
    import pathlib
    import tempfile
    import time


    def test_parks_while_asked():
        mark = os.environ.get("CANON_TEST_MARK")
        if mark:
            fd, scratch = tempfile.mkstemp(prefix="fleet-test-")  # a fleet test's temp file
            pathlib.Path(mark).write_text(f"{os.getpid()} {os.getppid()} {scratch}")
            time.sleep(300)
""")


def wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_sigkilled_canon_leaves_no_harness_and_the_next_sweep_reaps(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("app", test=PARKED_TEST)
    ws.release("app", "1.0.0+1")
    mark = tmp_path / "parked"
    state = ws.config.state_dir
    argv = canon_argv(ws, "sweep")
    canon = subprocess.Popen(
        argv,
        env={**os.environ, "CANON_TEST_MARK": str(mark)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(mark.exists, what="the fleet test to start")
        pids, scratch = mark.read_text().rsplit(" ", 1)
        pytest_pid, harness_pid = map(int, pids.split())
        # the run's TMPDIR, for everything it starts: state/tmp/<run>~<canon's pid>~, not /tmp
        run_tmp = Path(scratch).parent
        assert run_tmp.parent == state / "tmp" and run_tmp.name.endswith(f"~{canon.pid}~"), scratch
        assert alive(harness_pid) and alive(pytest_pid)
        cold_slots = [p for p in (state / "slots").iterdir() if p.name.startswith("cold-")]
        checkouts = list((state / "checkouts").iterdir())
        assert cold_slots and len(checkouts) == 1
        canon.kill()
        canon.wait(timeout=30)
    finally:
        if canon.poll() is None:
            canon.kill()
        canon.stdout.close()
        canon.stderr.close()
    # the harness notices its parent is gone, tears its slot down and ends its pytest
    wait_for(lambda: not alive(harness_pid), what=f"harness {harness_pid} to end")
    wait_for(lambda: not alive(pytest_pid), what=f"pytest {pytest_pid} to end")
    assert not [p for p in cold_slots if p.exists()], "the cold slot was not torn down"
    assert checkouts[0].exists(), "canon died before it could remove its checkout"
    assert Path(scratch).exists(), "canon died before it could remove its temp dir"

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"reaped 1 checkout(s) left by dead runs in {state / 'checkouts'}" in rerun.stderr
    assert checkouts[0].name in rerun.stderr
    assert not checkouts[0].exists() and list((state / "checkouts").iterdir()) == []
    assert (
        f"reaped 1 temp dir(s) left by dead runs in {state / 'tmp'}: {run_tmp.name}" in rerun.stderr
    )
    assert list((state / "tmp").iterdir()) == []  # the rerun's own went when it ended
    assert "PASS (promoted)" in rerun.stdout


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_reap_takes_only_what_dead_owners_left(tmp_path):
    checkouts, mirrors = tmp_path / "checkouts", tmp_path / "mirrors"
    dead = _dead_pid()
    assert not pid_alive(dead)
    mine = os.getpid()
    made = {
        checkouts / f"app~{dead}~x1y2": False,  # its run is dead: reaped
        checkouts / f"app~{mine}~x3y4": True,  # a live run's checkout: kept
        mirrors / f".app-new~{dead}~abcd": False,  # a fresh clone that never finished
        mirrors / f".app.git-broken~{dead}~123": False,  # a broken mirror set aside
        mirrors / f".app-new~{mine}~efgh": True,
        mirrors / "app.git": True,  # a mirror: never a leftover
        checkouts / "old-abcd1234": True,  # an older canon's, fresh: kept for now
        checkouts / "older-abcd1234": False,  # an older canon's, two days old: reaped
    }
    for path in made:
        (path / "sub").mkdir(parents=True)
        (path / "sub" / "f").write_text("x")
    two_days = time.time() - 2 * 24 * 3600
    os.utime(checkouts / "older-abcd1234", (two_days, two_days))
    notes = reap_leftovers(checkouts, mirrors)
    assert {p: p.exists() for p in made} == made
    assert len(notes) == 2
    assert notes[0].startswith(f"reaped 2 checkout(s) left by dead runs in {checkouts}: ")
    assert notes[1].startswith(
        f"reaped 2 unfinished mirror clone(s) left by dead runs in {mirrors}"
    )
    assert reap_leftovers(checkouts, mirrors) == []  # nothing more to say
    assert reap_leftovers(tmp_path / "none", tmp_path / "neither") == []
    # run temp dirs (a sweep's TMPDIR): a dead run's go, a live one's stay; a long list is cut at 5
    tmp = tmp_path / "tmp"
    dead_runs = [tmp / f"20260101T00000{i}Z-sweep-a{i}~{dead}~" for i in range(6)]
    live = tmp / f"20260101T000009Z-sweep-b~{mine}~"
    for d in [*dead_runs, live]:
        (d / "pytest-of-root").mkdir(parents=True)
    (notes,) = reap_leftovers(checkouts, mirrors, tmp)
    names = ", ".join(sorted(d.name for d in dead_runs)[:5])
    assert notes == f"reaped 6 temp dir(s) left by dead runs in {tmp}: {names} …"
    assert [p.name for p in tmp.iterdir()] == [live.name]
    for d in dead_runs[:5]:  # exactly five: all named, no ellipsis
        d.mkdir()
    (notes,) = reap_leftovers(checkouts, mirrors, tmp)
    assert notes.endswith(names) and "…" not in notes
