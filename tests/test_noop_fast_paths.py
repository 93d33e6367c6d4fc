"""The no-op sweep's fast paths say what their slow paths say.

A weekly sweep of a catalogue that did not change reads every mirror's refs and
object indexes and checks every tag name, once per recipe.  Each of those has a
fast path (one regex, a search in C, plain ``os`` calls); these tests hold each
to the slow answer it replaces: the rule-by-rule walk, git itself, a hand-built
pack index, and the modules a sweep with nothing to test never imports.
"""

from __future__ import annotations

import hashlib
import random
import struct
import subprocess
import sys

import pytest

from canonlib import git as canon_git
from tests.gitrepo import Upstream, git

# -- tag names: the one-regex path agrees with every rule ---------------------------------

NAMES = [
    "3.0.1+v2.1.0",
    "1.0.3+1.0.3",
    "v1.0.3",
    "5.0.3+27.0.1-fpm",
    "2.0.1+1.0.6-social-amd64",
    "0.1.0-beta.1+1.2",
    "+1",
    "_x",
    "1.0.lock",
    "x.lock",
    "lock",
    "1..2",
    "1.",
    ".1",
    "-1.0.0",
    "a/b",
    "a//b",
    "a/.b",
    "a/b.lock",
    "/a",
    "a/",
    "@",
    "a@{1}",
    "a@b",
    "",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[",
    "a\\b",
    "a\x7f",
    "é1.0.0",
    "1" * 255,
    "1" * 256,
    "1." + "2" * 254,
]


def _random_names(n: int) -> list[str]:
    rnd = random.Random(23)
    alphabet = "0123456789abcAZ._+-/@{~^:?*[\\ \x00.lock"
    return ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(n)]


@pytest.mark.parametrize("name", NAMES)
def test_the_fast_path_for_tag_names_agrees_with_every_rule(name):
    assert canon_git.ref_name_problem(name) == canon_git._ref_rules(name)


def test_the_fast_path_agrees_on_thousands_of_random_names():
    names = _random_names(5000)
    wrong = [n for n in names if canon_git.ref_name_problem(n) != canon_git._ref_rules(n)]
    assert wrong == []
    assert sum(canon_git._ref_rules(n) is None for n in names) > 100  # some are valid names


def test_release_tags_take_the_fast_path_and_hostile_names_do_not():
    plain = canon_git._PLAIN_REF
    assert all(plain.fullmatch(t) for t in ["3.0.1+v2.1.0", "5.0.3+27.0.1-fpm", "v1.0.3"])
    assert not any(plain.fullmatch(t) for t in ["1..2", "-1", "a/b", "1.", ".1", "a b", "é"])
    assert canon_git.ref_name_problem("1.0.lock") == (
        "a component starts with '.' or ends with '.lock'"
    )
    assert canon_git.ref_name_problem("1" * 256) == "longer than 255 characters"


# -- refs read from the files agree with git, nested names included ----------------------


def test_nested_loose_and_packed_refs_read_as_git_reads_them(tmp_path):
    up = Upstream(tmp_path / "up")
    up.commit()
    up.tag("1.0.0+1", annotated=True)
    up.tag("release/1.0.1+1", annotated=False)
    bare = tmp_path / "m.git"
    git("clone", "-q", "--mirror", str(up.path), str(bare))
    git("pack-refs", "--all", cwd=bare)
    up.commit()
    up.tag("release/deep/2.0.0+1", annotated=True)
    up.tag("1.0.0+1", annotated=True, force=True)  # a loose ref over a packed one
    git("fetch", "-q", "--force", "origin", "+refs/tags/*:refs/tags/*", cwd=bare)
    by_git = canon_git.local_refs(bare, ["refs/heads/", "refs/tags/"])[0]
    assert "refs/tags/release/deep/2.0.0+1" in by_git
    assert canon_git.read_refs_files(bare, ["refs/heads/", "refs/tags/"]) == by_git
    assert canon_git.read_refs_files(bare, ["refs/tags/release/"]) == {
        r: o for r, o in by_git.items() if r.startswith("refs/tags/release/")
    }
    (bare / "refs" / "tags" / "release" / "x").write_text("not an object id\n")
    assert canon_git.read_refs_files(bare, ["refs/tags/"]) is None  # odd content: ask git


# -- the pack index search: a hit must sit on a name's start -------------------------------


def _write_idx(pack_dir, names: list[bytes]) -> None:
    """A version-2 pack index naming ``names`` (sorted), and an (empty) pack beside it."""
    names = sorted(names)
    counts = [sum(1 for n in names if n[0] <= b) for b in range(256)]
    body = b"\xfftOc" + struct.pack(">I", 2) + struct.pack(">256I", *counts)
    body += b"".join(names) + b"\0" * 4 * len(names)  # names, CRCs
    body += b"".join(struct.pack(">I", 12 + i) for i in range(len(names)))  # offsets
    body += b"\0" * 20
    body += hashlib.sha1(body).digest()
    stem = pack_dir / ("pack-" + "1" * 40)
    stem.with_suffix(".idx").write_bytes(body)
    stem.with_suffix(".pack").write_bytes(b"")


def test_an_object_id_spanning_two_names_in_the_index_is_not_found(tmp_path):
    objects = tmp_path / "objects"
    (objects / "pack").mkdir(parents=True)
    first = bytes([0xAB]) + bytes(range(1, 10)) + bytes([0xAB]) + bytes(range(11, 20))
    second = bytes([0xAB]) + bytes(range(21, 40))
    straddle = first[10:] + second[:10]  # starts with 0xAB too: the same fan-out bucket
    assert straddle[0] == 0xAB and straddle not in (first, second)
    _write_idx(objects / "pack", [first, second])
    store = canon_git._ObjectStore(tmp_path)
    pack = str(objects / "pack" / ("pack-" + "1" * 40)) + ".pack"
    assert store._packed(first.hex()) == (pack, 12)
    assert store._packed(second.hex())[1] == 13
    assert store._packed(straddle.hex()) is None
    assert canon_git.missing_objects(tmp_path, [first.hex(), straddle.hex()]) == [straddle.hex()]


# -- a sweep with nothing to test does not import what only a cold run needs --------------


def test_the_sweep_command_imports_no_yaml_and_no_http():
    probe = (
        "import sys, canonlib.cli.main, canonlib.cli.commands.sweep, canonlib.sweep.orchestrate\n"
        "print(' '.join(m for m in ('yaml', 'urllib.request', 'http.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    # and the code that needs them still has them
    from canonlib.backends.compose import with_labels

    assert with_labels({"services": {"app": {}}}, {"a": "b"})["services"]["app"]["deploy"] == {
        "labels": {"a": "b"}
    }
