from __future__ import annotations

import os

import pytest

from canonlib.sweep.orchestrate import sweep
from tests.gitrepo import Upstream
from tests.workspace import Workspace


@pytest.fixture
def upstream(tmp_path):
    up = Upstream(tmp_path / "upstream" / "recipe")
    up.commit({"compose.yml": "version: '3.8'\n"}, "init")
    return up


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """Two recipes swept once: two canonicals, each slot holding a data file of the operator's.

    Built once per session and never changed: test_canonical_safety, test_crash_points and
    test_upgrade_base each work on a private copy of it (their ``ws`` fixture)."""
    w = Workspace(tmp_path_factory.mktemp("swept"))
    w.recipe("custom-html")
    w.release("custom-html", "1.7.1+1.27.2")
    w.recipe("nextcloud")
    w.release("nextcloud", "6.0.1+28.0.2-fpm")
    result = sweep(w.config)
    assert {r["label"] for r in result.rows} == {"PASS (promoted)"}, result.rows
    return w


# `make test` runs the suite on two workers (pytest-xdist, `-n 2`) with the scheduler below;
# `pytest` alone runs it in one process, as before.  Each worker builds its own session- and
# module-scoped fixtures, so what shares one expensive build stays on one worker:
# - "demo": every test of the files reading `canon demo`'s evidence (built once per code version
#   under a file lock, tests/demo_evidence.py: a second worker would only wait for it), with
#   test_evidence's weekly run built from it;
# - a file with a module-scoped build of its own (test_report's week of evidence);
# - "swarm": every test of the files using the one Docker Swarm, one after the other (they hold
#   the machine-wide swarm lock: on two workers one would sit waiting for the other).
# Every other test goes alone to whichever worker is free; the largest groups start first.
SCOPES = {
    "test_evidence.py": "demo",
    "test_verify_claims.py": "demo",
    "test_report.py": "test_report.py",
}


def scope_of(nodeid: str) -> str:
    """The unit of work ``nodeid`` belongs to: a named group, or the test alone."""
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    if "swarm" in name:
        return "swarm"
    return SCOPES.get(name, nodeid)


@pytest.hookimpl(optionalhook=True)  # a plain `pytest` without xdist installed still runs
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return Scheduling(config, log)


# xdist's workers start with COLUMNS=80 and LINES=24 in their environment (seen under xdist 3.8,
# not set by the caller): canon cuts tables to $COLUMNS, so every test and every canon it starts
# would see an 80-column terminal that a plain `pytest` run does not have.  Workers get the
# caller's values.
TERMINAL_ENV = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["canon_terminal_env"] = {k: os.environ.get(k) for k in TERMINAL_ENV}


def pytest_configure(config):
    for k, v in getattr(config, "workerinput", {}).get("canon_terminal_env", {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
