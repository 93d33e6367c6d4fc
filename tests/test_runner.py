"""Cold runs of the built-in harness on real recipe-shaped repos, through the local backend.

Every run here is a real child process (`python -m canonlib harness`) running real
pytest on the fleet's tests, against a real slot directory."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from canonlib.sweep import policy
from canonlib.sweep.runner import cold_run
from tests.procs import settled_dead
from tests.workspace import META, Workspace

HARNESS = [sys.executable, "-m", "canonlib", "harness"]


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


def run(ws, name, tag, base=None, command=HARNESS, timeout=120, **kw):
    m = ws.mirror(name)
    m.sync()
    cfg = ws.config
    with m.checkout(tag) as co:
        r = cold_run(
            name,
            co,
            ws.meta(name),
            command=command,
            timeout_s=timeout,
            base=base,
            log_path=cfg.runs_dir / "t" / f"{name}.log",
            env=cfg.child_env(),
            **kw,
        )
    return r


def test_green_run_climbs_to_level_5_with_upgrade_from_canonical(ws):
    ws.recipe("custom-html")
    ws.release("custom-html", "1.10.0+1.29.0")
    ws.release("custom-html", "1.11.0+1.29.0", annotated=False)
    base = policy.upgrade_base("1.11.0+1.29.0", "1.10.0+1.29.0", ["1.10.0+1.29.0", "1.11.0+1.29.0"])
    r = run(ws, "custom-html", "1.11.0+1.29.0", base=base)
    assert r.rungs == dict.fromkeys(
        ("install", "upgrade", "backup", "functional", "lint"), "pass"
    ), r.reasons
    assert (r.level, r.green, r.rc, r.error) == (5, True, 0, None)
    assert r.tests_executed >= 9  # upgrade, functional and after-restore runs of 3 tests
    assert "from canonical 1.10.0+1.29.0" in r.reasons["upgrade"]
    # the harness tore its slots down
    assert not [s for s in (ws.config.slots_dir).glob("cold-*")]


def test_version_label_not_matching_the_tag_fails_lint(ws):
    ws.recipe("plausible")
    ws.release("plausible", "3.0.1+v2.0.0", label_version="3.0.0+v2.0.0")
    r = run(ws, "plausible", "3.0.1+v2.0.0")
    assert (
        r.rungs["lint"] == "fail"
        and "3.0.0+v2.0.0 but the tag is 3.0.1+v2.0.0" in r.reasons["lint"]
    )
    assert (r.level, r.green) == (4, False)


def test_missing_release_note_is_only_a_warning(ws):
    ws.recipe("bonfire")
    ws.release("bonfire", "1.0.0+1.0.5-social-amd64", release_note=False)
    r = run(ws, "bonfire", "1.0.0+1.0.5-social-amd64")
    assert r.green and r.rungs["lint"] == "pass"
    assert any("release/1.0.0+1.0.5-social-amd64" in w for w in r.warnings)


def test_failing_functional_test_is_level_3(ws):
    ws.recipe("nextcloud")
    ws.release("nextcloud", "6.0.1+28.0.2-fpm", app_conf="broken=true\n")
    r = run(ws, "nextcloud", "6.0.1+28.0.2-fpm")
    assert r.rungs["functional"] == "fail" and r.rungs["backup"] == "pass"
    assert (r.level, r.green) == (3, False)
    assert "test_app_config_is_sane" in r.reasons["functional"]


def test_expected_na_backup_is_still_green(ws):
    ws.recipe("bluesky-pds", meta=META + 'EXPECTED_NA = {"backup": "PDS backups need a PLC key"}\n')
    ws.release("bluesky-pds", "0.2.0+v0.4")
    r = run(ws, "bluesky-pds", "0.2.0+v0.4")
    assert r.rungs["backup"] == "skip" and "PLC key" in r.reasons["backup"]
    assert r.green and r.level == 5


def test_zero_tests_collected_is_not_green(ws):
    ws.recipe("gitea", test="")  # an empty test file: pytest collects nothing
    ws.release("gitea", "1.1.0+1.15.3")
    r = run(ws, "gitea", "1.1.0+1.15.3")
    assert r.rungs["functional"] == "unverified" and r.tests_executed == 0
    assert not r.green


def test_failed_install_leaves_higher_rungs_unverified(ws):
    ws.recipe("gitea", meta=META.replace("echo seeded", "exit 7; echo seeded"))
    ws.release("gitea", "1.1.0+1.15.3")
    r = run(ws, "gitea", "1.1.0+1.15.3")
    assert r.rungs["install"] == "fail" and "exited 7" in r.reasons["install"]
    assert r.rungs["functional"] == r.rungs["backup"] == "unverified"
    assert (r.level, r.green) == (0, False)


def script(tmp_path, body):
    p = tmp_path / "harness.py"
    p.write_text(textwrap.dedent(body))
    return [sys.executable, str(p)]


GREEN_RESULT = """
import json, os
json.dump({"rungs": {r: "pass" for r in ("install", "upgrade", "backup", "functional", "lint")},
           "tests_executed": 3}, open(os.environ["CCCI_RESULT_FILE"], "w"))
