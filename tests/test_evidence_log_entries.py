"""The evidence log's entries and proofs read back: parsed once into their declared shapes, an
old log's bytes unchanged, and a line or proof that is not one named by its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canonlib.config import Config
from canonlib.errors import UsageError
from canonlib.evidence import merkle
from canonlib.evidence.log import (
    ENTRIES,
    PROOF_TYPE,
    LogRepo,
    append,
    checkpoint_body,
    dir_claims,
    entry_line,
    log_claims,
    parse_entry,
    read_proof,
    status,
)
from canonlib.evidence.manifest import LOG_PROOF, MANIFEST

FIXTURES = Path(__file__).parent / "fixtures" / "evidence"
FROZEN = sorted(p.parent for p in FIXTURES.glob("*/log.proof"))


def good_entry(run_id: str, length: int, head: str, **chain: str) -> bytes:
    return entry_line(
        {
            "v": 1,
            "run_id": run_id,
            "suite": "weekly",
            "verdict": "PASSED",
            "manifest_sha256": "0" * 64,
            "envelope_sha256": None,
            "chain": {"head": head, "length": length, **chain},
            "time": f"2026-12-0{length}T00:00:00Z",
        }
    )


def bare_log(path: Path, lines: list[bytes]) -> LogRepo:
    """A log repo whose main holds these lines and an (unsigned) checkpoint over them."""
    repo = LogRepo(path)
    repo.init()
    tree = merkle.Tree.of_entries(lines)
    body = checkpoint_body("canon.invalid/test-log", tree.size, tree.root())
    repo.commit(None, b"".join(x + b"\n" for x in lines), body, "entries")
    return repo


def config(tmp_path: Path) -> Config:
    return Config(
        path=tmp_path / "canon.toml",
        fleet=tmp_path / "fleet",
        state_dir=tmp_path / "state",
        evidence_dir=tmp_path / "evidence",
    )


@pytest.mark.parametrize("d", FROZEN, ids=[d.name for d in FROZEN])
def test_a_frozen_dir_proof_parses_and_its_entry_keeps_its_bytes(d):
    proof = read_proof(d)
    entry = parse_entry(proof["entry"])
    assert entry_line(entry) == proof["entry"].encode()  # what is written is what was read
    raw = (d / MANIFEST).read_bytes()
    pred = json.loads(raw)["predicate"]["canon"]
    claims = dir_claims(d, raw, pred, None)
    assert [(c.name, c.ok) for c in claims] == [
        ("log entry is this run", True),
        ("log inclusion proof", True),
    ], claims


def test_a_line_of_a_cloned_log_that_is_no_entry_is_named_by_its_line(tmp_path):
    lines = [
        good_entry("r1", 1, "a" * 64),
        good_entry("r2", 2, "b" * 64).replace(b'"length":2', b'"length":"2"'),
        b"not json",
        good_entry("r3", 3, "c" * 64, at_previous="a" * 64),
        good_entry("r4", 2, "d" * 64),
    ]
    bare_log(tmp_path / "log.git", lines)
    claims = {c.name: c for c in log_claims(tmp_path / "log.git", remember=False)}
    assert claims["log root recomputed"].ok
    bad = claims["log entry 1"]
    assert not bad.ok
    assert bad.detail == (
        f"not a canon log entry: {lines[1][:60]!r} "
        f"({ENTRIES} line 2: chain.length holds text, not a whole number or null)"
    )
    assert not claims["log entry 2"].ok
    assert f"({ENTRIES} line 3: is not valid JSON (" in claims["log entry 2"].detail
    # the lines that parse are checked one after the other: r3 holds r1's head, r4 shrank
    assert [n for n in claims if n.startswith("log entry")] == [
        "log entry 1",
        "log entry 2",
        "log entry 4: registry chain",
    ]
    assert "shrank from 3 to 2 rows" in claims["log entry 4: registry chain"].detail


def test_a_log_whose_last_line_is_no_entry_is_refused_naming_it(tmp_path):
    cfg = config(tmp_path)
    bare_log(cfg.log_repo, [good_entry("r1", 1, "a" * 64), b'{"v": 1, "suite": "weekly"}'])
    want = f"{cfg.log_repo}: {ENTRIES} line 2 is not a canon log entry (chain is missing)"
    with pytest.raises(UsageError) as e:
        status(cfg)
    assert str(e.value) == want
    d = tmp_path / "evidence" / "run"
    d.mkdir(parents=True)
    with pytest.raises(UsageError) as e:
        append(cfg, d)
    assert str(e.value) == want
    assert not (d / LOG_PROOF).exists()


def test_status_reads_the_last_entry(tmp_path):
    cfg = config(tmp_path)
    bare_log(cfg.log_repo, [good_entry("r1", 1, "a" * 64), good_entry("r2", 2, "b" * 64)])
    st = status(cfg)
    assert (st["size"], st["signed"]) == (2, False)
    assert st["last"] == {
        "run_id": "r2",
        "suite": "weekly",
        "verdict": "PASSED",
        "time": "2026-12-02T00:00:00Z",
    }


def write_proof(d: Path, **changes: object) -> None:
    proof = {
        "type": PROOF_TYPE,
        "origin": "canon.invalid/test-log",
        "index": 0,
        "entry": good_entry("r1", 1, "a" * 64).decode(),
        "inclusion": [],
        "checkpoint": "canon.invalid/test-log\n1\n" + "A" * 43 + "=\n",
        **changes,
    }
    (d / LOG_PROOF).write_text(json.dumps(proof))


@pytest.mark.parametrize(
    "changes, detail",
    [
        ({"entry": '{"v": 1}'}, "its entry is not a canon log entry (chain is missing)"),
        (
            {"entry": good_entry("r1", 1, "a" * 64).decode().replace('"r1"', "5")},
            "its entry is not a canon log entry (run_id holds a whole number, not text)",
        ),
        ({"entry": "{torn"}, "is not valid JSON ("),
        ({"index": "0"}, f"not a {PROOF_TYPE} (index holds text, not a whole number)"),
        ({"inclusion": "AAAA"}, f"not a {PROOF_TYPE} (inclusion holds text, not a list)"),
        ({"type": "other"}, f"not a {PROOF_TYPE}"),
    ],
)
def test_a_proof_that_is_no_proof_is_a_failed_log_claim_naming_the_file(tmp_path, changes, detail):
    write_proof(tmp_path, **changes)
    [claim] = dir_claims(tmp_path, b"{}", {"run_id": "r1"}, None)
    assert (claim.name, claim.ok) == ("log", False)
    assert claim.detail.startswith(f"{tmp_path / LOG_PROOF}: {detail}"), claim.detail
