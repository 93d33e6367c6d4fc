"""A property over the whole command line: whatever is typed, whatever lies where canon reads,
canon ends with a code it documents, never a traceback or the crash guard's line, and never
touches the canonicals or the registry's chain.

Hypothesis draws an argv (every leaf command of ``canon --help``, walked from the parser, with
drawn flags and values), environment overrides (``CANON_CONFIG``, ``CANON_STATE``,
``CCCI_REPO``, ``NO_COLOR``, ``TERM``), stdin, and small hostile files (FIFOs, symlinks to
/dev/zero or out of the dir, dangling links and loops, nested JSON, a huge sparse file, bad
UTF-8, directories where files belong) placed where canon reads: a config, a state dir, an
evidence dir, a fleet's recipe_meta.py.  Each example runs ``python -m canonlib`` as a child
process against one small workspace built once for the module (a recipe promoted, so there is
a canonical and a chain), from a scratch working directory.

Commands that mutate the registry, or run for minutes (``sweep`` without ``--plan``, ``demo``,
``evidence run``, ``registry restore|rebuild``, ``harness``), are drawn parse-only: ``--help``
or a bad option.  Everything else runs for real.

The test is parametrized by leaf command, so every command runs in every CI run: two examples
each by default (``CANON_CLI_EXAMPLES`` changes it), 120 each with ``HYPOTHESIS_PROFILE=slow``
(over 3000 in all).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sqlite3
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canonlib.cli import reference
from canonlib.cli.main import COMMANDS, build_parser
from tests.cli import canon
from tests.workspace import Workspace

settings.register_profile(
    "cli-default",
    max_examples=int(os.environ.get("CANON_CLI_EXAMPLES", "2")),  # per command
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "slow",
    max_examples=120,  # per command: over 3000 in all
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(
    "slow" if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else "cli-default"
)

BOUND_S = 60  # a failure guard, not a speed target: a run this long is a hang
CODES = {0, 1, 2, 75}
CRASH_WORDS = ("Traceback (most recent call last)", "a bug in canon", "Exception ignored")

# leaf commands that mutate the registry or run for minutes: drawn parse-only
PARSE_ONLY = {
    "canon demo",
    "canon evidence run",
    "canon registry restore",
    "canon registry rebuild",
    "canon harness",
}


def leaves() -> dict[str, argparse.ArgumentParser]:
    out = {}
    for p, _ in reference.walk(build_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            out[p.prog] = p
    return out


LEAVES = leaves()


# -- the workspace, built once ------------------------------------------------------------------


@dataclass
class World:
    ws: Workspace
    home: Path
    scratch_root: Path
    before: str = ""
    ran: list[tuple[str, int]] = field(default_factory=list)


def snapshot(ws: Workspace) -> str:
    """The canonicals, the promotion chain and the canonical slots, as one digest."""
    state = ws.config.state_dir
    h = hashlib.sha256()
    conn = sqlite3.connect(f"file:{state / 'canon.db'}?mode=ro", uri=True)
    try:
        for table in ("canonicals", "promotions"):
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY 1"):  # noqa: S608
                h.update(repr(tuple(row)).encode())
    finally:
        conn.close()
    for root in (state / "slots", state / "canonicals.json"):
        paths = sorted(root.rglob("*")) if root.is_dir() else [root]
        for p in paths:
            h.update(str(p.relative_to(state)).encode())
            if p.is_file() and not p.is_symlink():
                h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("cliprop")
    ws = Workspace(root / "ws")
    ws.recipe("custom-html")
    ws.release("custom-html", "1.7.1+1.27.2")
    ws.recipe("nextcloud")  # enrolled, no upstream branch: an ERROR row in every plan
    home = root / "home"
    home.mkdir()
    w = World(ws, home, root / "scratch")
    w.scratch_root.mkdir()
    r = run_canon(w, ["--config", str(ws.root / "canon.toml"), "sweep", "--recipe", "custom-html"])
    assert r.returncode == 0, r.stdout + r.stderr
    w.before = snapshot(ws)
    yield w
    # shown with -s: how many runs each command had, and how they ended
    progs = ", ".join(f"{k[6:]} {n}" for k, n in sorted(Counter(p for p, _ in w.ran).items()))
    codes = ", ".join(f"exit {k}: {n}" for k, n in sorted(Counter(c for _, c in w.ran).items()))
    print(f"\ncanon ran {len(w.ran)} times ({codes}): {progs}")


def base_env(w: World) -> dict[str, str]:
    drop = ("CANON_", "CCCI_", "GIT_", "NO_COLOR", "TERM", "DISPLAY", "WAYLAND", "BROWSER")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HOME"] = str(w.home)
    return env


MEMORY_CAP = (
    4 << 30
)  # address space: a child reading /dev/zero gets MemoryError, not the OOM killer


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_canon(w: World, argv: list[str], env: dict[str, str] | None = None, **kw):
    return canon(
        None, *argv, env=base_env(w), env_extra=env, timeout=BOUND_S, preexec=_cap_memory, **kw
    )


# -- hostile files ------------------------------------------------------------------------------

NESTED = b"[" * 100_000 + b"]" * 100_000
KINDS = [
    "fifo",
    "dev-zero",
    "dangling",
    "loop",
    "outside",
    "nested-json",
    "huge",
    "bad-utf8",
    "empty",
    "dir",
    "text",
]


def place(path: Path, kind: str) -> Path:
    """Make ``path`` a hostile file of ``kind`` (its parent is made, unless a hostile file
    already stands there: then ``path`` is left as it is)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(path.parent / "no-such-file")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "outside":
        path.symlink_to("/etc/hostname" if Path("/etc/hostname").exists() else "/etc/passwd")
    elif kind == "nested-json":
        path.write_bytes(NESTED)
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(200 * 1024 * 1024)  # sparse: no disk, but 200 MB to whoever reads it
    elif kind == "bad-utf8":
        path.write_bytes(b'fleet = "\xff\xfe"\n\xc3\x28 = 1\n{"a": "\xed\xa0\x80"}\n')
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "dir":
        path.mkdir()
    else:
        path.write_text('{"a": 1}\nHOLD = "x\x1b[31m\u202e"\n')
    return path


