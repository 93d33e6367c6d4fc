"""The box recipe code runs in on the local backend: bubblewrap's argv (a table), then real
bwrap around real shell commands, then a real sweep whose release's post-install hook goes for
a sibling slot's marker, the registry and the signing key."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from canonlib import box
from canonlib.backends.boxed import OutsideSlot, find_bwrap, run_boxed
from canonlib.backends.common import BackendUnavailable
from canonlib.backends.local import LocalBackend
from canonlib.evidence.signing import init_keys, key_paths
from canonlib.ops.doctor import doctor
from canonlib.recipe.meta import RecipeMeta
from canonlib.state.marker import MARKER_FILE
from canonlib.state.registry import Registry
from canonlib.sweep.orchestrate import sweep
from tests.workspace import Workspace

SPEC = box.BoxSpec(slot="/s/slots/cold-a", cwd="/s/slots/cold-a/app")


@pytest.mark.parametrize(
    ("spec", "mounts"),
    [
        (SPEC, ["--bind", "/s/slots/cold-a", "/s/slots/cold-a"]),
        (  # given children first, mounted parents first, the slot on top of its parents' decoys
            box.BoxSpec(
                slot="/s/slots/cold-a",
                cwd="/",
                decoys=(("/s/slots", "/d/1"), ("/s", "/d/0"), ("/etc/canon.toml", "/d/2")),
            ),
            ["--bind", "/d/0", "/s", "--bind", "/d/1", "/s/slots", "--bind", "/d/2"]
            + ["/etc/canon.toml", "--bind", "/s/slots/cold-a", "/s/slots/cold-a"],
        ),
        (  # a home that holds the state dir: its tmpfs first, then the decoy, then the slot
            box.BoxSpec(
                slot="/root/s/slots/x",
                cwd="/",
                decoys=(("/root", "/d/0"), ("/root/s", "/d/1")),
                hide=("/root",),
                blank=("/run/docker.sock",),
            ),
            ["--tmpfs", "/root", "--bind", "/d/0", "/root", "--bind", "/d/1", "/root/s"]
            + ["--ro-bind", "/dev/null", "/run/docker.sock", "--bind"]
            + ["/root/s/slots/x", "/root/s/slots/x"],
        ),
    ],
)
def test_mounts_go_parents_first_and_the_slot_last(spec, mounts):
    assert box.mounts(spec) == mounts


@pytest.mark.parametrize("bad", ["/", "relative/path", "/s/../etc"])
def test_the_box_never_covers_the_root_or_a_relative_path(bad):
    with pytest.raises(ValueError, match="cannot cover"):
        box.mounts(box.BoxSpec(slot="/s/x", cwd="/", decoys=((bad, "/d/0"),)))
    with pytest.raises(ValueError, match="cannot cover"):
        box.mounts(box.BoxSpec(slot=bad, cwd="/"))


def test_argv_is_read_only_everywhere_but_the_slot_and_dies_with_canon():
    argv = box.argv("/usr/bin/bwrap", ["sh", "-c", "echo hi"], SPEC)
    assert argv[0] == "/usr/bin/bwrap" and argv[-4:] == ["--", "sh", "-c", "echo hi"]
    for flag in ("--die-with-parent", "--unshare-pid"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    ro, tmp, slot = argv.index("--ro-bind"), argv.index("--tmpfs"), argv.index("--bind")
    assert argv[ro : ro + 3] == ["--ro-bind", "/", "/"] and argv[tmp + 1] == "/tmp"
    assert ro < tmp < slot  # the slot is bound after the read-only root and the private /tmp
    assert argv[argv.index("--chdir") + 1] == "/s/slots/cold-a/app"
    assert "--new-session" not in argv  # the box stays in canon's process group


# -- real bwrap -----------------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path):
    """A state dir as canon keeps it: registry, key, a canonical slot and this run's slot."""
    state = tmp_path / "state"
    (state / "keys").mkdir(parents=True)
    (state / "canon.db").write_bytes(b"SQLite format 3\0 the registry")
    (state / "keys" / "canon.key").write_bytes(b"-----BEGIN PRIVATE KEY----- sekrit")
    sibling = state / "slots" / "warm-app-1"
    sibling.mkdir(parents=True)
    (sibling / MARKER_FILE).write_text('{"role": "canonical"}')
    mine = state / "slots" / "cold-app-2"
    (mine / "app").mkdir(parents=True)
    (mine / "data").mkdir()
    return state, mine


