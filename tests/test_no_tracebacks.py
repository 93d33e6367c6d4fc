"""No tracebacks: every operator fault ends as one line naming the path and what to do.

Each case runs `python -m canonlib` as a real child process against real files:
a directory given as --config, a state dir under a file, a read-only state dir
(a read-only bind mount when we are root, else chmod), a full disk (a small
tmpfs where we can mount one, and a low RLIMIT_FSIZE in the child), a FIFO and
a /dev/zero link as recipe_meta.py, out-of-range numbers, bad templates, a
closed stdout, and a bug (an exception canon does not expect).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from tests.cli import canon, canon_argv
from tests.need import need
from tests.workspace import META, Workspace


def one_line_error(r, code: int, *words: str) -> str:
    """The child exited ``code`` with exactly one line on stderr holding ``words``."""
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("app")
    w.release("app", "1.0.0+1.0")
    return w


# -- configuration -------------------------------------------------------------


def test_config_naming_a_directory(tmp_path):
    r = canon(None, "--config", str(tmp_path), "status")
    one_line_error(r, 2, str(tmp_path), "is a directory", "canon.toml")


def test_config_that_is_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "canon.toml")
    r = canon(tmp_path, "status", timeout=60)
    one_line_error(r, 2, str(tmp_path / "canon.toml"), "FIFO")


def test_state_dir_under_a_file(ws):
    (ws.root / "plain").write_text("not a dir\n")
    toml = ws.root / "canon.toml"
    toml.write_text(toml.read_text().replace('state_dir = "state"', 'state_dir = "plain/state"'))
    r = canon(ws.root, "sweep")
    one_line_error(r, 2, str(ws.root / "plain" / "state"), f"lies under {ws.root / 'plain'}")
    # the same from the environment names $CANON_STATE
    r = canon(ws.root, "status", env={**os.environ, "CANON_STATE": str(ws.root / "plain")})
    one_line_error(r, 2, "$CANON_STATE", "is a file")


@pytest.mark.parametrize(
    "line, words",
    [
        ('upstream = "https://example.org/{recipe}/{name}.git"', ["{name}", "only placeholder"]),
        ('upstream = "https://example.org/{recipe.git"', ["not a valid template"]),
        ('push = "ssh://ci/{0}/{recipe}.git"', ["push", "{0}"]),
        ('branch = "-x"', ["branch '-x'", "not a branch name"]),
        ("[harness]\ntimeout_s = 1e400", ["harness.timeout_s must be between 1 and 604800", "inf"]),
        ("[sync]\ntimeout_s = nan", ["sync.timeout_s must be between"]),
        ("[budget]\ndisk_bytes = 9223372036854775807", ["budget.disk_bytes must be between"]),
        ("[backend]\nparallel = 100000", ["backend.parallel must be between 1 and 256"]),
        (
            '[recipes.app]\nupstream = "https://x/{recipe}.git"',
            ["recipes.app.upstream", "as written"],
        ),
    ],
)
def test_config_values_are_checked_when_it_loads(ws, line, words):
    toml = ws.root / "canon.toml"
    toml.write_text(f'fleet = "fleet"\n{line}\n')
    r = canon(ws.root, "status")
    one_line_error(r, 2, str(toml), *words)


# -- recipe_meta.py ------------------------------------------------------------


def _meta(ws) -> Path:
    return ws.fleet / "tests" / "app" / "recipe_meta.py"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_meta_must_be_a_small_regular_file(ws, kind):
    meta = _meta(ws)
    meta.unlink()
    if kind == "fifo":
        os.mkfifo(meta)
        words = ["FIFO (named pipe)", "must be a regular file"]
    elif kind == "dev-zero":
        meta.symlink_to("/dev/zero")
        words = ["character device"]
    else:
        meta.write_text(META + "# " + "x" * 300_000 + "\n")
        words = ["the limit is 262144"]
    # bound the child's memory: reading /dev/zero to the end would blow through it
    limit_as = lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # noqa: E731
    plan = canon(ws.root, "sweep", "--plan", timeout=60, preexec=limit_as)
    out = plan.stdout + plan.stderr
    assert "Traceback" not in out, out
    assert f"{meta}: " in out and all(w in out for w in words), out
    status = canon(ws.root, "status", "--json", timeout=60, preexec=limit_as)
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert all(w in status.stdout for w in words)


@pytest.mark.parametrize(
    "source, words",
    [
        ("COLD_TIMEOUT_S = 1" + "0" * 400, ["COLD_TIMEOUT_S must be positive int", "604800"]),
        ("DEPLOY_TIMEOUT_S = 0", ["DEPLOY_TIMEOUT_S must be positive int"]),
        ("COLD_TIMEOUT_S = 1" + "0" * 5000, ["syntax error", "4300 digits"]),
        ('READY_PROBES = [{"cmd": "true", "retries": 10000000000}]', ["retries 0..10000"]),
        ('READY_PROBES = [{"http": "http://x", "timeout_s": 1e999}]', ["READY_PROBES must be"]),
        ('READY_PROBES = [{"http": "http://x", "expect_status": 99}]', ["expect_status 100..599"]),
    ],
)
def test_meta_numbers_are_range_checked(ws, source, words):
    _meta(ws).write_text(META + source + "\n")
    r = canon(ws.root, "status", "--json")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    error = next(row["error"] for row in json.loads(r.stdout) if row["recipe"] == "app")
    assert error.startswith(f"meta: {_meta(ws)}:4: ") and all(w in error for w in words), error


# -- state ---------------------------------------------------------------------


@contextlib.contextmanager
def mounted(*args: str, target: Path):
    """``mount args target`` for the block's length; skip where this test may not mount."""
    need("mounting needs root" if os.geteuid() != 0 else None)
    r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    need(f"cannot mount here: {r.stderr.strip()}" if r.returncode else None)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` (a dir or a file) read-only for everyone: a read-only bind mount of it for root
    (root ignores permission bits), its permission bits for anyone else."""
    if os.geteuid() != 0:  # permissions are enough for everyone but root
        mode = path.stat().st_mode & 0o777
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    with mounted("--bind", "-o", "ro", str(path), target=path):
        yield


def test_read_only_state_dir(ws):
    Registry.open(ws.config.db_path).close()  # the registry exists (status no longer creates it)
    state = ws.config.state_dir
    with read_only(state):
        r = canon(ws.root, "sweep")
    line = one_line_error(r, 2, str(state / "sweep.lock"))
    assert "Read-only file system" in line or "Permission denied" in line
    assert "writable" in line


def _fill(directory: Path, leave: int = 0) -> None:
    """Write until the filesystem is full, then give back ``leave`` bytes."""
    with contextlib.suppress(OSError), open(directory / "filler", "wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    size = (directory / "filler").stat().st_size
    os.truncate(directory / "filler", size - leave)


@pytest.mark.parametrize("leave", [0, 40960])
def test_full_disk_small_tmpfs(ws, leave):
    """A 1 MiB tmpfs as the state dir, full (0 bytes left) or nearly: the lock and SQLite's
    shared memory fit, the first registry write of the sweep (start_run) does not."""
    state = ws.config.state_dir
    state.mkdir(parents=True)
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=state):
        assert canon(ws.root, "status").returncode == 0  # the registry exists, on the small disk
        _fill(state, leave)
        r = canon(ws.root, "sweep")
        line = one_line_error(r, 2, str(state), "free space")
        if leave:
            assert f"registry {state / 'canon.db'}: database or disk is full" in line
        else:
            assert "No space left on device" in line
        (state / "filler").unlink()
        with Registry.open(state / "canon.db") as reg:
            assert reg.runs() == []  # the failed write left nothing behind
        r = canon(ws.root, "sweep")  # space again: the run completes
        assert r.returncode == 0, r.stderr
        assert "PASS (promoted)" in r.stdout


def _file_size_limit(n: int):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)

    return limit


@pytest.mark.parametrize("limit", [100, 40000])
def test_full_disk_file_size_limit(ws, limit):
    """A low RLIMIT_FSIZE in the child: writes past it fail like a full disk, wherever they are."""
    assert canon(ws.root, "status").returncode == 0
    state = ws.config.state_dir
    r = canon(ws.root, "sweep", preexec=_file_size_limit(limit))
    line = one_line_error(r, 2, str(state), "free space")
    assert "disk I/O error" in line or "database or disk is full" in line or "too large" in line
    r = canon(ws.root, "sweep")  # the limit lifted, the sweep completes
    assert r.returncode == 0, r.stderr


# -- stdout and bugs -----------------------------------------------------------


def test_closed_stdout_ends_quietly(ws):
    assert canon(ws.root, "status").returncode == 0
    proc = subprocess.Popen(
        canon_argv(ws, "status", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before canon writes a byte, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


def test_closed_stdout_in_a_real_pipeline(ws):
    script = textwrap.dedent(f"""\
        set -o pipefail
        for i in $(seq 300); do
            echo "[recipes.r$i]"; echo 'branch = "main"'
        done >> {ws.root}/canon.toml
        canon() {{ {sys.executable} -m canonlib --config {ws.root}/canon.toml "$@"; }}
        canon config example | head -1 >/dev/null
        canon status --json | head -c 1 >/dev/null
    """)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_bug_is_one_line_and_a_crash_log(ws):
    """A real exception canon does not expect (injected into status in the child)."""
    code = textwrap.dedent(f"""\
        import sys
        from canonlib.cli.commands import status
        from canonlib.cli.main import main
        def broken(config, now=None):
            return {{}}["no such key"]
        status.status_rows = broken
        sys.exit(main(["--config", {str(ws.root / "canon.toml")!r}, "status"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = one_line_error(r, 1, "unexpected KeyError", "a bug in canon", "the full traceback is in")
    log = Path(line.split("the full traceback is in ")[1].split(";")[0])
    assert log.parent == ws.config.state_dir / "logs" and log.name.startswith("crash-")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "no such key" in text


def test_a_bug_with_an_unusable_state_logs_to_a_temp_dir(tmp_path):
    code = textwrap.dedent("""\
        import sys
        from canonlib.cli.commands import config
        from canonlib.cli.main import main
        def broken(args):
            raise RuntimeError("boom")
        config.cmd_config_example = broken
        sys.exit(main(["config", "example"]))
    """)
    env = {**os.environ, "TMPDIR": str(tmp_path), "CANON_CONFIG": str(tmp_path / "nothing.toml")}
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    line = one_line_error(r, 1, "unexpected RuntimeError: boom", str(tmp_path))
    logs = list(tmp_path.glob("canon-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in line and "boom" in logs[0].read_text()
