"""L5 lint through the built-in harness: real upstream repos in tmp_path, real tags (annotated
and lightweight), a real mirror and checkout, the harness as a real child process.

The only stand-in is a FAKE `abra` on PATH (test_abras_table_is_merged_*): there is no abra
on these machines.  It prints a table in the shape `abra recipe lint` prints (reconstructed
from abra's rule table and its lipgloss rendering, not captured from a run here) and, like
the real abra, refuses to run without a terminal."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from canonlib.sweep import policy
from tests.test_lint import ABRA_TABLE
from tests.test_runner import run
from tests.workspace import Workspace

NOT_RUN = "L5: abra's lint not run (no abra on PATH)"


@pytest.fixture
def ws(tmp_path, monkeypatch):
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not os.path.exists(f"{p}/abra")]
    monkeypatch.setenv("PATH", os.pathsep.join(path))  # no real abra either
    return Workspace(tmp_path)


def lint_warnings(r) -> list[str]:
    return [w for w in r.warnings if w.startswith("L5")]


def test_a_v_prefixed_tag_with_an_app_label_is_green_with_a_warning_naming_both(ws):
    ws.recipe("rallly")
    ws.release("rallly", "v1.0.3", label_version="1.0.3+1.0.3")
    r = run(ws, "rallly", "v1.0.3")
    assert r.green and r.rungs["lint"] == "pass", r.reasons
    (label, not_run) = lint_warnings(r)
    assert label.startswith("L5 C002 compose.yml:") and "1.0.3+1.0.3" in label and "v1.0.3" in label
    assert not_run == NOT_RUN


def test_a_lightweight_tag_is_a_warning(ws):
    ws.recipe("traefik")
    ws.release("traefik", "2.5.0+2.11.0", annotated=False)
    r = run(ws, "traefik", "2.5.0+2.11.0")
    assert r.green and r.rungs["lint"] == "pass", r.reasons
    assert any(w.startswith("L5 R014: tag 2.5.0+2.11.0 is a lightweight tag") for w in r.warnings)


def test_an_annotated_tag_has_no_r014(ws):
    ws.recipe("traefik")
    ws.release("traefik", "2.5.0+2.11.0")
    r = run(ws, "traefik", "2.5.0+2.11.0")
    assert r.green and lint_warnings(r) == [NOT_RUN]


def test_a_digest_pinned_image_is_ok(ws):
    ws.recipe("hedgedoc")
    image = "quay.io/hedgedoc/hedgedoc:1.10.0@sha256:" + "0123456789abcdef" * 4
    ws.release("hedgedoc", "3.0.0+1.10.0", image=image)
    r = run(ws, "hedgedoc", "3.0.0+1.10.0")
    assert r.green and r.rungs["lint"] == "pass", r.reasons
    assert lint_warnings(r) == [NOT_RUN]


@pytest.mark.parametrize(
    ("image", "rule", "words"),
    [
        ("nginx:latest", "R004", "image nginx:latest is :latest"),
        ("nginx", "R003", "image nginx has no tag"),
    ],
)
def test_latest_and_a_missing_tag_are_errors(ws, image, rule, words):
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.27", image=image)
    r = run(ws, "custom-html", "1.0.0+1.27")
    assert r.rungs["lint"] == "fail" and (r.level, r.green) == (4, False)
    assert r.reasons["lint"].startswith(f"{rule} compose.yml:6: service app: {words}")


def test_a_config_changed_without_its_version_bumped_is_an_error_naming_file_and_variable(ws):
    ws.recipe("nginx")
    ws.release("nginx", "1.0.0+1.27", configs=True)
    ws.release("nginx", "1.1.0+1.27", configs=True, app_conf="ok\nworkers=4\n")
    base = policy.upgrade_base("1.1.0+1.27", "1.0.0+1.27", ["1.0.0+1.27", "1.1.0+1.27"])
    r = run(ws, "nginx", "1.1.0+1.27", base=base)
    assert r.rungs["lint"] == "fail" and not r.green, r.reasons
    reason = r.reasons["lint"]
    assert reason.startswith("C005 compose.yml:") and "config app_conf: app.conf changed" in reason
    assert "since canonical 1.0.0+1.27" in reason and "APP_CONF_VERSION is still v1" in reason


def test_a_config_changed_with_its_version_bumped_is_green(ws):
    ws.recipe("nginx")
    ws.release("nginx", "1.0.0+1.27", configs=True)
    ws.release(
        "nginx",
        "1.1.0+1.27",
        configs=True,
        app_conf="ok\nworkers=4\n",
        abra_sh="export APP_CONF_VERSION=v2\n",
    )
    base = policy.upgrade_base("1.1.0+1.27", "1.0.0+1.27", ["1.0.0+1.27", "1.1.0+1.27"])
    r = run(ws, "nginx", "1.1.0+1.27", base=base)
    assert r.green and r.rungs["lint"] == "pass", r.reasons


def test_every_compose_file_in_compose_file_is_linted(ws):
    ws.recipe("mailu")
    smtp = "services:\n  app:\n    environment: [SMTP=1]\n  smtp:\n    image: mailu/postfix\n"
    ws.release(
        "mailu",
        "1.0.0+2.0",
        extra={
            "compose.smtp.yml": smtp,
            ".env.sample": 'TYPE=mailu\nCOMPOSE_FILE="compose.yml:compose.smtp.yml"\n',
        },
    )
    r = run(ws, "mailu", "1.0.0+2.0")
    assert r.rungs["lint"] == "fail"
    assert r.reasons["lint"].startswith(
        "R003 compose.smtp.yml:5: service smtp: image mailu/postfix"
    )


FAKE_ABRA = textwrap.dedent('''\
    #!{python}
    """A stand-in for abra: `recipe lint` prints a captured-shape table, exit 0 (as abra does)."""
    import os, subprocess, sys
    if not os.isatty(1):  # the real abra: FATA inappropriate ioctl for device
        print("FATA inappropriate ioctl for device", file=sys.stderr)
        sys.exit(1)
    args = sys.argv[1:]
    assert args[:3] == ["recipe", "lint", "--chaos"], args
    tree = os.path.join(os.environ["ABRA_DIR"], "recipes", args[-1])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True)
    print("linting " + args[-1] + " at " + head.stdout.strip())
    sys.stdout.write(open(os.environ["FAKE_ABRA_TABLE"]).read())
''')


def install_fake_abra(tmp_path, monkeypatch, table: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "abra"
    exe.write_text(FAKE_ABRA.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "table.txt").write_text(table)
    monkeypatch.setenv("FAKE_ABRA_TABLE", str(tmp_path / "table.txt"))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")


def test_abras_table_is_merged_and_its_error_rules_fail_the_rung(ws, tmp_path, monkeypatch):
    install_fake_abra(tmp_path, monkeypatch, ABRA_TABLE)  # R002, R015 warn; R010, R014 error
    ws.recipe("custom-html")
    commit = ws.release("custom-html", "1.0.0+1.27", annotated=False)
    r = run(ws, "custom-html", "1.0.0+1.27")
    assert r.rungs["lint"] == "fail" and r.level == 4
    assert r.reasons["lint"] == (
        'R010 (abra): traefik routing enabled (include "traefik.enable=true" deploy label)'
    )
    warned = lint_warnings(r)
    assert warned[0].startswith("L5 R014: tag 1.0.0+1.27 is a lightweight tag")  # canon's, once
    assert [w.split(":")[0] for w in warned[1:]] == ["L5 R002 (abra)", "L5 R015 (abra)"]
    assert not any("not run" in w for w in warned)
    assert f"linting custom-html at {commit}" in Path(r.log_path).read_text()  # the tested commit


def test_abras_warnings_only_keep_the_rung_green(ws, tmp_path, monkeypatch):
    table = "\n".join(ln for ln in ABRA_TABLE.splitlines() if "error    ┃ ❌" not in ln)
    install_fake_abra(tmp_path, monkeypatch, table)
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.27")
    r = run(ws, "custom-html", "1.0.0+1.27")
    assert r.green and r.rungs["lint"] == "pass", r.reasons
    assert [w.split(":")[0] for w in lint_warnings(r)] == ["L5 R002 (abra)", "L5 R015 (abra)"]


def test_abra_without_a_table_is_said_in_the_row_and_decides_nothing(ws, tmp_path, monkeypatch):
    install_fake_abra(tmp_path, monkeypatch, "FATA unable to validate recipe: boom\n")
    ws.recipe("custom-html")
    ws.release("custom-html", "1.0.0+1.27")
    r = run(ws, "custom-html", "1.0.0+1.27")
    assert r.green
    (w,) = lint_warnings(r)
    assert w.startswith("L5: abra's lint gave no verdict (exit 0): no rule table") and "boom" in w
