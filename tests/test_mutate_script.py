"""``make mutate`` (scripts/mutate.py) from a fresh copy of the repo, with real mutmut.

Two faults it had, found in a fresh clone (issue 23, item 4), each failing mutmut's stats run:

- child processes imported another canonlib than the tests in mutmut's process (the work
  copy's unmutated one, not mutmut's trampolined copy), so canon's source digest, which keys
  the known-red memory, differed between them: the demo's week-3 sweep met a "new harness"
  and re-tested its known-reds ("runner returned 1");
- a PYTHONPATH entry for mutmut's ``mutants/`` before it exists is cached by Python as "no
  importer", and mutmut's own entry for it then finds nothing ("No module named 'tests'").

The copy's ``versions.py`` is mutated against one probe test that starts a child Python the
way canon starts its harness and kernels (in another dir) and compares the digests.  A seeded
sample of one mutant keeps it short (mutant generation, the stats run, one mutant).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import subprocess
import sys
import tempfile

from canonlib.recipe.versions import latest_release
from canonlib.sweep.knownred import source_digest


def test_a_child_canon_has_the_digest_of_the_tests_canonlib():
    # calls into versions.py, so that mutmut finds a test for its mutants
    assert latest_release(["1.0.0+1.0", "1.1.0+1.0"]) == "1.1.0+1.0"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from canonlib.sweep.knownred import source_digest as d; print(d())",
        ],
        cwd=tempfile.gettempdir(),  # as canon starts them: not in the dir of the tests' canonlib
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == source_digest()
"""


def fresh_copy(dest: Path) -> Path:
    """The repo's tracked tree as a fresh clone has it: no mutants/, no caches, no venv."""
    for name in ("canonlib", "tests", "notebooks", "scripts"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    text = (ROOT / "pyproject.toml").read_text()
    text, n = re.subn(
        r'^"canonlib/recipe/versions.py" = .*$',
        '"canonlib/recipe/versions.py" = ["tests/test_probe_digest.py"]',
        text,
        flags=re.M,
    )
    assert n == 1, "pyproject.toml's [tool.canon.mutate.tests] has no versions.py entry"
    (dest / "pyproject.toml").write_text(text)
    (dest / "tests" / "test_probe_digest.py").write_text(textwrap.dedent(PROBE))
    return dest


@pytest.mark.slow
def test_make_mutate_in_a_fresh_copy_runs_its_stats_and_scores(tmp_path):
    repo = fresh_copy(tmp_path / "repo")
    r = subprocess.run(
        [sys.executable, "scripts/mutate.py", "canonlib/recipe/versions.py", "--sample", "1"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = repo / "mutants" / "canonlib.recipe.versions" / "mutmut.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no mutmut.log)"
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\nmutmut.log tail:\n{tail}"
    assert "failed to collect stats" not in tail
    assert re.search(r"canonlib/recipe/versions.py: 1 mutants \(sample of \d+\)", r.stdout)
    assert re.search(r"^canonlib/recipe/versions.py\s+1\s", r.stdout, re.M), r.stdout
