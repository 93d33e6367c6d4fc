"""The known-red memory is keyed by canon's own code: a canon fix re-tests what the bug made red.

canon runs here from a copy of canonlib that is not a git checkout (as a pip/pipx install of
a wheel or sdist is: no .git to ask for a commit), and from a git checkout with uncommitted
edits (``+dirty``).  Real sweeps in real processes, a real registry; the copy is put first on
PYTHONPATH, and the runs' rows show it was the one that ran (no commit, or the copy's commit).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from canonlib.state.registry import Registry
from canonlib.sweep.knownred import harness_identity, source_digest
from tests.cli import canon
from tests.gitrepo import git
from tests.workspace import Workspace

CANONLIB = Path(__file__).resolve().parents[1] / "canonlib"


def copy_canonlib(dest: Path) -> Path:
    shutil.copytree(CANONLIB, dest / "canonlib", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def sweep_from(ws: Workspace, install: Path) -> dict:
    r = canon(
        ws,
        "sweep",
        "--json",
        env_extra={"PYTHONPATH": str(install), "COLUMNS": "400"},
        cwd=ws.root,  # not canon's repo: python -m puts the cwd first on sys.path
    )
    assert r.returncode in (0, 1), r.stderr
    (row,) = json.loads(r.stdout)
    return row


def touch_one_byte(install: Path) -> None:
    """A canon fix, as small as it gets: one byte of one module (a comment, here)."""
    policy = install / "canonlib" / "sweep" / "policy.py"
    text = policy.read_text()
    policy.write_text(text + "#")


@pytest.fixture
def red(tmp_path):
    """One enrolled recipe whose only release is red (no compose.yml: level 0)."""
    ws = Workspace(tmp_path / "ws")
    up = ws.recipe("crate")
    up.commit({"Cargo.toml": '[package]\nname = "crate"\n'}, "crate 0.1.0")
    up.tag("0.1.0+1")
    return ws


@pytest.mark.slow
def test_an_install_without_git_re_tests_a_red_when_canon_changes(red, tmp_path):
    install = copy_canonlib(tmp_path / "site")
    first = sweep_from(red, install)
    assert first["decision"] == "run" and first["verdict"] == "red", first
    with Registry.open(red.config.db_path) as reg:
        assert reg.runs("sweep")[-1]["code_commit"] is None  # the copy ran: no git to ask
    assert sweep_from(red, install)["decision"] == "skip:known-red"  # unchanged: not re-tested
    touch_one_byte(install)
    again = sweep_from(red, install)
    assert again["decision"] == "run" and again["verdict"] == "red", again
    assert again["harness"] != first["harness"]
    assert sweep_from(red, install)["decision"] == "skip:known-red"


@pytest.mark.slow
def test_a_dirty_checkout_re_tests_after_each_further_edit(red, tmp_path):
    install = copy_canonlib(tmp_path / "checkout")
    git("init", "-q", "-b", "main", str(install))
    git("add", "-A", cwd=install)
    git("commit", "-q", "-m", "canon", cwd=install)
    touch_one_byte(install)  # a first uncommitted fix: +dirty
    first = sweep_from(red, install)
    assert first["decision"] == "run" and first["verdict"] == "red", first
    with Registry.open(red.config.db_path) as reg:
        assert reg.runs("sweep")[-1]["code_commit"] == git("rev-parse", "HEAD", cwd=install).strip()
    assert sweep_from(red, install)["decision"] == "skip:known-red"
    touch_one_byte(install)  # a second fix, still uncommitted: still +dirty, but new code
    assert sweep_from(red, install)["decision"] == "run"
    git("checkout", "-q", "--", ".", cwd=install)  # back to the committed code: a new harness too
    assert sweep_from(red, install)["decision"] == "run"


def test_source_digest_is_the_python_sources_and_nothing_else(tmp_path):
    root = copy_canonlib(tmp_path)
    pkg = root / "canonlib"
    d = source_digest(pkg)
    assert d == source_digest(pkg) and d.startswith("sha256:")
    (pkg / "__pycache__").mkdir(exist_ok=True)
    (pkg / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"compiled")
    (pkg / "sweep" / "policy.py.meta").write_text("mutmut's bookkeeping")
    assert source_digest(pkg) == d
    touch_one_byte(root)
    assert source_digest(pkg) != d
    (pkg / "sweep" / "policy.py").rename(pkg / "sweep" / "policy2.py")  # same bytes, new name
    assert source_digest(pkg) not in (d, source_digest(pkg.parent / "nothing-here"))


def test_harness_identity_names_the_source_not_the_commit():
    code = {"code_version": "1.2.3", "code_commit": "a" * 40, "code_dirty": True}
    one = harness_identity(code, ["canon", "harness"], source="sha256:" + "1" * 64)
    two = harness_identity(code, ["canon", "harness"], source="sha256:" + "2" * 64)
    assert one != two and one == "canon 1.2.3 src:111111111111; canon harness"
    no_git = {"code_version": "1.2.3", "code_commit": None, "code_dirty": None}
    got = harness_identity(no_git, ["x"], source="sha256:" + "1" * 64)
    assert got == "canon 1.2.3 src:111111111111; x"
