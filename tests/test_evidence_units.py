"""The evidence wing's pure parts, table-tested: the verdict rule, DSSE's PAE and envelope,
what a suite dir may hold, the config with secrets left out, the Statement's subjects."""

from __future__ import annotations

import base64
import dataclasses

import pytest

from canonlib.claims import Claim
from canonlib.config import Config
from canonlib.evidence import signing
from canonlib.evidence.bundle import config_record, scrub_url
from canonlib.evidence.manifest import subjects
from canonlib.evidence.suites import file_problem
from canonlib.evidence.verdict import verdict


def row(recipe, label, run="r1"):
    return {"run_id": run, "recipe": recipe, "label": label}


@pytest.mark.parametrize(
    "nbs, rows, result, recipes",
    [
        ({"sweep": True}, [row("a", "PASS (promoted)"), row("b", "SKIP (held)")], "PASSED", []),
        ({"sweep": True}, [row("a", "GREEN-NOT-PROMOTED (untagged)")], "PASSED", []),
        ({"sweep": True}, [row("a", "FAIL (level 1/5)")], "FAILED", ["a"]),
        ({"sweep": True}, [row("a", "FAIL (timeout)")], "FAILED", ["a"]),
        (
            {"sweep": True},
            [row("a", "ERROR (sync: gone)"), row("a", "ERROR (sync: gone)", "r2")],
            "FAILED",
            ["a"],
        ),
        ({"sweep": True}, [row("k", "GREEN-BUT-PROMOTE-FAILED")], "FAILED", ["k"]),
        ({"sweep": True, "disk_budget": False}, [], "FAILED", []),
        ({}, [], "FAILED", []),  # no notebook ran: nothing is proven
    ],
)
def test_verdict_rule(nbs, rows, result, recipes):
    v = verdict(nbs, rows)
    assert (v.result, v.recipes, v.exit_code) == (result, recipes, 0 if result == "PASSED" else 1)


def test_verdict_summary_names_notebooks_and_recipes():
    v = verdict(
        {"sweep": True, "disk_budget": False}, [row("z", "FAIL (level 1/5)"), row("a", "ERROR (x)")]
    )
    assert v.summary() == "FAILED: notebook disk_budget failed; a ERROR (x); z FAIL (level 1/5)"


def test_pae_is_dsse_v1():
    # the DSSE spec's own example
    assert signing.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_envelope_signs_exact_bytes_and_names_the_key(tmp_path):
    kp = signing.init_keys(tmp_path)
    assert oct(kp.private.stat().st_mode)[-3:] == "600"
    key, pub = signing.load_private(kp.private), signing.load_public(kp.public)
    env = signing.sign(b'{"a": 1}\n', key)
    assert base64.b64decode(env["payload"]) == b'{"a": 1}\n'
    assert env["signatures"][0]["keyid"] == signing.keyid(pub)
    assert signing.check(env, pub, b'{"a": 1}\n') is None
    assert "not this manifest.json" in signing.check(env, pub, b'{"a": 2}\n')
    assert signing.check({"payloadType": "text/plain", "signatures": []}, pub, b"").startswith(
        "payloadType"
    )
    assert signing.check([], pub, b"") == "not a DSSE envelope"
    with pytest.raises(Exception, match="already exists"):
        signing.init_keys(tmp_path)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("sweep.ipynb", None),
        ("records.json", None),
        ("bundle/registry.db", None),
        ("sweep.failure.txt", None),
        ("results/r1.jsonl", None),
        ("summary.md", None),
        ("index.html", None),
        ("sweep.html", None),
        ("logs/sweep.log", None),
        ("scratch/samever.db", "a file no suite writes"),
        ("results/r9.jsonl", "a file no suite writes"),
        ("other.ipynb", "a notebook the suite does not declare"),
        ("notes.txt", "a file no suite writes"),
        ("bundle/extra.db", "a file no suite writes"),
    ],
)
def test_what_a_weekly_dir_may_hold(name, problem):
    assert file_problem(name, ["sweep", "determinism", "disk_budget"], ["r1"]) == problem


def test_config_record_leaves_secrets_out(tmp_path):
    cfg = Config(
        path=tmp_path / "canon.toml",
        fleet=tmp_path,
        state_dir=tmp_path,
        evidence_dir=tmp_path,
        upstream="https://bot:s3cret@git.example.org/{recipe}.git",
        push="ssh://git@ci.example.org/m/{recipe}.git",
        backend={"kind": "abra", "servers": ["s1"], "api_token": "t0k"},
        recipes={"x": {"upstream": "https://u:p@h.example/x.git"}},
    )
    rec = config_record(cfg)
    text = repr(rec)
    assert "s3cret" not in text and "t0k" not in text and "u:p@" not in text
    assert rec["upstream"] == "https://git.example.org/{recipe}.git"
    assert rec["backend"]["api_token"] == "(left out)" and rec["backend"]["servers"] == ["s1"]
    assert scrub_url("/srv/upstream/x") == "/srv/upstream/x"


def test_statement_always_has_a_subject():
    fleet = {"path": "/f", "commit": "c" * 40}
    canon = [
        {"recipe": "a", "commit": "1" * 40, "tag": "1.0.0", "version": "1.0.0", "deployment": "d"}
    ]
    assert [s["name"] for s in subjects(canon, fleet, "x")] == ["a"]
    assert subjects([], fleet, "x")[0]["digest"] == {"gitCommit": "c" * 40}
    assert subjects([], {**fleet, "commit": None}, "f" * 64)[0]["digest"] == {"sha256": "f" * 64}


def test_claims_a_proof_records_are_what_a_claim_always_recorded():
    """A recorded claim (Claim.to_dict, now built key by key as typed JSON) is the object a
    claim always recorded (dataclasses.asdict): the same keys in the same order, and so the
    same bytes in a notebook, records.json and the manifest."""
    claims = [Claim("disk within budget", True, "1 of 2 bytes"), Claim("x", False, "")]
    got = [c.to_dict() for c in claims]
    assert got == [dataclasses.asdict(c) for c in claims]
    assert [list(c) for c in got] == [["name", "ok", "detail"]] * 2
