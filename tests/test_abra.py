"""The abra backend against a FAKE `abra` executable on PATH.

There is no Docker engine and no abra on these machines, so this is the one stand-in
in the suite: a small script that records its argv (and the commit it finds where abra
reads recipes) and fails on cue.  Everything else (checkouts, secret files, locks) is real.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from canonlib.backends import BackendError
from canonlib.backends.abra import AbraBackend
from tests.workspace import Workspace

FAKE_ABRA = textwrap.dedent("""\
    #!{python}
    import json, os, subprocess, sys
    args = sys.argv[1:]
    rec = {{"argv": args}}
    if args[:2] == ["app", "deploy"]:
        recipe_dir = os.path.join(
            os.environ["ABRA_DIR"],
            "recipes",
            os.environ.get("FAKE_ABRA_RECIPE", ""),
        )
        rec["commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=recipe_dir,
            capture_output=True,
            text=True,
        ).stdout.strip()
    if args[:3] == ["app", "secret", "insert"]:
        path = args[6]
        rec["secret_file_mode"] = oct(os.stat(path).st_mode & 0o777)
        value = open(path).read()
        rec["secret_len"] = len(value)
        with open(os.environ["FAKE_ABRA_SECRETS"], "a") as f:  # kept apart, to look for leaks
            f.write(value + "\\n")
        if os.environ.get("FAKE_ABRA_FAIL") == "secret insert":
            print("abra: cannot insert " + value, file=sys.stderr)  # an abra that echoes it
    with open(os.environ["FAKE_ABRA_LOG"], "a") as f:
        f.write(json.dumps(rec) + "\\n")
    if args[:3] == ["app", "secret", "generate"]:
        print("SECRET-VALUE-PRINTED-BY-ABRA-0xdeadbeef")
    cue = os.environ.get("FAKE_ABRA_FAIL")
    if cue and cue in " ".join(args):
        print("abra: failing on cue: " + cue, file=sys.stderr)
        sys.exit(1)