S = "@SCENE@"  # stands for the example's scratch dir in what is drawn; made real in make()
SCENE_FILES = {
    "evidence": f"{S}/evidence-dir",
    "state": f"{S}/state",
    "fleet": f"{S}/fleet",
    "config": f"{S}/canon.toml",
    "file": f"{S}/a-file",
}


@dataclass
class Scene:
    """What an example puts on disk: (path under the scratch dir, kind) in order, and the
    config's text when it is the workspace's with a drawn line."""

    files: list[tuple[str, str]] = field(default_factory=list)
    config_text: str | None = None

    def make(self, d: Path) -> None:
        for sub in ("evidence-dir", "state"):
            (d / sub).mkdir()
        for rel, kind in self.files:
            place(d / rel, kind)
        if self.config_text is not None:
            (d / "canon.toml").write_text(self.config_text)


EVIDENCE_FILES = [
    "manifest.json",
    "manifest.dsse.json",
    "records.json",
    "sweep.ipynb",
    "weekly.ipynb",
    "bundle/refs.json",
    "bundle/config.json",
    "index.html",
    "log-proof.json",
]
STATE_FILES = [
    "canon.db",
    "sweep.lock",
    "canonicals.json",
    "log.git",
    "keys",
    "runs",
    "runs/20260101T000000Z-sweep-abcd/results.jsonl",
    "mirrors/custom-html",
    "slots",
]


