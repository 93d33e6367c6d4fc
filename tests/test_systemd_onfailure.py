"""The rendered service calls the operator's OnFailure= unit when the week is FAILED (exit 1)."""

from __future__ import annotations

import shutil
import subprocess
import sys

from canonlib.ops.systemd import read_unit
from tests.cli import canon
from tests.need import need
from tests.workspace import Workspace


def render(ws, out, *extra):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "canonlib",
            "--config",
            str(ws.root / "canon.toml"),
            "systemd",
            "render",
            "--output",
            str(out),
            "--path",
            "/usr/bin:/bin",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return read_unit(out / "canon-sweep.service")


def test_on_failure_line_only_when_configured(tmp_path):
    ws = Workspace(tmp_path / "ws")
    svc = render(ws, tmp_path / "with", "--on-failure", "canon-notify@%n.service")
    assert svc["OnFailure"] == ["canon-notify@%n.service"]
    text = (tmp_path / "with" / "canon-sweep.service").read_text()
    assert text.index("OnFailure=") < text.index("[Service]")  # a [Unit] directive
    assert "OnFailure" not in render(ws, tmp_path / "without")
    need(
        None
        if shutil.which("systemd-analyze")
        else "systemd-analyze is not installed (.ci/run installs systemd)"
    )
    r = canon(None, "systemd", "verify", tmp_path / "with", timeout=120)
    assert "ok    systemd-analyze verify" in r.stdout, r.stdout
