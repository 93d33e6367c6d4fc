"""cli/main.py dispatches: it loads only the command that runs, and knows every command."""

from __future__ import annotations

import subprocess
import sys

from canonlib.cli.main import COMMANDS, build_parser, command_word


def _choices() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return list(sub.choices)


def test_every_command_the_parser_has_is_in_the_dispatch_table_in_help_order():
    assert list(COMMANDS) == _choices()


def test_each_command_parser_alone_declares_the_same_command():
    for name in COMMANDS:
        sub = next(a for a in build_parser(only=name)._actions if a.dest == "command")
        assert name in sub.choices
        assert sub.choices[name].format_help() == _full(name)


def _full(name: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices[name].format_help()


def test_the_command_word_skips_the_global_config_only():
    cases = {
        ("sweep", "--plan"): "sweep",
        ("--config", "x.toml", "status"): "status",
        ("--config=x.toml", "pins"): "pins",
        ("--version",): None,
        ("-h",): None,
        ("swep",): None,  # unknown: the whole parser says "did you mean"
        (): None,
    }
    for argv, word in cases.items():
        assert command_word(list(argv)) == word, argv


def test_a_light_command_does_not_load_the_other_commands_libraries():
    code = (
        "import sys\n"
        "from canonlib.cli.main import main\n"
        "rc = main(['versions', 'sort'])\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('canonlib.evidence', "
        "'canonlib.backends', 'canonlib.demo', 'canonlib.sweep')))\n"
        "print(heavy)\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], input="1.0.0+1\n", capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1.0.0+1", "[]"]
