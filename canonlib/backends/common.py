"""Pieces every backend shares: secrets, .env rendering, ready probes, commands."""

from __future__ import annotations

import base64
import os
import re
import secrets
import shlex
import string
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

from canonlib import envfile, files
from canonlib.backends.base import BackendError, SlotRecord
from canonlib.process import kill_group

_ALNUM = string.ascii_letters + string.digits


class BackendUnavailable(BackendError):
    """The backend itself cannot work (its tool is missing, its server unreachable): a fault of
    canon's environment, never a verdict about the recipe being tested."""


def generate_secret(generator: str | None) -> str:
    """``hex:N`` (N random bytes as hex), ``base64:N``, ``alnum:N``; None means ``alnum:32``."""
    kind, _, n = (generator or "alnum:32").partition(":")
    try:
        size = int(n or 32)
    except ValueError:
        raise BackendError("provision", f"bad secret generator {generator!r}") from None
    if not 1 <= size <= 4096:
        raise BackendError("provision", f"secret size out of range in {generator!r}")
    if kind == "hex":
        return secrets.token_hex(size)
    if kind == "base64":
        return base64.b64encode(secrets.token_bytes(size)).decode()
    if kind == "alnum":
        return "".join(secrets.choice(_ALNUM) for _ in range(size))
    raise BackendError(
        "provision", f"unknown secret generator {generator!r} (hex:N, base64:N, alnum:N)"
    )


_ASSIGNMENT = re.compile(r"^\s*(#\s*)?(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")


def render_env(sample: str, overlay: Mapping[str, str]) -> str:
    """``.env.sample`` with the overlay's values set, as an operator edits it for abra.

    A key the sample assigns gets the value in its last assignment, so earlier lines stay
    (``COMPOSE_FILE="$COMPOSE_FILE:…"`` builds on them); a value that names its own key
    (``$COMPOSE_FILE:compose.mail.yml``) is appended after the sample's lines instead, to
    build on the sample's value.  A key only commented out (``#KEY=``) is set on the first
    such line; any other key is appended.  Every other line is the sample's, as written.
    """
    lines = sample.splitlines()
    active: dict[str, int] = {}
    commented: dict[str, int] = {}
    for i, line in enumerate(lines):
        if m := _ASSIGNMENT.match(line):
            if m[1]:
                commented.setdefault(m[2], i)
            else:
                active[m[2]] = i
    extra = []
    for key, value in overlay.items():
        line = f"{key}={value}"
        builds_on_itself = re.search(rf"\$\{{?{re.escape(key)}(?![A-Za-z0-9_])", value)
        if key not in active:
            at = commented.get(key)
        elif builds_on_itself:
            at = None
        else:
            at = active[key]
        if at is None:
            extra.append(line)
        else:
            lines[at] = line
    return "\n".join(lines + extra) + "\n"


