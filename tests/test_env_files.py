""".env files read as abra reads them (its Go dotenv, joho/godotenv 1.5's rules).

The tables are godotenv's own test cases (godotenv_test.go: TestParsing, TestExpanding,
TestSubstitutions, TestWhitespace, TestTrailingNewlines, TestLinesToIgnore, TestComments, and
its fixtures plain.env and quoted.env), then the lines real recipes' .env.sample use, bonfire's
exactly, and a cold run of a bonfire-shaped recipe through the sweep's harness."""

from __future__ import annotations

import pytest

from canonlib.backends import BackendError
from canonlib.backends.common import parse_env, render_env
from canonlib.backends.compose import app_env, compose_files
from canonlib.backends.local import LocalBackend
from canonlib.envfile import EnvFileError, parse
from canonlib.recipe.meta import load_meta
from tests.test_runner import run
from tests.workspace import Workspace

# -- godotenv's TestParsing: one line, one key ---------------------------------------------

PARSING = [
    ("FOO=bar", "FOO", "bar"),
    ("FOO =bar", "FOO", "bar"),
    ("FOO= bar", "FOO", "bar"),
    ('FOO="bar"', "FOO", "bar"),
    ("FOO='bar'", "FOO", "bar"),
    (r'FOO="escaped\"bar"', "FOO", 'escaped"bar'),
    ("FOO=\"'d'\"", "FOO", "'d'"),
    ("OPTION_A: 1", "OPTION_A", "1"),
    ("OPTION_A: Foo=bar", "OPTION_A", "Foo=bar"),
    ("OPTION_A=1:B", "OPTION_A", "1:B"),
    ("export OPTION_A=2", "OPTION_A", "2"),
    (r"export OPTION_B='\n'", "OPTION_B", r"\n"),
    ("export exportFoo=2", "exportFoo", "2"),
    ("exportFOO=2", "exportFOO", "2"),
    ("export_FOO =2", "export_FOO", "2"),
    ("export.FOO= 2", "export.FOO", "2"),
    ("export\tOPTION_A=2", "OPTION_A", "2"),
    ("  export OPTION_A=2", "OPTION_A", "2"),
    ("\texport OPTION_A=2", "OPTION_A", "2"),
    (r'FOO="bar\nbaz"', "FOO", "bar\nbaz"),
    ("FOO.BAR=foobar", "FOO.BAR", "foobar"),
    ("FOO=foobar=", "FOO", "foobar="),
    ("FOO=bar ", "FOO", "bar"),
    ("KEY=value value", "KEY", "value value"),
    ("FOO=bar # this is foo", "FOO", "bar"),
    ('FOO="bar#baz" # comment', "FOO", "bar#baz"),
    ("FOO='bar#baz' # comment", "FOO", "bar#baz"),
    ('FOO="bar#baz#bang" # comment', "FOO", "bar#baz#bang"),
    ('FOO="ba#r"', "FOO", "ba#r"),
    ("FOO='ba#r'", "FOO", "ba#r"),
    (r'FOO="bar\n\ b\az"', "FOO", "bar\n baz"),
    (r'FOO="bar\\\n\ b\az"', "FOO", "bar\\\n baz"),
    (r'FOO="bar\\r\ b\az"', "FOO", "bar\\r baz"),
    ('="value"', "", "value"),
    ("---\nKEY:value", "KEY", "value"),
    (" KEY =value", "KEY", "value"),
    ("   KEY=value", "KEY", "value"),
    ("\tKEY=value", "KEY", "value"),
    # TestWhitespace
    (" A=a\n", "A", "a"),
    ("\tA=a\n", "A", "a"),
    (" \t \t\n\t \t A=a\n", "A", "a"),
    (" \t\t export    A=a\n", "A", "a"),
    ("A=a \t \t\n", "A", "a"),
    ("export A=a\t \t \n", "A", "a"),
    ("A=a", "A", "a"),
    ("A=a ", "A", "a"),
    # TestTrailingNewlines
    ("KEY=value value\n", "KEY", "value value"),
    ("KEY: value value", "KEY", "value value"),
    ("KEY: value value\n", "KEY", "value value"),
]