""")


def install_abra(tmp_path, monkeypatch, script: str) -> Path:
    """Put the fake ``abra`` (a Python ``script`` template with ``{python}``) first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "abra"
    exe.write_text(script.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


@pytest.fixture
def fake_abra(tmp_path, monkeypatch):
    install_abra(tmp_path, monkeypatch, FAKE_ABRA)
    log = tmp_path / "abra-argv.jsonl"
    monkeypatch.setenv("FAKE_ABRA_SECRETS", str(tmp_path / "inserted-secrets"))
    monkeypatch.setenv("FAKE_ABRA_LOG", str(log))
    monkeypatch.setenv("FAKE_ABRA_RECIPE", "bluesky-pds")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return calls


ABRA_META = """
WARM_CANONICAL = True
SECRETS = {"pds_plc_rotation_key": "hex:32", "jwt_secret": None}
INSTALL_STEPS = ["app: goat pds init"]
READY_PROBES = [{"cmd": 'test -n "$DOMAIN"', "retries": 1}]
"""


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("bluesky-pds", meta=ABRA_META)
    w.release("bluesky-pds", "0.2.0+v0.4")
    return w


def backend(tmp_path, servers=("swarm1.example.org",)):
    return AbraBackend(
        tmp_path / "abra-dir",
        list(servers),
        lock_dir=tmp_path / "locks",
        log=tmp_path / "abra.log",
        server_wait_s=0,
    )


def test_exact_command_sequence_and_no_secret_in_logs(ws, tmp_path, fake_abra):
    b = backend(tmp_path)
    m = ws.mirror("bluesky-pds")
    m.sync()
    meta = ws.meta("bluesky-pds")
    slot = "cold-bluesky-pds-abc"
    with m.checkout("0.2.0+v0.4") as co:
        b.provision(slot, co.path, meta)
        b.deploy(slot, co.path, meta, version=co.tag, commit=co.commit)
        b.run_install_steps(slot, meta)
        b.wait_ready(slot, meta)
        snap = b.snapshot(slot)
        b.restore(slot, snap)
        b.undeploy(slot)
        b.teardown(slot)
        commit = co.commit
    d = f"{slot}.swarm1.example.org"
    calls = fake_abra()
    argvs = [c["argv"] for c in calls]
    assert argvs[0] == [
        "app",
        "new",
        "bluesky-pds",
        "--server",
        "swarm1.example.org",
        "--domain",
        d,
        "--chaos",
        "--no-input",
    ]
    insert = argvs[1]
    assert insert[:6] == ["app", "secret", "insert", d, "pds_plc_rotation_key", "v1"]
    assert insert[7:] == ["--file", "--no-input"]
    assert calls[1]["secret_file_mode"] == "0o600" and calls[1]["secret_len"] == 64
    assert not os.path.exists(insert[6])  # the secret file is gone
    assert argvs[2:] == [
        ["app", "secret", "generate", d, "jwt_secret", "v1", "--no-input"],
        ["app", "deploy", d, "--chaos", "--force", "--no-input"],
        ["app", "run", d, "app", "--no-input", "--", "sh", "-c", "goat pds init"],
        ["app", "ps", d, "--no-input"],
        ["app", "backup", "create", d, "--no-input"],
        ["app", "restore", d, "--no-input"],
        ["app", "undeploy", d, "--no-input"],
        ["app", "undeploy", d, "--no-input"],
        ["app", "volume", "remove", d, "--force", "--no-input"],
        ["app", "secret", "remove", d, "--all", "--no-input"],
        ["app", "remove", d, "--force", "--no-input"],
    ]
    assert calls[3]["commit"] == commit  # chaos deploy of exactly the tested commit
    env_file = tmp_path / "abra-dir" / "servers" / "swarm1.example.org" / f"{d}.env"
    assert f"DOMAIN={d}" in env_file.read_text()
    # no secret value reaches any log: not abra's printed value, not the inserted one
    everything = (tmp_path / "abra.log").read_text() + json.dumps(calls)
    assert "SECRET-VALUE-PRINTED-BY-ABRA" not in everything
    (inserted,) = (tmp_path / "inserted-secrets").read_text().split()
    assert len(inserted) == 64 and inserted not in everything
    assert "output withheld" in (tmp_path / "abra.log").read_text()


def test_failure_on_cue_names_the_step(ws, tmp_path, fake_abra, monkeypatch):
    b = backend(tmp_path)
    m = ws.mirror("bluesky-pds")
    m.sync()
    meta = ws.meta("bluesky-pds")
    monkeypatch.setenv("FAKE_ABRA_FAIL", "app deploy")
    with m.checkout("0.2.0+v0.4") as co:
        b.provision("cold-x", co.path, meta)
        with pytest.raises(BackendError) as e:
            b.deploy("cold-x", co.path, meta, version=co.tag, commit=co.commit)
    assert e.value.step == "deploy" and "failing on cue" in str(e.value)


def test_secret_insert_failure_does_not_leak_the_value(ws, tmp_path, fake_abra, monkeypatch):
    b = backend(tmp_path)
    m = ws.mirror("bluesky-pds")
    m.sync()
    monkeypatch.setenv("FAKE_ABRA_FAIL", "secret insert")
    with m.checkout("0.2.0+v0.4") as co, pytest.raises(BackendError) as e:
        b.provision("cold-x", co.path, ws.meta("bluesky-pds"))
    assert "output withheld" in str(e.value)
    (inserted,) = (tmp_path / "inserted-secrets").read_text().split()
    assert inserted not in str(e.value) and inserted not in (tmp_path / "abra.log").read_text()


def test_cold_runs_fan_out_one_per_server(ws, tmp_path, fake_abra):
    b1 = backend(tmp_path, ["swarm1", "swarm2"])
    b2 = backend(tmp_path, ["swarm1", "swarm2"])
    b3 = backend(tmp_path, ["swarm1", "swarm2"])
    m = ws.mirror("bluesky-pds")
    m.sync()
    meta = ws.meta("bluesky-pds")
    with m.checkout("0.2.0+v0.4") as co:
        b1.provision("cold-a", co.path, meta)
        b2.provision("cold-b", co.path, meta)
        first, second = b1._record("cold-a")["server"], b2._record("cold-b")["server"]
        assert {first, second} == {"swarm1", "swarm2"}
        with pytest.raises(BackendError, match="no free server"):
            b3.provision("cold-c", co.path, meta)  # both swarms busy (server_wait_s=0)
        b1.teardown("cold-a")
        b3.provision("cold-c", co.path, meta)
        assert b3._record("cold-c")["server"] == first  # the server b1 freed


def test_missing_abra_is_a_clear_error(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    b = backend(tmp_path)
    with pytest.raises(BackendError, match="abra not found on PATH"):
        b._run("app", "ls", step="provision")
