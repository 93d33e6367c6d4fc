"""The one way a test runs the ``canon`` command line: :func:`canon`.

What one test's run differs in from another's is a parameter of :func:`canon`: the config,
the environment, the working dir, stdin, the timeout, a hook in the child, the exit code
expected, and whether canon runs as a child process at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from canonlib.cli.main import main
from tests.workspace import Workspace

# what an operator's shell may set that would point canon at the operator's own files
OPERATOR_ENV = ("CANON_CONFIG", "CANON_STATE", "CCCI_REPO")
TIMEOUT_S = 600  # a guard against a hang: a run this long has hung

Config = Workspace | Path | None
Arg = str | os.PathLike[str]


class Ran(NamedTuple):
    """How one canon command line ended (``rc, out, err = canon(…)`` unpacks it)."""

    returncode: int
    stdout: str
    stderr: str


def canon_argv(config: Config, *args: Arg) -> list[str]:
    """The child's argv: ``python -m canonlib [--config <dir>/canon.toml] args…``."""
    root = config.root if isinstance(config, Workspace) else config
    flag = ["--config", str(root / "canon.toml")] if root is not None else []
    return [sys.executable, "-m", "canonlib", *flag, *map(os.fspath, args)]


def canon_env() -> dict[str, str]:
    """This process's environment without the operator's own canon settings."""
    return {k: v for k, v in os.environ.items() if k not in OPERATOR_ENV}


def canon(
    config: Config,
    *args: Arg,
    env: Mapping[str, str] | None = None,
    env_extra: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input: str | bytes | None = None,
    timeout: float = TIMEOUT_S,
    preexec: Callable[[], object] | None = None,
    code: int | None = None,
    in_process: bool = False,
) -> Ran:
    """Run canon with ``args``; its exit code and what it printed.

    - ``config``: a Workspace, or the dir holding ``canon.toml``, puts
      ``--config <dir>/canon.toml`` before ``args``. None puts no ``--config``: the test
      passes its own, or tests its absence.
    - ``env``: the child's whole environment. Without it the child gets this process's
      environment minus the operator's own settings (:data:`OPERATOR_ENV`). ``env_extra``
      is laid over either.
    - ``cwd``: the child's working dir.
    - ``input``: str or bytes for stdin. Without it stdin is /dev/null.
    - ``timeout``: a guard against a hang, never a speed target.
    - ``preexec``: run in the child before canon starts: a resource limit, a closed fd.
    - ``code``: the exit code the call must end with. The assert shows both streams.
    - ``in_process``: call ``canonlib.cli.main.main`` in this process, with stdout and
      stderr captured. This is for tests that run many commands and test no signal, stream
      or exit path of the entry point. It does not take ``env``, ``cwd``, ``input`` or
      ``preexec``, and ``timeout`` does not apply.

    By default canon runs as a real child process, ``python -m canonlib``, with the entry
    point's own exit codes, crash guard, signals and streams. Its output is decoded as UTF-8
    with ``surrogateescape``, so decoding never fails and a stray byte stays visible. No
    newline is translated: a ``\\r`` that canon prints reaches the test.
    """
    argv = canon_argv(config, *args)
    if in_process:
        if (env, env_extra, cwd, input, preexec) != (None, None, None, None, None):
            raise TypeError("in_process runs canon in this process: no env, cwd, input, preexec")
        ran = _in_process(argv)
    else:
        data = input.encode("utf-8", "surrogateescape") if isinstance(input, str) else input
        r = subprocess.run(
            argv,
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            env={**(canon_env() if env is None else env), **(env_extra or {})},
            cwd=cwd,
            timeout=timeout,
            preexec_fn=preexec,
            check=False,
        )
        ran = Ran(r.returncode, _text(r.stdout), _text(r.stderr))
    if code is not None:
        assert ran.returncode == code, (argv[3:], ran.returncode, ran.stdout, ran.stderr)
    return ran


def _in_process(argv: list[str]) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv[3:])
        except SystemExit as e:  # as `python -m canonlib` would end
            rc = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
    return Ran(rc, out.getvalue(), err.getvalue())


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def read_terminal(main_fd: int, timeout: float = 120) -> bytes:
    """Everything a child writes to its pseudo-terminal (``main_fd``: the side the test
    holds) until it closes it or is silent for ``timeout`` seconds; ``main_fd`` is closed."""
    out = b""
    while select.select([main_fd], [], [], timeout)[0]:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(main_fd)
    return out
