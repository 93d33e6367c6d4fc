"""canon's L5 lint rules (canonlib.recipe.lint) as tables: pure functions of a release's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from canonlib.files import FileProblem
from canonlib.recipe import lint
from canonlib.recipe.lint import ERROR, WARN, Base, Finding, Release

LABEL = lint.VERSION_LABEL

COMPOSE = """\
---
version: "3.8"
services:
  app:
    image: {image}
    deploy:
      labels:
        - "traefik.enable=true"
        - "{label}={version}"
  db:
    image: postgres:16
configs:
  app_conf:
    name: ${{STACK_NAME}}_app_conf_${{APP_CONF_VERSION}}
    file: app.conf
"""


def files(tag="1.0.0+1.27", image="nginx:1.27", version=None, **extra):
    out = {
        "compose.yml": COMPOSE.format(image=image, label=LABEL, version=version or tag),
        ".env.sample": "TYPE=x\nDOMAIN=x.example.com\n",
        "abra.sh": "export APP_CONF_VERSION=v1\n",
        "app.conf": "ok\n",
        f"release/{tag}": "notes\n",
    }
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def reader(tree: dict[str, str | Exception]) -> lint.Reader:
    def read(path: str) -> str | None:
        value = tree.get(path)
        if isinstance(value, Exception):
            raise value
        return value

    return read


def run(tag="1.0.0+1.27", tree=None, **kw) -> list[Finding]:
    return lint.lint(Release(tag, reader(files(tag) if tree is None else tree), **kw))


def rules(findings) -> list[tuple[str, str]]:
    return [(f.rule, f.level) for f in findings]


def test_a_clean_release_has_no_findings():
    assert run(tag_type="tag") == []


@pytest.mark.parametrize(
    ("image", "want"),
    [
        ("nginx:1.27", None),
        ("nginx:1.27-alpine", None),
        ("docker.io/library/nginx:1.27", None),
        ("registry.example:5000/team/app:2.1", None),
        ("nginx@sha256:" + "a" * 64, None),
        ("nginx:1.27@sha256:" + "b" * 64, None),
        ("nginx:latest@sha256:" + "c" * 64, None),  # the digest pins it
        ("nginx:${NGINX_VERSION}", None),  # interpolated at deploy: docker's to check
        ("nginx", "R003"),
        ("nginx:", "R003"),
        ("registry.example:5000/team/app", "R003"),  # a port is no tag
        ("nginx@sha256:abc", "R003"),
        ("nginx@md5:" + "a" * 32, "R003"),
        ("nginx:latest", "R004"),
        ("ghcr.io/x/y:latest", "R004"),
    ],
)
def test_image_pins(image, want):
    got = lint.image_pin_problem(image)
    assert (got[0] if got else None) == want, got


@pytest.mark.parametrize(
    ("label", "tag", "want"),
    [
        ("1.0.3+1.0.3", "1.0.3+1.0.3", None),
        ("1.0.3+1.0.3", "v1.0.3", WARN),  # a v-prefixed tag without the app part
        ("1.0.3", "1.0.3+1.0.3", WARN),  # a label without the app part
        ("v1.0.3+2.0", "1.0.3+2.0", WARN),
        ("1.0.3+2.0", "v1.0.3+2.0", WARN),
        ("1.0.3+2.0", "1.0.3+2.1", ERROR),  # another app version
        ("1.0.2+2.0", "v1.0.3", ERROR),
        ("1.0.3-rc1+2.0", "1.0.3+2.0", ERROR),  # a prerelease is not the release
        ("main", "1.0.3+2.0", ERROR),
        ("3.0.0+v2.0.0", "3.0.1+v2.0.0", ERROR),
    ],
)
def test_version_label_against_the_tag(label, tag, want):
    got = lint.label_verdict(label, tag)
    assert (got[0] if got else None) == want, got
    if got:
        assert label in got[1] and tag in got[1]  # the finding names both


def test_a_v_prefixed_tag_with_an_app_label_is_green_with_a_warning_naming_both():
    tag = "v1.0.3"
    tree = files(tag, version="1.0.3+1.0.3")
    (f,) = run(tag, tree, tag_type="tag")
    assert (f.rule, f.level, f.file, f.line) == ("C002", WARN, "compose.yml", 9)
    assert "1.0.3+1.0.3" in f.message and "v1.0.3" in f.message


def test_findings_name_the_rule_the_file_and_the_line():
    tree = files(image="nginx:latest")
    tree["compose.yml"] = tree["compose.yml"].replace("postgres:16", "postgres")
    got = run(tree=tree)
    assert [(f.rule, f.level, f.where) for f in got] == [
        ("R004", ERROR, "compose.yml:5"),
        ("R003", ERROR, "compose.yml:11"),
    ]
    assert str(got[0]) == (
        "R004 compose.yml:5: service app: image nginx:latest is :latest: "
        "pin it to a version tag or a digest"
    )


def test_no_app_no_image_no_label():
    compose = "services:\n  web:\n    build: .\n  db:\n    image: postgres:16\n"
    got = run(tree=files(**{"compose.yml": compose}))
    assert [(f.rule, f.where) for f in got] == [
        ("R009", "compose.yml:1"),
        ("R011", "compose.yml:2"),
    ]
    compose = "services:\n  app:\n    image: nginx:1.27\n"
    (f,) = run(tree=files(**{"compose.yml": compose}))
    assert (f.rule, f.level, f.where) == ("C002", ERROR, "compose.yml:2")
    assert f"no {LABEL} label" in f.message


def test_every_compose_file_in_compose_file_is_read_and_must_parse():
    tree = files(**{"compose.smtp.yml": "services:\n  app:\n    image: [unclosed\n"})
    got = run(tree=tree, compose_file="compose.yml:compose.smtp.yml:compose.gone.yml:../x.yml")
    assert [(f.rule, f.where) for f in got] == [
        ("C001", "compose.smtp.yml:4"),
        ("C001", "compose.gone.yml"),
        ("C001", ".env.sample"),
    ]
    assert "does not parse" in got[0].message and "no such file" in got[1].message
    assert "outside the recipe" in got[2].message


def test_an_optional_compose_file_supplies_an_image_and_its_latest_is_caught():
    extra = "services:\n  app:\n    environment: [A=1]\n  smtp:\n    image: mailer:latest\n"
    got = run(
        tree=files(**{"compose.smtp.yml": extra}), compose_file="compose.yml:compose.smtp.yml"
    )
    assert [(f.rule, f.where) for f in got] == [("R004", "compose.smtp.yml:5")]


def test_a_hostile_file_is_a_finding_not_a_crash():
    tree = files(
        **{".env.sample": FileProblem("is a link out of the recipe (/etc/passwd); refused")}
    )
    tree["compose.yml"] = FileProblem("is a FIFO (named pipe); it must be a regular file")
    got = run(tree=tree)
    assert rules(got) == [("C001", ERROR), ("R008", ERROR)]
    assert "FIFO" in got[0].message and "/etc/passwd" in got[1].message


@pytest.mark.parametrize(
    ("tag_type", "want"),
    [("tag", []), ("commit", [("R014", WARN)]), (None, [])],
)
def test_a_lightweight_tag_is_a_warning(tag_type, want):
    assert rules(run(tag_type=tag_type)) == want


def test_root_files_and_the_release_note():
    assert rules(run(tree=files(**{".env.sample": None}))) == [("R008", ERROR)]
    (f,) = run(tree=files(**{"release/1.0.0+1.27": None}))
    assert (f.rule, f.level, f.file) == ("C004", WARN, "release/1.0.0+1.27")
    assert run("v2.0.0", files("v2.0.0", **{"release/v2.0.0": None, "release/2.0.0": "n"})) == []


def test_a_tag_that_is_not_a_version():
    (f,) = run("nightly", files("nightly"))  # the label says nightly too
    assert (f.rule, f.level, f.file) == ("C003", ERROR, None)
    assert str(f).startswith("C003: 'nightly' is not a recipe version")


def test_config_versions_must_be_exported():
    got = run(tree=files(**{"abra.sh": "export OTHER_VERSION=v1\n"}))
    assert [(f.rule, f.level, f.where) for f in got] == [("R012", ERROR, "compose.yml:14")]
    assert "APP_CONF_VERSION" in got[0].message
    assert run(tree=files(**{"abra.sh": None, ".env.sample": "APP_CONF_VERSION=v3\n"})) == []


BASE = files("1.0.0+1.27")


@pytest.mark.parametrize(
    ("conf", "abra_sh", "want"),
    [
        ("ok\n", "export APP_CONF_VERSION=v1\n", []),  # unchanged
        ("changed\n", "export APP_CONF_VERSION=v2\n", []),  # changed and bumped
        ("changed\n", "export APP_CONF_VERSION=v1\n", [("C005", ERROR)]),  # changed, not bumped
        ("changed\n", 'export APP_CONF_VERSION="v1"  # config\n', [("C005", ERROR)]),
    ],
)
def test_a_config_changed_since_the_base_needs_its_version_bumped(conf, abra_sh, want):
    tag = "1.1.0+1.27"
    tree = files(tag, **{"app.conf": conf, "abra.sh": abra_sh})
    base = Base("canonical", "1.0.0+1.27", reader(BASE))
    got = run(tag, tree, base=base)
    assert rules(got) == want
    if want:
        (f,) = got
        assert f.where == "compose.yml:15"  # the config's file: line
        assert "app.conf" in f.message and "APP_CONF_VERSION" in f.message
        assert "canonical 1.0.0+1.27" in f.message


def test_a_new_config_or_a_new_variable_is_not_a_missed_bump():
    tag = "1.1.0+1.27"
    tree = files(tag, **{"app.conf": "changed\n"})
    old = {**BASE, "app.conf": None}
    assert run(tag, tree, base=Base("canonical", "1.0.0+1.27", reader(old))) == []
    old = {**BASE, "abra.sh": ""}
    assert run(tag, tree, base=Base("canonical", "1.0.0+1.27", reader(old))) == []


# -- abra's own table ---------------------------------------------------------------

# The shape `abra recipe lint` prints (lipgloss, heavy verticals, ✅/❌ cells, the WARN line
# after it when an error rule fails), its rows written after abra's pkg/lint rule table: a
# stand-in for a captured table, as no abra runs on these machines.
ABRA_TABLE = (Path(__file__).parent / "abra-recipe-lint.txt").read_text()


def test_abra_table_parsed_into_findings():
    table = lint.parse_abra_table(ABRA_TABLE)
    assert table.rows == 15 and table.problem is None
    assert rules(table.findings) == [
        ("R002", WARN),
        ("R015", WARN),
        ("R010", ERROR),
        ("R014", ERROR),
    ]
    assert str(table.findings[2]) == (
        'R010 (abra): traefik routing enabled (include "traefik.enable=true" deploy label)'
    )


def test_abra_table_with_light_lines_colour_codes_and_other_column_order():
    light = (
        "\x1b[1m│ SEVERITY │ REF  │ SATISFIED │ SKIPPED │ RULE          │\x1b[0m\r\n"
        "│ error    │ R009 │ \x1b[31m❌\x1b[0m        │ ❌      │ one service named 'app' │\r\n"
        "│ warn     │ R002 │ ✅        │ ❌      │ healthchecks  │\r\n"
    )
    table = lint.parse_abra_table(light)
    assert table.rows == 2 and rules(table.findings) == [("R009", ERROR)]
    assert table.findings[0].message == "one service named 'app'"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no output"),
        ("FATA unable to validate recipe: .env.sample: no such file\n", "FATA unable"),
        ("something else entirely\n", "something else"),
    ],
)
def test_no_table_is_no_verdict(text, words):
    table = lint.parse_abra_table(text)
    assert table.rows == 0 and table.findings == [] and words in table.problem


def test_merge_keeps_canons_finding_and_level_and_adds_abras_own_rules():
    canon = [Finding("R014", WARN, "tag v1 is lightweight")]
    abra = lint.parse_abra_table(ABRA_TABLE).findings
    got = lint.merge(canon, abra)
    assert rules(got) == [("R014", WARN), ("R002", WARN), ("R015", WARN), ("R010", ERROR)]
    assert got[0].source == "canon"
    # a rule canon has but did not flag: abra's finding, at canon's level
    (f,) = lint.merge([], [Finding("R014", ERROR, "x", source="abra")])
    assert (f.level, f.source) == (WARN, "abra")
    (f,) = lint.merge([], [Finding("R004", WARN, "x", source="abra")])
    assert f.level == ERROR


def test_every_rule_is_in_the_docs_at_its_level():
    page = (Path(__file__).resolve().parents[1] / "docs" / "labels.md").read_text()
    for rule in lint.RULES.values():
        assert f"| `{rule.id}` | {rule.level}" in page, rule