@st.composite
def scenes(draw, w: World) -> Scene:
    scene = Scene()
    kinds = st.sampled_from(KINDS)
    # an evidence dir with a few hostile files
    for name in draw(st.lists(st.sampled_from(EVIDENCE_FILES), max_size=3, unique=True)):
        scene.files.append((f"evidence-dir/{name}", draw(kinds)))
    # a state dir with hostile files (nothing else: canon starts it afresh)
    for name in draw(st.lists(st.sampled_from(STATE_FILES), max_size=2, unique=True)):
        scene.files.append((f"state/{name}", draw(kinds)))
    # a fleet whose recipe_meta.py is hostile
    recipe = draw(st.sampled_from(["custom-html", "app", "x.y"]))
    scene.files.append((f"fleet/tests/{recipe}/recipe_meta.py", draw(kinds)))
    # a config: the workspace's with a drawn line, or a hostile file
    if draw(st.booleans()):
        base = (w.ws.root / "canon.toml").read_text()
        line = draw(st.sampled_from(CONFIG_LINES))
        scene.config_text = base.replace("[harness]", f"{line}\n[harness]", 1)
    else:
        scene.files.append(("canon.toml", draw(kinds)))
    scene.files.append(("a-file", draw(kinds)))
    return scene


CONFIG_LINES = [
    'state_dir = "/proc/self"',
    'state_dir = "/dev/null"',
    'evidence_dir = "/dev/zero"',
    'fleet = ""',
    'fleet = "/dev/null"',
    'upstream = "{recipe}\x1b[31m"',
    'branch = "\u202emain"',
    "recipes = 1",
    "[recipes.custom-html]\nbranch = 3",
    "[backend]\nkind = 1",
    "[log]\npush = []",
    "[sync]\nparallel = 0",
    "x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]",
    "= broken",
]

# -- argv ---------------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        "-",
        "--",
        "x" * 5000,
        "a\x1b[31mb",
        "app\u202etxt",
        "../..",
        "a/b",
        "\udcff",  # an argv byte that is not UTF-8
        "1.0.0+1",
        "nan",
        "-1",
        "99999999999999999999",
        "%s%n{recipe}",
        "*",
        "custom-html",
        "nextcloud",
        "weekly",
    ]
)
# paths canon only reads (a config, a dir to verify); never where it could write
SYSTEM_PATHS = st.sampled_from(
    ["/dev/null", "/dev/zero", "/proc/self", "/sys", "/", "/nonexistent"]
)
# kernel paths canon must refuse before writing anything (a state dir)
KERNEL_PATHS = st.sampled_from(["/dev/null", "/dev/zero", "/proc/self", "/sys/kernel", "/dev"])
# commands that write where their path argument says: drawn from the scene or relative text
WRITERS = {"canon init", "canon systemd render", "canon registry backup"}


@st.composite
def values(draw, writes: bool = False) -> str:
    """A value for a flag or a positional: a hostile path, a system path, or odd text."""
    which = draw(
        st.sampled_from(
            ["scene", "scene", "text"] if writes else ["scene", "scene", "system", "text"]
        )
    )
    if which == "scene":
        return draw(st.sampled_from(sorted(SCENE_FILES.values())))
    if which == "system":
        return draw(SYSTEM_PATHS)
    return draw(ODD_TEXT)


@st.composite
def argvs(draw, prog: str) -> list[str]:
    words = prog.split()[1:]
    if prog in PARSE_ONLY:
        return [*words, draw(st.sampled_from(["--help", "--no-such-flag", "-h"]))]
    parser = LEAVES[prog]
    argv = list(words)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.option_strings:
            if not draw(st.booleans()):
                continue
            flag = action.option_strings[0]
            if action.nargs == 0:
                argv.append(flag)
            elif action.choices:
                argv += [flag, draw(st.sampled_from([*map(str, action.choices), "nope"]))]
            else:
                argv += [flag, draw(values(prog in WRITERS))]
        elif action.nargs in ("?", "*") and not draw(st.booleans()):
            continue
        elif action.choices:
            argv.append(draw(st.sampled_from([*map(str, action.choices), "nope"])))
        else:
            argv.append(draw(values(prog in WRITERS)))
    if prog == "canon sweep" and "--plan" not in argv:
        argv.append("--plan")  # a real sweep mutates, and may take minutes
    if prog == "canon investigate" and "custom-html" in argv:
        argv.remove("custom-html")  # would run the investigate notebook (minutes)
    return argv


