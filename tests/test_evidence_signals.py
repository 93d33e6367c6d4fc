"""SIGTERM / SIGINT during `canon evidence run`: the whole tree (papermill, its kernel, the
harness the kernel's sweep started) stops, the sweep run and the evidence dir are marked
interrupted, canon exits 143 / 130 with a message, and nothing outlives canon.

Real processes throughout; the harness is a small sleeping script (a stand-in for a slow cold
run) so the signal lands while a cold run is under way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from canonlib.evidence.manifest import MANIFEST
from canonlib.state.registry import Registry
from tests.test_sweep import slow_workspace, wait_for
from tests.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_evidence_run_stops_the_whole_tree(tmp_path, sig, code):
    ws = Workspace(tmp_path / "ws")
    ws.recipe("custom-html")
    ws.release("custom-html", "1.7.1+1.27.2")
    slow_workspace(ws, tmp_path)
    mark = tmp_path / "mark"
    env = {**os.environ, "MARK": str(mark), "SLEEP": "300"}
    env.pop("CANON_CONFIG", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canonlib",
            "--config",
            str(ws.root / "canon.toml"),
            "evidence",
            "run",
            "weekly",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for(tmp_path / "mark-custom-html", proc, limit=240)
        tree = psutil.Process(proc.pid).children(recursive=True)
        cmdlines = [" ".join(p.cmdline()) for p in tree]
        assert any("papermill" in c for c in cmdlines), cmdlines
        assert any("ipykernel_launcher" in c for c in cmdlines), cmdlines
        harness_pid = int((tmp_path / "mark-custom-html").read_text())
        assert harness_pid in {p.pid for p in tree}
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert "interrupted by" in out
    gone, alive = psutil.wait_procs(tree, timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], [
        p.cmdline() for p in alive
    ]
    with Registry.open(ws.config.db_path) as reg:
        runs = reg.runs("sweep")
        assert [r["status"] for r in runs] == ["interrupted"]  # the kernel's sweep marked its run
        assert reg.canonicals() == []
    (evidence,) = list(ws.config.evidence_dir.iterdir())
    m = json.loads((evidence / MANIFEST).read_text())
    assert m["predicate"]["canon"]["interrupted"] == signal.Signals(sig).name
    assert m["predicate"]["result"] == "FAILED"
    assert not list((ws.config.state_dir / "checkouts").iterdir())
    # the lock is free and a rerun completes: evidence run weekly is green (exit 0)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "canonlib",
            "--config",
            str(ws.root / "canon.toml"),
            "evidence",
            "run",
            "weekly",
        ],
        capture_output=True,
        text=True,
        env={**env, "SLEEP": "0"},
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "evidence weekly: PASSED" in r.stdout
