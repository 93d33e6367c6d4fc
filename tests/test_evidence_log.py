"""The evidence log, for real: evidence runs (papermill, one small notebook) over a real registry
append to a real bare git repo; a reviewer clones it with git and verifies with `canon verify`.

The operator's dishonest moves: the registry rolled back to last week's copy, or its last
promotion row deleted, then a new week's run; the log rewritten and force-pushed.  The reviewer
cloned the log once before each.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess

import pytest

from canonlib.cli.main import main
from canonlib.evidence import log as evlog
from canonlib.evidence.manifest import LOG_PROOF, MANIFEST
from canonlib.evidence.run import run_suite
from canonlib.evidence.signing import init_keys
from canonlib.evidence.verify import verify
from canonlib.state.registry import Registry
from tests.test_verify_chain_head import SUITE_CLAIM, backup, notebook
from tests.workspace import Workspace

pytestmark = pytest.mark.slow


def git(*args, cwd=None):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


class World:
    def __init__(self, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "reviewer-cache"))
        self.tmp = tmp_path
        self.ws = Workspace(tmp_path / "ws")
        self.ws.recipe("gitea")
        self.commits = [self.ws.release("gitea", t) for t in ("1.0.0+1", "1.1.0+1", "1.2.0+1")]
        self.ws.mirror("gitea").sync()
        self.cfg = self.ws.config
        self.nb = notebook(tmp_path / "fine.ipynb")
        self.clone = tmp_path / "reviewer" / "log"
        self.keys = init_keys(self.cfg.state_dir)

    def promote(self, i):
        tag = ("1.0.0+1", "1.1.0+1", "1.2.0+1")[i]
        with Registry.open(self.cfg.db_path) as reg:
            reg.record_promotion("gitea", tag, tag, self.commits[i])

    def week(self):
        lines = []
        run = run_suite(self.cfg, "custom", notebooks=[self.nb], out=lines.append)
        assert run.ok, lines
        assert (run.dir / LOG_PROOF).exists(), lines
        return run.dir

    def pull(self):
        if self.clone.exists():
            git("pull", "-q", "--ff-only", cwd=self.clone)
        else:
            git("clone", "-q", str(self.cfg.log_repo), str(self.clone))

    def verify_log(self, capsys):
        rc = main(["verify", "--log", str(self.clone), "--key", str(self.keys.public)])
        return rc, capsys.readouterr().out


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path, monkeypatch)
    w.promote(0)
    w.first = w.week()
    w.promote(1)
    w.backup = tmp_path / "after-1.1.0.db"
    backup(w.cfg.db_path, w.backup)
    w.second = w.week()
    w.pull()  # the reviewer clones the log once
    return w


def failed(claims):
    return {c.name: c.detail for c in claims if not c.ok and c.name != SUITE_CLAIM}


def test_each_run_is_in_the_log_and_its_dir_proves_it(world, capsys):
    proof = json.loads((world.second / LOG_PROOF).read_text())
    assert proof["index"] == 1
    entry = json.loads(proof["entry"])
    assert entry["run_id"] == world.second.name
    assert entry["chain"]["length"] == 2
    claims = verify(world.second, key=world.keys.public, log=world.clone)
    assert failed(claims) == {}
    names = {c.name for c in claims}
    assert {"log inclusion proof", "log checkpoint signature", "log entry is this run"} <= names
    rc, out = world.verify_log(capsys)
    assert rc == 0, out
    assert "first use: remembering size 2" in out
    assert out.splitlines()[-1] == "not checked: nothing (all checks ran)"


def test_a_dir_whose_manifest_was_replaced_fails_its_log_entry(world):
    m = json.loads((world.second / MANIFEST).read_text())
    m["predicate"]["canon"]["suite"] = "custom"  # re-serialised: other bytes, same meaning
    (world.second / MANIFEST).write_text(json.dumps(m))
    bad = failed(verify(world.second))
    assert "manifest sha256" in bad["log entry is this run"]


def test_an_edited_inclusion_path_fails(world):
    p = json.loads((world.second / LOG_PROOF).read_text())
    p["index"] = 0
    (world.second / LOG_PROOF).write_text(json.dumps(p))
    assert (
        "does not lead to the checkpoint's root"
        in failed(verify(world.second))["log inclusion proof"]
    )


def test_registry_rolled_back_then_a_new_week_is_caught_by_the_log(world, capsys):
    assert world.verify_log(capsys)[0] == 0  # seen once
    world.promote(2)
    world.week()  # week 3: the chain is 3 rows long
    backup(world.backup, world.cfg.db_path)  # the operator restores an older copy (2 rows)
    with Registry.open(world.cfg.db_path) as reg:
        assert reg.verify_chain().ok  # intact in itself
    fourth = world.week()
    assert failed(verify(fourth)) == {}  # the new dir alone cannot know
    world.pull()
    rc, out = world.verify_log(capsys)
    assert rc == 1
    assert (f"FAIL  log entry 3: registry chain: run {fourth.name} (entry 3, after run ") in out
    assert "the registry's promotion chain shrank from 3 to 2 rows" in out


def test_last_promotion_row_deleted_then_a_new_week_is_caught(world, capsys):
    assert world.verify_log(capsys)[0] == 0
    with sqlite3.connect(world.cfg.db_path) as db:
        db.execute("DELETE FROM promotions WHERE id = (SELECT max(id) FROM promotions)")
    third = world.week()
    world.pull()
    rc, out = world.verify_log(capsys)
    assert rc == 1
    assert f"run {third.name} (entry 2, after run {world.second.name})" in out
    assert "shrank from 2 to 1 rows" in out


def test_rolled_back_and_regrown_is_caught(world, capsys):
    backup(world.backup, world.cfg.db_path)
    with sqlite3.connect(world.cfg.db_path) as db:
        db.execute("DELETE FROM promotions WHERE id = (SELECT max(id) FROM promotions)")
    world.promote(2)  # two rows again, but the second is another promotion
    third = world.week()
    world.pull()
    rc, out = world.verify_log(capsys)
    assert rc == 1
    assert f"run {third.name} (entry 2" in out
    assert "the chain head changed at the same length 2" in out


def test_force_pushed_rewrite_is_caught_by_the_remembered_checkpoint(world, capsys):
    assert world.verify_log(capsys)[0] == 0  # the reviewer remembers size 2
    # the operator drops the log, re-appends only the first run, and publishes that
    repo = world.cfg.log_repo
    first_commit = git("rev-list", "--reverse", "main", cwd=repo).split()[0]
    git("update-ref", "refs/heads/main", first_commit, cwd=repo)
    (world.second / LOG_PROOF).unlink()
    evlog.append(world.cfg, world.second)  # the same entry again: the same tree
    git("fetch", "-q", "origin", cwd=world.clone)
    git("reset", "-q", "--hard", "origin/main", cwd=world.clone)
    rc, out = world.verify_log(capsys)
    assert rc == 0, out  # same content re-appended: still consistent with what was seen
    # now a real rewrite: history with the second run gone, a third appended instead
    git("update-ref", "refs/heads/main", first_commit, cwd=repo)
    third = world.week()
    git("fetch", "-q", "origin", cwd=world.clone)
    git("reset", "-q", "--hard", "origin/main", cwd=world.clone)
    rc, out = world.verify_log(capsys)
    assert rc == 1
    assert "FAIL  log: the checkpoint seen before: FORK:" in out
    # a fresh clone in another place is caught the same way: what was seen is kept per origin
    fresh = world.tmp / "elsewhere"
    git("clone", "-q", str(repo), str(fresh))
    assert main(["verify", "--log", str(fresh)]) == 1
    assert third.name in git("show", "HEAD:entries.jsonl", cwd=fresh)


def test_canon_log_status_push_and_append(world, capsys):
    cfg = ["--config", str(world.ws.root / "canon.toml")]
    assert main([*cfg, "log", "status"]) == 0
    out = capsys.readouterr().out
    assert f"log:     {world.cfg.log_repo}" in out
    assert "entries: 2, checkpoint root " in out and "(signed)" in out
    assert f"last:    run {world.second.name} suite custom PASSED" in out
    assert "push:    none (set log.push" in out
    # no log.push: a clear refusal, exit 2
    assert main([*cfg, "log", "push"]) == 2
    assert "log.push is not set in canon.toml" in capsys.readouterr().err
    # with log.push: the published copy a reviewer clones holds both entries
    published = world.tmp / "published.git"
    git("init", "-q", "--bare", str(published))
    toml = world.ws.root / "canon.toml"
    toml.write_text(toml.read_text() + f'[log]\npush = "{published}"\n')
    assert main([*cfg, "log", "push"]) == 0
    assert capsys.readouterr().out == f"pushed {world.cfg.log_repo} to {published}\n"
    lines = git("show", "main:entries.jsonl", cwd=published).splitlines()
    assert [json.loads(x)["run_id"] for x in lines] == [world.first.name, world.second.name]
    # a dir in the log already is refused; so is one older than the last entry
    assert main([*cfg, "log", "append", str(world.first)]) == 2
    assert f"{world.first / LOG_PROOF} exists" in capsys.readouterr().err
    (world.first / LOG_PROOF).unlink()
    assert main([*cfg, "log", "append", str(world.first)]) == 2
    err = capsys.readouterr().err
    assert f"{world.first.name} finished at " in err and "a log only grows forward" in err
    assert not (world.first / LOG_PROOF).exists()
    assert main([*cfg, "log", "append", str(world.tmp)]) == 2
    assert "not an evidence dir (no manifest.json)" in capsys.readouterr().err


def test_a_run_whose_log_append_failed_is_appended_later(world, capsys):
    cfg = ["--config", str(world.ws.root / "canon.toml")]
    repo = world.cfg.log_repo
    moved = repo.with_name("log.git.away")
    repo.rename(moved)
    repo.write_text("not a repo")  # the log's path is unusable during this run
    lines = []
    run = run_suite(world.cfg, "custom", notebooks=[world.nb], out=lines.append)
    assert run.ok, lines
    assert not (run.dir / LOG_PROOF).exists()
    assert any(f"log: {run.dir.name} not appended to {repo}" in x for x in lines), lines
    claims = verify(run.dir)
    assert failed(claims) == {}
    assert {c.name: c.detail for c in claims}["log"] == f"not in an evidence log (no {LOG_PROOF})"
    repo.unlink()
    moved.rename(repo)
    assert main([*cfg, "log", "append", str(run.dir)]) == 0
    assert capsys.readouterr().out.startswith(f"{run.dir}: entry 2 of {repo}")
    world.pull()
    claims = verify(run.dir, key=world.keys.public, log=world.clone)
    assert failed(claims) == {}
    assert "this run is in the cloned log" in {c.name for c in claims}
    assert world.verify_log(capsys)[0] == 0


def test_report_pages_say_what_was_not_checked(world):
    md = (world.second / "summary.md").read_text()
    assert "## Not checked here" in md
    assert "| signature | the manifest's signature, with the fleet's public key | signed" in md
    assert f"appended to {world.cfg.log_origin} (log.proof)" in md
    assert "`canon verify DIR --key canon.pub --upstream --log CLONE --strict`" in md
    page = (world.second / "index.html").read_text()
    assert '<h2 id="not-checked">Not checked here</h2>' in page
    assert "<code>canon verify DIR</code>" in page
