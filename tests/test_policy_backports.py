"""``policy.backports`` and ``backport_reason`` as pure tables (issue 30 part 7: they were
tested only end to end, and mutmut left five of their mutants alive)."""

from __future__ import annotations

import pytest

from canonlib.sweep import policy

CANON = "6.0.1+28.0.2-fpm"


@pytest.mark.parametrize(
    ("added", "canon", "allow_pre", "want"),
    [
        # nothing canonical yet: nothing can be below it
        (["5.0.3+27.0.1-fpm"], None, False, []),
        # one back-port below the canonical
        (["5.0.3+27.0.1-fpm"], CANON, False, ["5.0.3+27.0.1-fpm"]),
        # the canonical itself is not below itself (strictly lower only)
        ([CANON], CANON, False, []),
        # a newer release is not a back-port
        (["6.0.2+28.0.3-fpm", "7.0.0+29.0.0"], CANON, False, []),
        # oldest first, whatever order the sync listed them in
        (
            ["5.1.0+27.1.0-fpm", "4.9.9+26.0.0", "5.0.3+27.0.1-fpm"],
            CANON,
            False,
            ["4.9.9+26.0.0", "5.0.3+27.0.1-fpm", "5.1.0+27.1.0-fpm"],
        ),
        # same recipe version, lower app part: the app part breaks the tie
        (["6.0.1+28.0.1-fpm"], CANON, False, ["6.0.1+28.0.1-fpm"]),
        # tags that are no version are dropped, not errors
        (["main", "latest", "v-nope", "5.0.3+27.0.1-fpm"], CANON, False, ["5.0.3+27.0.1-fpm"]),
        # a prerelease below the canonical counts only when the meta allows prereleases
        (["5.0.0-rc.1+27.0.0"], CANON, False, []),
        (["5.0.0-rc.1+27.0.0"], CANON, True, ["5.0.0-rc.1+27.0.0"]),
        # a prerelease of the canonical's own version sorts below it
        (["6.0.1-beta+28.0.2-fpm"], CANON, True, ["6.0.1-beta+28.0.2-fpm"]),
        # mixed: new above and below, only the below
        (["6.1.0+28.1.0", "5.0.3+27.0.1-fpm"], CANON, False, ["5.0.3+27.0.1-fpm"]),
        ([], CANON, False, []),
    ],
)
def test_backports(added, canon, allow_pre, want):
    assert policy.backports(added, canon, allow_prerelease=allow_pre) == want


def test_backports_default_is_no_prereleases():
    assert policy.backports(["5.0.0-rc.1+27.0.0"], CANON) == []


def test_backports_takes_any_iterable_once():
    assert policy.backports(iter(["5.0.3+27.0.1-fpm"]), CANON) == ["5.0.3+27.0.1-fpm"]


@pytest.mark.parametrize(
    ("tags", "want"),
    [
        (
            ["5.0.3+27.0.1-fpm"],
            "newer tag exists: 5.0.3+27.0.1-fpm (published since the last sweep) is lower "
            "than the canonical 6.0.1+28.0.2-fpm, so it is a back-port: not tested, "
            "not promoted",
        ),
        (
            ["4.9.9+26.0.0", "5.0.3+27.0.1-fpm"],
            "newer tag exists: 4.9.9+26.0.0, 5.0.3+27.0.1-fpm (published since the last "
            "sweep) is lower than the canonical 6.0.1+28.0.2-fpm, so it is a back-port: "
            "not tested, not promoted",
        ),
    ],
)
def test_backport_reason(tags, want):
    assert policy.backport_reason(tags, CANON) == want