@st.composite
def envs(draw, w: World) -> dict[str, str]:
    env: dict[str, str] = {}
    config = draw(st.sampled_from(["ws", "ws", "scene", "none", "system"]))
    if config == "ws":
        env["CANON_CONFIG"] = str(w.ws.root / "canon.toml")
    elif config == "scene":
        env["CANON_CONFIG"] = SCENE_FILES["config"]
    elif config == "system":
        env["CANON_CONFIG"] = draw(SYSTEM_PATHS)
    state = draw(st.sampled_from(["unset", "unset", "scene", "file", "system"]))
    if state == "scene":
        env["CANON_STATE"] = SCENE_FILES["state"]
    elif state == "file":
        env["CANON_STATE"] = SCENE_FILES["file"]
    elif state == "system":
        env["CANON_STATE"] = draw(KERNEL_PATHS)
    if draw(st.booleans()):
        env["CCCI_REPO"] = SCENE_FILES["fleet"]
    if draw(st.booleans()):
        env["NO_COLOR"] = draw(st.sampled_from(["1", ""]))
    env["TERM"] = draw(st.sampled_from(["dumb", "xterm-256color", "", "vt100"]))
    return env


STDIN = st.sampled_from(
    [
        b"",
        b"1.0.0+1\n1.10.0+2\n",
        b"\xff\xfe\x00\n",
        "\x1b[31m1.0.0\u202e\n".encode(),
        b"1.0.0\n" * 20000,
        b"v" * 100_000,
    ]
)


# -- the property -------------------------------------------------------------------------------


@dataclass
class Case:
    scene: Scene
    prog: str
    argv: list[str]
    env: dict[str, str]
    stdin: bytes


@st.composite
def cases(draw, w: World, prog: str) -> Case:
    scene = draw(scenes(w))
    argv = draw(argvs(prog))
    env = draw(envs(w))
    stdin = draw(STDIN)
    if draw(st.booleans()):
        argv = ["--config", draw(values()), *argv]
    return Case(scene, prog, argv, env, stdin)


def check(w: World, case: Case) -> None:
    """The property, for one case: a documented code in time, no crash, the canonicals kept."""
    d = Path(tempfile.mkdtemp(dir=w.scratch_root))
    try:
        case.scene.make(d)
        argv = [a.replace(S, str(d)) for a in case.argv]
        env = {k: v.replace(S, str(d)) for k, v in case.env.items()}
        try:
            r = run_canon(w, argv, env, cwd=d, input=case.stdin)
        except subprocess.TimeoutExpired:
            pytest.fail(f"canon {argv} ran past {BOUND_S} s (env {env})")
        out = r.stdout + r.stderr
        w.ran.append((case.prog, r.returncode))
        codes = CODES | ({3} if case.prog == "canon versions latest" else set())
        assert r.returncode in codes, (r.returncode, argv, env, out[-2000:])
        for word in CRASH_WORDS:
            assert word not in out, (argv, env, out[-3000:])
        assert snapshot(w.ws) == w.before, (argv, env, out[-2000:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("prog", sorted(LEAVES))
@PROFILE
@given(data=st.data())
def test_any_command_line_ends_in_a_documented_code_and_leaves_the_canonicals(world, prog, data):
    check(world, data.draw(cases(world, prog)))


def test_every_leaf_command_can_be_drawn():
    """The draw covers what `canon --help` lists: a new command is drawn without an edit here."""
    assert {prog.split()[1] for prog in LEAVES} == set(COMMANDS)
