"""RFC 6962 Merkle trees (as RFC 9162 restates them): hashes, roots, proofs, and their checks.

Pure: bytes in, bytes out, no I/O.  The hashes are SHA-256 with RFC 6962's
domain separation::

    leaf hash = SHA-256(0x00 || entry)
    node hash = SHA-256(0x01 || left || right)
    root of no entries = SHA-256("")

:class:`Tree` holds the leaf hashes of a log and answers ``root(size)``,
``inclusion(index, size)`` and ``consistency(old, new)`` for any prefix,
remembering every subtree hash it computed (so the roots and proofs of every
checkpoint of a log cost about one pass over it).  :func:`root_from_inclusion`
and :func:`verify_consistency` are the verifier's side (RFC 9162 2.1.3.2 and
2.1.4.2): they need only the proof, never the entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class Tree:
    """The Merkle tree over ``leaves`` (leaf hashes, in log order); every prefix of it too."""

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = list(leaves)
        self._memo: dict[tuple[int, int], bytes] = {}

    @classmethod
    def of_entries(cls, entries: Sequence[bytes]) -> Tree:
        return cls([leaf_hash(e) for e in entries])

    @property
    def size(self) -> int:
        return len(self.leaves)

    def _check(self, size: int) -> None:
        if not 0 <= size <= len(self.leaves):
            raise ValueError(f"tree size {size} is not between 0 and {len(self.leaves)}")

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]), for hi > lo."""
        if hi - lo == 1:
            return self.leaves[lo]
        got = self._memo.get((lo, hi))
        if got is None:
            k = lo + split(hi - lo)
            got = self._memo[(lo, hi)] = node_hash(self._mth(lo, k), self._mth(k, hi))
        return got

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all of them)."""
        size = self.size if size is None else size
        self._check(size)
        return self._mth(0, size) if size else EMPTY_ROOT

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion path of leaf ``index`` in the tree of the first ``size`` leaves."""
        size = self.size if size is None else size
        self._check(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = split(hi - lo)
        if m < k:
            return self._path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        """The consistency proof from the tree of ``old`` leaves to the one of ``new`` leaves
        (empty when ``old`` is 0 or equals ``new``)."""
        new = self.size if new is None else new
        self._check(new)
        if not 0 <= old <= new:
            raise ValueError(f"tree size {old} is not between 0 and {new}")
        if old in (0, new):
            return []
        return self._subproof(old, 0, new, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self._mth(lo, hi)]
        k = split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self._mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self._mth(lo, lo + k)]


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that inclusion ``path`` leads to from ``leaf`` at ``index`` in a tree of ``size``
    leaves (RFC 9162 2.1.3.2), or None when the path cannot be one for that index and size."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None  # a path longer than the tree is high
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """True when ``path`` proves ``leaf`` is entry ``index`` of the tree ``(size, root)``."""
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree of ``old`` leaves with ``old_root`` is a prefix of the
    tree of ``new`` leaves with ``new_root`` (RFC 9162 2.1.4.2)."""
    if not 0 <= old <= new:
        return False  # a log never shrinks
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0
