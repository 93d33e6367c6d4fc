"""canonlib.evidence.merkle: RFC 6962 roots and proofs, against published vectors and pymerkle.

The vectors are the RFC 6962 reference set that Certificate Transparency's implementations
share (transparency-dev/merkle proof/verify_test.go, itself from certificate-transparency-go):
eight entries, the root of every prefix, inclusion paths and consistency proofs between them.
pymerkle (a separate implementation, in the dev extra) cross-checks roots and inclusion paths
of larger trees; its consistency proofs have a shape of their own, so our consistency proofs
are checked against its roots.
"""

from __future__ import annotations

import random

import pytest
from pymerkle import InmemoryTree

from canonlib.evidence.merkle import (
    EMPTY_ROOT,
    Tree,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
# the root of the first n entries, n = 1..8
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index, tree size, path); the vectors count leaves from 1, these from 0
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
TREE = Tree.of_entries(ENTRIES)


def hexes(path):
    return [p.hex() for p in path]


def test_hashes_are_domain_separated():
    assert leaf_hash(b"") == ROOTS[0]  # a one-entry tree's root is its leaf hash
    assert node_hash(ROOTS[0], leaf_hash(b"\x00")) == ROOTS[1]
    assert Tree([]).root() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_root_of_every_prefix(size):
    assert TREE.root(size) == ROOTS[size - 1]
    assert Tree.of_entries(ENTRIES[:size]).root() == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_inclusion_path(index, size, path):
    assert hexes(TREE.inclusion(index, size)) == path
    assert verify_inclusion(
        index, size, TREE.leaves[index], TREE.inclusion(index, size), ROOTS[size - 1]
    )


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_proof(old, new, proof):
    if old < new:
        assert hexes(TREE.consistency(old, new)) == proof
    assert verify_consistency(
        old, new, ROOTS[old - 1], ROOTS[new - 1], [bytes.fromhex(p) for p in proof]
    )


def corrupted_inclusions(index, size, leaf, path, root):
    """The vectors' own probes: each must fail."""
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    yield index - 1, size, leaf, path, root
    yield index + 1, size, leaf, path, root
    yield index ^ 2, size, leaf, path, root
    yield index, size * 2, leaf, path, root
    yield index, size // 2, leaf, path, root
    yield index, size, b"WrongLeaf", path, root
    yield index, size, leaf, path, EMPTY_ROOT
    yield index, size, leaf, path, some
    yield index, size, leaf, [*path, b""], root
    yield index, size, leaf, [*path, root], root
    yield index, size, leaf, [b"", *path], root
    yield index, size, leaf, [root, *path], root
    for i in range(len(path)):
        flipped = list(path)
        flipped[i] = bytes([path[i][0] ^ 8]) + path[i][1:]
        yield index, size, leaf, flipped, root
    if path:
        yield index, size, leaf, path[:-1], root
    if len(path) > 1:
        yield index, size, leaf, [some, *path], root


@pytest.mark.parametrize(("index", "size", "path"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_fails(index, size, path):
    good = [bytes.fromhex(p) for p in path]
    for probe in corrupted_inclusions(index, size, TREE.leaves[index], good, ROOTS[size - 1]):
        assert not verify_inclusion(*probe), probe


def corrupted_consistencies(old, new, r1, r2, proof):
    yield old - 1, new, r1, r2, proof
    yield old + 1, new, r1, r2, proof
    yield old ^ 2, new, r1, r2, proof
    yield old, new * 2, r1, r2, proof
    yield old, new // 2, r1, r2, proof
    yield old, new, b"WrongRoot", r2, proof
    yield old, new, r1, b"WrongRoot", proof
    yield old, new, r2, r1, proof
    yield old, new, r1, r2, []
    yield old, new, r1, r2, [*proof, b""]
    yield old, new, r1, r2, [*proof, r1]
    yield old, new, r1, r2, [*proof, r2]
    yield old, new, r1, r2, [b"", *proof]
    yield old, new, r1, r2, [r1, *proof]
    yield old, new, r1, r2, [r2, *proof]
    yield old, new, r1, r2, [proof[0], *proof]
    yield old, new, r1, r2, proof[:-1]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 16]) + proof[i][1:]
        yield old, new, r1, r2, flipped


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_fails(old, new, proof):
    good = [bytes.fromhex(p) for p in proof]
    for probe in corrupted_consistencies(old, new, ROOTS[old - 1], ROOTS[new - 1], good):
        assert not verify_consistency(*probe), probe


def test_trivial_consistency_and_time_travel():
    a, b = b"don't care 1", b"don't care 2"
    assert verify_consistency(0, 0, a, a, [])
    assert verify_consistency(0, 1, a, b, [])
    assert verify_consistency(1, 1, b, b, [])
    assert not verify_consistency(0, 0, a, b, [])
    assert not verify_consistency(1, 1, a, b, [])
    assert not verify_consistency(1, 0, a, b, [])  # a log that shrank
    assert not verify_consistency(2, 1, a, b, [])
    assert not verify_consistency(1, 2, a, b, [])
    assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])


def test_out_of_range_is_refused():
    assert root_from_inclusion(0, 0, ROOTS[0], []) is None
    assert root_from_inclusion(2, 1, ROOTS[0], []) is None
    with pytest.raises(ValueError):
        TREE.inclusion(8, 8)
    with pytest.raises(ValueError):
        TREE.root(9)
    with pytest.raises(ValueError):
        TREE.consistency(5, 3)


def pymerkle_tree(entries):
    tree = InmemoryTree(algorithm="sha256")  # security mode (the default): RFC 6962's prefixes
    for e in entries:
        tree.append_entry(e)
    return tree


@pytest.mark.parametrize("seed", range(3))
def test_agrees_with_pymerkle(seed):
    rng = random.Random(seed)
    entries = [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(40, 90))]
    ours, theirs = Tree.of_entries(entries), pymerkle_tree(entries)
    for size in range(1, len(entries) + 1):
        assert ours.root(size) == theirs.get_root(size), size
        for index in {0, size // 2, size - 1, rng.randrange(size)}:
            path = theirs.prove_inclusion(index + 1, size).serialize()["path"]  # from 1; leaf first
            assert hexes(ours.inclusion(index, size)) == path[1:], (index, size)
    for _ in range(60):
        new = rng.randrange(1, len(entries) + 1)
        old = rng.randrange(0, new + 1)
        proof = ours.consistency(old, new)
        r1 = theirs.get_root(old) if old else EMPTY_ROOT
        assert verify_consistency(old, new, r1, theirs.get_root(new), proof), (old, new)
        if 0 < old < new:
            assert not verify_consistency(old, new, theirs.get_root(new), r1, proof)
