"""verify: the promotion-chain head an evidence run recorded.

A real evidence run (papermill, one small notebook) over a real registry and a real mirror.
Then the manifest's head is replaced by one the bundled registry does not end with: only
the chain-head claim may notice.  Or the live registry is rolled back to a backup taken
before the run's last promotion: the bundle alone cannot know, `--state` must say so.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import nbformat
import pytest

from canonlib.evidence.manifest import MANIFEST
from canonlib.evidence.run import run_suite
from canonlib.evidence.verify import verify
from canonlib.state.registry import GENESIS, Registry
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

HEAD_CLAIM = "recorded chain head is the bundled registry's"
HELD_CLAIM = "live registry still holds the run's chain"


def notebook(path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config_path = ""\nevidence_dir = ""')
    params.metadata["tags"] = ["parameters"]
    done = "from canonlib.evidence.records import record\nrecord('complete', True)"
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(done)]
    nbformat.write(nb, path)
    return path


def backup(src, dst):
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


@pytest.fixture
def world(tmp_path):
    """gitea released twice and promoted twice; a backup of the registry between the two."""
    ws = Workspace(tmp_path / "ws")
    ws.recipe("gitea")
    commits = [ws.release("gitea", tag) for tag in ("1.0.0+1", "1.1.0+1")]
    ws.mirror("gitea").sync()
    cfg = ws.config
    with Registry.open(cfg.db_path) as reg:
        reg.record_promotion("gitea", "1.0.0+1", "1.0.0+1", commits[0])
    backup(cfg.db_path, tmp_path / "before-1.1.0.db")
    with Registry.open(cfg.db_path) as reg:
        reg.record_promotion("gitea", "1.1.0+1", "1.1.0+1", commits[1])
        head = reg.chain_head()
    run = run_suite(
        cfg, "custom", notebooks=[notebook(tmp_path / "fine.ipynb")], out=lambda _: None
    )
    assert run.ok
    return cfg, run.dir, head, tmp_path / "before-1.1.0.db"


SUITE_CLAIM = "suite complete"  # a one-notebook "custom" suite is never a declared suite


def failed(claims):
    """Failed claims, but for the suite claim (see test_untouched_evidence_verifies)."""
    return {c.name: c.detail for c in claims if not c.ok and c.name != SUITE_CLAIM}


LOG_CLAIM = "log entry is this run"


def failed_forged(claims):
    """Failed claims of a dir whose manifest was forged: the evidence log must name the forged
    manifest and head too (it holds the manifest as the run wrote it); then the rest."""
    bad = failed(claims)
    assert bad.pop(LOG_CLAIM).startswith("differs in manifest sha256, chain head "), bad
    return bad


def set_head(ev, head):
    m = json.loads((ev / MANIFEST).read_text())
    m["predicate"]["canon"]["chain"]["head"] = head
    (ev / MANIFEST).write_text(json.dumps(m))


def test_untouched_evidence_verifies(world):
    cfg, ev, head, _ = world
    assert json.loads((ev / MANIFEST).read_text())["predicate"]["canon"]["chain"]["head"] == head
    claims = verify(ev, state=cfg.state_dir)
    assert failed(claims) == {}
    assert [c.name for c in claims if not c.ok] == [SUITE_CLAIM]  # the only claim left out
    assert {HEAD_CLAIM, HELD_CLAIM} <= {c.name for c in claims}


FORGED = [
    hashlib.sha256(b"a promotion this registry never made").hexdigest(),
    "f" * 64,
    GENESIS,  # the empty chain's head, as if nothing had been promoted
    "",
]


@pytest.mark.parametrize("forged", FORGED)
def test_head_the_bundled_registry_does_not_end_with_is_named(world, forged):
    cfg, ev, _, _ = world
    set_head(ev, forged)
    assert failed_forged(verify(ev)) == {HEAD_CLAIM: f"head {forged[:16]}"}


def test_an_older_head_of_the_same_chain_is_not_enough(world):
    # the first promotion's hash is in the chain, but the run recorded the chain's head
    cfg, ev, head, _ = world
    with Registry.open(cfg.db_path) as reg:
        first = reg.history()[0].hash
    assert first != head
    set_head(ev, first)
    assert failed_forged(verify(ev)) == {HEAD_CLAIM: f"head {first[:16]}"}


def test_registry_rolled_back_after_the_run_is_caught_with_state(world):
    cfg, ev, head, before = world
    backup(before, cfg.db_path)  # an operator restores last week's backup
    with Registry.open(cfg.db_path) as reg:
        assert reg.verify_chain().ok  # the rolled-back chain is intact in itself...
        assert reg.chain_head() != head
    assert failed(verify(ev)) == {}  # ...and the bundle alone cannot know
    bad = failed(verify(ev, state=cfg.state_dir))
    assert bad[HELD_CLAIM] == (
        f"promotions row 2 (gitea 1.1.0+1) is missing in {cfg.db_path}: "
        "the registry was rolled back to an older copy or its history rewritten"
    )
    assert set(bad) == {HELD_CLAIM, "live canonicals descend from the bundled ones"}