def boxed(layout, cmd: str):
    state, mine = layout
    env = {"CANON_DATA_DIR": str(mine / "data"), "S": str(state)}
    return run_boxed(
        cmd,
        slot_dir=mine,
        cwd=mine / "app",
        env=env,
        timeout=30,
        step="install",
        guarded=[state / "slots", state],
        what="app: step 1",
    )


def snapshot(state: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in sorted(state.rglob("*"))
        if p.is_file() and "cold-app-2" not in p.parts
    }


def test_a_hook_writing_into_a_sibling_slot_and_the_registry_is_named_and_changes_nothing(layout):
    state, mine = layout
    before = snapshot(state)
    hook = textwrap.dedent("""\
        echo '{"version": "9.9.9+evil"}' > "$S/slots/warm-app-1/canon-slot.json"
        echo EVIL >> "$S/canon.db" 2>/dev/null || true
        cat "$S/keys/canon.key" > "$CANON_DATA_DIR/stolen" 2>/dev/null || true
        echo done
        exit 0
    """)
    with pytest.raises(OutsideSlot, match="tried to write outside its slot") as e:
        boxed(layout, hook)
    msg = str(e.value)
    assert f"{state}/slots/warm-app-1/canon-slot.json" in msg and f"{state}/canon.db" in msg
    assert snapshot(state) == before  # the marker, the registry and the key: byte-identical
    assert (mine / "data" / "stolen").read_bytes() == b""  # the key read as an empty file


def test_a_write_elsewhere_fails_read_only_and_is_named(layout):
    with pytest.raises(OutsideSlot, match=r"tried to write outside its slot \(/etc/canon-evil"):
        boxed(layout, "echo x > /etc/canon-evil")
    assert not Path("/etc/canon-evil").exists()


def test_a_new_sibling_slot_and_a_removed_key_are_attempts_too(layout):
    state, _ = layout
    with pytest.raises(OutsideSlot) as e:
        boxed(layout, 'mkdir -p "$S/slots/warm-evil" && rm -f "$S/keys/canon.key"; exit 0')
    assert f"{state}/slots/warm-evil" in str(e.value) and f"{state}/keys/canon.key" in str(e.value)
    assert (state / "keys" / "canon.key").read_bytes().startswith(b"-----BEGIN")
    assert not (state / "slots" / "warm-evil").exists()


def test_a_green_step_writes_its_own_slot_and_a_private_tmp(layout, tmp_path):
    _, mine = layout
    private = f"/tmp/canon-box-test-{os.getpid()}-{id(layout)}"
    r = boxed(layout, f'echo seeded > "$CANON_DATA_DIR/seed.txt" && echo t > {private} && pwd')
    assert r.returncode == 0 and r.stdout.strip() == str(mine / "app")
    assert (mine / "data" / "seed.txt").read_text() == "seeded\n"
    assert not Path(private).exists()


def test_a_ready_probe_that_writes_outside_its_slot_is_red_at_once(tmp_path):
    src = tmp_path / "recipe"
    src.mkdir()
    (src / ".env.sample").write_text("TYPE=x\nDOMAIN=x.example.com\n")
    (src / "compose.yml").write_text("services:\n  app:\n    image: x\n")
    state = tmp_path / "state"
    (state / "canon.db").parent.mkdir()
    (state / "canon.db").write_bytes(b"registry")
    b = LocalBackend(state / "slots", guarded=(state,))
    probe = {"cmd": f"echo x >> {state}/canon.db; false", "retries": 1000, "interval_s": 1}
    meta = RecipeMeta("x", tmp_path / "recipe_meta.py", {"READY_PROBES": [probe]})
    b.provision("cold-x-1", src, meta)
    b.deploy("cold-x-1", src, meta, version="1.0.0", commit="a" * 40)
    with pytest.raises(
        OutsideSlot, match=rf"probe .* tried to write outside its slot \({state}/canon\.db\)"
    ):
        b.wait_ready("cold-x-1", meta)  # not a thousand retries
    assert (state / "canon.db").read_bytes() == b"registry"


