"""Every child canon starts runs in its own process group and dies with it on timeout:
the shared ``run_group``, the harness's pytest call and the abra backend's commands.

Each test starts a real child that spawns a real grandchild and hangs; after the
timeout neither may be alive.  The abra test uses a FAKE `abra` on PATH (the one
stand-in the suite allows): a script that does exactly that."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from canonlib.backends import BackendError
from canonlib.backends.abra import AbraBackend
from canonlib.backends.common import run_command, run_group
from canonlib.sweep import policy
from canonlib.sweep.harness import functional_tests
from tests.procs import alive, settled_dead
from tests.test_abra import install_abra

# a child that records its pid, starts a grandchild that records its own, then hangs
SPAWNER = textwrap.dedent("""\
    import os, subprocess, sys, time
    pids = sys.argv[1]
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(pids, "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}")
    time.sleep(300)
""")


def read_pids(path: Path) -> list[int]:
    for _ in range(200):
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(x) for x in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"the child never wrote {path}")


@pytest.fixture
def spawner(tmp_path):
    script = tmp_path / "spawner.py"
    script.write_text(SPAWNER)
    return script


def test_run_group_kills_child_and_grandchild_on_timeout(tmp_path, spawner):
    pids_file = tmp_path / "pids"
    with pytest.raises(subprocess.TimeoutExpired):
        run_group(
            [sys.executable, str(spawner), str(pids_file)],
            cwd=tmp_path,
            env=dict(os.environ),
            timeout=3,
        )
    pids = read_pids(pids_file)
    assert settled_dead(pids), f"still alive: {[p for p in pids if alive(p)]}"


def test_run_command_timeout_is_a_backend_error_and_leaves_nobody(tmp_path, spawner):
    pids_file = tmp_path / "pids"
    with pytest.raises(BackendError, match="timed out after 3s") as e:
        run_command(
            f"{sys.executable} {spawner} {pids_file}",
            cwd=tmp_path,
            env={},
            timeout=3,
            step="install",
        )
    assert e.value.step == "install"
    assert settled_dead(read_pids(pids_file))


def test_a_background_grandchild_does_not_outlive_a_finished_command(tmp_path):
    pid_file = tmp_path / "bg.pid"
    r = run_command(
        f"sleep 300 >/dev/null 2>&1 & echo $! > {pid_file}; echo done",
        cwd=tmp_path,
        env={},
        timeout=30,
        step="install",
    )
    assert r.returncode == 0 and "done" in r.stdout
    assert settled_dead([int(pid_file.read_text())])


def test_harness_pytest_timeout_kills_the_tests_and_what_they_started(tmp_path, spawner):
    tests = tmp_path / "fleet" / "tests" / "hangs"
    tests.mkdir(parents=True)
    pids_file = tmp_path / "pids"
    (tests / "test_hangs.py").write_text(
        textwrap.dedent(f"""\
        import subprocess, sys

        def test_hangs():
            subprocess.run([sys.executable, {str(spawner)!r}, {str(pids_file)!r}])
    """)
    )
    logged: list[str] = []
    status, n, _failed, reason = functional_tests(
        tmp_path / "fleet" / "tests", "hangs", {}, 5, logged.append
    )
    assert status == policy.FAIL and n == 0 and "timed out after 5s" in reason
    assert settled_dead(read_pids(pids_file))


FAKE_ABRA_HANGS = """\
#!{python}
# FAKE abra (a stand-in: no abra on these machines): starts a grandchild and hangs
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open(os.environ["FAKE_ABRA_PIDS"], "w") as f:
    f.write(f"{{os.getpid()}} {{grandchild.pid}}")
time.sleep(300)
"""


def test_abra_command_timeout_kills_abra_and_its_children(tmp_path, monkeypatch):
    install_abra(tmp_path, monkeypatch, FAKE_ABRA_HANGS)
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_ABRA_PIDS", str(pids_file))
    b = AbraBackend(tmp_path / "abra-dir", ["swarm1"], lock_dir=tmp_path / "locks", timeout_s=3)
    with pytest.raises(BackendError, match="timed out after 3s") as e:
        b._run("app", "deploy", "x.swarm1", "--no-input", step="deploy")
    assert e.value.step == "deploy"
    assert settled_dead(read_pids(pids_file))
