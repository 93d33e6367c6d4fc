"""Operating canon: rendered units verify, a simulated timer fire produces verified evidence,
and `canon doctor` sees the timer's PATH, not yours."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess

import pytest

from canonlib.ops.systemd import read_unit, unit_environment
from tests.cli import canon
from tests.need import need
from tests.workspace import META, Workspace


@pytest.fixture
def systemd_analyze():
    need(
        None
        if shutil.which("systemd-analyze")
        else "systemd-analyze is not installed (.ci/run installs systemd)"
    )


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    # the operator relies on the unit's CCCI_REPO for the fleet: no `fleet =` in canon.toml
    toml = w.root / "canon.toml"
    toml.write_text(toml.read_text().replace('fleet = "fleet"\n', ""))
    w.recipe("custom-html", meta=META + 'REQUIRES_TOOLS = ["git-lfs-for-canon-test"]\n')
    w.release("custom-html", "1.7.1+1.27.2")
    w.release("custom-html", "1.10.0+1.29.0")
    return w


def tool_dir(tmp_path):
    """A bin dir holding the tool custom-html's meta REQUIRES (a stand-in for git-lfs)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "git-lfs-for-canon-test"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return bindir


def render(ws, tmp_path, path):
    out = tmp_path / "units"
    canon(ws, "systemd", "render", "--output", out, "--path", path, "--fleet", ws.fleet, code=0)
    return out


def test_rendered_units_verify_weekly_and_persistent(ws, tmp_path, systemd_analyze):
    out = render(ws, tmp_path, os.environ["PATH"])
    r = canon(None, "systemd", "verify", str(out))
    assert r.returncode == 0, r.stdout
    assert "ok    timer is weekly" in r.stdout and "ok    timer Persistent=true" in r.stdout
    timer = read_unit(out / "canon-sweep.timer")
    assert timer["Persistent"] == ["true"] and timer["RandomizedDelaySec"]
    svc = read_unit(out / "canon-sweep.service")
    assert svc["Type"] == ["oneshot"] and svc["ExecStart"][0].endswith(
        "-m canonlib evidence run weekly"
    )
    assert "ProtectSystem" in svc and "NoNewPrivileges" in svc
    # a broken calendar is caught
    (out / "canon-sweep.timer").write_text(
        (out / "canon-sweep.timer")
        .read_text()
        .replace("OnCalendar=Sun *-*-* 02:30:00", "OnCalendar=*-*-* 02:30:00")
    )
    r = canon(None, "systemd", "verify", str(out))
    assert r.returncode == 1 and "FAIL  timer is weekly" in r.stdout


@pytest.mark.slow
def test_timer_fire_runs_exactly_the_unit_and_fails_loudly_without_the_fleet(ws, tmp_path):
    bindir = tool_dir(tmp_path)
    out = render(ws, tmp_path, f"{bindir}:/usr/local/bin:/usr/bin:/bin")
    svc = read_unit(out / "canon-sweep.service")
    env = unit_environment(svc)  # env -i: nothing but the unit's Environment= lines
    argv = shlex.split(svc["ExecStart"][0])
    wd = svc["WorkingDirectory"][0]
    fire = subprocess.run(argv, env=env, cwd=wd, capture_output=True, text=True, timeout=600)
    assert fire.returncode == 0, fire.stdout + fire.stderr
    evidence = fire.stdout.strip().splitlines()[-1]
    assert evidence.startswith(str(ws.root / "evidence"))
    check = canon(ws, "verify", evidence, env={**os.environ, "CCCI_REPO": env["CCCI_REPO"]})
    assert check.returncode == 0, check.stdout
    manifest = json.loads((ws.root / evidence / "manifest.json").read_text())
    assert manifest["predicate"]["canon"]["fleet"]["path"] == str(ws.fleet)
    assert [s["name"] for s in manifest["subject"]] == ["custom-html"]
    # the same fire with the fleet variable gone: loud, non-zero, naming the missing fleet
    del env["CCCI_REPO"]
    fire = subprocess.run(argv, env=env, cwd=wd, capture_output=True, text=True, timeout=600)
    assert fire.returncode != 0
    assert "no fleet" in fire.stderr and "CCCI_REPO" in fire.stderr


def test_doctor_sees_the_units_path_not_yours(ws, tmp_path):
    bindir = tool_dir(tmp_path)
    mine = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "CCCI_REPO": str(ws.fleet)}
    assert shutil.which("git-lfs-for-canon-test", path=mine["PATH"])
    out = render(ws, tmp_path, "/usr/local/bin:/usr/bin:/bin")  # the timer's PATH lacks the tool
    r = canon(None, "doctor", "--unit", str(out / "canon-sweep.service"), env=mine)
    assert r.returncode == 1
    line = next(ln for ln in r.stdout.splitlines() if "git-lfs-for-canon-test" in ln)
    assert (
        line.startswith("FAIL")
        and "needed by custom-html" in line
        and "canon-sweep.service" in line
    )
    assert "ok    fleet found, enrolled set non-empty" in r.stdout
    # in your own shell it is there
    r = canon(ws, "doctor", "--json", env=mine)
    claims = {c["name"]: c for c in json.loads(r.stdout)}
    assert (
        claims["tool git-lfs-for-canon-test on PATH"]["ok"]
        and claims["a Jupyter kernel starts"]["ok"]
    )
    assert r.returncode == 0, r.stdout