def parse_env(
    text: str,
    *,
    what: str = ".env",
    step: str = "deploy",
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A ``.env`` file's values as abra reads them (:mod:`canonlib.envfile`: ``$VAR`` and
    ``${VAR}`` expand from earlier lines, then ``environ``, default this process's as abra's).

    A line abra cannot read either is a :class:`BackendError` of ``step`` naming ``what`` and
    the line.
    """
    try:
        return envfile.parse(text, environ)
    except envfile.EnvFileError as e:
        raise BackendError(step, f"{what} {e} (abra cannot read it either)") from None


def read_env_file(path: Path, *, step: str = "deploy") -> dict[str, str]:
    """A slot's ``.env`` as :func:`parse_env` reads it; ``{}`` when there is none.

    The slot is the one place a release's own code may write, so its ``.env`` is read as
    untrusted: a regular file under :data:`files.RECIPE_FILE_CAP`, never a FIFO or a link
    to ``/dev/zero`` (one :class:`BackendError` naming the file instead).
    """
    try:
        raw = files.read_small_file(path, files.RECIPE_FILE_CAP)
    except FileNotFoundError:
        return {}
    except files.FileProblem as e:
        raise BackendError(step, f"{path} {e}") from None
    return parse_env(raw.decode(errors="replace"), what=str(path), step=step)


def json_object(value: object) -> dict[str, object]:
    """``value`` (parsed JSON or YAML) when it is an object, else an empty one."""
    return value if isinstance(value, dict) else {}


RECORD_CAP = 1 << 20  # a slot record canon wrote (a few hundred bytes), read back capped


def read_record(path: Path) -> SlotRecord | None:
    """A slot record canon wrote (``deployed.json``, abra's ``canon-slots/<slot>.json``), read
    back as untrusted: None when it is missing, not a regular file under :data:`RECORD_CAP`,
    not JSON or not an object (the slot then counts as having none)."""
    try:
        rec: object = files.read_json_file(path, RECORD_CAP)
    except (FileNotFoundError, files.FileProblem):
        return None
    return slot_record(rec)


_FLOAT = (int, float)
_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "recipe": (str,),
    "version": (str,),
    "commit": (str,),
    "state": (str,),
    "deployed_at": _FLOAT,
    "server": (str,),
    "domain": (str,),
    "snapshot": (str,),
    "services": (list,),
    "deadline_s": _FLOAT,
}


def slot_record(doc: object) -> SlotRecord | None:
    """``doc`` (parsed JSON a slot's record holds) as a :class:`SlotRecord`: None when it is not
    an object; a key of the wrong type (or one no record has) is left out."""
    if not isinstance(doc, dict):
        return None
    out: dict[str, object] = {}
    for k, v in doc.items():
        want = _RECORD_TYPES.get(k)
        if want is None or not isinstance(v, want) or isinstance(v, bool):
            continue
        if isinstance(v, list) and not all(isinstance(x, str) for x in v):
            continue
        out[k] = v
    return cast(SlotRecord, out)  # every key checked against SlotRecord's above


def run_group(
    argv: list[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    timeout: float,
    merge_stderr: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` in its own process group (with ``env`` exactly, ``input`` on its stdin); on
    timeout the whole group, grandchildren included, is killed and
    :class:`subprocess.TimeoutExpired` raised; so it is when canon itself is interrupted."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace_s=0.2)
        proc.communicate()
        raise
    except BaseException:  # ^C, SIGTERM of canon: the group goes with us
        kill_group(proc.pid, grace_s=0.2)
        proc.wait()
        raise
    finally:
        kill_group(proc.pid, grace_s=0.2)  # stragglers left in the group after the child exited
    return subprocess.CompletedProcess(argv, proc.returncode, out, err or "")


def run_command(
    cmd: str | list[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    timeout: float,
    step: str,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> subprocess.CompletedProcess[str]:
    """A child process in its own group; the whole group dies on timeout.  ``wrap`` turns the
    argv into the one to run (the box of :mod:`canonlib.backends.boxed`)."""
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
    if wrap is not None:
        argv = wrap(argv)
    try:
        return run_group(argv, cwd=cwd, env={**os.environ, **env}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BackendError(step, f"{_show(cmd)} timed out after {timeout:g}s") from None


def _show(cmd: str | list[str]) -> str:
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    return repr(text if len(text) < 120 else text[:117] + "...")


def _number(probe: Mapping[str, object], key: str, default: float) -> float:
    """A probe's number (the meta checked it is one)."""
    v = probe.get(key, default)
    return float(v) if isinstance(v, int | float) else default


def probe_once(
    probe: Mapping[str, object],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    run: Callable[[str, float], subprocess.CompletedProcess[str]] | None = None,
    fatal: tuple[type[BackendError], ...] = (),
) -> str | None:
    """None when the probe passes, else why not.

    ``run`` runs a ``cmd`` probe with its timeout (default: :func:`run_command` in ``cwd``
    with ``env``); an error it raises is why the probe failed, unless it is one of ``fatal``
    (raised: red at once or no verdict, never retried)."""
    timeout = _number(probe, "timeout_s", 10)
    if "cmd" in probe:
        raw = probe["cmd"]  # the meta checked it: a string, or a list of strings
        cmd: str | list[str] = [str(x) for x in raw] if isinstance(raw, list) else str(raw)
        try:
            if run is None:
                r = run_command(cmd, cwd=cwd, env=env, timeout=timeout, step="ready")
            else:  # a shell command line in a box or a container
                r = run(cmd if isinstance(cmd, str) else shlex.join(cmd), timeout)
        except fatal:
            raise
        except BackendError as e:
            return str(e)
        return (
            None
            if r.returncode == 0
            else f"{_show(cmd)} exited {r.returncode}: {(r.stdout + r.stderr)[-300:].strip()}"
        )
    import urllib.error  # deferred: ~25 ms (http, ssl, email) that only an http probe needs
    import urllib.request

    url = str(probe["http"]).format(**env)
    expect = probe.get("expect_status")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (operator's own URL)
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"GET {url}: {e}"
    ok = status == expect if expect else 200 <= status < 400
    return None if ok else f"GET {url}: HTTP {status}"


def wait_probes(
    probes: list[Mapping[str, object]],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    deadline_s: float,
    slot: str,
    check: Callable[[Mapping[str, object]], str | None] | None = None,
) -> None:
    """Each probe must pass, retried (``retries``, ``interval_s``) until the shared deadline.

    ``check`` runs one probe (default: :func:`probe_once` in ``cwd``) and returns why it failed."""
    check = check or (lambda probe: probe_once(probe, cwd=cwd, env=env))
    end = time.monotonic() + deadline_s
    for probe in probes:
        retries = int(_number(probe, "retries", 30))
        interval = _number(probe, "interval_s", 1)
        for attempt in range(retries + 1):
            why = check(probe)
            if why is None:
                break
            if attempt == retries or time.monotonic() + interval > end:
                raise BackendError(
                    "ready", f"slot {slot}: probe failed after {attempt + 1} tries: {why}"
                )
            time.sleep(interval)
