"""The command line's edges: closed or gone stdout/stderr, a dumb terminal, odd recipe names,
`init` into a used dir, a state dir where no lock can be made.

Every case runs `python -m canonlib` as a real child process (a real pipe whose reader is gone,
a real pseudo-terminal, real FIFOs and symlinks) against one small workspace with a canonical.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from tests.cli import canon, canon_argv, read_terminal
from tests.workspace import Workspace

ANSI = re.compile(rb"\x1b")
CRASH = "a bug in canon"


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    """custom-html promoted (a canonical, a history), nextcloud enrolled without a release."""
    w = Workspace(tmp_path_factory.mktemp("edges"))
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    canon(w, "sweep", "--recipe", "custom-html", code=0)
    return w


def no_crash_log(ws: Workspace) -> None:
    logs = ws.config.state_dir / "logs"
    assert not list(logs.glob("crash-*")) if logs.exists() else True


# -- closed and gone stdout / stderr ------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["meta", "keys"], ["status"], ["history", "custom-html"], ["sweep", "--plan"]]
)
def test_a_stdout_closed_before_canon_starts_is_dev_null(ws, args):
    """`canon meta keys >&-`: the run goes on, prints nowhere, exits with its own code."""
    r = canon(ws, *args, preexec=lambda: os.close(1))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    no_crash_log(ws)


def test_stdout_and_stderr_closed(ws):
    script = f"{' '.join(canon_argv(ws, 'status'))} >&- 2>&-; echo $? >{ws.root}/rc"
    subprocess.run(["bash", "-c", script], check=True, timeout=120)
    assert (ws.root / "rc").read_text().strip() == "0"
    no_crash_log(ws)


def gone_reader(ws: Workspace | None, args: list[str], gone: str) -> tuple[int, str]:
    """Run canon with a pipe on stdout and stderr, the reader of ``gone`` closed before canon
    writes a byte; its exit code and what the other pipe got."""
    proc = subprocess.Popen(canon_argv(ws, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    closed, kept = (proc.stdout, proc.stderr) if gone == "stdout" else (proc.stderr, proc.stdout)
    closed.close()
    text = kept.read().decode()
    kept.close()
    return proc.wait(timeout=120), text


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),  # argparse writes it, before the command's guard
        (["history", "--help"], 0),
        (["history", "custom-html"], 0),
        (["meta", "keys"], 0),
        (["config", "example"], 0),
    ],
)
def test_a_gone_reader_of_stdout_ends_canon_quietly_exit_0(ws, args, code):
    rc, err = gone_reader(ws, args, "stdout")
    assert (rc, err) == (code, "")
    no_crash_log(ws)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["nosuch"], 2),  # argparse's usage error meets the gone reader
        (["history", ""], 2),
        (["history", "no-such-recipe"], 1),
        (["status"], 0),
    ],
)
def test_a_gone_reader_of_stderr_keeps_the_exit_code(ws, args, code):
    rc, out = gone_reader(ws, args, "stderr")
    assert rc == code, out
    no_crash_log(ws)


def test_history_into_head_in_a_pipefail_script(ws):
    script = textwrap.dedent(f"""\
        set -o pipefail
        {" ".join(canon_argv(ws, "history", "custom-html"))} | head -1
        {" ".join(canon_argv(ws, "--help"))} | head -c 1
    """)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("id ")


# -- colour: only on a terminal that takes it ---------------------------------------------------


def on_a_pty(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run ``argv`` with stdout and stderr on one real pseudo-terminal; its code and output."""
    main, child = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLUMNS")}
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=child, stderr=child, env={**base, **env}
    )
    os.close(child)
    out = read_terminal(main)
    return proc.wait(timeout=60), out


COLOURED = [["status"], ["history", "custom-html"], ["doctor"], ["sweep", "--plan"], ["verify"]]