def test_a_timeout_still_kills_the_box_and_names_what_it_wrote(layout):
    state, _ = layout
    with pytest.raises(OutsideSlot, match=r"canon\.db.*timed out after 1s"):
        run_boxed(
            'echo x >> "$S/canon.db"; sleep 30',
            slot_dir=layout[1],
            cwd=layout[1] / "app",
            env={"S": str(state)},
            timeout=1,
            step="install",
            guarded=[state],
            what="app: step 1",
        )


def test_no_bwrap_on_path_is_no_verdict_naming_how_to_install_it(layout, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("sh"), bin_dir / "sh")
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(BackendUnavailable, match=r"bwrap.*apt-get install bubblewrap"):
        boxed(layout, "true")
    with pytest.raises(BackendUnavailable, match="not on PATH"):
        find_bwrap("provision")


# -- a real sweep -------------------------------------------------------------------------


def hostile_hook(state: Path, canonical_slot: str) -> str:
    """What a re-pointed tag's post-install.sh does: forge the canonical's marker, scribble on
    the registry, read the signing key; it hides its errors and exits 0."""
    key = key_paths(state).private
    return textwrap.dedent(f"""\
        #!/bin/sh
        sed 's/1.0.0+1.0/9.9.9+evil/' {state}/slots/{canonical_slot}/{MARKER_FILE} > /tmp/m
        cp /tmp/m {state}/slots/{canonical_slot}/{MARKER_FILE} 2>/dev/null
        echo EVIL-BYTES >> {state}/canon.db 2>/dev/null
        echo "key: $(cat {key} 2>/dev/null)"
        exit 0
    """)


@pytest.mark.slow
def test_a_sweep_whose_hook_writes_outside_its_slot_is_red_and_the_canonical_stays(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.0")
    state = ws.config.state_dir
    (row,) = sweep(ws.config).rows  # a green release goes green in the box
    assert row["label"] == "PASS (promoted)", row
    kp = init_keys(state)
    with Registry.open(ws.config.db_path) as reg:
        slot = reg.read_registry("custom-html").deployment
    marker = state / "slots" / slot / MARKER_FILE
    kept = {p: p.read_bytes() for p in (marker, kp.private, kp.public)}
    ws.release("custom-html", "1.1.0+1.0", extra={"post-install.sh": hostile_hook(state, slot)})
    (row,) = sweep(ws.config).rows
    assert row["label"].startswith("FAIL") and row["canonical_after"] == "1.0.0+1.0", row
    reason = row["reason"]
    assert "tried to write outside its slot" in reason, row
    assert f"{marker}" in reason and f"{state}/canon.db" in reason, reason
    assert {p: p.read_bytes() for p in kept} == kept  # marker and key: byte-identical
    assert b"EVIL-BYTES" not in ws.config.db_path.read_bytes()
    assert "PRIVATE KEY" not in Path(row["log_path"]).read_text() + reason
    with Registry.open(ws.config.db_path) as reg:
        assert reg.read_registry("custom-html").version == "1.0.0+1.0"
        assert reg.verify_chain().ok


@pytest.mark.slow
def test_a_sweep_without_bwrap_is_an_error_not_an_unboxed_run(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.0")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "git"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    (row,) = sweep(ws.config).rows
    assert row["label"].startswith("ERROR") and "apt-get install bubblewrap" in row["label"], row
    assert row["canonical_after"] is None
    assert not list((ws.config.slots_dir).glob("*/data/seed.txt"))  # no step ran unboxed


@pytest.mark.slow
def test_doctor_says_when_recipe_code_cannot_be_boxed(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    ws.recipe("custom-html")
    name = "recipe code can be boxed (bubblewrap)"
    claims = {c.name: c for c in doctor(str(ws.root / "canon.toml"))}
    assert claims[name].ok and "starts a box" in claims[name].detail
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "git"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    claims = {c.name: c for c in doctor(str(ws.root / "canon.toml"))}
    assert not claims[name].ok and "apt-get install bubblewrap" in claims[name].detail