@pytest.mark.parametrize(("line", "key", "value"), PARSING)
def test_godotenv_parsing(line, key, value):
    assert parse(line, {})[key] == value


@pytest.mark.parametrize("text", ["\n", "\r\n", "\t\t ", "# Comment", "\t # comment", ""])
def test_godotenv_lines_to_ignore(text):
    assert parse(text, {}) == {}


# -- godotenv's TestExpanding and TestSubstitutions ----------------------------------------

EXPANDING = [
    ("FOO=test\nBAR=$FOO", {"FOO": "test", "BAR": "test"}),
    ("FOO=test\nBAR=${FOO}bar", {"FOO": "test", "BAR": "testbar"}),
    ("BAR=$FOO", {"BAR": ""}),  # undefined: empty
    ('FOO=test\nBAR="quote $FOO"', {"FOO": "test", "BAR": "quote test"}),
    ("BAR='quote $FOO'", {"BAR": "quote $FOO"}),  # single quotes: literal
    (r'FOO="foo\$BAR"', {"FOO": "foo$BAR"}),
    (r'FOO="foo\${BAR}"', {"FOO": "foo${BAR}"}),
    ('FOO=test\nBAR="foo\\${FOO} ${FOO}"', {"FOO": "test", "BAR": "foo${FOO} test"}),
    # substitutions.env, with GLOBAL_OPTION=global in the process environment
    (
        "OPTION_A=1\nOPTION_B=${OPTION_A}\nOPTION_C=$OPTION_B\nOPTION_D=${OPTION_A}${OPTION_B}\n"
        "OPTION_E=${OPTION_NOT_DEFINED}\nOPTION_F=${GLOBAL_OPTION}\n",
        {
            "OPTION_A": "1",
            "OPTION_B": "1",
            "OPTION_C": "1",
            "OPTION_D": "11",
            "OPTION_E": "",
            "OPTION_F": "global",
        },
    ),
    # the regex's edges: only A-Z0-9_ names; `$(` stays; each brace optional
    ("A=1\nB=$a-$(x)-${A", {"A": "1", "B": "$a-$(x)-1"}),
    ("A=1\nB=$A}", {"A": "1", "B": "1"}),
    ("A=1\nB=${A:-d}", {"A": "1", "B": "1:-d}"}),  # no shell defaults (python-dotenv has them)
    ("A=x\\$A", {"A": "x$A"}),  # unquoted: \$ is a literal $ too
    # an earlier line wins over the process environment
    ("GLOBAL_OPTION=file\nB=$GLOBAL_OPTION", {"GLOBAL_OPTION": "file", "B": "file"}),
]


@pytest.mark.parametrize(("text", "want"), EXPANDING)
def test_godotenv_expanding(text, want):
    assert parse(text, {"GLOBAL_OPTION": "global"}) == want


def test_the_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("CANON_TEST_OUTER", "outer")
    assert parse("A=$CANON_TEST_OUTER\n") == {"A": "outer"}


# -- godotenv's fixtures ---------------------------------------------------------------

PLAIN_ENV = "OPTION_A=1\nOPTION_B=2\nOPTION_C= 3\nOPTION_D =4\nOPTION_E = 5\nOPTION_F = \nOPTION_G=\nOPTION_H=1 2\n"  # noqa: E501
QUOTED_ENV = r"""OPTION_A='1'
OPTION_B='2'
OPTION_C=''
OPTION_D='\n'
OPTION_E="1"
OPTION_F="2"
OPTION_G=""
#OPTION_H="\n"
OPTION_I = "echo 'asd'"
OPTION_J='line 1
line 2'
OPTION_K='line one
this is \'quoted\'
one more line'
OPTION_L="line 1
line 2"
OPTION_M="line one
this is \"quoted\"
one more line"
"""
COMMENTS_ENV = """\
# Full line comment
qux=thud # fred # other
thud=fred#qux # other
fred=qux#baz # other # more
foo=bar # baz
bar=foo#baz
baz="foo"#bar
"""


