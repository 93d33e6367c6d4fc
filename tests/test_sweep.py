"""The sweep end to end on real repos, real harness processes, a real registry file.

Proofs (determinism, tagged promote, same-version orthogonality) and faults
(SIGKILL during promote, SIGTERM mid-sweep, two sweeps at once, unreachable
upstream, broken meta, empty fleet)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from canonlib.state.row import Cause
from canonlib.sweep.orchestrate import sweep
from tests.cli import canon, canon_argv
from tests.procs import settled_dead
from tests.workspace import META, Workspace


def labels(rows):
    return {r["recipe"]: r["label"] for r in rows}


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    w.release("custom-html", "1.10.0+1.29.0", annotated=False)
    w.recipe("nextcloud")
    w.release("nextcloud", "5.0.2+27.0.1-fpm")
    w.release("nextcloud", "6.0.1+28.0.2-fpm")
    w.recipe("mailu")
    w.upstreams["mailu"].commit()
    w.recipe("hello", meta=META + "FIXTURE = True\n")
    return w


def test_first_sweep_promotes_and_second_is_a_noop(ws):
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert labels(rows) == {
        "custom-html": "PASS (promoted)",
        "nextcloud": "PASS (promoted)",
        "mailu": "SKIP (never-released)",
    }
    by = {row["recipe"]: row for row in rows}
    assert by["nextcloud"]["latest"] == "6.0.1+28.0.2-fpm" and by["nextcloud"]["level"] == 5
    assert by["custom-html"]["upgrade_base_kind"] == "skip"  # no canonical yet
    with Registry.open(ws.config.db_path) as reg:
        n_promotions = len(reg.history())
        assert reg.read_registry("custom-html").commit == ws.upstreams["custom-html"].head(
            "1.10.0+1.29.0"
        )
    # determinism: straight after, nothing runs and nothing is promoted
    r2 = canon(ws, "sweep", "--json")
    rows2 = json.loads(r2.stdout)
    assert r2.returncode == 0
    assert set(labels(rows2).values()) == {"SKIP (no-new-version)", "SKIP (never-released)"}
    assert all(row["tested_commit"] is None and row["log_path"] is None for row in rows2)
    with Registry.open(ws.config.db_path) as reg:
        assert len(reg.history()) == n_promotions and reg.verify_chain().ok
        runs = reg.runs("sweep")
        assert [x["status"] for x in runs] == ["ok", "ok"]
        assert runs[0]["fleet_path"] == str(ws.fleet) and runs[0]["config_hash"]
    # results.jsonl in the run dir matches the registry rows
    run_dir = ws.config.runs_dir / runs[1]["run_id"]
    assert [
        json.loads(x)["label"] for x in (run_dir / "results.jsonl").read_text().splitlines()
    ] == [row["label"] for row in rows2]


def test_same_version_orthogonality(ws):
    sweep(ws.config)
    up = ws.upstreams["custom-html"]
    up.commit(msg="untagged work on main")
    up.commit(msg="more untagged work")
    rows = sweep(ws.config, only=["custom-html"]).rows
    assert labels(rows) == {"custom-html": "SKIP (no-new-version)"}
    ws.release("custom-html", "1.11.0+1.29.0")
    (row,) = sweep(ws.config, only=["custom-html"]).results
    assert (row.label, row.upgrade_base_kind, row.upgrade_base) == (
        "PASS (promoted)",
        "canonical",
        "1.10.0+1.29.0",
    )
    assert (row.canonical_before, row.canonical_after) == ("1.10.0+1.29.0", "1.11.0+1.29.0")
    with Registry.open(ws.config.db_path) as reg:
        assert all(r.upgrade_base_kind != "step-back" for r in reg.results())


def test_out_of_order_backport_does_not_trigger(ws):
    sweep(ws.config)
    ws.release("nextcloud", "5.0.3+27.0.1-fpm")
    (row,) = sweep(ws.config, only=["nextcloud"]).results
    assert row.label == "SKIP (no-new-version)" and row.latest == "6.0.1+28.0.2-fpm"


def test_tag_moved_upstream_blocks_promotion(ws):
    sweep(ws.config)
    up = ws.upstreams["custom-html"]
    up.commit()
    up.tag("1.7.1+1.27.2", force=True)
    ws.release("custom-html", "1.11.0+1.29.0")
    (row,) = sweep(ws.config, only=["custom-html"]).results
    assert row.label.startswith("GREEN-NOT-PROMOTED (tag incident upstream: tag 1.7.1+1.27.2 moved")
    assert row.canonical_after == "1.10.0+1.29.0" and row.incidents
    (row,) = sweep(ws.config, only=["custom-html"]).results  # next week, no new incident
    assert row.label == "PASS (promoted)"


def test_red_release_keeps_old_canonical_and_exits_1(ws):
    sweep(ws.config)
    ws.release("nextcloud", "7.0.0+29.0.0-fpm", app_conf="broken=1\n")
    r = canon(ws, "sweep", "--json", "--recipe", "nextcloud")
    assert r.returncode == 1
    (row,) = json.loads(r.stdout)
    assert row["label"].startswith("FAIL (level") and row["canonical_after"] == "6.0.1+28.0.2-fpm"
    assert os.path.exists(row["log_path"])


def test_plan_touches_nothing_but_mirrors(ws):
    r = canon(ws, "sweep", "--plan")
    assert r.returncode == 0, r.stderr
    assert (
        "PLAN (run 1.10.0+1.29.0, base skip)" in r.stdout
        and "PLAN (skip:never-released)" in r.stdout
    )
    with Registry.open(ws.config.db_path) as reg:
        assert reg.runs() == [] and reg.canonicals() == []
    assert not ws.config.slots_dir.exists()


def test_broken_meta_and_unreachable_upstream_are_that_recipes_error(ws):
    (ws.fleet / "tests" / "mailu" / "recipe_meta.py").write_text("WARM_CANONCIAL = True\n")
    ws.recipe("gone")
    (ws.root / "canon.toml").write_text(
        (ws.root / "canon.toml").read_text() + f'\n[recipes.gone]\nupstream = "{ws.root}/nowhere"\n'
    )
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 1
    got = labels(json.loads(r.stdout))
    assert got["custom-html"] == got["nextcloud"] == "PASS (promoted)"
    assert (
        got["mailu"].startswith("ERROR (meta:") and "did you mean WARM_CANONICAL?" in got["mailu"]
    )
    assert (
        got["gone"].startswith("ERROR (sync: gone: cannot fetch from") and "nowhere" in got["gone"]
    )


def test_hollow_fleet_is_an_error(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("hello", meta=META + "FIXTURE = True\n")
    r = canon(w, "sweep")
    assert r.returncode == 2
    assert "hollow fleet" in r.stderr and str(w.fleet / "tests") in r.stderr
    r = canon(
        None,
        "sweep",
        cwd=tmp_path,
        env_extra={
            "CANON_CONFIG": str(w.root / "canon.toml"),
            "CCCI_REPO": str(tmp_path / "missing"),
        },
        timeout=60,
    )
    assert r.returncode == 2 and "no tests/ directory" in r.stderr and "missing" in r.stderr


SLOW_HARNESS = """
import json, os, pathlib, time
pathlib.Path(os.environ["MARK"] + "-" + os.environ["CCCI_RECIPE"]).write_text(str(os.getpid()))
time.sleep(float(os.environ.get("SLEEP", "30")))
json.dump({"rungs": {r: "pass" for r in ("install", "upgrade", "backup", "functional", "lint")},
           "tests_executed": 1}, open(os.environ["CCCI_RESULT_FILE"], "w"))