"""


def test_harness_that_moves_the_checkout_is_not_trusted(ws, tmp_path):
    ws.recipe("gitea")
    ws.release("gitea", "1.0.0+1.14.3")
    ws.release("gitea", "1.1.0+1.15")
    cmd = script(
        tmp_path,
        GREEN_RESULT
        + "import subprocess\nsubprocess.run(['git', 'checkout', '-q', '1.0.0+1.14.3'])\n",
    )
    r = run(ws, "gitea", "1.1.0+1.15", command=cmd)
    assert r.rc == 0 and not r.green
    assert "not trusted" in r.error and "moved" in r.error


def test_harness_env_is_the_ccci_contract(ws, tmp_path):
    ws.recipe("gitea")
    commit = ws.release("gitea", "1.0.0+1.14.3")
    out = tmp_path / "env.txt"
    cmd = script(
        tmp_path,
        f"import os\nopen({str(out)!r}, 'w').write("
        "repr({k: v for k, v in os.environ.items() if k.startswith('CCCI_')}))\n",
    )
    run(ws, "gitea", "1.0.0+1.14.3", command=cmd)
    env = eval(out.read_text())  # noqa: S307 -- our own repr
    assert env["CCCI_SKIP_FETCH"] == "1" and env["CCCI_MODE"] == "cold"
    assert (env["CCCI_RECIPE"], env["CCCI_VERSION"], env["CCCI_COMMIT"]) == (
        "gitea",
        "1.0.0+1.14.3",
        commit,
    )
    assert env["CCCI_UPGRADE_BASE_KIND"] == "skip" and env["CCCI_RESULT_FILE"].endswith(
        ".result.json"
    )


def test_hanging_harness_is_killed_with_its_children(ws, tmp_path):
    ws.recipe("gitea")
    ws.release("gitea", "1.0.0+1.14.3")
    pidfile = tmp_path / "child.pid"
    cmd = script(
        tmp_path,
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        time.sleep(300)
    """,
    )
    r = run(ws, "gitea", "1.0.0+1.14.3", command=cmd, timeout=2)
    assert r.timed_out and not r.green
    assert (
        policy.label(
            policy.Turn("run", green=r.green, level=r.level, timed_out=r.timed_out), None, None
        )
        == "FAIL (timeout)"
    )
    assert settled_dead([int(pidfile.read_text())])  # the grandchild died with the group


def test_harness_printing_megabytes_is_capped(ws, tmp_path):
    ws.recipe("gitea")
    ws.release("gitea", "1.0.0+1.14.3")
    cmd = script(
        tmp_path,
        GREEN_RESULT
        + "import sys\nfor _ in range(800):\n    sys.stdout.write('x' * 10000 + '\\n')\n",
    )
    r = run(ws, "gitea", "1.0.0+1.14.3", command=cmd, log_cap=1_000_000)
    size = os.path.getsize(r.log_path)
    assert 1_000_000 < size < 1_010_000
    with open(r.log_path) as f:
        assert "log capped at 1000000 bytes" in f.read()[-200:]
    assert r.green  # the run itself still counts


def test_no_result_file_is_not_green(ws, tmp_path):
    ws.recipe("gitea")
    ws.release("gitea", "1.0.0+1.14.3")
    r = run(ws, "gitea", "1.0.0+1.14.3", command=script(tmp_path, "pass\n"))
    assert r.rc == 0 and not r.green and "wrote no result file" in r.error
    assert set(r.rungs.values()) == {"unverified"}
    assert r.verdict is None  # no verdict about the recipe: never remembered as known-red