def test_godotenv_plain_env():
    assert parse(PLAIN_ENV, {}) == {
        **{f"OPTION_{c}": str(i) for i, c in enumerate("ABCDE", 1)},
        "OPTION_F": "",
        "OPTION_G": "",
        "OPTION_H": "1 2",
    }


def test_godotenv_quoted_env():
    assert parse(QUOTED_ENV, {}) == {
        "OPTION_A": "1",
        "OPTION_B": "2",
        "OPTION_C": "",
        "OPTION_D": "\\n",
        "OPTION_E": "1",
        "OPTION_F": "2",
        "OPTION_G": "",
        "OPTION_I": "echo 'asd'",
        "OPTION_J": "line 1\nline 2",
        "OPTION_K": "line one\nthis is \\'quoted\\'\none more line",
        "OPTION_L": "line 1\nline 2",
        "OPTION_M": 'line one\nthis is "quoted"\none more line',
    }


def test_godotenv_comments_env():
    env = parse(COMMENTS_ENV, {})
    assert (env["foo"], env["bar"], env["baz"]) == ("bar", "foo#baz", "foo")
    # godotenv cuts at the rightmost " #": the earlier ones stay in the value
    assert (env["qux"], env["thud"], env["fred"]) == ("thud # fred", "fred#qux", "qux#baz # other")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("lol$wut", 1, "unexpected character '$' in the variable name 'lol$'"),
        ("A=1\nexport OPTION-C=123\n", 2, "unexpected character '-' in the variable name"),
        ("A=1\n\nLONELY\nB=2\n", 3, "'LONELY' has no '='"),
        ('A=1\nB="open\nC=2\n', 2, 'unterminated quoted value "open'),
    ],
)
def test_what_abra_cannot_read_is_an_error_with_its_line(text, line, message):
    with pytest.raises(EnvFileError) as e:
        parse(text, {})
    assert e.value.line == line and message in str(e.value)


# -- the lines real recipes use -----------------------------------------------------------

# bonfire's .env.sample at 2.0.1+1.0.6-social-amd64, the lines that matter, exactly
BONFIRE = """\
TYPE=bonfire

LETS_ENCRYPT_ENV=production

# choose what flavour of Bonfire to run. default: social
#APP_FLAVOUR=social

# enter your instance's domain name
DOMAIN=bonfire.example.com
## Domain aliases
#EXTRA_DOMAINS=', `www.bonfire.example.com`'

COMPOSE_FILE="compose.yml"

# ====================================
# DATABASE CONFIG
COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.yml"
SECRET_POSTGRES_PASSWORD_VERSION=v1

# Enable `compose.postgres.tune.yml` for Postgres tuning (can only be enabled *after* ...)
# COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.tune.yml"

#COMPOSE_FILE="$COMPOSE_FILE:compose.mail.yml"
#SECRET_MAIL_PASSWORD_VERSION=v1
OAUTH_ISSUER=https://${DOMAIN}
SECRET_SECRET_KEY_BASE_VERSION=v1 # length=128
"""


def test_bonfire_compose_file_appends_to_itself():
    env = parse(BONFIRE, {"COMPOSE_FILE": "from-the-shell.yml"})
    assert env["COMPOSE_FILE"] == "compose.yml:compose.postgres.yml"
    assert env["OAUTH_ISSUER"] == "https://bonfire.example.com"
    assert env["SECRET_SECRET_KEY_BASE_VERSION"] == "v1"
    assert "APP_FLAVOUR" not in env and "SECRET_MAIL_PASSWORD_VERSION" not in env


