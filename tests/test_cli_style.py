"""One CLI style: help on every argument, --json wherever a command reports, tables that fit
a real terminal (a pty), colour only there and never with NO_COLOR, --quiet/--failed-only,
and "did you mean" for subcommands, config keys, backend kinds and recipe names."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from canonlib.cli import reference
from canonlib.cli.main import build_parser
from tests.cli import canon, canon_argv, read_terminal
from tests.workspace import Workspace

ANSI = re.compile(r"\033\[[0-9;]*m")
# commands that print no report of their own (their output is a file, a notebook kernel's, or help)
NOT_REPORTING = {
    "canon": "the top level prints help",
    "canon harness": "started by the sweep; writes $CCCI_RESULT_FILE",
    "canon config example": "prints TOML, which is already machine-readable",
    "canon demo": "a walk-through for people",
}


def in_a_tty(args: list[str], *, cwd: Path, columns: int, extra_env: dict[str, str]) -> str:
    """Run canon with its stdout on a real pseudo-terminal ``columns`` wide; what it printed."""
    main, child = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    proc = subprocess.Popen(
        canon_argv(None, *args),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
        env={**env, **extra_env},
    )
    os.close(child)
    out = read_terminal(main, timeout=60)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    proc.stderr.close()
    return out.decode().replace("\r\n", "\n")


def leaves():
    for p, _ in reference.walk(build_parser()):
        if not any(a.__class__.__name__ == "_SubParsersAction" for a in p._actions):
            yield p


def test_every_flag_and_positional_has_help():
    missing = [
        f"{p.prog} {name}"
        for p, _ in reference.walk(build_parser())
        for name, text in reference.arguments(p)
        if not text.strip()
    ]
    assert not missing, f"arguments without help text: {missing}"


def test_every_reporting_command_has_json():
    without = [
        p.prog
        for p in leaves()
        if p.prog not in NOT_REPORTING and not any("--json" in a.option_strings for a in p._actions)
    ]
    assert not without, f"commands that report without --json: {without}"


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["sweeep"], "did you mean sweep?"),
        (["stauts"], "did you mean status?"),
        (["systemd", "verfy"], "did you mean verify?"),
        (["meta", "key"], "did you mean keys?"),
    ],
)
def test_a_mistyped_subcommand_gets_a_suggestion(tmp_path, argv, hint):
    r = canon(None, *argv, cwd=tmp_path)
    assert r.returncode == 2 and hint in r.stderr and "Traceback" not in r.stderr


@pytest.fixture
def ws(tmp_path):
    w = Workspace(tmp_path)
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    w.recipe("nextcloud")
    return w


@pytest.mark.parametrize(
    ("toml", "hint"),
    [
        ('fleat = "fleet"\n', "unknown key 'fleat'; did you mean fleet?"),
        (
            "[harness]\ntimout_s = 5\n",
            "unknown key 'harness.timout_s'; did you mean harness.timeout_s?",
        ),
        ('[backend]\nkind = "abr"\n', "did you mean abra?"),
        ("[sync]\nparalel = 2\n", "did you mean sync.parallel?"),
    ],
)
def test_config_mistakes_get_a_suggestion(ws, toml, hint):
    cfg = ws.root / "canon.toml"
    text = cfg.read_text()
    if toml.startswith("[harness]"):
        text = text.replace("[harness]\n", "[harness]\ntimout_s = 5\n")
    else:
        text = toml + text if not toml.startswith("[") else text + toml
    cfg.write_text(text)
    r = canon(ws, "status", cwd=ws.root)
    assert r.returncode == 2 and hint in r.stderr, r.stderr


@pytest.mark.parametrize(
    "argv", [["history", "custom-htm"], ["sweep", "--plan", "--recipe", "custom-htm"]]
)
def test_a_mistyped_recipe_gets_a_suggestion(ws, argv):
    r = canon(ws, *argv, cwd=ws.root)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr
    assert re.search(r"did you mean '?custom-html'?\?", r.stderr), r.stderr


@pytest.mark.slow
def test_status_fits_a_terminal_with_colour_and_not_when_piped_or_no_color(ws):
    cfg = str(ws.root / "canon.toml")
    assert canon(ws, "sweep", cwd=ws.root).returncode == 1  # nextcloud has no upstream
    tty = in_a_tty(["--config", cfg, "status"], cwd=ws.root, columns=80, extra_env={})
    plain = ANSI.sub("", tty)
    assert "\033[32mPASS\033[0m" in tty and "\033[31mERROR\033[0m" in tty
    assert all(len(line) <= 80 for line in plain.splitlines()), plain
    assert "…" in plain
    no_color = in_a_tty(
        ["--config", cfg, "status"], cwd=ws.root, columns=80, extra_env={"NO_COLOR": "1"}
    )
    assert not ANSI.search(no_color) and ANSI.sub("", tty) == no_color
    piped = canon(ws, "status", cwd=ws.root, env={**os.environ, "NO_COLOR": ""})
    assert not ANSI.search(piped.stdout) and max(map(len, piped.stdout.splitlines())) > 80
    full = json.loads(canon(ws, "status", "--json", cwd=ws.root).stdout)
    assert any(
        row["last_label"].startswith("ERROR (sync:") and len(row["last_label"]) > 60 for row in full
    )


def test_doctor_quiet_and_failed_only(ws, tmp_path):
    meta = ws.fleet / "tests" / "custom-html" / "recipe_meta.py"
    meta.write_text(meta.read_text() + 'REQUIRES_TOOLS = ["no-such-tool-for-canon-test"]\n')
    full = canon(ws, "doctor", cwd=ws.root)
    failed = canon(ws, "doctor", "--failed-only", cwd=ws.root)
    quiet = canon(ws, "doctor", "--quiet", cwd=ws.root)
    assert full.returncode == failed.returncode == quiet.returncode == 1
    summary = full.stdout.splitlines()[-1]
    assert re.fullmatch(r"\d+ passed, [1-9]\d* failed", summary)
    assert any(ln.startswith("ok") for ln in full.stdout.splitlines())
    assert failed.stdout.splitlines()[-1] == summary
    body = failed.stdout.splitlines()[:-1]
    assert body and all(ln.startswith("FAIL") for ln in body)
    assert any("no-such-tool-for-canon-test" in ln for ln in body)
    assert quiet.stdout.splitlines() == [summary]


def test_a_backend_key_of_its_own_is_not_a_typo(ws):
    cfg = ws.root / "canon.toml"
    cfg.write_text(cfg.read_text() + '\n[backend]\nkind = "local"\nsome_backend_option = "x"\n')
    assert canon(ws, "status", cwd=ws.root).returncode == 0