@pytest.mark.parametrize("args", COLOURED)
def test_a_dumb_terminal_gets_no_escape_codes(ws, args):
    if args == ["verify"]:  # a dir that is not evidence: a FAIL claim, painted red on a tty
        args = ["verify", str(ws.config.state_dir)]
    rc, smart = on_a_pty(canon_argv(ws, *args), {"TERM": "xterm-256color"})
    assert ANSI.search(smart), smart  # the same command does colour a terminal that takes it
    rc_dumb, dumb = on_a_pty(canon_argv(ws, *args), {"TERM": "dumb"})
    assert rc_dumb == rc and not ANSI.search(dumb), dumb
    rc_nc, no_color = on_a_pty(canon_argv(ws, *args), {"TERM": "xterm", "NO_COLOR": "1"})
    assert rc_nc == rc and not ANSI.search(no_color), no_color


@pytest.mark.slow
def test_a_sweep_on_a_dumb_terminal_has_no_progress_bar_escapes(ws):
    rc, out = on_a_pty(canon_argv(ws, "sweep", "--recipe", "custom-html"), {"TERM": "dumb"})
    assert rc == 0 and not ANSI.search(out), out


# -- recipe names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["history", ""], "''"),
        (["history", "a\x1b[31mb"], "'a^[[31mb'"),
        (["history", "app\u202etxt.exe"], "'app<U+202E>txt.exe'"),
        (["history", "../custom-html"], "'../custom-html'"),
        (["history", "fleet/custom-html"], "'fleet/custom-html'"),
        (["history", "-"], None),  # argparse: a lone dash is a value
        (["history", "x\ny"], "'x^Jy'"),
        (["investigate", "a/b"], "'a/b'"),
        (["sweep", "--plan", "--recipe", "Custom-HTML"], "--recipe 'Custom-HTML'"),
        (["sweep", "--plan", "--retry", "a b"], "--retry 'a b'"),
    ],
)
def test_an_odd_recipe_name_is_a_usage_error_naming_it_visibly(ws, args, shown):
    r = canon(ws, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "is not a recipe name" in lines[0], r.stderr
    assert shown is None or lines[0].startswith(f"canon: {shown} is not"), lines[0]
    assert "\x1b" not in r.stderr and "\u202e" not in r.stderr and r.stdout == ""


# -- canon init ---------------------------------------------------------------------------------


def test_init_refuses_a_non_empty_dir_or_a_symlink_unless_forced(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine\n")
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link-to-used").symlink_to(used)
    for d, words in [
        (used, ["is not empty", "notes.txt", "--force"]),
        (tmp_path / "link", ["is a symbolic link", str(tmp_path / "empty"), "--force"]),
        (tmp_path / "link-to-used", ["is a symbolic link"]),
    ]:
        r = canon(None, "init", str(d), cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert len(r.stderr.splitlines()) == 1 and str(d) in r.stderr, r.stderr
        assert all(w in r.stderr for w in words), r.stderr
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    assert list((tmp_path / "empty").iterdir()) == []
    r = canon(None, "init", "--force", str(used), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in used.iterdir()) == ["canon.toml", "fleet", "notes.txt"]
    assert (used / "notes.txt").read_text() == "mine\n"
    # an empty dir, and a new one, need no --force
    assert canon(None, "init", str(tmp_path / "empty"), cwd=tmp_path).returncode == 0
    assert canon(None, "init", str(tmp_path / "new"), cwd=tmp_path).returncode == 0


# -- a state dir where no lock can be made ------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "args"),
    [
        ("/proc/self", ["sweep"]),
        ("/proc/1/fd", ["sweep", "--plan"]),
        ("/sys/kernel", ["status"]),
        ("/dev", ["registry", "backup"]),
        ("/dev/shm/canon", ["history", "custom-html"]),
    ],
)
def test_a_state_dir_in_a_kernel_filesystem_is_one_line_exit_2(ws, state, args):
    r = canon(ws, *args, env={**os.environ, "CANON_STATE": state})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "$CANON_STATE" in lines[0], r.stderr
    assert f"is under {'/' + Path(state).parts[1]}" in lines[0] and CRASH not in lines[0]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dangling", "dir"])
def test_a_lock_file_that_is_not_a_file_is_one_line_exit_2(ws, tmp_path, kind):
    state = tmp_path / "state"
    state.mkdir()
    lock = state / "sweep.lock"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dev-zero":
        lock.symlink_to("/dev/zero")
    elif kind == "dangling":
        lock.symlink_to(tmp_path / "nowhere")
    else:
        lock.mkdir()
    r = canon(ws, "sweep", "--plan", env={**os.environ, "CANON_STATE": str(state)})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and str(lock) in lines[0] and CRASH not in lines[0], r.stderr
    assert not (tmp_path / "nowhere").exists()


# -- found by tests/test_cli_property.py ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "fifo", "dev-zero", "dir", "bad-utf8", "quote"])
def test_doctor_unit_that_is_not_a_unit_file_is_one_line_exit_2(ws, tmp_path, kind):
    unit = tmp_path / "canon-sweep.service"
    if kind == "bad-utf8":
        unit.write_bytes(b"[Service]\nEnvironment=CANON_CONFIG=\xff\xfe\n")
    elif kind == "quote":
        unit.write_text('[Service]\nEnvironment="CANON_CONFIG=/x\n')
    elif kind == "fifo":
        os.mkfifo(unit)
    elif kind == "dev-zero":
        unit.symlink_to("/dev/zero")  # was read whole: 2.9 GiB, then the kernel's OOM killer
    elif kind == "dir":
        unit.mkdir()
    r = canon(ws, "doctor", "--unit", str(unit), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and f"--unit {unit}" in lines[0] and CRASH not in lines[0], r.stderr


def test_systemd_render_without_a_config_is_a_usage_error(tmp_path):
    env = {**os.environ, "CCCI_REPO": str(tmp_path)}  # a fleet, and no canon.toml
    env.pop("CANON_CONFIG", None)
    r = canon(None, "systemd", "render", "--output", str(tmp_path / "units"), cwd=tmp_path, env=env)
    assert r.returncode == 2 and "--config" in r.stderr and CRASH not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("flag", "kind"),
    [
        ("--fleet", "loop"),
        ("--working-directory", "loop"),
        ("--output", "loop"),
        ("--output", "file"),
    ],
)
def test_systemd_render_paths_that_cannot_be_used_are_one_line_exit_2(ws, tmp_path, flag, kind):
    bad = tmp_path / "bad"
    if kind == "loop":
        bad.symlink_to(bad)  # was pathlib's RuntimeError (Symlink loop) in the crash guard
    else:
        bad.write_text("a file\n")
    argv = ["systemd", "render", "--output", str(tmp_path / "units"), flag, str(bad)]
    r = canon(ws, *argv)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and f"{flag} {bad}" in lines[0] and CRASH not in lines[0], r.stderr


@pytest.mark.parametrize("what", ["loop", "no-such-user"])
def test_a_state_dir_that_cannot_be_resolved_is_one_line_exit_2(ws, tmp_path, what):
    state = tmp_path / "state"
    if what == "loop":
        state.symlink_to(state)  # was pathlib's RuntimeError in the crash guard, every command
    value = str(state) if what == "loop" else "~no-such-user-here/state"
    r = canon(ws, "evidence", "latest", env={**os.environ, "CANON_STATE": value})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and value in lines[0] and CRASH not in lines[0], r.stderr


@pytest.mark.parametrize("kind", ["fifo", "file"])
def test_a_file_where_the_state_dir_needs_a_directory_is_one_line_exit_2(ws, tmp_path, kind):
    state = tmp_path / "state"
    state.mkdir()
    keys = state / "keys"
    if kind == "fifo":  # where <state>/keys goes: was FileExistsError in the crash guard
        os.mkfifo(keys)
    else:
        keys.write_text("x\n")
    r = canon(ws, "keys", "init", env={**os.environ, "CANON_STATE": str(state)})
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and str(keys) in lines[0] and CRASH not in lines[0], r.stderr


def test_systemd_verify_never_hands_a_fifo_to_systemd_analyze(ws, tmp_path):
    (tmp_path / "canon-sweep.timer").write_text("[Timer]\nOnCalendar=weekly\n")
    os.mkfifo(tmp_path / "canon-sweep.service")  # a /dev/zero link here was the OOM killer
    r = canon(ws, "systemd", "verify", str(tmp_path), timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "canon-sweep.service is a FIFO" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--on-failure", "--user", "--on-calendar"])
def test_systemd_render_of_a_value_that_is_not_utf8_is_a_usage_error(ws, tmp_path, flag):
    r = canon(ws, "systemd", "render", "--output", str(tmp_path / "u"), flag, "x\udcff")
    assert r.returncode == 2 and f"{flag} x\\xff: not UTF-8" in r.stderr, r.stderr
    assert not (tmp_path / "u").exists()


def test_a_fleet_path_that_is_not_utf8_is_no_crash(ws):
    env = {**os.environ, "CCCI_REPO": str(ws.root / "fleet-\udcff")}
    r = canon(ws, "status", env=env)
    assert r.returncode in (0, 2) and CRASH not in r.stderr and "Traceback" not in r.stderr


def test_a_crash_with_an_argv_that_is_not_utf8_still_writes_its_log(ws, tmp_path):
    """The guard's own crash log must not crash on the argv it records."""
    code = textwrap.dedent(f"""\
        import sys
        from canonlib.cli.commands import status
        from canonlib.cli.main import main
        def broken(config, now=None):
            return {{}}["no such key"]
        status.status_rows = broken
        sys.argv = ["canon", "status", "\\udcff"]
        sys.exit(main(["--config", {str(ws.root / "canon.toml")!r}, "status"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    log = re.search(r"the full traceback is in (\S+);", r.stderr)
    assert log, r.stderr
    text = Path(log[1]).read_text()
    assert "canon status \\udcff" in text and "KeyError" in text
    Path(log[1]).unlink()


# -- upstream text on the terminal --------------------------------------------------------------


CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
PAYLOAD = "boom\x1b[2J\x1b]8;;http://x\x07\u202edelif\x9b31m\r\nok    forged"


def test_upstream_text_in_a_table_is_shown_visibly_on_a_terminal(tmp_path):
    """A result's reason, warnings and label (what a recipe's run printed) reach `history`'s
    table: on a terminal and down a pipe they are shown, never obeyed."""
    w = Workspace(tmp_path)
    w.recipe("app")
    with Registry.open(w.config.db_path) as reg:
        reg.start_run("20260101T000000Z-sweep-0001", "sweep")
        row = {
            "recipe": "app",
            "decision": "run",
            "latest": "1.0.0+1",
            "label": f"FAIL (L3 {PAYLOAD})",
            "reason": PAYLOAD,
            "warnings": [PAYLOAD],
        }
        reg.record_result("20260101T000000Z-sweep-0001", row)
    shown = "boom^[[2J^[]8;;http://x^G<U+202E>delif<U+009B>31m^M^Jok    forged"
    piped = canon(w, "history", "app")
    rc, smart = on_a_pty(canon_argv(w, "history", "app"), {"TERM": "xterm", "COLUMNS": "400"})
    for code, out in ((piped.returncode, piped.stdout), (rc, smart.decode())):
        assert code == 0, out
        assert shown in out, out
        own = out.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\r\n", "\n")
        assert not CONTROLS.search(own), out  # no control left but canon's colour, the pty's CR
        assert "\nok    forged" not in out
    assert (
        json.loads(canon(w, "history", "app", "--json").stdout)["results"][0]["reason"] == PAYLOAD
    )
