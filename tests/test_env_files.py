""".env files read with python-dotenv's rules, on the forms real recipes' .env.sample use."""

from __future__ import annotations

from canonlib.backends.common import parse_env, render_env
from canonlib.backends.local import LocalBackend
from canonlib.recipe.meta import load_meta

SAMPLE = """\
TYPE=keycloak
KEY=v1 # length=32
export FOO=bar
Q="a b" # c
SINGLE='x # not a comment'
#LETS_ENCRYPT_ENV=production
# a plain comment
EMPTY=
"""


def test_inline_comments_export_and_quotes():
    env = parse_env(SAMPLE)
    assert env["KEY"] == "v1"
    assert env["FOO"] == "bar" and "export FOO" not in env
    assert env["Q"] == "a b"
    assert env["SINGLE"] == "x # not a comment"
    assert env["EMPTY"] == ""
    assert "LETS_ENCRYPT_ENV" not in env  # commented out


def test_values_are_literal():
    assert parse_env("A=1\nB=${A}2\n") == {"A": "1", "B": "${A}2"}


def test_render_env_sets_exported_and_commented_keys():
    out = render_env(SAMPLE, {"FOO": "baz", "LETS_ENCRYPT_ENV": "staging", "NEW": "1"})
    env = parse_env(out)
    assert (env["FOO"], env["LETS_ENCRYPT_ENV"], env["NEW"], env["KEY"]) == (
        "baz",
        "staging",
        "1",
        "v1",
    )
    assert out.count("FOO=") == 1


def test_slot_env_of_a_deployed_recipe_uses_the_rules(tmp_path):
    (tmp_path / "fleet" / "r").mkdir(parents=True)
    (tmp_path / "fleet" / "r" / "recipe_meta.py").write_text("WARM_CANONICAL = True\n")
    meta = load_meta(tmp_path / "fleet" / "r")
    src = tmp_path / "src"
    src.mkdir()
    (src / ".env.sample").write_text(SAMPLE)
    (src / "compose.yml").write_text("services:\n  app:\n    image: r\n")
    b = LocalBackend(tmp_path / "slots")
    b.provision("s1", src, meta)
    b.deploy("s1", src, meta, version="1.0.0", commit="a" * 40)
    env = b.slot_env("s1")
    assert (env["KEY"], env["FOO"], env["Q"], env["STACK_NAME"]) == ("v1", "bar", "a b", "s1")