"""


def slow_workspace(ws, tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_HARNESS)
    cfg = (
        (ws.root / "canon.toml")
        .read_text()
        .replace(
            f'command = ["{sys.executable}", "-m", "canonlib", "harness"]',
            f'command = ["{sys.executable}", "{tmp_path}/slow.py"]',
        )
    )
    (ws.root / "canon.toml").write_text(cfg)


def wait_for(path, proc, limit=60):
    """Until ``path`` exists (or ``path()`` finds something), while ``proc`` runs."""
    end = time.monotonic() + limit
    while not (path() if callable(path) else path.exists()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out waiting for the marker"
        time.sleep(0.05)


def working_in(root: Path) -> list[str]:
    """The processes whose working directory is under ``root``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if os.readlink(proc / "cwd").startswith(f"{root}/"):
                found.append(proc.name)
    return found


@pytest.mark.parametrize(
    "parallel, sig, code",
    [(1, signal.SIGTERM, 143), (2, signal.SIGTERM, 143), (1, signal.SIGINT, 130)],
)
def test_two_sweeps_at_once_and_signal_mid_sweep(ws, tmp_path, parallel, sig, code):
    slow_workspace(ws, tmp_path)
    toml = ws.root / "canon.toml"
    toml.write_text(toml.read_text() + f'\n[backend]\nkind = "local"\nparallel = {parallel}\n')
    mark = tmp_path / "mark"
    marks = [
        tmp_path / f"mark-{r}"
        for r in (["custom-html", "nextcloud"] if parallel > 1 else ["custom-html"])
    ]
    env = {**os.environ, "MARK": str(mark)}
    first = subprocess.Popen(
        canon_argv(ws, "sweep"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for m in marks:  # with parallel = 2 both cold runs are under way at once
        wait_for(m, first)
    second = canon(ws, "sweep")
    assert second.returncode == 75
    assert "another sweep holds" in second.stderr and f"pid={first.pid}" in second.stderr
    first.send_signal(sig)
    out, err = first.communicate(timeout=60)
    assert first.returncode == code, err
    assert "interrupted" in err
    assert settled_dead([int(m.read_text()) for m in marks])  # every harness died with the sweep
    with Registry.open(ws.config.db_path) as reg:
        assert [r["status"] for r in reg.runs()] == ["interrupted"]
        assert reg.canonicals() == []
    assert not list((ws.config.state_dir / "checkouts").iterdir())
    # the lock is free again and a rerun completes
    r = canon(ws, "sweep", "--json", env={**env, "SLEEP": "0"})
    assert r.returncode == 0, r.stderr
    assert set(labels(json.loads(r.stdout)).values()) == {
        "PASS (promoted)",
        "SKIP (never-released)",
    }


def test_sigkill_during_promote_keeps_a_whole_registry_and_rerun_completes(ws, tmp_path):
    sweep(ws.config)
    ws.release("nextcloud", "6.0.2+28.0.3-fpm")
    # the step runs in the box: it can write only its own slot, and dies with canon
    meta = ws.fleet / "tests" / "nextcloud" / "recipe_meta.py"
    meta.write_text(
        META + "INSTALL_STEPS = ['echo seeded > \"$CANON_DATA_DIR/seed.txt\"', "
        '\'case "$CANON_SLOT" in warm-*) test -n "$GO" || '
        "{ echo here > $CANON_SLOT_DIR/promote-mark; exec sleep 20; };; esac']\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canonlib",
            "--config",
            str(ws.root / "canon.toml"),
            "sweep",
            "--recipe",
            "nextcloud",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: next(ws.config.slots_dir.glob("warm-*/promote-mark"), None), proc, limit=120)
    proc.kill()
    proc.wait()
    end = time.monotonic() + 30  # the box dies with canon: nothing is left working in a slot
    while left := working_in(ws.config.slots_dir):
        assert time.monotonic() < end, f"still running in a slot after canon died: {left}"
        time.sleep(0.05)
    with Registry.open(ws.config.db_path) as reg:
        assert reg.read_registry("nextcloud").version == "6.0.1+28.0.2-fpm"
        assert reg.verify_chain().ok
    r = canon(ws, "sweep", "--json", "--recipe", "nextcloud", env={**os.environ, "GO": "1"})
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["label"] == "PASS (promoted)" and row["canonical_after"] == "6.0.2+28.0.3-fpm"
    with Registry.open(ws.config.db_path) as reg:
        dep = reg.read_registry("nextcloud").deployment
        other = reg.read_registry("custom-html").deployment
    slots = sorted(p.name for p in ws.config.slots_dir.iterdir())
    assert slots == sorted([dep, other])  # the half-made slot was reaped


def test_status_pins_history(ws):
    sweep(ws.config)
    meta = ws.fleet / "tests" / "nextcloud" / "recipe_meta.py"
    meta.write_text(META + 'UPGRADE_BASE_VERSION = "6.0.1+28.0.2-fpm"\n')
    r = canon(ws, "status", "--json")
    st = {row["recipe"]: row for row in json.loads(r.stdout)}
    assert st["nextcloud"]["canonical"] == "6.0.1+28.0.2-fpm" and st["nextcloud"]["age_days"] == 0.0
    assert st["hello"]["enrolled"] is False and st["mailu"]["canonical"] is None
    r = canon(ws, "pins")
    assert "nextcloud: UPGRADE_BASE_VERSION = '6.0.1+28.0.2-fpm' equals the canonical" in r.stdout
    r = canon(ws, "history", "nextcloud")
    assert "6.0.1+28.0.2-fpm" in r.stdout and "PASS (promoted)" in r.stdout


MEETING_HARNESS = """
import json, os, pathlib, time
# each cold run says it has started, then waits (up to 60 s) to see another one under way:
# run one after the other, the first would wait in vain and go red
here = pathlib.Path(os.environ["TIMES"])
(here / os.environ["CCCI_RECIPE"]).write_text("started")
end = time.monotonic() + 60
while len(list(here.iterdir())) < 2 and time.monotonic() < end:
    time.sleep(0.05)
met = len(list(here.iterdir())) >= 2
RUNGS = ("install", "upgrade", "backup", "functional", "lint")
rungs = {r: "pass" if met else "fail" for r in RUNGS}
json.dump({"rungs": rungs, "tests_executed": 1}, open(os.environ["CCCI_RESULT_FILE"], "w"))
"""


def test_cold_runs_fan_out_when_parallel(ws, tmp_path, monkeypatch):
    (tmp_path / "meeting.py").write_text(MEETING_HARNESS)
    times = tmp_path / "times"
    times.mkdir()
    monkeypatch.setenv("TIMES", str(times))
    toml = ws.root / "canon.toml"
    toml.write_text(
        toml.read_text().replace(
            f'command = ["{sys.executable}", "-m", "canonlib", "harness"]',
            f'command = ["{sys.executable}", "{tmp_path}/meeting.py"]',
        )
        + '\n[backend]\nkind = "local"\nparallel = 2\n'
    )
    assert ws.config.cold_parallel == 2
    result = sweep(ws.config)
    # both green: each saw the other under way, so the two cold runs overlapped
    assert labels(result.rows) == {
        "custom-html": "PASS (promoted)",
        "nextcloud": "PASS (promoted)",
        "mailu": "SKIP (never-released)",
    }
    with Registry.open(ws.config.db_path) as reg:
        assert reg.verify_chain().ok and len(reg.results(result.run_id)) == 3


def test_tagged_promote_proof(ws, tmp_path):
    from canonlib.evidence.proofs import prove_tagged_promote

    sweep(ws.config)
    facts = prove_tagged_promote(ws.config, "custom-html", tmp_path / "proof")
    assert facts["untagged"]["green"] and not facts["untagged"]["promoted"]
    assert facts["untagged"]["gate"].startswith("untagged")
    assert facts["tagged"]["promoted"] and facts["tag"] == "1.10.1+1.29.0"
    assert all(c["ok"] for c in facts["claims"]), facts["claims"]
    with Registry.open(ws.config.db_path) as reg:  # the real registry was not touched
        assert reg.read_registry("custom-html").version == "1.10.0+1.29.0"


def test_missing_harness_is_an_error_row_not_a_crash(ws):
    toml = ws.root / "canon.toml"
    toml.write_text(
        toml.read_text().replace(
            f'command = ["{sys.executable}", "-m", "canonlib", "harness"]',
            'command = ["/nonexistent/harness"]',
        )
    )
    r = canon(ws, "sweep", "--json")
    assert r.returncode == 1
    got = labels(json.loads(r.stdout))
    assert got["custom-html"].startswith(
        "ERROR (cold run: cannot start harness '/nonexistent/harness'"
    )
    assert got["mailu"] == "SKIP (never-released)"
    # the cause is the environment's, decided where the harness failed to start, with its errno;
    # said in --json, in results.jsonl and in the registry alike
    (shown,) = [row for row in json.loads(r.stdout) if row["recipe"] == "custom-html"]
    assert (shown["cause"], shown["errno"]) == ("environment", errno.ENOENT)
    with Registry.open(ws.config.db_path) as reg:
        assert reg.canonicals() == []
        (stored,) = reg.results(recipe="custom-html")
    assert (stored.cause, stored.errno) == (Cause.ENVIRONMENT, errno.ENOENT)
    lines = (ws.config.runs_dir / stored.run_id / "results.jsonl").read_text().splitlines()
    (line,) = [json.loads(x) for x in lines if json.loads(x)["recipe"] == "custom-html"]
    assert (line["cause"], line["errno"]) == ("environment", errno.ENOENT)
