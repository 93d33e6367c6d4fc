"""A path on canon's command line is resolved as canon.toml's paths are (one resolver)."""

from __future__ import annotations

import os
import subprocess
import sys

from canonlib.ops.systemd import SERVICE, read_unit, unit_environment
from tests.workspace import Workspace


def render(ws: Workspace, home, *flags: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "canonlib", "--config", str(ws.root / "canon.toml")]
    argv += ["systemd", "render", "--output", str(ws.root / "units"), *flags]
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_a_fleet_flag_with_a_tilde_is_under_home_as_in_canon_toml(tmp_path):
    ws = Workspace(tmp_path / "ws")
    home = tmp_path / "home"
    (home / "fleet").mkdir(parents=True)
    r = render(ws, home, "--fleet", "~/fleet")  # quoted: no shell expanded it
    assert r.returncode == 0, r.stderr
    env = unit_environment(read_unit(ws.root / "units" / SERVICE))
    assert env["CCCI_REPO"] == str(home / "fleet")


def test_a_fleet_flag_naming_no_such_user_is_one_line_exit_2(tmp_path):
    ws = Workspace(tmp_path / "ws")
    r = render(ws, tmp_path, "--fleet", "~no-such-user-here/fleet")
    assert r.returncode == 2, r.stdout + r.stderr
    assert (
        r.stderr.splitlines() == [r.stderr.strip()]
        and "--fleet ~no-such-user-here/fleet: cannot resolve" in r.stderr
    )
