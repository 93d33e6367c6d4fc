"""verify: the promotion-chain head an evidence run recorded must still be in the registry.

A real evidence run (papermill, one small notebook) over a real registry and a real mirror;
then the manifest's head is replaced, or the registry is rolled back to a backup taken
before the run's last promotion.  Only the chain-head claim may notice the first; the
second also loses the claimed canonical.
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
from canonlib.registry import GENESIS, Registry
from tests.workspace import Workspace

pytestmark = pytest.mark.slow

HEAD_CLAIM = "recorded chain head still in the chain"


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


def failed(claims):
    return {c.name: c.detail for c in claims if not c.ok}


def set_head(ev, head):
    m = json.loads((ev / MANIFEST).read_text())
    m["predicate"]["canon"]["chain"]["head"] = head
    (ev / MANIFEST).write_text(json.dumps(m))


def test_untouched_evidence_verifies(world):
    cfg, ev, head, _ = world
    assert json.loads((ev / MANIFEST).read_text())["predicate"]["canon"]["chain"]["head"] == head
    claims = verify(ev, cfg)
    assert failed(claims) == {}
    assert any(c.name == HEAD_CLAIM for c in claims)


@pytest.mark.parametrize(
    "forged",
    [hashlib.sha256(b"a promotion this registry never made").hexdigest(), "f" * 64, ""],
)
def test_head_the_registry_does_not_hold_is_named(world, forged):
    cfg, ev, _, _ = world
    set_head(ev, forged)
    assert failed(verify(ev, cfg)) == {HEAD_CLAIM: f"head {forged[:16]}"}


def test_head_of_an_empty_chain_stays_valid(world):
    # evidence recorded before the first promotion: every later chain still starts there
    cfg, ev, _, _ = world
    set_head(ev, GENESIS)
    assert failed(verify(ev, cfg)) == {}


def test_registry_rolled_back_after_the_run_is_caught(world):
    cfg, ev, head, before = world
    backup(before, cfg.db_path)  # an operator restores last week's backup
    with Registry.open(cfg.db_path) as reg:
        assert reg.verify_chain().ok  # the rolled-back chain is intact in itself...
        assert reg.chain_head() != head
    bad = failed(verify(ev, cfg))
    # ...but the head the evidence recorded is gone, and so is the canonical it claimed
    assert bad[HEAD_CLAIM] == f"head {head[:16]}"
    assert "NOT in the promotion history" in bad["canonical gitea: commit == tag"]
    assert set(bad) == {HEAD_CLAIM, "canonical gitea: commit == tag"}