SAMPLE = """\
TYPE=keycloak
KEY=v1 # length=32
export FOO=bar
Q="a b" # c
SINGLE='x # not a comment'
QUOTED_HASH="v1 # kept: quoted"
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
    assert env["QUOTED_HASH"] == "v1 # kept: quoted"
    assert env["EMPTY"] == ""
    assert "LETS_ENCRYPT_ENV" not in env  # commented out


def test_a_bad_line_is_a_backend_error_naming_the_file_and_line():
    with pytest.raises(BackendError, match=r"deploy: \.env\.sample line 2: 'BAD' has no '='"):
        parse_env("A=1\nBAD\n", what=".env.sample")


# -- the overlay over .env.sample ----------------------------------------------------------


def test_render_env_sets_exported_and_commented_keys():
    out = render_env(SAMPLE, {"FOO": "baz", "LETS_ENCRYPT_ENV": "staging", "NEW": "1"})
    env = parse_env(out)
    assert (env["FOO"], env["LETS_ENCRYPT_ENV"], env["NEW"], env["KEY"]) == (
        "baz",
        "staging",
        "1",
        "v1",
    )
    assert out.count("FOO=") == 1 and out.splitlines()[2] == "FOO=baz"  # set in place


def test_render_env_keeps_the_sample_lines_a_value_is_built_from():
    # a literal value replaces the last assignment; the commented-out alternatives stay comments
    out = render_env(BONFIRE, {"COMPOSE_FILE": "compose.yml"})
    assert parse(out, {})["COMPOSE_FILE"] == "compose.yml"
    assert '# COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.tune.yml"' in out
    # a value built on the sample's own goes after it: "and the mail one too"
    out = render_env(BONFIRE, {"COMPOSE_FILE": "$COMPOSE_FILE:compose.mail.yml"})
    assert parse(out, {})["COMPOSE_FILE"] == "compose.yml:compose.postgres.yml:compose.mail.yml"
    assert len(out.splitlines()) == len(BONFIRE.splitlines()) + 1


def test_app_env_expands_and_names_the_compose_files(tmp_path):
    (tmp_path / ".env.sample").write_text(BONFIRE)
    for name in ("compose.yml", "compose.postgres.yml"):
        (tmp_path / name).write_text("services:\n  app:\n    image: x\n")
    text, env = app_env(tmp_path, {"DOMAIN": "b.test", "STACK_NAME": "s"})
    assert env["COMPOSE_FILE"] == "compose.yml:compose.postgres.yml"
    assert env["OAUTH_ISSUER"] == "https://b.test"  # DOMAIN set in place, before its use
    files = compose_files(tmp_path, env, "2.0.1+1.0.6-social-amd64")
    assert [f.name for f in files] == ["compose.yml", "compose.postgres.yml"]


def test_slot_env_of_a_deployed_recipe_uses_the_rules(tmp_path):
    (tmp_path / "fleet" / "r").mkdir(parents=True)
    (tmp_path / "fleet" / "r" / "recipe_meta.py").write_text("WARM_CANONICAL = True\n")
    meta = load_meta(tmp_path / "fleet" / "r")
    src = tmp_path / "src"
    src.mkdir()
    (src / ".env.sample").write_text(SAMPLE + "BUILT=$KEY-${FOO}\n")
    (src / "compose.yml").write_text("services:\n  app:\n    image: r\n")
    b = LocalBackend(tmp_path / "slots")
    b.provision("s1", src, meta)
    b.deploy("s1", src, meta, version="1.0.0", commit="a" * 40)
    env = b.slot_env("s1")
    assert (env["KEY"], env["FOO"], env["Q"], env["STACK_NAME"]) == ("v1", "bar", "a b", "s1")
    assert env["BUILT"] == "v1-bar"


# -- bonfire, end to end: a cold run on the local backend climbs past L1 -------------------

POSTGRES = """\
---
version: "3.8"
services:
  db:
    image: postgres:16
"""


def test_bonfire_cold_run_climbs_past_install(tmp_path):
    ws = Workspace(tmp_path)
    ws.recipe("bonfire")
    tag = "2.0.1+1.0.6-social-amd64"
    ws.release("bonfire", tag, extra={".env.sample": BONFIRE, "compose.postgres.yml": POSTGRES})
    r = run(ws, "bonfire", tag)
    assert r.rungs["install"] == "pass", r.reasons
    assert (r.green, r.level) == (True, 5), r.reasons
